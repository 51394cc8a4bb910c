"""Rendering and normalisation speed on one core.

    .venv/bin/python benchmarks/render.py [--frames 2000]

Rendering: stick figures with body, face and hands at 512x256 (the paper's global
stage size) and at the demo's 256x128. Normalisation: statistics and eqs. 7-8 for
10,000 frames. Targets (issue 4): >= 1000 frames/s rendering at 512x256, < 1 s
normalising 10,000 frames.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edn.keypoints import PoseSequence  # noqa: E402
from edn.normalize import normalize_poses  # noqa: E402
from edn.render import drawing_plan, render_pose  # noqa: E402
from edn.subject_stats import compute_stats  # noqa: E402
from synthetic_poses import standing_pose  # noqa: E402


def people(count: int, size: tuple[int, int], seed: int = 0) -> PoseSequence:
    """Standing figures of varied place, depth and height, with per-joint jitter."""
    rng = np.random.default_rng(seed)
    width, height = size
    ankle_y = rng.uniform(0.7, 0.95, count) * height
    poses = np.stack([standing_pose(x, a, 0.7 * a) for x, a in zip(rng.uniform(0.3, 0.7, count) * width, ankle_y)])
    poses[..., :2] += rng.normal(0, 0.01 * height, poses[..., :2].shape)
    return PoseSequence(poses.astype(np.float32), size, "synthetic")


def render_rate(size: tuple[int, int], frames: int) -> float:
    sequence = people(frames, size)
    plan = drawing_plan(size[0])
    out = np.zeros((size[1], size[0], 3), np.uint8)
    start = time.perf_counter()
    for pose in sequence.keypoints:
        render_pose(pose, size, plan, out=out)
    return frames / (time.perf_counter() - start)


def normalize_seconds(frames: int = 10_000) -> float:
    source, target = people(frames, (512, 256), seed=1), people(frames, (512, 256), seed=2)
    start = time.perf_counter()
    normalize_poses(source, compute_stats(source, "s"), compute_stats(target, "t"))
    return time.perf_counter() - start


def measure(frames: int = 2000) -> list[dict]:
    cv2.setNumThreads(1)
    rows = [{"stage": "render", "what": f"{w}x{h}, 1 core", "figure": render_rate((w, h), frames), "unit": "frames/s"}
            for w, h in ((512, 256), (256, 128), (1024, 512))]
    rows.append({"stage": "normalise", "what": "stats + eqs. 7-8, 10,000 frames", "figure": normalize_seconds(),
                 "unit": "s"})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'stage':<10} {'what':<34} {'figure':>10} unit")
    for r in rows:
        print(f"{r['stage']:<10} {r['what']:<34} {r['figure']:>10.2f} {r['unit']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    print_table(measure(parser.parse_args().frames))


if __name__ == "__main__":
    main()
