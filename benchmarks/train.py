"""Training speed: iterations/s of each stage's iteration and the generator's forward time.

    .venv/bin/python benchmarks/train.py [--quick] [--threads N]

On the CPU, for the ``small`` preset at the demo's 256x128 and the ``paper``
preset at its global stage's 512x256: one iteration of the global stage
(temporal pair, D and G updates, perceptual loss) in fp32 eager mode and with
bf16 autocast + channels_last, and the paper generator's forward pass at
512x256 in both modes (target: bf16 + channels_last >= 1.8x faster). The face
stage's iteration is timed for the small preset. The perceptual network has
random weights here: its values do not change the time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edn.checkpoint import Checkpoint  # noqa: E402
from edn.losses import PerceptualLoss  # noqa: E402
from edn.models import build_generator  # noqa: E402
from edn.perceptual import PerceptualFeatures  # noqa: E402
from edn.presets import PRESETS  # noqa: E402
from edn.training.data import Sample  # noqa: E402
from edn.training.stages import Runtime, StageTrainer  # noqa: E402

MODES = {"fp32 eager": dict(bf16=False, channels_last=False), "bf16 + channels_last": dict(bf16=True, channels_last=True)}


def _sample(width: int, height: int, box_px: int) -> Sample:
    x0, y0 = width // 2 - box_px // 2, height // 8
    return Sample(label=torch.rand(1, 3, height, width), image=torch.rand(1, 3, height, width) * 2 - 1,
                  box=(x0, y0, x0 + box_px, y0 + box_px), has_face=True)


def _trainer(stage: str, preset_name: str, runtime: Runtime) -> StageTrainer:
    preset = PRESETS[preset_name]
    torch.manual_seed(0)
    perceptual = PerceptualLoss(PerceptualFeatures("vgg16_hed"))
    init = None
    if stage == "face":
        generator = build_generator(preset, "global")
        init = Checkpoint(stage="global", step=0, preset=preset, options={"generator_kind": "global"},
                          models={"generator": generator.state_dict()})
    return StageTrainer(stage, preset, init, "benchmark", perceptual, runtime, 2e-4, (0.5, 0.999))


def time_iterations(stage: str, preset_name: str, size: tuple[int, int], mode: str, iterations: int,
                    warmup: int = 1) -> float:
    """Seconds of one training iteration: the fastest of ``iterations`` (the least disturbed
    by other work on the machine)."""
    runtime = Runtime(device=torch.device("cpu"), **MODES[mode])
    trainer = _trainer(stage, preset_name, runtime)
    width, height = size
    first, second = _sample(width, height, width // 8), _sample(width, height, width // 8)
    times = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        trainer.step(first, second)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def time_generator_forward(preset_name: str, size: tuple[int, int], mode: str, repeats: int) -> float:
    """Seconds of one main-generator forward pass (batch 1), the fastest of ``repeats``."""
    settings = MODES[mode]
    runtime = Runtime(device=torch.device("cpu"), **settings)
    torch.manual_seed(0)
    generator = runtime.place_module(build_generator(PRESETS[preset_name], "global")).eval()
    width, height = size
    label, previous = runtime.place(torch.rand(1, 3, height, width)), runtime.place(torch.zeros(1, 3, height, width))
    times = []
    with runtime.autocast():
        for i in range(repeats + 1):
            start = time.perf_counter()
            generator(label, previous)
            if i:
                times.append(time.perf_counter() - start)
    return min(times)


def measure(quick: bool = False) -> list[dict]:
    repeats = 1 if quick else 3
    rows = []
    cases = [("global", "small", (256, 128), 2 if quick else 10), ("face", "small", (256, 128), 2 if quick else 10),
             ("global", "paper", (512, 256), 1 if quick else 2)]
    for stage, preset, size, iterations in cases:
        for mode in MODES:
            seconds = time_iterations(stage, preset, size, mode, iterations)
            rows.append({"what": f"{stage} stage iteration", "preset": preset, "size": f"{size[0]}x{size[1]}",
                         "mode": mode, "seconds": seconds, "per_s": 1.0 / seconds})
    for mode in MODES:
        seconds = time_generator_forward("paper", (512, 256), mode, repeats)
        rows.append({"what": "generator forward", "preset": "paper", "size": "512x256", "mode": mode,
                     "seconds": seconds, "per_s": 1.0 / seconds})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'what':<24} {'preset':<7} {'size':>8} {'mode':<22} {'s':>8} {'per s':>7} {'speed-up':>8}")
    baseline = {}
    for r in rows:
        key = (r["what"], r["preset"], r["size"])
        baseline.setdefault(key, r["seconds"])
        print(f"{r['what']:<24} {r['preset']:<7} {r['size']:>8} {r['mode']:<22} {r['seconds']:>8.3f} "
              f"{r['per_s']:>7.2f} {baseline[key] / r['seconds']:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# training on the CPU, {torch.get_num_threads()} threads")
    print_table(measure(args.quick))


if __name__ == "__main__":
    main()
