"""The pose_warp method (PoseWarp's idea without learning) as a row of the evaluation and ablation
tables: edn pose-warp draws the held-out poses from the target's training frames, edn evaluate
--baseline pose_warp scores those frames, and the workflow plans both."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edn.core.options import first_heldout_frame
from edn.ingest.frames import load_frames
from edn.pose.keypoints import PoseSequence, write_pose_table
from helpers import run_edn, run_snakemake
from test_exemplar_conditioning import _blob_poses
from test_workflow import demo_config
from training_data import write_subject


def _subject(directory: Path, frames: int = 20, size: tuple[int, int] = (64, 32)) -> dict:
    data = write_subject(directory, frames=frames, size=size)
    data["poses"] = directory / "poses.parquet"
    write_pose_table(data["poses"], PoseSequence(_blob_poses(frames, size), size, "synthetic"))
    return data


def _pose_warp(data: dict, output: Path, *extra: str):
    return run_edn("pose-warp", "--frames", data["frames"], "--masks", data["masks"], "--poses", data["poses"],
                   "--plate", data["plate"], "--requested", data["poses"], *extra, "--holdout-fraction", "0.2",
                   "--output", output, "--validity", output.with_suffix(".validity.npy"),
                   "--exemplars", output.with_suffix(".csv"))


def _evaluate(data: dict, warped: Path, generated: Path):
    return run_edn("evaluate", "--method", "pose_warp", "--baseline", "pose_warp", "--frames", data["frames"],
                   "--poses", data["poses"], "--labels", data["labels"], "--index", data["index"],
                   "--holdout-fraction", "0.2", "--plate", data["plate"], "--exemplars", warped,
                   "--no-pose-fidelity", "--threads", "1", "--generated", generated,
                   "--output", generated.with_suffix(".csv"))


@pytest.mark.slow  # edn pose-warp and edn evaluate end to end
def test_evaluate_scores_the_held_out_pose_warp_frames_and_refuses_a_wrong_count(tmp_path: Path) -> None:
    data = _subject(tmp_path / "subject")
    count = len(load_frames(data["frames"]))
    heldout = count - first_heldout_frame(count, 0.2)

    made = _pose_warp(data, tmp_path / "heldout.npy", "--heldout-only")
    assert made.returncode == 0, made.stderr
    warped = load_frames(tmp_path / "heldout.npy")
    assert len(warped) == heldout == 4
    chosen = pd.read_csv(tmp_path / "heldout.csv")
    assert (chosen.exemplar < first_heldout_frame(count, 0.2)).all()  # drawn from training frames only

    scored = _evaluate(data, tmp_path / "heldout.npy", tmp_path / "generated.npy")
    assert scored.returncode == 0, scored.stderr
    assert np.array_equal(load_frames(tmp_path / "generated.npy"), warped)  # scored as they were drawn
    metrics = pd.read_csv(tmp_path / "generated.csv")
    assert set(metrics.method) == {"pose_warp"}

    # Every frame warped (no --heldout-only): the count is not the held-out one, and nothing is written.
    whole = _pose_warp(data, tmp_path / "whole.npy")
    assert whole.returncode == 0, whole.stderr
    refused = _evaluate(data, tmp_path / "whole.npy", tmp_path / "refused.npy")
    assert refused.returncode != 0
    message = refused.stderr.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("edn evaluate: error: pose-warp frames ")
    assert f"{count} frames, the target has {heldout} held-out frames" in message[0]
    assert not (tmp_path / "refused.npy").exists() and not (tmp_path / "refused.csv").exists()

    missing = run_edn("evaluate", "--method", "pose_warp", "--baseline", "pose_warp", "--frames", data["frames"],
                      "--poses", data["poses"], "--labels", data["labels"], "--index", data["index"],
                      "--no-pose-fidelity", "--generated", tmp_path / "none.npy", "--output", tmp_path / "none.csv")
    assert missing.returncode != 0 and "the pose_warp baseline needs --exemplars" in missing.stderr
    assert not (tmp_path / "none.npy").exists()


def test_the_ablation_plans_pose_warp_from_the_held_out_poses(tmp_path: Path) -> None:
    """A dry run (fast lane, as tests/test_workflow.py's): the held-out warp and its evaluation are planned."""
    config = demo_config()
    config["training"] = {**config["training"], "use_local": False, "method": "composite"}
    result = run_snakemake(tmp_path, config, "-n", "-p", "--forceall", "ablations")
    assert result.returncode == 0, result.output
    jobs = result.output.split("\n\n")
    warp = [job for job in jobs if "rule pose_warp_heldout:" in job]
    assert len(warp) == 1
    assert "results/exemplars/juggler/heldout.npy" in warp[0]
    assert "pose-warp" in warp[0] and "--heldout-only" in warp[0]
    assert "--requested results/poses/juggler.filtered.parquet" in warp[0]
    # A camera that moves: the held-out frames are drawn over the plate in their own camera.
    assert ("--mosaic results/background/juggler.mosaic.png --camera results/background/juggler.camera.csv"
            in warp[0] and "--plate-report results/background/juggler.json" in warp[0])
    exemplars = [job for job in jobs if "rule training_exemplars:" in job]
    assert len(exemplars) == 1 and "--camera results/background/juggler.camera.csv" in exemplars[0]
    evaluation = [job for job in jobs if "rule evaluate_method:" in job and "method=pose_warp" in job]
    assert len(evaluation) == 1
    assert "--baseline pose_warp" in evaluation[0]
    assert "--exemplars results/exemplars/juggler/heldout.npy" in evaluation[0]
    assert "results/exemplars/juggler/heldout.npy" in evaluation[0].split("output:")[0]  # an input
    # A generator conditioned on exemplars corrects those same frames (with their validity), never the
    # training pairs, whose gap hides the last training frames from the first held-out ones.
    conditioned = [job for job in jobs if "rule evaluate_method:" in job and re.search(r"method=ts\b(?!_)", job)]
    assert len(conditioned) == 1
    assert ("--exemplars results/exemplars/juggler/heldout.npy --exemplar-validity "
            "results/exemplars/juggler/heldout.validity.npy") in conditioned[0]
    assert "training.npy" not in conditioned[0]
