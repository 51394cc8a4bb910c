"""Fake detector speed on the CPU: training steps and scoring pairs at the demo's working size.

Training: steps of the default small CNN (width 16) on batches of 16 random
96x96 crops (8 pairs real + generated), as ``edn train-detector`` takes them.
Scoring: whole 256x128 pairs, cut into 96x96 tiles as ``edn detect`` does.
Random frames: speed does not depend on the content. Target (issue 9): the
demo's detector (400 steps) in minutes on 2 cores.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from edn.fake_detector.data import SubjectFrames
from edn.fake_detector.model import DetectorArchitecture, build_detector
from edn.fake_detector.pairs import split_subject_pairs
from edn.fake_detector.score import score_pairs
from edn.fake_detector.train import train_detector
from edn.core.options import DetectorOptions


def _subject(size: tuple[int, int], pairs: int) -> SubjectFrames:
    width, height = size
    frames = np.random.default_rng(0).integers(0, 256, (pairs + 1, height, width, 3), dtype=np.uint8)
    return SubjectFrames(name="random", real=frames, generated=frames[::-1].copy(),
                         pairs=split_subject_pairs(np.ones(pairs + 1, bool), np.zeros(pairs, bool), pairs))


def train_steps_per_second(size: tuple[int, int], steps: int, threads: int) -> float:
    """Training steps/s of the default detector on frames of ``size`` (width, height)."""
    torch.set_num_threads(threads)
    subject = _subject(size, 64)
    torch.manual_seed(0)
    model = build_detector(DetectorArchitecture())
    start = time.perf_counter()
    train_detector(model, subject, DetectorOptions(iterations=steps), torch.device("cpu"), progress=False)
    return steps / (time.perf_counter() - start)


def scored_pairs_per_second(size: tuple[int, int], pairs: int, threads: int) -> float:
    """Pairs/s scored by an (untrained) default detector on whole frames of ``size``."""
    torch.set_num_threads(threads)
    subject = _subject(size, pairs)
    torch.manual_seed(0)
    model = build_detector(DetectorArchitecture())
    start = time.perf_counter()
    score_pairs(model, subject.real, np.arange(pairs), torch.device("cpu"),
                tile_size=DetectorOptions().crop_size)
    return pairs / (time.perf_counter() - start)
