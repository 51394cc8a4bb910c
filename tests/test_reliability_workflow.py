"""Reliability of the workflow: a second Snakemake run on a results directory that a
first run holds is refused, and the first run's outputs stay whole.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from edn.ingest.frames import load_frames, read_meta
from helpers import ROOT, SNAKEMAKE, leftovers, run_snakemake, write_config


@pytest.mark.slow
def test_a_second_snakemake_run_on_the_same_results_is_refused(tmp_path: Path, held_server) -> None:
    url, release, requests = held_server
    config = {"subjects": {"a": {"video": url, "end": 2.0}}}
    target = "results/frames/a/frames.npy"
    config_path = write_config(tmp_path, config)
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory",
                                  str(tmp_path), "--configfile", str(config_path), "--cores", "2", target],
                                 cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 300
            while not requests:  # the first run's fetch job is running: the directory is locked
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the first run never started downloading"
                time.sleep(0.05)
            second = run_snakemake(tmp_path, config, target)
        finally:
            release.set()
            first.wait(timeout=600)
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.output, second.output[-3000:]
    assert first.returncode == 0, (tmp_path / "first.log").read_text()[-3000:]
    # The first run's outputs are complete, and Snakemake sees nothing left to do.
    meta = read_meta(tmp_path / "results/frames/a/meta.json")
    assert meta.frame_count == len(load_frames(tmp_path / target)) == 60
    assert not leftovers(tmp_path / "results")
    again = run_snakemake(tmp_path, config, target, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.output, again.output[-3000:]
