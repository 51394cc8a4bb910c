"""Choosing an exemplar for every requested pose: one of the target's training frames.

- **Training frames only.** The candidates are the frames before the held-out
  boundary (:func:`edn.core.options.first_heldout_frame`, the split training and
  evaluation use) whose pose has a body joint. A held-out frame is never an
  exemplar, so evaluating on the held-out poses stays honest.
- **The paper's pose distance.** Candidates are ranked by eq. 6
  (:func:`edn.pose.distance.pose_distances`), as the nearest-neighbour baseline
  ranks them.
- **Steady over time.** A video whose exemplar changes every time the nearest
  frame does shows its texture jumping. The exemplar of the previous frame is
  kept until another candidate is clearly closer: its distance below
  ``1 - switch_margin`` times the kept one's (hysteresis). ``switch_margin``
  0 takes the nearest frame every time, like the baseline.

A requested pose that shares no body joint with any candidate (nobody in the
frame) gets no exemplar (-1) and does not change the kept one.
"""

from __future__ import annotations

import numpy as np

from edn.core.errors import EdnError
from edn.pose.distance import pose_distances
from edn.pose.skeleton import BODY

#: Default share by which another training frame must be closer to replace the kept exemplar.
SWITCH_MARGIN = 0.2
#: Elements of the query x candidate x joint arrays computed at once (bounds memory on long videos).
DISTANCE_BLOCK_ELEMENTS = 1 << 22


def candidate_frames(keypoints: np.ndarray, first_heldout: int) -> np.ndarray:
    """int64 indices of the training frames (before ``first_heldout``) of ``keypoints`` [T, K, 3] that show a body."""
    training = np.asarray(keypoints[:first_heldout, BODY, 2])
    return np.flatnonzero((np.nan_to_num(training) > 0).any(axis=1)).astype(np.int64)


def hysteresis_choice(distances: np.ndarray, switch_margin: float = SWITCH_MARGIN) -> np.ndarray:
    """For each row of ``distances`` [N, M] (requested pose x candidate), the chosen column, -1 where
    every distance is infinite: the previous row's choice, unless the nearest candidate's distance is
    below ``(1 - switch_margin)`` times the previous choice's (or the previous one is unavailable)."""
    if not 0.0 <= switch_margin < 1.0:
        raise ValueError(f"switch margin {switch_margin}: must be in [0, 1)")
    chosen = np.full(len(distances), -1, dtype=np.int64)
    nearest = np.argmin(distances, axis=1) if distances.shape[1] else np.zeros(len(distances), np.int64)
    current = -1
    for t, row in enumerate(distances):
        if not distances.shape[1] or not np.isfinite(row[nearest[t]]):
            continue
        best = nearest[t]
        if current < 0 or not np.isfinite(row[current]) or row[best] < (1.0 - switch_margin) * row[current]:
            current = best
        chosen[t] = current
    return chosen


def choose_exemplars(requested: np.ndarray, target: np.ndarray, first_heldout: int, *,
                     switch_margin: float = SWITCH_MARGIN) -> np.ndarray:
    """int64 [N]: the target frame chosen as the exemplar of each requested pose, -1 for none.

    ``requested`` [N, K, 3]: the poses to draw, in order (a normalized source's, or
    the target's held-out ones); ``target`` [T, K, 3]: the target's poses, frame t
    of its video; ``first_heldout``: frames from it on are held out and never chosen.
    """
    candidates, distances = candidate_distances(requested, target, first_heldout)
    columns = hysteresis_choice(distances, switch_margin)
    return np.where(columns >= 0, candidates[np.maximum(columns, 0)], -1)


def candidate_distances(requested: np.ndarray, target: np.ndarray,
                        first_heldout: int) -> tuple[np.ndarray, np.ndarray]:
    """The target's candidate frames (int64 [C], :func:`candidate_frames`) and the pose distance
    (eq. 6) of each requested pose [N, K, 3] to each of them (float64 [N, C], inf where no joint is
    shared); one error line when none of the target's training frames shows a body."""
    candidates = candidate_frames(target, first_heldout)
    if len(candidates) == 0:
        raise EdnError(f"exemplars: none of the target's {min(first_heldout, len(target))} training frames "
                       "shows a body")
    reference = np.nan_to_num(np.asarray(target[candidates], dtype=np.float64))
    query = np.nan_to_num(np.asarray(requested, dtype=np.float64))
    chunk = max(1, DISTANCE_BLOCK_ELEMENTS // (len(candidates) * (BODY.stop - BODY.start)))
    return candidates, pose_distances(query, reference, chunk=chunk)
