"""Pose speed: frames/s of a whole MediaPipe ``edn pose`` detection, and of keypoint filtering.

Detection is timed as a pipeline run pays for it: worker processes started,
models loaded, and with ``detection_scale`` s > 1 the video decoded again at s
times the working size (the demo config: 256x128 working frames, detection at
512x256, 2 workers). The working frames are decoded before the clock starts.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.render import people
from benchmarks.timing import DEMO, best_seconds
from edn.ingest.decode import decode_video
from edn.pose.detect import detect
from edn.pose.keypoint_filter import filter_poses


def detect_frames_per_second(video: str, size: tuple[int, int], detection_scale: float, workers: int) -> float:
    """Frames/s of one MediaPipe detection on the demo ``video`` (name without .mp4)
    decoded to ``size`` (width, height), with ``workers`` processes."""
    path = DEMO / f"{video}.mp4"
    with tempfile.TemporaryDirectory() as scratch:
        frames, meta_path = Path(scratch) / "frames.npy", Path(scratch) / "meta.json"
        meta = decode_video(path, frames, meta_path, working_size=size)
        start = time.perf_counter()
        detect("mediapipe", frames_path=frames, meta_path=meta_path, video=path, detection_scale=detection_scale,
               workers=workers, scratch_dir=scratch, show_progress=False)
        return meta.frame_count / (time.perf_counter() - start)


def filter_frames_per_second(frames: int, repeats: int) -> float:
    """Frames/s of ``edn filter-poses`` (gap filling, median and Gaussian filters,
    default settings) on ``frames`` synthetic frames of 137 keypoints, one in
    twenty of them missing (detectors miss points; gaps take the filling path)."""
    poses = people(frames, (512, 256))
    keypoints = poses.keypoints.copy()
    keypoints[np.random.default_rng(0).random(keypoints.shape[:2]) < 0.05] = 0.0
    poses = poses.replace(keypoints)
    return frames / best_seconds(lambda: filter_poses(poses), repeats)
