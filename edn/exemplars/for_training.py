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
from its own nearest admissible frames by the paper's pose distance (eq. 6).
With option ``selection`` head or parts, the head (or every part group) comes
from its own nearest admissible frame by the group's joints
(:func:`edn.exemplars.select.part_distances`), as at synthesis.

**Several exemplars per frame** (option ``training.exemplar_choices``). With one,
each training frame's exemplar is always its nearest admissible frame, much
nearer its pose than a held-out frame's exemplar is (on the demo juggler the
median eq. 6 distance is 4.2 against 11.9), and the generator sees the same
few hundred (exemplar, frame) pairs again and again. With C choices, choice 0
is that nearest frame and choice k the nearest of those also more than the gap
from choices 0..k-1 (another moment of the video, not a neighbour of one
already chosen); a part group with its own frame keeps its nearest in every
choice. Training draws one choice per frame and sample
(:func:`edn.training.data.exemplar_choice`). The frames are stored choice by
choice: row ``c * T + t`` of the output holds choice c of frame t.

Frame t's exemplar is drawn over frame t's plate: when the camera moves, the
plate in frame t's own camera, the background the generator is given beside it
in training (:func:`edn.exemplars.pose_warp.plate_of`).

At synthesis the exemplars are the ``pose_warp`` method's frames of the same
requested poses (``edn pose-warp``), chosen with hysteresis over time.

The training pairs are cut from the frames as filmed, props included
(:data:`edn.core.options.REQUESTED_POSES_ONLY`): the correction learns to paint
over what an exemplar brings that its frame does not have, the juggler's ball
on the wrong leg among them, while the exemplars of requested poses come with
the props painted out of their legs (:mod:`edn.exemplars.props`). Painting the
training pairs' props out too measured worse on the demo's held-out body box
(docs/evaluation.md, "A ball on the leg").
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


def training_exemplars(keypoints: np.ndarray, first_heldout: int, gap: int, selection: str = "body",
                       choices: int = 1) -> np.ndarray:
    """int64 [choices, T]: for each frame t of the target (keypoints [T, K, 3]), choice 0 is the
    training frame c (before ``first_heldout``, with a body) nearest to its pose by eq. 6 among
    those with ``|c - t| > gap``, and choice k the nearest of those that are also more than
    ``gap`` frames from choices 0..k-1 of frame t (choice 0's frame where none is left); -1
    where frame t shows no body or no such frame shares a joint with it. With ``selection``
    head or parts (:data:`edn.exemplars.select.SELECTION_GROUPS`), int64 [choices, T, G] by part
    group: those groups take, in every choice, the admissible frame nearest by their own joints
    (:func:`edn.exemplars.select.part_distances`), the others (and a group none can give) the
    whole-body choice."""
    if gap < 0:
        raise ValueError(f"exemplar gap {gap}: must be at least 0")
    if choices < 1:
        raise ValueError(f"exemplar choices {choices}: must be at least 1")
    if selection not in SELECTION_GROUPS:
        raise ValueError(f"selection {selection!r}: one of {list(SELECTION_GROUPS)}")
    candidates, distances = candidate_distances(keypoints, keypoints, first_heldout)
    too_near = np.abs(candidates[None, :] - np.arange(len(keypoints))[:, None]) <= gap
    has_body = (np.nan_to_num(np.asarray(keypoints, dtype=np.float64)[:, BODY, 2]) > 0).any(axis=1)
    bodies = []
    distances[too_near] = np.inf  # the arrays are ours: ruled-out candidates are set to inf in place
    for _ in range(choices):
        chosen = _nearest(candidates, distances, has_body)
        if bodies:
            chosen = np.where(chosen >= 0, chosen, bodies[0])
        bodies.append(chosen)
        distances[(np.abs(candidates[None, :] - chosen[:, None]) <= gap) & (chosen[:, None] >= 0)] = np.inf
    bodies = np.stack(bodies)
    if selection == "body":
        return bodies
    by_group = np.repeat(bodies[..., None], len(GROUP_JOINTS), axis=2)
    for g, (group, joints) in enumerate(GROUP_JOINTS.items()):
        if group not in SELECTION_GROUPS[selection] or not distances.shape[1]:
            continue
        group_distances = part_distances(keypoints, keypoints[candidates], joints)
        group_distances[too_near] = np.inf
        own = _nearest(candidates, group_distances, bodies[0] >= 0)
        by_group[:, own >= 0, g] = own[own >= 0]
    return by_group


def _nearest(candidates: np.ndarray, distances: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """int64 [T]: for each frame (row of ``distances`` [T, C], inf where a candidate is ruled out) the
    nearest candidate, where ``wanted`` [T] and one is at a finite distance; else -1."""
    chosen = np.full(len(distances), -1, dtype=np.int64)
    if not distances.shape[1]:
        return chosen
    nearest = np.argmin(distances, axis=1)
    found = np.isfinite(distances[np.arange(len(distances)), nearest]) & wanted
    chosen[found] = candidates[nearest[found]]
    return chosen


def write_training_exemplars(frames: np.ndarray, masks: np.ndarray, keypoints: np.ndarray, plates: Plates,
                             first_heldout: int, gap: int, output: str | os.PathLike,
                             validity_output: str | os.PathLike, *, options: ExemplarOptions, choices: int = 1,
                             exemplars_output: str | os.PathLike | None = None,
                             progress: bool = True) -> np.ndarray:
    """Row ``c * T + t`` of ``output`` (uint8 [choices x T, H, W, 3]): choice c of frame t's exemplars
    (:func:`training_exemplars`) warped to frame t's pose, over frame t's plate (``plates``: the plate, or
    t -> the plate in frame t's camera when the camera moves, as
    :func:`edn.exemplars.pose_warp.draw_pose_warp` takes it); ``validity_output`` (uint8 [choices x T,
    H, W], 0-255): where the warp is valid; ``exemplars_output`` (.csv: frame, choice, exemplar, and
    with ``selection`` head or parts exemplar_<group> for each part group), optional. Each written
    atomically. Returns the exemplars, [choices, T] or [choices, T, G] (-1: the plate, fully valid)."""
    import pandas as pd

    count, height, width = frames.shape[:3]
    exemplars = training_exemplars(keypoints, first_heldout, gap, options.selection, choices)
    rows = exemplars.reshape(choices * count, *exemplars.shape[2:])
    frame_plates = (lambda row: plates(row % count)) if callable(plates) else plates
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(create_image_store(output, len(rows), (width, height)))
        validity = stack.enter_context(create_image_store(validity_output, len(rows), (width, height),
                                                          channels=None))
        draw_pose_warp(frames, masks, keypoints, np.tile(keypoints, (choices, 1, 1)), rows, frame_plates, out,
                       options=options, validity_out=validity, progress=progress)
        if exemplars_output is not None:
            with atomic_path(exemplars_output) as temporary:
                pd.DataFrame({"frame": np.tile(np.arange(count), choices),
                              "choice": np.repeat(np.arange(choices), count),
                              **exemplar_columns(rows)}).to_csv(temporary, index=False)
    seconds = time.perf_counter() - started
    chosen = exemplars[exemplars >= 0]  # every group's frames
    log.info("training exemplars: %d frames at %dx%d, %d choice(s) each, from %d distinct training frames (at "
             "least %d frames away), %.1f ms per exemplar", count, width, height, choices, len(np.unique(chosen)),
             gap + 1, 1000.0 * seconds / max(len(rows), 1))
    return exemplars
