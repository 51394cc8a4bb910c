"""Exemplars for training a generator conditioned on them (option ``training.exemplar``).

A generator that corrects a warped exemplar (:mod:`edn.models.compositing`)
learns, on frame t of the target, from one of the target's *other* training
frames warped to frame t's pose. Never frame t itself, nor its neighbours within
``gap`` frames: their person is nearly frame t's, and the network would learn
to copy the answer instead of correcting a real image of the person in another
pose, which is what it gets at synthesis. Held-out frames are never exemplars
(:func:`edn.exemplars.select.candidate_frames`); the held-out frames get
exemplars too (from the training frames), for the sample grid of held-out
frames. No hysteresis: training frames are drawn in any order, each is warped
from its own nearest admissible frame by the paper's pose distance (eq. 6).

At synthesis the exemplars are the ``pose_warp`` method's frames of the same
requested poses (``edn pose-warp``), chosen with hysteresis over time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import numpy as np

from edn.core.atomic import atomic_path
from edn.core.options import ExemplarOptions
from edn.exemplars.pose_warp import draw_pose_warp
from edn.exemplars.select import candidate_distances
from edn.ingest.frames import create_image_store
from edn.pose.skeleton import BODY

log = logging.getLogger(__name__)


def training_exemplars(keypoints: np.ndarray, first_heldout: int, gap: int) -> np.ndarray:
    """int64 [T]: for each frame t of the target (keypoints [T, K, 3]), the training frame c
    (before ``first_heldout``, with a body) nearest to its pose by eq. 6 among those with
    ``|c - t| > gap``; -1 where frame t shows no body or no such frame shares a joint with it."""
    if gap < 0:
        raise ValueError(f"exemplar gap {gap}: must be at least 0")
    candidates, distances = candidate_distances(keypoints, keypoints, first_heldout)
    chosen = np.full(len(keypoints), -1, dtype=np.int64)
    frames = np.arange(len(keypoints))[:, None]
    distances[np.abs(candidates[None, :] - frames) <= gap] = np.inf
    has_body = (np.nan_to_num(np.asarray(keypoints, dtype=np.float64)[:, BODY, 2]) > 0).any(axis=1)
    if distances.shape[1]:
        nearest = np.argmin(distances, axis=1)
        found = np.isfinite(distances[np.arange(len(keypoints)), nearest]) & has_body
        chosen[found] = candidates[nearest[found]]
    return chosen


def write_training_exemplars(frames: np.ndarray, masks: np.ndarray, keypoints: np.ndarray, plate: np.ndarray,
                             first_heldout: int, gap: int, output: str | os.PathLike,
                             validity_output: str | os.PathLike, *, options: ExemplarOptions,
                             exemplars_output: str | os.PathLike | None = None,
                             progress: bool = True) -> np.ndarray:
    """Frame t of ``output`` (uint8 [T, H, W, 3]): exemplar ``training_exemplars(...)[t]`` warped to
    frame t's pose, over ``plate``; ``validity_output`` (uint8 [T, H, W], 0-255): where the warp
    is valid; ``exemplars_output`` (.csv: frame, exemplar), optional. Each written atomically.
    Returns the exemplars (-1: the plate, fully valid)."""
    import pandas as pd

    count, height, width = frames.shape[:3]
    exemplars = training_exemplars(keypoints, first_heldout, gap)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(create_image_store(output, count, (width, height)))
        validity = stack.enter_context(create_image_store(validity_output, count, (width, height), channels=None))
        draw_pose_warp(frames, masks, keypoints, keypoints, exemplars, plate, out, options=options,
                       validity_out=validity, progress=progress)
        if exemplars_output is not None:
            with atomic_path(exemplars_output) as temporary:
                pd.DataFrame({"frame": np.arange(count), "exemplar": exemplars}).to_csv(temporary, index=False)
    seconds = time.perf_counter() - started
    chosen = exemplars[exemplars >= 0]
    log.info("training exemplars: %d frames at %dx%d from %d distinct training frames (at least %d frames away), "
             "%.1f ms per frame", count, width, height, len(np.unique(chosen)), gap + 1,
             1000.0 * seconds / max(count, 1))
    return exemplars
