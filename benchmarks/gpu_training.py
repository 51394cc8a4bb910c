"""Training on a GPU: step time and peak memory of the paper preset at 512x256, batch 1, 4 and 8.

    .venv/bin/python benchmarks/gpu_training.py                 # on a machine with a CUDA GPU
    .venv/bin/python benchmarks/gpu_training.py --batches 1 2   # other batch sizes
    .venv/bin/python benchmarks/gpu_training.py --device cpu --size 128 64 --batches 1 2  # a smoke run

One training step of the global stage as ``edn train`` runs it (the paper's
whole-frame method with temporal smoothing: the pair generated, the
discriminator and the generator updated, the perceptual loss included; random
inputs and VGG weights, which do not change the time), in bf16 autocast
with the NHWC layout (what ``precision: auto`` and ``channels_last: auto`` pick on
CUDA) and in fp32 for reference. Prints a Markdown table: seconds per step (the
median of ``--steps`` after ``--warmup``), pairs per second, and the peak GPU
memory torch allocated. Not part of CI: it needs a GPU to mean anything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edn.training.losses import PerceptualLoss  # noqa: E402
from edn.training.perceptual import PerceptualFeatures  # noqa: E402
from edn.core.presets import PRESETS  # noqa: E402
from edn.core.runtime import Runtime  # noqa: E402
from edn.training.data import Batch  # noqa: E402
from edn.training.main_stage import MainStageTrainer  # noqa: E402
from benchmarks.train import random_sample  # noqa: E402


def random_batch(size: tuple[int, int], batch: int, generator: torch.Generator) -> Batch:
    return Batch.of([random_sample(size, generator) for _ in range(batch)])


def measure(device: torch.device, bf16: bool, size: tuple[int, int], batch: int, steps: int,
            warmup: int) -> dict:
    runtime = Runtime(device=device, bf16=bf16, channels_last=bf16 and device.type == "cuda")
    torch.manual_seed(0)
    trainer = MainStageTrainer("global", PRESETS["paper"], PerceptualLoss(PerceptualFeatures("vgg16_hed")),
                               runtime, 2e-4)
    generator = torch.Generator().manual_seed(1)
    first, second = random_batch(size, batch, generator), random_batch(size, batch, generator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        trainer.step(first, second)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            seconds.append(time.perf_counter() - start)
    step_s = statistics.median(seconds)
    peak = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else float("nan")
    return {"step_s": step_s, "pairs_per_s": batch / step_s, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 256), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--batches", type=int, nargs="+", default=(1, 4, 8))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_training.py: no CUDA device here (use --device cpu for a smoke run)")
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, paper preset, global stage (whole frame, temporal), "
          f"{args.size[0]}x{args.size[1]}\n")
    print("| precision | batch | s/step | pairs/s | vs batch 1 | peak GPU memory |")
    print("|---|---:|---:|---:|---:|---:|")
    for bf16 in (True, False):
        base = None
        for batch in args.batches:
            result = measure(device, bf16, tuple(args.size), batch, args.steps, args.warmup)
            base = base or result["pairs_per_s"]
            print(f"| {'bf16 + channels_last' if bf16 else 'fp32'} | {batch} | {result['step_s']:.3f} | "
                  f"{result['pairs_per_s']:.2f} | {result['pairs_per_s'] / base:.2f}x | "
                  f"{result['peak_gib']:.2f} GiB |", flush=True)


if __name__ == "__main__":
    main()
