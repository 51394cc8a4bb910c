"""Model files carry a checksum of their contents, checked on load: a finished global.pt with
flipped bytes that still unpickles is refused through the real CLI, naming the file and how
to make it again; so are damaged detector, perceptual-weights and rolling checkpoint files."""

from __future__ import annotations

import json
import random
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from edn.core.errors import EdnError
from helpers import run_edn
from training_data import background_args, write_subject


def _flip_weight_bytes(path: Path, count: int = 43, seed: int = 0) -> None:
    """Flip ``count`` bytes inside the largest tensor of a torch zip file, in place.

    Only the low byte of float32 values (little-endian: offsets 0 mod 4) is flipped, so
    every weight stays a finite number near its old value and the file unpickles as
    before: the damage a disk fault or a bad copy leaves, which nothing else notices."""
    with zipfile.ZipFile(path) as archive:
        entries = [info for info in archive.infolist() if "/data/" in info.filename]
    largest = max(entries, key=lambda info: info.file_size)
    with open(path, "r+b") as file:
        file.seek(largest.header_offset)
        header = file.read(30)
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        start = largest.header_offset + 30 + name_length + extra_length
        for offset in random.Random(seed).sample(range(0, largest.file_size, 4), count):
            file.seek(start + offset)
            byte = file.read(1)[0]
            file.seek(start + offset)
            file.write(bytes([byte ^ 0xFF]))


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


def _assert_damaged_but_readable(original: Path, damaged: Path) -> None:
    """The damaged copy unpickles, every weight finite, and differs from the original."""
    before = _tensors(torch.load(original, map_location="cpu", weights_only=True))
    after = _tensors(torch.load(damaged, map_location="cpu", weights_only=True))
    assert len(before) == len(after)
    assert all(torch.isfinite(t).all() for t in after if t.is_floating_point())
    assert sum(int((a != b).sum()) for a, b in zip(before, after)) > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory, perceptual_weights: Path) -> dict:
    """A finished global.pt of the tiny preset (2 iterations through the real CLI) on a synthetic
    subject, laid out as the workflow lays it out, and that subject's labels."""
    tmp = tmp_path_factory.mktemp("checksum")
    data = {**write_subject(tmp / "subject"), "perceptual": perceptual_weights}
    model = tmp / "results" / "models" / "walker" / "global.pt"
    result = run_edn("train", "--stage", "global", "--frames", data["frames"], "--labels", data["labels"],
                     "--index", data["index"], "--perceptual", data["perceptual"], "--output", model,
                     "--run-dir", tmp / "results" / "runs" / "walker" / "global", "--preset", "tiny",
                     "--iterations", "2", "--checkpoint-every", "1", "--sample-every", "100", "--threads", "1",
                     "--no-progress", *background_args(data))
    assert result.returncode == 0, result.stderr
    return {**data, "model": model, "root": tmp}


def _synthesize(trained: dict, generator: Path, output: Path):
    return run_edn("synthesize", "--labels", trained["labels"], "--index", trained["index"], "--generator",
                   generator, "--plate", trained["plate"], "--output", output, "--precision", "fp32",
                   "--threads", "1")


def test_a_finished_model_with_flipped_bytes_is_refused_naming_the_file_and_the_way_out(
        trained: dict, tmp_path: Path) -> None:
    damaged = tmp_path / "results" / "models" / "walker" / "global.pt"
    damaged.parent.mkdir(parents=True)
    shutil.copy(trained["model"], damaged)
    _flip_weight_bytes(damaged)
    _assert_damaged_but_readable(trained["model"], damaged)

    output = tmp_path / "frames.npy"
    result = _synthesize(trained, damaged, output)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert f"generator checkpoint '{damaged}'" in line, line
    assert "checksum" in line and "damaged" in line, line
    assert f"snakemake --forcerun {damaged}" in line, line
    assert not output.exists()

    # The same file undamaged synthesizes: the checksum matches what was written.
    whole = _synthesize(trained, trained["model"], output)
    assert whole.returncode == 0, whole.stderr
    assert np.load(output, mmap_mode="r").shape[0] == 24


def test_a_damaged_previous_stage_is_refused_before_training(trained: dict, tmp_path: Path) -> None:
    damaged = tmp_path / "global.pt"
    shutil.copy(trained["model"], damaged)
    _flip_weight_bytes(damaged, seed=1)
    output = tmp_path / "local.pt"
    result = run_edn("train", "--stage", "local", "--init", damaged, "--frames", trained["frames"], "--labels",
                     trained["labels"], "--index", trained["index"], "--perceptual", trained["perceptual"],
                     "--output", output, "--run-dir", tmp_path / "run", "--preset", "tiny", "--iterations", "2",
                     "--threads", "1", "--no-progress", *background_args(trained))
    assert result.returncode == 1, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert f"previous-stage checkpoint '{damaged}'" in line and "checksum" in line and "--forcerun" in line, line
    assert not output.exists()


def test_a_model_written_before_checksums_still_loads(trained: dict, tmp_path: Path) -> None:
    """A file of this format version written before checksums were (no checksum key) loads,
    with a warning that it could not be checked."""
    old = tmp_path / "global.pt"
    data = torch.load(trained["model"], map_location="cpu", weights_only=True)
    assert "checksum" in data
    del data["checksum"]
    torch.save(data, old)
    output = tmp_path / "frames.npy"
    result = _synthesize(trained, old, output)
    assert result.returncode == 0, result.stderr
    assert f"'{old}'" in result.stderr and "no checksum" in result.stderr
    assert output.exists()


def test_a_damaged_rolling_checkpoint_is_removed_and_an_older_one_resumed(trained: dict, tmp_path: Path,
                                                                         caplog) -> None:
    from edn.core.presets import PRESETS
    from edn.training.run_directory import RunDirectory

    source = trained["root"] / "results" / "runs" / "walker" / "global" / "checkpoints"
    run = tmp_path / "run"
    shutil.copytree(source.parent, run)
    newest = max((run / "checkpoints").glob("step_*.pt"))
    _flip_weight_bytes(newest)
    (run / "finished.json").unlink(missing_ok=True)  # as if killed before the end
    resumed = RunDirectory(run).start(json.loads((run / "options.json").read_text()), PRESETS["tiny"], "global")
    assert resumed is not None and resumed.step < int(newest.stem.split("_")[1])
    assert not newest.exists()
    assert any("checksum" in r.getMessage() and str(newest) in r.getMessage() for r in caplog.records)


def test_a_damaged_detector_and_perceptual_weights_are_refused(perceptual_weights: Path, tmp_path: Path) -> None:
    from edn.fake_detector.checkpoint import DetectorCheckpoint, load_detector_checkpoint, save_detector
    from edn.fake_detector.model import DetectorArchitecture, build_detector
    from edn.training.perceptual import load_perceptual

    architecture = DetectorArchitecture()
    detector = tmp_path / "detector.pt"
    save_detector(detector, DetectorCheckpoint(step=1, architecture=architecture, options={},
                                               model=build_detector(architecture).state_dict()))
    assert load_detector_checkpoint(detector).step == 1
    _flip_weight_bytes(detector)
    with pytest.raises(EdnError, match=r"detector '.*detector.pt': .*checksum.*snakemake --forcerun"):
        load_detector_checkpoint(detector)

    weights = tmp_path / "vgg16_hed.pt"
    shutil.copy(perceptual_weights, weights)
    _flip_weight_bytes(weights)
    with pytest.raises(EdnError, match=r"perceptual weights '.*vgg16_hed.pt': .*checksum.*forcerun perceptual_weights"):
        load_perceptual(weights, "vgg16_hed")
