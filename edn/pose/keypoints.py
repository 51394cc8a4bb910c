"""Keypoint sequences in memory and the keypoint table on disk.

In memory a subject's poses are one array ``[T, K, 3]`` (x, y, confidence) in
the layout of :mod:`edn.pose.skeleton`, with x and y in working-frame pixels
(continuous coordinates, see :mod:`edn.ingest.frames`) and confidence in [0, 1]. A
missing keypoint has confidence 0 (and x = y = 0), as in OpenPose. Frame t is
frame t of the decoded video: a frame with nobody is all zeros, never dropped.

On disk it is a Parquet table with one row per frame and keypoint::

    frame (int32), keypoint (category: skeleton.KEYPOINT_NAMES), x, y, confidence (float32)

with the working frame size and the detector stored in the file's metadata.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edn.core.atomic import atomic_path
from edn.core.errors import EdnError
from edn.pose.skeleton import KEYPOINT_COUNT, KEYPOINT_NAMES

TABLE_COLUMNS = ("frame", "keypoint", "x", "y", "confidence")
_METADATA_KEY = b"edn.keypoints"


@dataclass(frozen=True)
class PoseSequence:
    """One subject's keypoints over time.

    ``keypoints``: float32 ``[T, K, 3]``, K = skeleton.KEYPOINT_COUNT.
    ``frame_size``: working frame (width, height) in pixels.
    ``detector``: what produced the keypoints (e.g. "mediapipe"), for provenance.
    """

    keypoints: np.ndarray
    frame_size: tuple[int, int]
    detector: str = "unknown"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (KEYPOINT_COUNT, 3):
            raise ValueError(f"keypoints must be [T, {KEYPOINT_COUNT}, 3], got {list(self.keypoints.shape)}")

    @property
    def frame_count(self) -> int:
        return self.keypoints.shape[0]

    @property
    def xy(self) -> np.ndarray:
        """[T, K, 2] positions in working-frame pixels."""
        return self.keypoints[..., :2]

    @property
    def confidence(self) -> np.ndarray:
        """[T, K] confidences in [0, 1]; 0 means missing."""
        return self.keypoints[..., 2]

    def replace(self, keypoints: np.ndarray, **changes: object) -> PoseSequence:
        """The same sequence's metadata with new keypoints."""
        values = {"frame_size": self.frame_size, "detector": self.detector, "extra": dict(self.extra)}
        values.update(changes)
        return PoseSequence(keypoints=np.ascontiguousarray(keypoints, dtype=np.float32), **values)


def empty_keypoints(frame_count: int) -> np.ndarray:
    """All-missing keypoints for ``frame_count`` frames."""
    return np.zeros((frame_count, KEYPOINT_COUNT, 3), dtype=np.float32)


def write_pose_table(path: str | os.PathLike, poses: PoseSequence) -> None:
    """Write ``poses`` as a Parquet keypoint table, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    T, K = poses.frame_count, KEYPOINT_COUNT
    flat = poses.keypoints.reshape(T * K, 3).astype(np.float32, copy=False)
    keypoint = pa.DictionaryArray.from_arrays(
        pa.array(np.tile(np.arange(K, dtype=np.int16), T)), pa.array(KEYPOINT_NAMES, type=pa.string()))
    table = pa.table({
        "frame": pa.array(np.repeat(np.arange(T, dtype=np.int32), K)),
        "keypoint": keypoint,
        "x": pa.array(flat[:, 0]),
        "y": pa.array(flat[:, 1]),
        "confidence": pa.array(flat[:, 2]),
    })
    metadata = {"frame_size": list(poses.frame_size), "detector": poses.detector, "extra": poses.extra}
    table = table.replace_schema_metadata({_METADATA_KEY: json.dumps(metadata).encode()})
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary, compression="zstd")


def read_pose_table(path: str | os.PathLike) -> PoseSequence:
    """Read a keypoint table written by :func:`write_pose_table` (or by hand, same columns).

    Raises EdnError naming the file when it is missing, has other columns, or
    does not hold every keypoint of every frame exactly once.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise EdnError(f"keypoint table {str(path)!r}: file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise EdnError(f"keypoint table {str(path)!r}: not a Parquet file ({error})") from None
    missing = [c for c in TABLE_COLUMNS if c not in table.column_names]
    if missing:
        raise EdnError(f"keypoint table {str(path)!r}: missing column(s) {', '.join(missing)}; "
                       f"expected {', '.join(TABLE_COLUMNS)}")
    metadata = json.loads((table.schema.metadata or {}).get(_METADATA_KEY, b"{}"))
    if "frame_size" not in metadata:
        raise EdnError(f"keypoint table {str(path)!r}: no frame size in its metadata")
    frame = table.column("frame").to_numpy().astype(np.int64)
    names = table.column("keypoint").combine_chunks()
    if not pa.types.is_dictionary(names.type):
        names = names.dictionary_encode()
    lookup = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
    try:
        code_to_index = np.array([lookup[n] for n in names.dictionary.to_pylist()] or [0], dtype=np.int64)
    except KeyError as error:
        raise EdnError(f"keypoint table {str(path)!r}: unknown keypoint {error.args[0]!r}") from None
    keypoint = code_to_index[names.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    T = int(frame.max()) + 1 if len(frame) else 0
    if len(frame) != T * KEYPOINT_COUNT or frame.min(initial=0) < 0:
        raise EdnError(f"keypoint table {str(path)!r}: {len(frame)} rows do not cover "
                       f"{T} frames x {KEYPOINT_COUNT} keypoints")
    slot = frame * KEYPOINT_COUNT + keypoint
    if np.unique(slot).size != slot.size:
        raise EdnError(f"keypoint table {str(path)!r}: a frame lists a keypoint twice")
    keypoints = np.zeros((T * KEYPOINT_COUNT, 3), dtype=np.float32)
    for column_index, column in enumerate(("x", "y", "confidence")):
        keypoints[slot, column_index] = table.column(column).to_numpy().astype(np.float32)
    return PoseSequence(keypoints=keypoints.reshape(T, KEYPOINT_COUNT, 3),
                        frame_size=tuple(metadata["frame_size"]), detector=metadata.get("detector", "unknown"),
                        extra=metadata.get("extra", {}))
