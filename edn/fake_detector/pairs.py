"""Which consecutive frame pairs (t, t+1) of a subject the detector sees, and in which split.

A subject's video is split by frame range exactly as training splits it
(:func:`edn.core.options.first_heldout_frame`): frames ``0 .. first_heldout - 1``
are the training part, the rest is held out. A pair belongs to one part only:
no pair straddles the boundary. A pair is used only when both frames show a
person (``has_body`` in the labels' index.csv) and no scene cut lies between
them, so that "the picture jumped" is never a cue the classifier can learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edn.core.errors import EdnError
from edn.core.options import DetectorOptions

#: Side of the grey thumbnail blocks that scene cuts are measured on, in pixels.
CUT_BLOCK_PX = 8
#: Default cut threshold (the option ``detector.cut_threshold``): mean absolute change
#: of the block-averaged grey frame, 0-255 units. The demo videos change by at most
#: 5 between consecutive frames (99th percentile 3.4); two different shots differ by tens.
DEFAULT_CUT_THRESHOLD = DetectorOptions.cut_threshold


def frame_changes(frames: np.ndarray, block_px: int = CUT_BLOCK_PX, transforms: np.ndarray | None = None
                  ) -> np.ndarray:
    """Mean absolute change between consecutive frames, float [N - 1], 0-255 units.

    ``frames``: uint8 [N, H, W, 3]. Frames are averaged to grey and over
    ``block_px`` squares first, so that noise and small motions count little and
    a change of shot counts fully.

    ``transforms``: float64 [N, 3, 3], each frame's pixel to the reference view's (the camera table's,
    :mod:`edn.background.camera`), for a camera that moves: frame t + 1 is first seen from frame t's camera
    and only the blocks both frames show count, so that a pan or a zoom is not a cut (a pan of 16 px between
    two frames of the demo juggler changes its blocks by 23, near the default threshold of 30). Where the two
    cameras are the same (a still camera), the frames are compared as they are.
    """
    count, height, width = frames.shape[:3]
    rows, cols = max(height // block_px, 1), max(width // block_px, 1)
    changes = np.zeros(max(count - 1, 0), np.float64)
    previous, previous_grey = None, None
    for t in range(count):
        grey = np.asarray(frames[t], dtype=np.float32).mean(axis=2)
        thumb = _blocks(grey, rows, cols)
        if previous is not None:
            move = None if transforms is None else np.linalg.inv(transforms[t - 1]) @ transforms[t]
            if move is None or np.allclose(move, np.eye(3), rtol=0.0, atol=1e-9):
                changes[t - 1] = np.abs(thumb - previous).mean()
            else:
                changes[t - 1] = _registered_change(previous_grey, grey, move, rows, cols)
        previous, previous_grey = thumb, grey
    return changes


def _blocks(grey: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """[rows, cols]: the mean of each block of ``grey`` (the frame's remainder past whole blocks left out)."""
    height, width = grey.shape
    grey = grey[: rows * (height // rows), : cols * (width // cols)]
    return grey.reshape(rows, height // rows, cols, width // cols).mean(axis=(1, 3))


def _registered_change(before: np.ndarray, after: np.ndarray, move: np.ndarray, rows: int, cols: int) -> float:
    """The block change between grey frames ``before`` and ``after``, ``after`` seen from ``before``'s camera
    (``move``: ``after``'s pixel to ``before``'s), over the blocks ``after`` covers whole; inf when none."""
    import cv2

    height, width = before.shape
    seen = cv2.warpPerspective(after, move, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0)
    covered = cv2.warpPerspective(np.ones((height, width), np.float32), move, (width, height),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.999
    whole = _blocks(covered.astype(np.float32), rows, cols) == 1.0
    if not whole.any():
        return float("inf")
    return float(np.abs(_blocks(seen, rows, cols) - _blocks(before, rows, cols))[whole].mean())


def scene_cuts(frames: np.ndarray, threshold: float = DEFAULT_CUT_THRESHOLD,
               transforms: np.ndarray | None = None) -> np.ndarray:
    """bool [N - 1]: entry t is True when a cut lies between frames t and t + 1 (``transforms``: a moving
    camera's, see :func:`frame_changes`)."""
    return frame_changes(frames, transforms=transforms) > threshold


@dataclass(frozen=True)
class SubjectPairs:
    """A subject's usable pairs: int64 arrays of the first frame t of each pair (t, t+1).

    ``training``: pairs inside frames ``0 .. first_heldout - 1``;
    ``heldout``: pairs inside ``first_heldout .. frame_count - 1``.
    """

    training: np.ndarray
    heldout: np.ndarray
    first_heldout: int
    frame_count: int

    @property
    def everything(self) -> np.ndarray:
        """Every usable pair of the subject (a subject the detector never trained on)."""
        return np.concatenate([self.training, self.heldout])


def usable_pairs(has_body: np.ndarray, cuts: np.ndarray, start: int, stop: int) -> np.ndarray:
    """First frames t of the pairs (t, t+1) with both frames in ``start .. stop - 1``,
    both with a person, and no cut between them; int64, ascending."""
    count = len(has_body)
    if len(cuts) != max(count - 1, 0):
        raise ValueError(f"{len(cuts)} cut flags for {count} frames")
    first = np.arange(max(start, 0), max(min(stop, count) - 1, max(start, 0)), dtype=np.int64)
    keep = has_body[first] & has_body[first + 1] & ~cuts[first]
    return first[keep]


def split_subject_pairs(has_body: np.ndarray, cuts: np.ndarray, first_heldout: int) -> SubjectPairs:
    """The training and held-out pairs of one subject (see the module docstring)."""
    count = len(has_body)
    if not 0 <= first_heldout <= count:
        raise ValueError(f"first held-out frame {first_heldout} outside 0..{count}")
    return SubjectPairs(training=usable_pairs(has_body, cuts, 0, first_heldout),
                        heldout=usable_pairs(has_body, cuts, first_heldout, count),
                        first_heldout=first_heldout, frame_count=count)


def require_pairs(pairs: np.ndarray, what: str) -> np.ndarray:
    """``pairs`` unless empty; an EdnError naming ``what`` (the subject and split) otherwise."""
    if len(pairs) == 0:
        raise EdnError(f"{what}: no usable frame pair (a pair needs two consecutive frames with a person, "
                       "no scene cut between them, both on one side of the held-out boundary)")
    return pairs
