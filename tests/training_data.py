"""Synthetic training subjects for the training tests: a blob moving across a lawn
and a matching stick-figure "label", written with the project's own writers, with
the background files the composite method trains with (the lawn as the plate, the
blob as the person's mask, a person window that follows it), and the check that a
training run killed after a checkpoint resumes to the same weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from edn.core.atomic import write_json
from edn.core.checkpoint import load_checkpoint
from edn.background.plate import PlateReport
from edn.ingest.frames import create_image_store
from edn.labels.preview import write_png
from edn.labels.label_store import LabelIndex, write_label_index
from helpers import leftovers, run_edn

LAWN = (40, 110, 40)


def write_subject(directory: Path, *, frames: int = 24, size: tuple[int, int] = (64, 32),
                  has_body: np.ndarray | None = None) -> dict[str, Path]:
    """frames.npy, labels.npy and index.csv of a synthetic subject in ``directory``.

    Face boxes are 128 px at 1024 wide, scaled with the width (8 px at 64x32,
    16 px at 128x64), above the blob and clamped to the frame. Also plate.png,
    plate.json (a static camera) and masks.npy; the windows are half the frame's
    width and its full height, centred on the blob.
    """
    width, height = size
    directory.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width]
    box = max(1, 128 * width // 1024)
    images = np.empty((frames, height, width, 3), np.uint8)
    labels = np.zeros_like(images)
    boxes = np.zeros((frames, 4), np.int32)
    masks = np.zeros((frames, height, width), np.uint8)
    windows = np.zeros((frames, 4), np.int32)
    for t in range(frames):
        cx, cy = int(width * (0.25 + 0.5 * t / max(frames - 1, 1))), height // 2
        images[t] = LAWN
        blob = (xx - cx) ** 2 / (width / 10) ** 2 + (yy - cy) ** 2 / (height / 4) ** 2 < 1
        images[t][blob] = (200, 60, 50)
        masks[t][blob] = 255
        wx0 = min(max(cx - width // 4, 0), width // 2)
        windows[t] = (wx0, 0, wx0 + width // 2, height)
        labels[t, cy - height // 4: cy + height // 4, max(cx - 1, 0): cx + 1] = (255, 0, 85)
        x0 = min(max(cx - box // 2, 0), width - box)
        y0 = min(max(cy - height // 4 - box // 2, 0), height - box)
        boxes[t] = (x0, y0, x0 + box, y0 + box)
    paths = {"frames": directory / "frames.npy", "labels": directory / "labels.npy", "index": directory / "index.csv",
             "plate": directory / "plate.png", "plate_report": directory / "plate.json", "masks": directory / "masks.npy"}
    for name in ("frames", "labels"):
        with create_image_store(paths[name], frames, size) as store:
            store[:] = images if name == "frames" else labels
    with create_image_store(paths["masks"], frames, size, channels=None) as store:
        store[:] = masks
    write_png(paths["plate"], np.full((height, width, 3), LAWN, np.uint8))
    write_json(paths["plate_report"], PlateReport(subject="synthetic", frame_size=size, frames_used=frames,
                                                  camera_residual=0.0, max_camera_residual=6.0, static=True,
                                                  filled_fraction=0.0, person_fraction=0.1).to_json())
    body = np.ones(frames, bool) if has_body is None else has_body
    boxes = np.concatenate([np.clip(boxes[:, :2], windows[:, :2], windows[:, 2:] - (boxes[:, 2:] - boxes[:, :2])),
                            np.zeros((frames, 2), np.int32)], axis=1)
    boxes[:, 2:] = boxes[:, :2] + box
    write_label_index(paths["index"], LabelIndex(has_body=body, face_boxes=boxes, has_face=body.copy(),
                                                 windows=windows))
    return paths


def background_args(paths: dict[str, Path]) -> list:
    """The ``edn train`` flags of a subject's background files (the composite method)."""
    return ["--plate", paths["plate"], "--plate-report", paths["plate_report"], "--masks", paths["masks"]]


def resume_after_a_kill(data: dict, tmp: Path, *extra: str) -> tuple:
    """``edn train`` of a subject for 20 iterations straight (``tmp/straight``), then the same run as a
    kill after the step-10 checkpoint leaves it (the newer checkpoint, the model and the finished mark
    gone), resumed (``tmp/resumed``). Asserts that it resumed from step 10 to the same weights and the
    same 20 losses, leaving nothing half-written; returns both models' checkpoints (straight, resumed)."""
    from test_training import _losses, _train_args  # here, not above: test_training imports this module

    straight = run_edn(*_train_args(data, tmp, "straight", *extra, iterations=20))
    assert straight.returncode == 0, straight.stderr
    shutil.copytree(tmp / "straight", tmp / "resumed")
    run = tmp / "resumed" / "run"
    checkpoints = sorted((run / "checkpoints").glob("step_*.pt"))
    assert [int(p.stem.split("_")[1]) for p in checkpoints] == [10, 20]
    for path in (checkpoints[-1], run / "finished.json", tmp / "resumed" / "global.pt"):
        path.unlink()
    resumed = run_edn(*_train_args(data, tmp, "resumed", *extra, iterations=20))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming global" in resumed.stderr and "(step 10)" in resumed.stderr
    a, b = load_checkpoint(tmp / "straight" / "global.pt"), load_checkpoint(tmp / "resumed" / "global.pt")
    assert a.step == b.step == 20
    for network in ("generator", "discriminator"):
        assert a.models[network].keys() == b.models[network].keys()
        for key, value in a.models[network].items():
            assert torch.equal(value, b.models[network][key]), f"{network}.{key}"
    assert _losses(tmp / "straight" / "run") == _losses(run) and len(_losses(run)) == 20
    assert not leftovers(tmp / "resumed")
    return a, b
