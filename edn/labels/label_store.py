"""Stick-figure label sequences on disk: the generator's input.

A rendered label sequence (a subject's own poses for training, or a source's
normalized poses for transfer) is two files in one directory:

``labels.npy``
    uint8 ``[N, H, W, 3]`` RGB stick figures at the working size on a black
    background, palette colours only, memory-mapped like ``frames.npy``. Label t
    belongs to frame t.
``index.csv``
    one row per frame: ``frame``, ``has_body`` (0/1: any body joint drawn),
    the face box ``face_x0, face_y0, face_x1, face_y1`` (working pixels,
    half-open, always inside the frame and the person's window) and ``has_face``
    (0/1: the box is centred on a detected nose or ears; 0 means the box is a
    placeholder and the face stage skips the frame), then the person's window
    ``window_x0, window_y0, window_x1, window_y1`` (:mod:`edn.labels.person_window`;
    the whole frame when none was asked for).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edn.core.atomic import atomic_path
from edn.core.errors import EdnError
from edn.ingest.frames import load_image_store

INDEX_COLUMNS = ("frame", "has_body", "face_x0", "face_y0", "face_x1", "face_y1", "has_face")
WINDOW_COLUMNS = ("window_x0", "window_y0", "window_x1", "window_y1")


@dataclass(frozen=True)
class LabelIndex:
    """Per-frame facts about a label sequence.

    ``has_body``: bool [N]. ``face_boxes``: int32 [N, 4] (x0, y0, x1, y1).
    ``has_face``: bool [N]. ``windows``: int32 [N, 4], the person's window in
    each frame, or None (the whole frame).
    """

    has_body: np.ndarray
    face_boxes: np.ndarray
    has_face: np.ndarray
    windows: np.ndarray | None = None

    @property
    def frame_count(self) -> int:
        return len(self.has_body)

    def select(self, frames: slice | np.ndarray) -> LabelIndex:
        """The index of some of the frames (a slice or indices), in that order."""
        return LabelIndex(has_body=self.has_body[frames], face_boxes=self.face_boxes[frames],
                          has_face=self.has_face[frames], windows=None if self.windows is None else self.windows[frames])


def write_label_index(path: str | os.PathLike, index: LabelIndex) -> None:
    """Write ``index.csv`` atomically."""
    import pandas as pd

    table = pd.DataFrame({
        "frame": np.arange(index.frame_count, dtype=np.int64),
        "has_body": index.has_body.astype(np.int8),
        **{name: index.face_boxes[:, i].astype(np.int64) for i, name in enumerate(INDEX_COLUMNS[2:6])},
        "has_face": index.has_face.astype(np.int8),
        **({} if index.windows is None else
           {name: index.windows[:, i].astype(np.int64) for i, name in enumerate(WINDOW_COLUMNS)}),
    })
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


def read_label_index(path: str | os.PathLike) -> LabelIndex:
    """Read ``index.csv``; EdnError naming the file when it is missing or malformed."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise EdnError(f"label index {str(path)!r}: file not found")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())[:120]
        raise EdnError(f"label index {str(path)!r}: not a CSV table ({reason})") from None
    missing = [c for c in INDEX_COLUMNS if c not in table.columns]
    if missing:
        raise EdnError(f"label index {str(path)!r}: missing column(s) {', '.join(missing)}")
    if not np.array_equal(table["frame"].to_numpy(), np.arange(len(table))):
        raise EdnError(f"label index {str(path)!r}: frames are not 0..{len(table) - 1} in order")
    has_windows = all(c in table.columns for c in WINDOW_COLUMNS)
    return LabelIndex(
        has_body=table["has_body"].to_numpy().astype(bool),
        face_boxes=table[list(INDEX_COLUMNS[2:6])].to_numpy().astype(np.int32),
        has_face=table["has_face"].to_numpy().astype(bool),
        windows=table[list(WINDOW_COLUMNS)].to_numpy().astype(np.int32) if has_windows else None,
    )


def load_labels(path: str | os.PathLike) -> np.ndarray:
    """Memory-map ``labels.npy`` as a read-only uint8 array [N, H, W, 3]."""
    return load_image_store(path, "labels")
