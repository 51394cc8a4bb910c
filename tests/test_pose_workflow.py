"""The pose rules in the Snakemake workflow, and their config."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from edn.ingest.frames import read_meta
from edn.pose.keypoints import read_pose_table
from edn.pose.skeleton import BODY
from helpers import DEMO, ROOT, run_snakemake

SCHEMA = str(ROOT / "config" / "config.schema.yaml")
DEMO_CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.slow
def test_pose_rules_build_the_smoothed_table_and_the_preview(tmp_path: Path) -> None:
    config = {"subjects": {"aerobics": {"video": str(DEMO / "source_aerobics.mp4"), "start": 0, "end": 1}},
              "pose": {"detection_scale": 2}}
    result = run_snakemake(tmp_path, config, "results/poses/aerobics.preview.mp4")
    assert result.returncode == 0, result.output
    raw = read_pose_table(tmp_path / "results/poses/aerobics.parquet")
    smooth = read_pose_table(tmp_path / "results/poses/aerobics.filtered.parquet")
    meta = read_meta(tmp_path / "results/frames/aerobics/meta.json")
    assert raw.frame_count == smooth.frame_count == meta.frame_count == 30
    assert raw.detector == "mediapipe" and raw.extra["detection_scale"] == 2
    assert (raw.confidence[:, BODY].max(axis=1) > 0).all()
    assert (tmp_path / "results/poses/aerobics.preview.mp4").stat().st_size > 10_000
    for rule in ("detect_poses", "filter_poses", "preview_poses"):
        assert (tmp_path / f"results/logs/{rule}/aerobics.log").exists()
        assert (tmp_path / f"results/benchmarks/{rule}/aerobics.tsv").exists()
    assert "decoding results/videos/aerobics.mp4 again at 512x256" in \
        (tmp_path / "results/logs/detect_poses/aerobics.log").read_text()
    # Smoothing settings are the rule's: a change reruns smoothing and what follows, not detection.
    config["keypoint_filter"] = {"sigma_frames": 3.0}
    again = run_snakemake(tmp_path, config, "results/poses/aerobics.preview.mp4", "--dry-run", "--quiet", "rules")
    assert again.returncode == 0, again.output
    assert "filter_poses" in again.output and "detect_poses" not in again.output


def _rules_to_run(result) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in result.output.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}


def test_default_target_builds_every_subjects_smoothed_poses_and_preview(tmp_path: Path) -> None:
    config = copy.deepcopy(DEMO_CONFIG)
    for subject in config["subjects"].values():
        subject["video"] = str(ROOT / subject["video"])
    result = run_snakemake(tmp_path, config, "--dry-run", "--quiet", "rules")
    assert result.returncode == 0, result.output
    counts = _rules_to_run(result)
    assert counts["detect_poses"] == counts["filter_poses"] == counts["preview_poses"] == len(config["subjects"])


def test_backend_options_reach_the_command(tmp_path: Path) -> None:
    json_dir = tmp_path / "openpose_out"
    json_dir.mkdir()
    config = {"subjects": {
        "a": {"video": str(DEMO / "source_dancer.mp4"), "pose_backend": "openpose_json", "openpose_json": str(json_dir)},
        "b": {"video": str(DEMO / "source_dancer.mp4")},
    }, "pose": {"openpose_json_coordinates": "working", "min_confidence": {"openpose": 0.2}, "workers": 1}}
    result = run_snakemake(tmp_path, config, "results/poses/a.parquet", "results/poses/b.parquet",
                           "--dry-run", "--printshellcmds")
    assert result.returncode == 0, result.output
    commands = [line for line in result.output.splitlines() if " pose --frames " in line]
    a = next(line for line in commands if "results/poses/a.parquet" in line)
    b = next(line for line in commands if "results/poses/b.parquet" in line)
    assert "--backend openpose_json" in a and f"--json-dir {json_dir}" in a and "--openpose-json-coordinates working" in a
    assert "--min-confidence-openpose 0.2" in a and "--video" not in a
    assert "--backend mediapipe" in b and "--min-confidence-mediapipe 0.5" in b and "--workers 1" in b
    assert "--detection-scale 1 " in b and "--video" not in b  # the default: detect on the working frames


@pytest.mark.parametrize("subject,message", [
    ({"pose_backend": "openpose_json"}, "'a' uses pose backend openpose_json but has no openpose_json directory"),
    ({"pose_backend": "openpose"}, "config pose.openpose_model_folder: needed by subject 'a'"),
])
def test_a_backend_without_its_input_is_a_config_error(tmp_path: Path, subject: dict, message: str) -> None:
    config = {"subjects": {"a": {"video": str(DEMO / "source_dancer.mp4"), **subject}}}
    result = run_snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0 and message in result.output


def test_schema_fills_pose_defaults_and_rejects_unknown_backends() -> None:
    config = {"subjects": {"a": {"video": "a.mp4"}}}
    validate(config, schema=SCHEMA, set_default=True)
    assert config["pose"] == {"backend": "mediapipe", "detection_scale": 1, "workers": 2,
                              "min_confidence": {"mediapipe": 0.5, "openpose": 0.05},
                              "openpose_model_folder": None, "openpose_flags": "",
                              "openpose_json_coordinates": "source"}
    assert config["keypoint_filter"] == {"max_gap_frames": 5, "median_window": 5, "sigma_frames": 2.0}
    for bad in ({"pose": {"backend": "alphapose"}},
                {"subjects": {"a": {"video": "a.mp4", "pose_backend": "openpos"}}},
                {"pose": {"detection_scale": 0.5}},
                {"keypoint_filter": {"sigma": 2}}):
        with pytest.raises(WorkflowError) as error:
            validate({"subjects": {"a": {"video": "a.mp4"}}, **bad}, schema=SCHEMA, set_default=True)
        assert any(word in str(error.value) for word in ("is not one of", "less than", "was unexpected"))
    # The demo detects at 512 px wide or more, where MediaPipe finds faces and hands (docs/poses.md).
    assert DEMO_CONFIG["frames"]["width"] * DEMO_CONFIG["pose"]["detection_scale"] >= 512
