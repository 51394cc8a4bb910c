"""Sample grids: what the generator draws, next to its input and the real frame."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from edn.core.atomic import atomic_path


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
