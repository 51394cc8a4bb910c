"""Batches and data-parallel training (edn.training.distributed) on the CPU with the gloo backend:
the shares of each step, two processes against one at twice the batch, and a
two-process run stopped by SIGTERM and resumed with two processes or with one.

Two processes do not give bit-equal weights to one process at twice the batch:
the convolutions sum in another order, and Adam's first steps turn the rounding
of gradients that should be zero (the biases before an instance norm) into whole
steps of the learning rate. Changing the number of CPU threads does the same.
So the test compares with the size of that rounding, measured here: after two
steps, the mean weight difference is about 1e-5 and a few percent of the weights
differ by more than 1e-5, while training on other pairs differs ten times more
on average and in most of the weights (the test checks that too).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edn.core.checkpoint import load_checkpoint
from edn.models import build_discriminator, build_generator
from edn.core.presets import PRESETS
from edn.training.data import samples_of_step
from helpers import ROOT, run_edn
from training_data import background_args, write_subject

#: Weight differences from rounding alone (see the module's docstring), with margin.
ROUNDING_MEAN = 3e-5
ROUNDING_FRACTION = 0.15  # of the weights differing by more than 1e-5


def test_each_process_has_its_own_share_of_every_step() -> None:
    for step in range(5):
        shares = [set(samples_of_step(step, batch_size=3, rank=r, world_size=4)) for r in range(4)]
        assert sum(len(s) for s in shares) == 12 and len(set().union(*shares)) == 12  # disjoint
        assert set().union(*shares) == set(samples_of_step(step, batch_size=12))  # one process at batch 12
    assert list(samples_of_step(7, batch_size=1)) == [7]  # batch 1, one process: sample number = step
    every = [n for step in range(3) for r in range(2) for n in samples_of_step(step, 2, r, 2)]
    assert every == list(range(12))  # no sample skipped or repeated across steps


def test_a_batch_is_drawn_as_its_samples_one_by_one() -> None:
    # Instance normalization keeps each sample's own statistics: batching changes nothing per sample.
    torch.manual_seed(0)
    preset = PRESETS["tiny"]
    generator, discriminator = build_generator(preset, "global"), build_discriminator(preset, "global", True)
    labels, previous = torch.rand(3, 3, 32, 64), torch.rand(3, 3, 32, 64) * 2 - 1
    together = generator(labels, previous)
    alone = torch.cat([generator(labels[i:i + 1], previous[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    pairs = torch.rand(3, 12, 32, 64)
    judged = discriminator(pairs)[-1][-1]
    torch.testing.assert_close(judged, torch.cat([discriminator(pairs[i:i + 1])[-1][-1] for i in range(3)]),
                               atol=1e-5, rtol=1e-4)


def _train(data: dict, directory: Path, *extra: str, iterations: int = 2, threads: int = 2) -> list:
    return ["train", "--stage", "global", "--frames", data["frames"], "--labels", data["labels"], "--index",
            data["index"], "--perceptual", data["perceptual"], "--output", directory / "global.pt",
            "--run-dir", directory / "run", "--preset", "tiny", "--iterations", str(iterations),
            "--decay-fraction", "0", "--checkpoint-every", "4", "--sample-every", "100", "--deterministic",
            "--threads", str(threads), "--no-progress", *background_args(data), *extra]


def _difference(a: Path, b: Path) -> tuple[float, float]:
    """Mean absolute difference of the generators' weights, and the fraction above 1e-5."""
    x, y = load_checkpoint(a).models["generator"], load_checkpoint(b).models["generator"]
    diff = torch.cat([(x[k] - y[k]).abs().flatten() for k in x if x[k].is_floating_point()])
    return float(diff.mean()), float((diff > 1e-5).float().mean())


@pytest.fixture(scope="module")
def subject(tmp_path_factory, perceptual_weights: Path) -> dict:
    tmp = tmp_path_factory.mktemp("parallel")
    return {**write_subject(tmp / "subject"), "perceptual": perceptual_weights, "tmp": tmp}


@pytest.mark.slow
def test_two_processes_at_batch_one_train_as_one_process_at_batch_two(subject: dict) -> None:
    tmp = subject["tmp"]
    runs = {"two": ("--processes", "2", "--batch-size", "1"), "one": ("--processes", "1", "--batch-size", "2"),
            "other_pairs": ("--processes", "1", "--batch-size", "1")}
    logs = {}
    for name, flags in runs.items():
        result = run_edn(*_train(subject, tmp / name, *flags))
        assert result.returncode == 0, result.stderr
        logs[name] = result.stderr
    assert "batch 1, 2 processes" in logs["two"] and "process 0 of 2" in logs["two"]
    assert "batch 2, 0 of 2 iterations done" in logs["one"]
    # Rank 0 alone writes: one loss row per step, the same pairs as one process at batch 2.
    rows = [(tmp / name / "run" / "losses.csv").read_text().splitlines() for name in ("two", "one")]
    assert len(rows[0]) == len(rows[1]) == 3
    assert [r.split(",")[1] for r in rows[0]] == [r.split(",")[1] for r in rows[1]]  # the "frame" column
    same_mean, same_fraction = _difference(tmp / "two" / "global.pt", tmp / "one" / "global.pt")
    assert same_mean < ROUNDING_MEAN and same_fraction < ROUNDING_FRACTION, (same_mean, same_fraction)
    # The comparison can fail: training on other pairs (half of them) is far outside it.
    other_mean, other_fraction = _difference(tmp / "other_pairs" / "global.pt", tmp / "one" / "global.pt")
    assert other_mean > 3 * ROUNDING_MEAN and other_fraction > 0.5, (other_mean, other_fraction)


@pytest.mark.slow
def test_two_processes_stopped_by_sigterm_resume_with_two_or_with_one(subject: dict) -> None:
    tmp = subject["tmp"] / "resume"
    iterations = 12
    straight = run_edn(*_train(subject, tmp / "straight", "--processes", "2", iterations=iterations))
    assert straight.returncode == 0, straight.stderr
    command = [sys.executable, "-m", "edn", *map(str, _train(subject, tmp / "stopped", "--processes", "2",
                                                              iterations=iterations))]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoints = tmp / "stopped" / "run" / "checkpoints"
    deadline = time.monotonic() + 180
    while not list(checkpoints.glob("step_*.pt")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)  # to process 0 only: it passes the stop on to process 1
    stderr = process.communicate(timeout=180)[1]
    assert process.returncode == 1, stderr
    stopped_at = max(int(p.stem.split("_")[1]) for p in checkpoints.glob("step_*.pt"))
    assert 4 <= stopped_at < iterations and f"stopped at step {stopped_at} of {iterations}" in stderr
    assert stderr.count("SIGTERM: stopping after this iteration") == 1, stderr
    assert not (tmp / "stopped" / "global.pt").exists()
    shutil.copytree(tmp / "stopped", tmp / "stopped_for_one")

    again = run_edn(*_train(subject, tmp / "stopped", "--processes", "2", iterations=iterations))
    assert again.returncode == 0, again.stderr
    assert f"(step {stopped_at})" in again.stderr and "resuming" in again.stderr
    a, b = load_checkpoint(tmp / "straight" / "global.pt"), load_checkpoint(tmp / "stopped" / "global.pt")
    for network in ("generator", "discriminator"):
        for key, value in a.models[network].items():
            assert torch.equal(value, b.models[network][key]), f"{network}.{key}"
    losses = (tmp / "stopped" / "run" / "losses.csv").read_text().splitlines()
    assert len(losses) == iterations + 1  # one row per step, none twice

    # The same checkpoint goes on in one process at the same total batch.
    one = run_edn(*_train(subject, tmp / "stopped_for_one", "--processes", "1", "--batch-size", "2",
                          iterations=iterations, threads=1))
    assert one.returncode == 0, one.stderr
    assert f"(step {stopped_at})" in one.stderr and "resuming" in one.stderr
    assert load_checkpoint(tmp / "stopped_for_one" / "global.pt").step == iterations
    mean, fraction = _difference(tmp / "straight" / "global.pt", tmp / "stopped_for_one" / "global.pt")
    assert mean < 3 * ROUNDING_MEAN, (mean, fraction)  # more steps after the resume: rounding grows a little


@pytest.mark.slow  # starts two torch.distributed training processes
def test_a_process_that_fails_is_reported(subject: dict, tmp_path: Path) -> None:
    # Every process checks the inputs; a missing file fails each with the same one-line error.
    data = {**subject, "index": tmp_path / "missing.csv"}
    result = run_edn(*_train(data, tmp_path / "run", "--processes", "2"))
    assert result.returncode == 1
    assert "missing.csv" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run" / "global.pt").exists()
