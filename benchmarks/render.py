"""Rendering and normalization speed, on one core as ``edn render``, ``edn stats`` and ``edn normalize`` run.

Rendering: stick figures with body, face and hands (137 keypoints) drawn into a
reused frame. Normalization: both subjects' statistics and eqs. 7-8 for every
frame. Inputs are synthetic standing people of varied place, depth and height.
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.timing import ROOT, best_seconds
from edn.pose.keypoints import PoseSequence
from edn.normalize.pose_transform import normalize_poses
from edn.labels.render import drawing_plan, render_pose
from edn.normalize.subject_stats import compute_stats

sys.path.insert(0, str(ROOT / "tests"))
from synthetic_poses import standing_pose  # noqa: E402  (the tests' synthetic people)


def people(count: int, size: tuple[int, int], seed: int = 0) -> PoseSequence:
    """Standing figures of varied place, depth and height, with per-joint jitter."""
    rng = np.random.default_rng(seed)
    width, height = size
    ankle_y = rng.uniform(0.7, 0.95, count) * height
    poses = np.stack([standing_pose(x, a, 0.7 * a) for x, a in zip(rng.uniform(0.3, 0.7, count) * width, ankle_y)])
    poses[..., :2] += rng.normal(0, 0.01 * height, poses[..., :2].shape)
    return PoseSequence(poses.astype(np.float32), size, "synthetic")


def render_frames_per_second(size: tuple[int, int], frames: int, repeats: int) -> float:
    """Frames/s of drawing ``frames`` stick figures at ``size`` (width, height), one core."""
    import cv2

    cv2.setNumThreads(1)
    sequence = people(frames, size)
    plan = drawing_plan(size[0])
    out = np.zeros((size[1], size[0], 3), np.uint8)

    def draw_all() -> None:
        for pose in sequence.keypoints:
            render_pose(pose, size, plan, out=out)

    return frames / best_seconds(draw_all, repeats)


def normalize_seconds(frames: int, repeats: int) -> float:
    """Seconds of both subjects' statistics plus normalizing ``frames`` source frames."""
    source, target = people(frames, (512, 256), seed=1), people(frames, (512, 256), seed=2)
    return best_seconds(lambda: normalize_poses(source, compute_stats(source, "s"), compute_stats(target, "t")),
                        repeats)
