"""Fake detector speed on the CPU: training steps and scoring pairs at the demo's working size.

    .venv/bin/python benchmarks/detector.py [--threads 2] [--steps 30]

Training: steps of the default small CNN (width 16) on batches of 16 random
96x96 crops (8 pairs real + generated). Scoring: whole 256x128 pairs, cut into
96x96 tiles as `edn detect` does. Random frames: speed does not depend on the
content. Target (issue 9): the demo's detector (400 steps) in minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edn.fake_detector.data import SubjectFrames  # noqa: E402
from edn.fake_detector.model import DetectorArchitecture, build_detector  # noqa: E402
from edn.fake_detector.pairs import split_subject_pairs  # noqa: E402
from edn.fake_detector.score import score_pairs  # noqa: E402
from edn.fake_detector.train import DetectorTrainingOptions, train_detector  # noqa: E402

SIZE = (256, 128)


def measure(threads: int = 2, steps: int = 30, pairs: int = 64) -> list[dict]:
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (pairs + 1, SIZE[1], SIZE[0], 3), dtype=np.uint8)
    subject = SubjectFrames(name="random", real=frames, generated=frames[::-1].copy(),
                            pairs=split_subject_pairs(np.ones(pairs + 1, bool), np.zeros(pairs, bool), pairs))
    torch.manual_seed(0)
    model = build_detector(DetectorArchitecture())
    options = DetectorTrainingOptions(iterations=steps)
    start = time.perf_counter()
    train_detector(model, subject, options, torch.device("cpu"), progress=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    score_pairs(model, frames, np.arange(pairs), torch.device("cpu"), tile_size=options.crop_size)
    score_s = time.perf_counter() - start
    return [{"backbone": "small_cnn", "threads": threads, "train steps/s": steps / train_s,
             "400 steps (s)": 400 * train_s / steps, "scored pairs/s": pairs / score_s}]


def print_table(rows: list[dict]) -> None:
    print("| backbone | threads | train steps/s | 400 steps (s) | scored pairs/s (256x128) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['backbone']} | {row['threads']} | {row['train steps/s']:.2f} | {row['400 steps (s)']:.0f} | "
              f"{row['scored pairs/s']:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print_table(measure(args.threads, args.steps))
