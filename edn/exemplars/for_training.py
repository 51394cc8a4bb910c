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
With option ``selection`` head or parts, the head (or every part group) comes
from its own nearest admissible frame by the group's joints
(:func:`edn.exemplars.select.part_distances`), as at synthesis.

Frame t's exemplar is drawn over frame t's plate: when the camera moves, the
plate in frame t's own camera, the background the generator is given beside it
in training (:func:`edn.exemplars.pose_warp.plate_of`).

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
from edn.exemplars.pose_warp import Plates, draw_pose_warp, exemplar_columns
from edn.exemplars.select import GROUP_JOINTS, SELECTION_GROUPS, candidate_distances, part_distances
from edn.ingest.frames import create_image_store
from edn.pose.skeleton import BODY

log = logging.getLogger(__name__)


def training_exemplars(keypoints: np.ndarray, first_heldout: int, gap: int, selection: str = "body") -> np.ndarray:
    """int64 [T]: for each frame t of the target (keypoints [T, K, 3]), the training frame c
    (before ``first_heldout``, with a body) nearest to its pose by eq. 6 among those with
    ``|c - t| > gap``; -1 where frame t shows no body or no such frame shares a joint with it.
    With ``selection`` head or parts (:data:`edn.exemplars.select.SELECTION_GROUPS`), int64 [T, G]
    by part group: those groups take the admissible frame nearest by their own joints
    (:func:`edn.exemplars.select.part_distances`), the others (and a group none can give) that one."""
    if gap < 0:
        raise ValueError(f"exemplar gap {gap}: must be at least 0")
    if selection not in SELECTION_GROUPS:
        raise ValueError(f"selection {selection!r}: one of {list(SELECTION_GROUPS)}")
    candidates, distances = candidate_distances(keypoints, keypoints, first_heldout)
    chosen = np.full(len(keypoints), -1, dtype=np.int64)
    frames = np.arange(len(keypoints))[:, None]
    too_near = np.abs(candidates[None, :] - frames) <= gap
    distances[too_near] = np.inf
    has_body = (np.nan_to_num(np.asarray(keypoints, dtype=np.float64)[:, BODY, 2]) > 0).any(axis=1)
    if distances.shape[1]:
        nearest = np.argmin(distances, axis=1)
        found = np.isfinite(distances[np.arange(len(keypoints)), nearest]) & has_body
        chosen[found] = candidates[nearest[found]]
    if selection == "body":
        return chosen
    by_group = np.repeat(chosen[:, None], len(GROUP_JOINTS), axis=1)
    for g, (group, joints) in enumerate(GROUP_JOINTS.items()):
        if group not in SELECTION_GROUPS[selection] or not distances.shape[1]:
            continue
        group_distances = part_distances(keypoints, keypoints[candidates], joints)
        group_distances[too_near] = np.inf
        nearest = np.argmin(group_distances, axis=1)
        found = np.isfinite(group_distances[np.arange(len(keypoints)), nearest]) & (chosen >= 0)
        by_group[found, g] = candidates[nearest[found]]
    return by_group


def write_training_exemplars(frames: np.ndarray, masks: np.ndarray, keypoints: np.ndarray, plates: Plates,
                             first_heldout: int, gap: int, output: str | os.PathLike,
                             validity_output: str | os.PathLike, *, options: ExemplarOptions,
                             exemplars_output: str | os.PathLike | None = None,
                             progress: bool = True) -> np.ndarray:
    """Frame t of ``output`` (uint8 [T, H, W, 3]): exemplar ``training_exemplars(...)[t]`` warped to
    frame t's pose, over frame t's plate (``plates``: the plate, or t -> the plate in frame t's camera when
    the camera moves, as :func:`edn.exemplars.pose_warp.draw_pose_warp` takes it); ``validity_output``
    (uint8 [T, H, W], 0-255): where the warp is valid; ``exemplars_output`` (.csv: frame, exemplar, and
    with ``selection`` head or parts exemplar_<group> for each part group), optional. Each written
    atomically. Returns the exemplars (-1: the plate, fully valid)."""
    import pandas as pd

    count, height, width = frames.shape[:3]
    exemplars = training_exemplars(keypoints, first_heldout, gap, options.selection)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(create_image_store(output, count, (width, height)))
        validity = stack.enter_context(create_image_store(validity_output, count, (width, height), channels=None))
        draw_pose_warp(frames, masks, keypoints, keypoints, exemplars, plates, out, options=options,
                       validity_out=validity, progress=progress)
        if exemplars_output is not None:
            with atomic_path(exemplars_output) as temporary:
                pd.DataFrame({"frame": np.arange(count), **exemplar_columns(exemplars)}).to_csv(temporary,
                                                                                                index=False)
    seconds = time.perf_counter() - started
    chosen = exemplars[exemplars >= 0]  # every group's frames
    log.info("training exemplars: %d frames at %dx%d from %d distinct training frames (at least %d frames away), "
             "%.1f ms per frame", count, width, height, len(np.unique(chosen)), gap + 1,
             1000.0 * seconds / max(count, 1))
    return exemplars
