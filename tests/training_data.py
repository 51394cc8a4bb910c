"""Synthetic training subjects for the training tests: a blob moving across a lawn
and a matching stick-figure "label", written with the project's own writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edn.frames import create_image_store
from edn.labels import LabelIndex, write_label_index


def write_subject(directory: Path, *, frames: int = 24, size: tuple[int, int] = (64, 32),
                  has_body: np.ndarray | None = None) -> dict[str, Path]:
    """frames.npy, labels.npy and index.csv of a synthetic subject in ``directory``.

    Face boxes are 128 px at 1024 wide, scaled with the width (8 px at 64x32,
    16 px at 128x64), above the blob and clamped to the frame.
    """
    width, height = size
    directory.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width]
    box = max(1, 128 * width // 1024)
    images = np.empty((frames, height, width, 3), np.uint8)
    labels = np.zeros_like(images)
    boxes = np.zeros((frames, 4), np.int32)
    for t in range(frames):
        cx, cy = int(width * (0.25 + 0.5 * t / max(frames - 1, 1))), height // 2
        images[t] = (40, 110, 40)
        images[t][(xx - cx) ** 2 / (width / 10) ** 2 + (yy - cy) ** 2 / (height / 4) ** 2 < 1] = (200, 60, 50)
        labels[t, cy - height // 4: cy + height // 4, max(cx - 1, 0): cx + 1] = (255, 0, 85)
        x0 = min(max(cx - box // 2, 0), width - box)
        y0 = min(max(cy - height // 4 - box // 2, 0), height - box)
        boxes[t] = (x0, y0, x0 + box, y0 + box)
    paths = {"frames": directory / "frames.npy", "labels": directory / "labels.npy", "index": directory / "index.csv"}
    for name in ("frames", "labels"):
        with create_image_store(paths[name], frames, size) as store:
            store[:] = images if name == "frames" else labels
    body = np.ones(frames, bool) if has_body is None else has_body
    write_label_index(paths["index"], LabelIndex(has_body=body, face_boxes=boxes, has_face=body.copy()))
    return paths
