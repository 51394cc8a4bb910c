"""Synthetic training subjects for the training tests: a blob moving across a lawn
and a matching stick-figure "label", written with the project's own writers, with
the background files the composite method trains with (the lawn as the plate, the
blob as the person's mask, a person window that follows it), the background files of a
camera that pans (:func:`write_moving_background`) and of a real plate stage's run
(:func:`build_and_write_plate`), and the check that a training run killed after a
checkpoint resumes to the same weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from edn.core.atomic import write_json
from edn.core.checkpoint import load_checkpoint
from edn.background.plate import CAMERA_COLUMNS, Plate, PlateReport, build_plate, write_plate
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


def write_camera_table(path: Path, shifts: list[tuple[int, int]]) -> None:
    """A camera table (the plate stage's columns) of frames shifted by ``shifts`` (x, y) from the reference
    view: frame t's pixel (x, y) is the reference's (x + dx, y + dy)."""
    rows = [",".join(CAMERA_COLUMNS)]
    for t, (dx, dy) in enumerate(shifts):
        matrix = [1, 0, dx, 0, 1, dy, 0, 0, 1]
        rows.append(",".join(str(v) for v in (t, 1, *matrix, 1, float(np.hypot(dx, dy)), 20.0, 0.5)))
    path.write_text("\n".join(rows) + "\n")


def write_moving_subject(directory: Path, *, frames: int = 24, size: tuple[int, int] = (64, 32)) -> dict[str, Path]:
    """:func:`write_subject` filmed by a camera that pans: a striped lawn (a different colour every 3
    columns, so every shift shows) seen through a window moving 1 px right a frame and 1 px down every
    4 frames, the blob, its mask, labels, windows and face boxes as in :func:`write_subject` (in each
    frame's own pixels). Also the mosaic (the whole lawn), the camera table (frame 12 the reference,
    whole-pixel shifts) and a plate report of a camera that moves over a background that holds still."""
    paths = write_subject(directory, frames=frames, size=size)
    width, height = size
    reference = frames // 2
    shifts = [(t - reference, t // 4 - reference // 4) for t in range(frames)]
    low = np.min(shifts, axis=0)
    high = np.max(shifts, axis=0)
    origin = (int(-low[0]), int(-low[1]))
    mosaic_size = (width + int(high[0] - low[0]), height + int(high[1] - low[1]))
    columns = np.arange(mosaic_size[0]) // 3
    lawn = np.stack([40 + 7 * (columns % 5), 110 + 9 * (columns % 3), 40 + 11 * (columns % 4)], axis=-1)
    mosaic = np.repeat(lawn[None].astype(np.uint8), mosaic_size[1], axis=0)
    mosaic[::5] //= 2  # and darker rows, so a vertical shift shows too
    images, masks = np.load(paths["frames"]), np.load(paths["masks"])
    for t, (dx, dy) in enumerate(shifts):
        x0, y0 = origin[0] + dx, origin[1] + dy
        seen = mosaic[y0:y0 + height, x0:x0 + width]
        images[t] = np.where(masks[t][..., None] > 0, images[t], seen)
    with create_image_store(paths["frames"], frames, size) as store:
        store[:] = images
    paths.update(write_moving_background(directory, mosaic, origin, size, shifts, reference=reference,
                                         camera_residual=20.0))
    return paths


def write_moving_background(directory: Path, mosaic: np.ndarray, origin: tuple[int, int], size: tuple[int, int],
                            shifts: list[tuple[int, int]], *, reference: int,
                            camera_residual: float) -> dict[str, Path]:
    """What the plate stage writes for a camera that pans by whole pixels ``shifts`` (x, y, one a frame, as
    :func:`write_camera_table`) over a background that holds still: ``mosaic`` (uint8 [H, W, 3], the whole
    background) as mosaic.png, the reference view's ``size`` (width, height) crop of it at ``origin`` (x, y)
    as plate.png, camera.csv, and plate.json, a report of a registered camera that moves (frame
    ``reference`` the reference view, ``camera_residual`` before registering) in ``directory``.
    Returns their paths (plate, mosaic, camera, plate_report)."""
    width, height = size
    paths = {"plate": directory / "plate.png", "mosaic": directory / "mosaic.png", "camera": directory / "camera.csv",
             "plate_report": directory / "plate.json"}
    write_png(paths["plate"], mosaic[origin[1]:origin[1] + height, origin[0]:origin[0] + width])
    write_png(paths["mosaic"], mosaic)
    write_camera_table(paths["camera"], shifts)
    write_json(paths["plate_report"], PlateReport(
        subject="panning", frame_size=size, frames_used=len(shifts), camera_residual=camera_residual,
        max_camera_residual=6.0, static=False, filled_fraction=0.0, person_fraction=0.1, registered_residual=0.5,
        background_moves=False, camera_motion=float(np.hypot(*np.abs(shifts).max(axis=0))),
        motion_model="similarity", reference_frame=reference, registered_frames=len(shifts),
        mosaic_size=(mosaic.shape[1], mosaic.shape[0]), reference_origin=origin).to_json())
    return paths


def build_and_write_plate(directory: Path, frames: np.ndarray, masks: np.ndarray, subject: str, options: dict,
                          **changes) -> tuple[Plate, dict[str, Path]]:
    """The plate stage run for real on ``frames`` and ``masks`` (edn.background.plate.build_plate with
    ``options``, ``changes`` replacing some of them), with every file it writes in ``directory`` under
    ``subject``'s name: the Plate and the paths (plate, mosaic, coverage, camera, report)."""
    made = build_plate(frames, masks, None, subject=subject, **{**options, **changes})
    paths = {name: directory / f"{subject}{suffix}" for name, suffix in
             (("plate", ".png"), ("mosaic", ".mosaic.png"), ("coverage", ".coverage.png"),
              ("camera", ".camera.csv"), ("report", ".json"))}
    write_plate(made, plate_out=paths["plate"], coverage_out=paths["coverage"], report_out=paths["report"],
                mosaic_out=paths["mosaic"], camera_out=paths["camera"])
    return made, paths


def background_args(paths: dict[str, Path]) -> list:
    """The ``edn train`` flags of a subject's background files (the composite method)."""
    moving = ["--mosaic", paths["mosaic"], "--camera", paths["camera"]] if "camera" in paths else []
    return ["--plate", paths["plate"], "--plate-report", paths["plate_report"], "--masks", paths["masks"], *moving]


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
