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


def frame_changes(frames: np.ndarray, block_px: int = CUT_BLOCK_PX) -> np.ndarray:
    """Mean absolute change between consecutive frames, float [N - 1], 0-255 units.

    ``frames``: uint8 [N, H, W, 3]. Frames are averaged to grey and over
    ``block_px`` squares first, so that noise and small motions count little and
    a change of shot counts fully.
    """
    count, height, width = frames.shape[:3]
    rows, cols = max(height // block_px, 1), max(width // block_px, 1)
    changes = np.zeros(max(count - 1, 0), np.float64)
    previous = None
    for t in range(count):
        grey = np.asarray(frames[t], dtype=np.float32).mean(axis=2)
        grey = grey[: rows * (height // rows), : cols * (width // cols)]
        thumb = grey.reshape(rows, height // rows, cols, width // cols).mean(axis=(1, 3))
        if previous is not None:
            changes[t - 1] = np.abs(thumb - previous).mean()
        previous = thumb
    return changes


def scene_cuts(frames: np.ndarray, threshold: float = DEFAULT_CUT_THRESHOLD) -> np.ndarray:
    """bool [N - 1]: entry t is True when a cut lies between frames t and t + 1."""
    return frame_changes(frames) > threshold


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
