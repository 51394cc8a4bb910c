"""The Snakemake workflow end to end on the shipped demo videos, and its lint."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from edn.ingest.frames import read_meta
from edn.ingest.media import count_frames
from helpers import DEMO, ROOT, SNAKEMAKE, run_snakemake

DEMO_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def demo_config() -> dict:
    """The demo config with video paths made absolute, for runs in other directories."""
    config = copy.deepcopy(DEMO_CONFIG)
    for subject in config["subjects"].values():
        subject["video"] = str(ROOT / subject["video"])
    return config


def test_lint_is_clean() -> None:
    result = subprocess.run([str(SNAKEMAKE), "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


@pytest.mark.slow  # two Snakemake runs (fetch, decode)
def test_demo_subjects_are_fetched_and_decoded(tmp_path: Path) -> None:
    result = run_snakemake(tmp_path, demo_config(), "results/frames/dancer/frames.npy",
                           "results/frames/juggler/frames.npy")
    assert result.returncode == 0, result.output
    for subject, video in (("dancer", "source_dancer"), ("juggler", "target_juggler")):
        meta = read_meta(tmp_path / f"results/frames/{subject}/meta.json")
        frames = np.load(tmp_path / f"results/frames/{subject}/frames.npy", mmap_mode="r")
        width, height = DEMO_CONFIG["frames"]["width"], DEMO_CONFIG["frames"]["height"]
        assert (width, height) == (512, 256)  # the demo's output size
        assert frames.shape == (count_frames(DEMO / f"{video}.mp4"), height, width, 3) == (meta.frame_count, height,
                                                                                         width, 3)
        assert frames.max() > 0  # real pixels, not a placeholder
        assert (tmp_path / f"results/logs/decode_frames/{subject}.log").stat().st_size > 0
        assert (tmp_path / f"results/benchmarks/decode_frames/{subject}.tsv").exists()
    again = run_snakemake(tmp_path, demo_config(), "results/frames/dancer/frames.npy",
                          "results/frames/juggler/frames.npy")
    assert again.returncode == 0 and "Nothing to be done" in again.output


@pytest.mark.slow  # two Snakemake runs (fetch, decode)
def test_subject_from_a_url_with_trim(http_server, tmp_path: Path) -> None:
    shutil.copy(DEMO / "source_aerobics.mp4", http_server.directory / "aerobics.mp4")
    config = {"subjects": {"aerobics": {"video": f"{http_server.url}/aerobics.mp4", "start": 1.0, "end": 3.0}}}
    result = run_snakemake(tmp_path, config, "results/frames/aerobics/frames.npy")
    assert result.returncode == 0, result.output
    assert read_meta(tmp_path / "results/frames/aerobics/meta.json").frame_count == 60  # 2 s at 30 fps
    # Changing the trim re-cuts the cached download: no second request.
    served = len(http_server.requests)
    config["subjects"]["aerobics"]["end"] = 2.0
    again = run_snakemake(tmp_path, config, "results/frames/aerobics/frames.npy")
    assert again.returncode == 0, again.output
    assert len(http_server.requests) == served
    assert read_meta(tmp_path / "results/frames/aerobics/meta.json").frame_count == 30


def test_dry_run_of_the_default_target_lists_the_stages(tmp_path: Path) -> None:
    result = run_snakemake(tmp_path, demo_config(), "--dry-run", "--quiet", "rules")
    assert result.returncode == 0, result.output
    counts = {line.split()[0]: int(line.split()[1]) for line in result.output.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts["fetch_video"] == 2 and counts["decode_frames"] == 2


def test_a_pair_without_a_model_is_an_error_when_training_is_disabled(tmp_path: Path) -> None:
    config = demo_config()
    config["training"] = {"enabled": False}
    result = run_snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert ("pair dancer_to_juggler: target 'juggler' has no trained model results/models/juggler/global.pt"
            in result.output)
    assert "training is disabled (training.enabled: false)" in result.output
