"""The window that follows the person: where the compositing generator works.

The generator's cost grows with its input's pixels, and most of a frame is
background that the plate (:mod:`edn.background.plate`) already holds. So the person
is drawn in a window that follows them, and the window is pasted into the plate.
One rule places it, for the target's training labels and for every transfer's
labels alike (:func:`person_windows`):

- **Size**, fixed per target: ``height_factor`` times the target's standing
  height (nose to ankles, at its closest depth: :class:`edn.normalize.subject_stats.SubjectStats`
  ``h_close``), rounded up to a multiple of ``multiple`` pixels and at most the
  frame; the width is ``aspect`` times the height, rounded the same way. A
  transfer's source is normalized to the target's body, so the target's window
  fits it too.
- **Position**, per frame: centred on the middle of the body joints' bounding
  box, moved (never shrunk) to lie inside the frame. A frame without a body
  keeps the window of the nearest frame with one.

Windows are ``(x0, y0, x1, y1)`` integer pixels, half-open.
"""

from __future__ import annotations

import math

import numpy as np

from edn.pose.keypoints import PoseSequence
from edn.pose.skeleton import BODY

#: Window sides are multiples of this: the deepest generator (paper preset, local enhancer) halves 5 times.
WINDOW_MULTIPLE_PX = 32


def round_up(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple - 1e-9)) * multiple


def window_size(standing_height_px: float, frame_size: tuple[int, int], *, height_factor: float, aspect: float,
                multiple: int = WINDOW_MULTIPLE_PX) -> tuple[int, int]:
    """(width, height) of the window for a person ``standing_height_px`` tall, inside ``frame_size``."""
    frame_width, frame_height = frame_size
    height = min(round_up(height_factor * standing_height_px, multiple), frame_height - frame_height % multiple)
    width = min(round_up(aspect * height, multiple), frame_width - frame_width % multiple)
    return max(width, multiple), max(height, multiple)


def body_centres(poses: PoseSequence) -> tuple[np.ndarray, np.ndarray]:
    """Middle of each frame's body-joint bounding box, float [T, 2], and whether the frame has a body [T]."""
    xy, present = poses.xy[:, BODY], poses.confidence[:, BODY] > 0
    found = present.any(axis=1)
    low = np.where(present[..., None], xy, np.inf).min(axis=1)
    high = np.where(present[..., None], xy, -np.inf).max(axis=1)
    centres = np.full((poses.frame_count, 2), np.nan)
    centres[found] = (low[found] + high[found]) / 2
    return centres, found


def person_windows(poses: PoseSequence, size: tuple[int, int]) -> np.ndarray:
    """int32 [T, 4]: each frame's window of ``size`` (width, height), centred on its body, inside the frame.

    Frames without a body take the nearest body frame's centre; with no body at
    all, the window is centred in the frame.
    """
    frame_width, frame_height = poses.frame_size
    width, height = size
    centres, found = body_centres(poses)
    if not found.any():
        centres[:] = (frame_width / 2, frame_height / 2)
    else:
        known = np.flatnonzero(found)
        nearest = known[np.abs(np.arange(poses.frame_count)[:, None] - known[None]).argmin(axis=1)]
        centres = centres[nearest]
    x0 = np.clip(np.round(centres[:, 0] - width / 2), 0, frame_width - width)
    y0 = np.clip(np.round(centres[:, 1] - height / 2), 0, frame_height - height)
    return np.stack([x0, y0, x0 + width, y0 + height], axis=1).astype(np.int32)


def clamp_boxes_into(boxes: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Move each box (x0, y0, x1, y1) to lie inside its window, keeping its size (never larger than the window)."""
    sides = np.minimum(boxes[:, 2:] - boxes[:, :2], windows[:, 2:] - windows[:, :2])
    origin = np.clip(boxes[:, :2], windows[:, :2], windows[:, 2:] - sides)
    return np.concatenate([origin, origin + sides], axis=1).astype(np.int32)


def outside_fraction(labels: np.ndarray, windows: np.ndarray) -> float:
    """Share of the drawn stick-figure pixels (uint8 [T, H, W, 3]) that fall outside their frame's window."""
    drawn = outside = 0
    for label, (x0, y0, x1, y1) in zip(labels, windows):
        mask = np.asarray(label).max(axis=-1) > 0
        total = int(mask.sum())
        drawn += total
        outside += total - int(mask[y0:y1, x0:x1].sum())
    return outside / drawn if drawn else 0.0
