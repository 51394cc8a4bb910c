"""Reliability of the pose stage: MediaPipe detection (two workers, a scratch store at
twice the working size) killed at a seeded point, then rerun to the very table an
uninterrupted run writes. Bad pose input (no person, a person on their side, frames of
another video) is in tests/test_reliability_bad_input.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edn.ingest.decode import decode_video
from helpers import DEMO, run_edn
from reliability_support import KILLS, same_bytes, stage_kill_test


@pytest.fixture(scope="module")
def pose_clip(tmp_path_factory) -> dict[str, Path]:
    """1.5 s of the aerobics demo, fetched and decoded as the workflow does."""
    d = tmp_path_factory.mktemp("pose_clip")
    assert run_edn("fetch", "--source", DEMO / "source_aerobics.mp4", "--output", d / "a.mp4", "--end",
                   "1.5").returncode == 0
    decode_video(d / "a.mp4", d / "frames.npy", d / "meta.json", working_size=(256, 128))
    return {"video": d / "a.mp4", "frames": d / "frames.npy", "meta": d / "meta.json"}


@pytest.mark.slow
@pytest.mark.parametrize("kill", list(KILLS))
def test_killed_pose_detection_reruns_to_the_same_table(pose_clip, kill_references, tmp_path: Path,
                                                        kill: str) -> None:
    def make_args(out: Path) -> tuple[list, list[Path]]:
        # Detection at twice the working size: two MediaPipe workers and a scratch store beside the output.
        return (["pose", "--frames", pose_clip["frames"], "--meta", pose_clip["meta"], "--video", pose_clip["video"],
                 "--detection-scale", 2, "--workers", 2, "--output", out / "poses.parquet"], [out / "poses.parquet"])

    stage_kill_test(tmp_path, "pose", kill, make_args, same_bytes("poses.parquet"), points=1,
                    references=kill_references)
