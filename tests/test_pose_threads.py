"""``pose.workers`` is bounded by the job's threads: Snakemake's ``--cores`` decides how many
MediaPipe processes a detection job starts, not the config value alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import DEMO, run_snakemake


@pytest.mark.parametrize("cores,workers", [(1, 1), (3, 3), (8, 6)])
def test_pose_workers_are_the_jobs_threads(tmp_path: Path, cores: int, workers: int) -> None:
    config = {"subjects": {"a": {"video": str(DEMO / "source_dancer.mp4")}}, "pose": {"workers": 6}}
    result = run_snakemake(tmp_path, config, "results/poses/a.parquet", "--dry-run", "--printshellcmds",
                           "--cores", str(cores))
    assert result.returncode == 0, result.output
    command = next(line for line in result.output.splitlines() if " pose --frames " in line)
    assert re.findall(r"--workers (\S+)", command) == [str(workers)], command
