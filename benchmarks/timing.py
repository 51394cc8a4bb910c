"""What every benchmark module shares: where the project is, and how a figure is timed.

Figures are the fastest of several repetitions: on a machine shared with other
work, the fastest run is the one least disturbed by it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo"


def best_seconds(action: Callable[[], object], repeats: int, warmup: int = 0) -> float:
    """Wall-clock seconds of the fastest of ``repeats`` calls of ``action``, after
    ``warmup`` untimed calls (caches, allocator, oneDNN kernel choice)."""
    if repeats < 1:
        raise ValueError(f"repeats {repeats}: at least 1 is needed")
    for _ in range(warmup):
        action()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def size_text(size: tuple[int, int]) -> str:
    """(width, height) as the README writes it: ``512x256``."""
    return f"{size[0]}x{size[1]}"
