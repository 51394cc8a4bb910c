"""Training throughput with batches and data-parallel processes: frame pairs per second.

Each measurement runs the real ``edn train`` (composite method, small preset, bf16
as on the CPU) on a synthetic subject for a few steps, with ``--processes P`` and
``--batch-size B``, on the machine's cores shared out between the processes
(each process gets cores / P threads). Pairs per second is P x B over the median
step time that rank 0 logs in losses.csv (forward, backward, the gradients'
all-reduce, both optimisers; data loading and start-up excluded), after the
first steps (allocator, oneDNN kernel choice).
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from training_data import background_args, write_subject  # noqa: E402  (the tests' synthetic subject)


def pairs_per_second(processes: int, batch_size: int, size: tuple[int, int], steps: int, warmup: int = 2,
                     preset: str = "small") -> float:
    """Frame pairs trained per second by ``processes`` x ``batch_size`` on frames of ``size``."""
    from edn.training.perceptual import HED_WHEEL, convert_hed_wheel

    threads = max(1, (os.cpu_count() or 1) // processes) * processes
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_subject(tmp / "subject", frames=4 * processes * batch_size + 8, size=size)
        perceptual = tmp / "vgg16_hed.pt"
        convert_hed_wheel(ROOT / "resources" / "perceptual" / HED_WHEEL, perceptual)
        command = [sys.executable, "-m", "edn", "train", "--stage", "global", "--frames", data["frames"],
                   "--labels", data["labels"], "--index", data["index"], "--perceptual", perceptual,
                   "--output", tmp / "global.pt", "--run-dir", tmp / "run", "--preset", preset,
                   "--iterations", str(warmup + steps), "--holdout-fraction", "0", "--checkpoint-every", "1000",
                   "--sample-every", "1000", "--precision", "bf16", "--threads", str(threads), "--no-progress",
                   "--processes", str(processes), "--batch-size", str(batch_size), *background_args(data)]
        subprocess.run([str(part) for part in command], cwd=ROOT, check=True, capture_output=True, text=True)
        with open(tmp / "run" / "losses.csv", newline="") as file:
            seconds = [float(row["seconds"]) for row in csv.DictReader(file)][warmup:]
    return processes * batch_size / statistics.median(seconds)
