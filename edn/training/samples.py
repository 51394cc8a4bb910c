"""Sample grids: what the generator draws, next to its input and the real frame."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edn.core.atomic import atomic_path
from edn.models.generation import generate_frames
from edn.training.data import TrainingFrames
from edn.training.trainer import Trainer

#: Rows of the held-out grid written when a stage finishes.
HELDOUT_GRID_ROWS = 6


def to_uint8(image: torch.Tensor, *, signed: bool) -> torch.Tensor:
    """[3, H, W] in [-1, 1] (``signed``) or [0, 1] -> uint8 [3, H, W]."""
    x = image.detach().float().cpu()
    if signed:
        x = (x + 1.0) / 2.0
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def write_grid(path: str | os.PathLike, rows: Sequence[Sequence[torch.Tensor]], gap_px: int = 2) -> None:
    """Write rows of uint8 [3, H, W] tiles (all one size) as a PNG, atomically."""
    from torchvision.io import write_png

    tile_h, tile_w = rows[0][0].shape[1:]
    columns = max(len(row) for row in rows)
    grid = torch.full((3, len(rows) * (tile_h + gap_px) - gap_px, columns * (tile_w + gap_px) - gap_px), 255,
                      dtype=torch.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = r * (tile_h + gap_px), c * (tile_w + gap_px)
            grid[:, y:y + tile_h, x:x + tile_w] = tile
    with atomic_path(path) as temporary:
        write_png(grid, str(temporary))


def evenly_spaced(count: int, wanted: int) -> list[int]:
    """Up to ``wanted`` indices spread over range(count), first and last included."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, wanted)})


def write_pair_grid(path: Path, pair: tuple[torch.Tensor, ...] | None) -> None:
    """The first item of the last pair trained on (:attr:`Trainer.last_pair`), a row per
    frame: label | generated | real. Nothing before the first step."""
    if pair is None:
        return
    label0, label1, fake0, fake1, real0, real1 = (x[0] for x in pair)
    write_grid(path, [[to_uint8(label0, signed=False), to_uint8(fake0, signed=True), to_uint8(real0, signed=True)],
                      [to_uint8(label1, signed=False), to_uint8(fake1, signed=True), to_uint8(real1, signed=True)]])


def write_heldout_grid(path: Path, trainer: Trainer, data: TrainingFrames, heldout: range) -> Path | None:
    """Render the held-out frames in order (each fed the previous output) and show a few:
    label | generated | real per row. None when nothing is held out."""
    if not len(heldout):
        return None
    samples = [data.sample(t) for t in heldout]
    frames = generate_frames(trainer.frame_generator(), [s.label for s in samples],
                             [s.box if s.has_face else None for s in samples], trainer.runtime,
                             windows=[s.window for s in samples] if data.plate is not None else None,
                             exemplars=[s.exemplar for s in samples] if data.exemplars is not None else None,
                             plates=[s.plate for s in samples] if data.frame_plates is not None else None)
    generated = [frame.cpu() for frame in frames]
    rows = [[to_uint8(samples[i].label[0], signed=False), to_uint8(generated[i][0], signed=True),
             to_uint8(samples[i].image[0], signed=True)] for i in evenly_spaced(len(samples), HELDOUT_GRID_ROWS)]
    write_grid(path, rows)
    return path
