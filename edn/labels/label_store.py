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
    has_windows = all(c in table.columns for c in WINDOW_COLUMNS)
    _check_cells(path, table, INDEX_COLUMNS + (WINDOW_COLUMNS if has_windows else ()))
    if not np.array_equal(table["frame"].to_numpy(), np.arange(len(table))):
        raise EdnError(f"label index {str(path)!r}: frames are not 0..{len(table) - 1} in order")
    return LabelIndex(
        has_body=table["has_body"].to_numpy().astype(bool),
        face_boxes=table[list(INDEX_COLUMNS[2:6])].to_numpy().astype(np.int32),
        has_face=table["has_face"].to_numpy().astype(bool),
        windows=table[list(WINDOW_COLUMNS)].to_numpy().astype(np.int32) if has_windows else None,
    )


#: What to do about an index that is damaged: it is an artifact of these rules.
_REMAKE = ("remake it (snakemake --forcerun render_subject_labels, or render_transfer_labels for a pair's "
           "labels)")


def _check_cells(path: Path, table, columns: tuple[str, ...]) -> None:
    """EdnError naming ``path`` unless every cell of ``columns`` is a whole number and the file is whole.

    A file cut mid-row (a disk fault, a copy stopped halfway) reads as a last row with
    empty cells, which would become garbage coordinates and fail much later, deep in
    training, as a tensor of the wrong shape.
    """
    import pandas as pd

    values = table[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        cells = ", ".join(column for column, wrong in zip(columns, bad[row]) if wrong)
        cut = " (the file ends mid-row: it was cut short)" if row == len(table) - 1 and _ends_mid_row(path) else ""
        raise EdnError(f"label index {str(path)!r}: line {row + 2} (frame {row}) has no whole number in "
                       f"{cells}{cut}; {_REMAKE}")
    if _ends_mid_row(path):
        raise EdnError(f"label index {str(path)!r}: the file ends mid-row (it was cut short); {_REMAKE}")
    flags = values[:, [columns.index("has_body"), columns.index("has_face")]]
    if not np.isin(flags, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(flags, (0, 1)).all(axis=1))[0])
        raise EdnError(f"label index {str(path)!r}: line {row + 2} (frame {row}): has_body and has_face must be "
                       f"0 or 1; {_REMAKE}")


def _ends_mid_row(path: Path) -> bool:
    """Whether the file's last byte is not a line end (every row this module writes ends with one)."""
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        if file.tell() == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) not in (b"\n", b"\r")


def load_labels(path: str | os.PathLike) -> np.ndarray:
    """Memory-map ``labels.npy`` as a read-only uint8 array [N, H, W, 3]."""
    return load_image_store(path, "labels")
