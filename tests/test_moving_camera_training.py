"""Training with a camera that moves (issue 25 item 3): the composite method draws over the plate warped into
each training frame's own camera (edn.background.camera), the frames, labels, masks and windows untouched."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from edn.background.camera import read_frame_plates
from edn.background.plate import PlateReport, read_plate, read_plate_report
from edn.core.atomic import write_json
from edn.core.errors import EdnError
from edn.core.options import TrainingOptions
from edn.training.data import Batch, TrainingFrames
from edn.training.loop import Background, frame_plates, uses_compositing
from helpers import run_edn
from training_data import background_args, resume_after_a_kill, write_moving_subject


def _uint8(image: torch.Tensor) -> np.ndarray:
    return ((image[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def _frames(paths: dict, plates=None) -> TrainingFrames:
    return TrainingFrames(paths["frames"], paths["labels"], paths["index"], downsample=1, size_multiple=4,
                          plate=read_plate(paths["plate"]), masks_path=paths["masks"], frame_plates=plates)


def test_each_frame_is_drawn_over_its_own_cameras_plate(tmp_path: Path) -> None:
    paths = write_moving_subject(tmp_path)
    report = read_plate_report(paths["plate_report"])
    plates = frame_plates(Background(paths["plate"], paths["plate_report"], paths["masks"], paths["mosaic"],
                                     paths["camera"]), report)
    assert plates is not None and len(plates) == 24
    moving, still = _frames(paths, plates), _frames(paths)
    frames, masks = np.load(paths["frames"]), np.load(paths["masks"])
    reference_plate = read_plate(paths["plate"])
    for t in (0, 5, 12, 23):
        sample, as_before = moving.sample(t), still.sample(t)
        background = masks[t] == 0
        # The plate in frame t's camera is frame t's background, pixel for pixel (whole-pixel shifts).
        np.testing.assert_array_equal(_uint8(sample.plate)[background], frames[t][background])
        # What the generator must draw is the frame itself: its person over its own background.
        np.testing.assert_array_equal(_uint8(sample.image), frames[t])
        # Nothing of the person's geometry moves: label, mask, window and face box as filmed.
        assert torch.equal(sample.label, as_before.label) and torch.equal(sample.mask, as_before.mask)
        assert sample.window == as_before.window and sample.box == as_before.box
        assert as_before.plate is None
        if t != report.reference_frame:  # the reference view's plate is not this frame's background
            assert (reference_plate[background] != frames[t][background]).any()
        else:
            np.testing.assert_array_equal(_uint8(sample.plate), reference_plate)
    batch = Batch.of([moving.sample(0), moving.sample(5)])
    assert batch.plate.shape == (2, 3, 32, 64)


def test_a_moving_camera_composites_and_only_a_moving_background_falls_back(tmp_path: Path, caplog) -> None:
    paths = write_moving_subject(tmp_path)
    options = TrainingOptions(stage="global", iterations=1)
    background = Background(paths["plate"], paths["plate_report"], paths["masks"], paths["mosaic"], paths["camera"])
    report = read_plate_report(paths["plate_report"])
    assert report.method == "composite" and not report.static
    with caplog.at_level(logging.WARNING):
        assert uses_compositing(options, None, background)
    assert not caplog.records
    moves = PlateReport.from_json({**report.to_json(), "background_moves": True, "registered_residual": 9.5})
    write_json(paths["plate_report"], moves.to_json())
    with caplog.at_level(logging.WARNING):
        assert not uses_compositing(options, None, background)
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith("target panning: the background moves (residual 9.5 above 6.0")
    assert not uses_compositing(options.replace(method="paper"), None, None)  # the paper's method: one switch


def test_a_moving_camera_without_its_mosaic_is_one_line(tmp_path: Path) -> None:
    paths = write_moving_subject(tmp_path)
    report = read_plate_report(paths["plate_report"])
    with pytest.raises(EdnError, match=r"^target panning: the camera moves \(similarity.*give the mosaic and the "
                                       r"camera table \(--mosaic, --camera"):
        frame_plates(Background(paths["plate"], paths["plate_report"], paths["masks"]), report)
    short = tmp_path / "short.csv"
    short.write_text("\n".join(paths["camera"].read_text().splitlines()[:-3]) + "\n")
    with pytest.raises(EdnError, match=r"camera table: 21 frames of 64x32, the frames .* are 24 of 64x32"):
        _frames(paths, read_frame_plates(paths["mosaic"], short, report.reference_origin, report.frame_size))


@pytest.mark.slow
def test_training_over_a_moving_camera_resumes_bit_equal(tmp_path: Path, perceptual_weights: Path) -> None:
    data = {**write_moving_subject(tmp_path / "subject"), "perceptual": perceptual_weights}
    resume_after_a_kill(data, tmp_path)
    assert (tmp_path / "straight" / "run" / "samples" / "heldout_final.png").stat().st_size > 0
    # The run says how it draws, and the mosaic and camera table are among its inputs' fingerprints.
    again = run_edn("train", "--stage", "global", "--frames", data["frames"], "--labels", data["labels"],
                    "--index", data["index"], "--perceptual", data["perceptual"], "--output", tmp_path / "x.pt",
                    "--run-dir", tmp_path / "x", "--preset", "tiny", "--iterations", "1", "--deterministic",
                    "--threads", "1", "--no-progress", *background_args(data))
    assert again.returncode == 0, again.stderr
    assert "windows over the plate warped into each frame's camera" in again.stderr
    inputs = json.loads((tmp_path / "x" / "options.json").read_text())["inputs"]
    assert str(data["mosaic"]) in inputs and str(data["camera"]) in inputs
