"""The machine's ceiling and the generator's work: matrix-multiply rate and the FLOPs of a forward pass.

The matrix multiply of two large square matrices is the fastest thing torch can
do on this CPU; a convolutional network's achieved rate (its FLOPs over its
time) as a fraction of it says how close the network runs to the machine's limit.
"""

from __future__ import annotations

import torch

from benchmarks.timing import best_seconds
from edn.models import build_generator
from edn.core.presets import PRESETS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_gflops(dtype: str, n: int, repeats: int) -> float:
    """GFLOP/s of ``[n, n] @ [n, n]`` (2 n^3 FLOPs) in ``dtype`` ("fp32" or "bf16"),
    the fastest of ``repeats`` after one warm-up."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(DTYPES[dtype])
    b = torch.randn(n, n, generator=generator).to(DTYPES[dtype])
    out = torch.empty(n, n, dtype=DTYPES[dtype])
    seconds = best_seconds(lambda: torch.matmul(a, b, out=out), repeats, warmup=1)
    return 2 * n**3 / seconds / 1e9


def generator_forward_gflop(preset: str, size: tuple[int, int]) -> float:
    """GFLOP of one forward pass (batch 1) of ``preset``'s global generator at ``size``
    (width, height), counted by torch's FlopCounterMode on the meta device (no
    memory, no arithmetic): 2 x the multiply-adds of every convolution and
    transposed convolution. Norms, pads and activations count nothing here; they
    are a fraction of a percent of the work."""
    from torch.utils.flop_counter import FlopCounterMode

    width, height = size
    with torch.device("meta"):
        generator = build_generator(PRESETS[preset], "global")
        label, previous = torch.zeros(1, 3, height, width), torch.zeros(1, 3, height, width)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        generator(label, previous)
    return counter.get_total_flops() / 1e9
