"""The ``pose_warp`` method: each requested pose drawn as the target's own exemplar, warped, over the plate.

No learning: for every requested pose (a normalized source's, or the target's
held-out ones), an exemplar is chosen among the target's training frames
(:func:`edn.exemplars.select.choose_exemplars`), its person moved to the pose
part by part (:func:`edn.exemplars.warp.warp_person`) and composited over the
target's background plate of that output frame (:func:`plate_of`: the one plate
of a still camera, or the plate in the output frame's own camera when the
target's camera moves). With ``selection: head`` the head has its own
exemplar, with ``parts`` every part group (torso, head, each arm, each leg)
(:func:`edn.exemplars.select.choose_part_exemplars`), each group's parts warped
from it and drawn in the same back-to-front order
(:func:`edn.exemplars.warp.warp_parts`). It is the paper's PoseWarp baseline without its
network, and the floor a trained model must clear. Frames where the requested
pose has nobody are the plate. With ``repaint_props`` (the default) the frames
are read with what the target holds painted out of their legs
(:func:`exemplar_sources`, :mod:`edn.exemplars.props`); the training pairs keep
the frames as filmed (:mod:`edn.exemplars.for_training`).

A camera that moves: the exemplar's person pixels come from its own frame s
(filmed with camera s) and are moved part by part onto the requested pose,
which is in the output frame's pixels; nothing of them depends on a plate (what
the exemplar's person covered in frame s is never drawn: the warp takes the
person only). Only the background under the person changes with the camera: the
target's held-out frame t, or training frame t, was filmed with camera t, so it
is drawn over the mosaic warped into camera t
(:class:`edn.background.camera.FramePlates`), as training and evaluation draw
it. A transfer's poses are in the reference view, and are drawn over the
reference view's plate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable

import numpy as np

from edn.core.atomic import atomic_path
from edn.core.options import ExemplarOptions
from edn.exemplars.props import PropFreeFrames
from edn.exemplars.select import SELECTION_GROUPS, choose_by_selection
from edn.exemplars.warp import PART_GROUPS, warp_parts
from edn.ingest.frames import create_image_store

log = logging.getLogger(__name__)


#: The plate of each output frame: one uint8 [H, W, 3] for every frame, or a callable giving frame t's.
Plates = np.ndarray | Callable[[int], np.ndarray]


def plate_of(plates: Plates) -> Callable[[int], np.ndarray]:
    """The one rule for the plate that output frame t is drawn over: ``plates`` itself when it is an image
    (a still camera, or a transfer in the reference view), else ``plates(t)`` (e.g. a
    :class:`edn.background.camera.FramePlates` seen from output frame t's camera)."""
    if callable(plates):
        return plates
    plate = np.asarray(plates)
    return lambda t: plate


def warp_options(options: ExemplarOptions) -> dict:
    """The keyword arguments of :func:`edn.exemplars.warp.warp_person` among ``options``."""
    return {"feather_px": options.feather_px, "limb_radius": options.limb_radius,
            "head_from": options.head_from, "hands_and_feet": options.hands_and_feet}


def draw_pose_warp(frames: np.ndarray, masks: np.ndarray, target: np.ndarray, requested: np.ndarray,
                   exemplars: np.ndarray, plates: Plates, out: np.ndarray, *, options: ExemplarOptions,
                   validity_out: np.ndarray | None = None, progress: bool = True) -> None:
    """Frame t of ``out`` (uint8 [N, H, W, 3]): exemplar ``exemplars[t]`` of the target (its ``frames``
    uint8 [T, H, W, 3], ``masks`` uint8 [T, H, W], keypoints ``target`` [T, K, 3]) warped to
    ``requested[t]`` [K, 3], over output frame t's plate (``plates``: uint8 [H, W, 3] for every frame, or a
    callable t -> plate, :func:`plate_of`); -1: the plate. ``exemplars`` int [N] (one
    frame for the whole person) or [N, G] (one per part group, in the order of
    :data:`edn.exemplars.warp.PART_GROUPS`; -1 in the first column: the plate). ``validity_out`` (uint8
    [N, H, W], optional) gets each frame's validity, 0-255."""
    from tqdm import tqdm

    keywords = warp_options(options)
    plate_at = plate_of(plates)
    exemplars = np.asarray(exemplars)
    per_part = exemplars.ndim == 2
    if per_part and exemplars.shape[1] != len(PART_GROUPS):
        raise ValueError(f"exemplars {list(exemplars.shape)}: one column per part group ({len(PART_GROUPS)})")
    for t in tqdm(range(len(requested)), unit="frame", desc="pose-warp", leave=False, disable=not progress or None):
        row = exemplars[t] if per_part else exemplars[t:t + 1]
        if int(row[0]) < 0:
            out[t] = plate_at(t)
            if validity_out is not None:
                validity_out[t] = 255
            continue
        row = np.where(row < 0, row[0], row)  # a group without its own frame: the torso's
        sources = [int(frame) for frame in np.unique(row)]
        source_of = {group: sources.index(int(frame)) for group, frame in zip(PART_GROUPS, row)} if per_part else {}
        warped = warp_parts([(np.asarray(frames[s]), np.asarray(masks[s]), target[s]) for s in sources],
                            requested[t], source_of, **keywords)
        out[t] = warped.over(plate_at(t))
        if validity_out is not None:
            validity_out[t] = np.rint(warped.validity * 255).astype(np.uint8)


def exemplar_sources(frames: np.ndarray, masks: np.ndarray, target: np.ndarray, first_heldout: int,
                     options: ExemplarOptions) -> tuple:
    """The target's frames and person masks as a requested pose's exemplars are cut from them: with
    ``repaint_props``, props painted out of the legs (:class:`edn.exemplars.props.PropFreeFrames`);
    else as filmed."""
    if not options.repaint_props:
        return frames, masks
    painted = PropFreeFrames(frames, masks, target, first_heldout)
    return painted.frames, painted.masks


def exemplar_columns(exemplars: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of an exemplar table for ``exemplars`` int [N] (exemplar) or [N, G] by part group
    (exemplar: the torso's, then exemplar_<group> for each group of
    :data:`edn.exemplars.warp.PART_GROUPS`)."""
    if exemplars.ndim == 1:
        return {"exemplar": exemplars}
    return {"exemplar": exemplars[:, 0],
            **{f"exemplar_{group}": exemplars[:, g] for g, group in enumerate(PART_GROUPS)}}


def write_pose_warp(frames: np.ndarray, masks: np.ndarray, target: np.ndarray, requested: np.ndarray,
                    plates: Plates, first_heldout: int, output: str | os.PathLike, *, options: ExemplarOptions,
                    validity_output: str | os.PathLike | None = None,
                    exemplars_output: str | os.PathLike | None = None) -> np.ndarray:
    """Choose the exemplars and write the method's frames to ``output`` (frames .npy; frame t over output
    frame t's plate, ``plates`` as :func:`draw_pose_warp`'s), its validity
    masks to ``validity_output`` (.npy, uint8 [N, H, W]) and each frame's exemplar to
    ``exemplars_output`` (.csv: frame, exemplar; with ``selection`` head or parts the exemplar is the
    torso's and a column exemplar_<group> follows for each part group), each atomically. Returns the
    exemplars (int64 [N], or [N, G] by part group)."""
    import pandas as pd

    height, width = frames.shape[1:3]
    started = time.perf_counter()
    exemplars = choose_by_selection(requested, target, first_heldout, options.selection,
                                    switch_margin=options.switch_margin, clear_head=options.clear_head)
    columns = exemplar_columns(exemplars)
    chose = time.perf_counter()
    # The whole-body choice (the torso's column unless the torso has its own), then each group that has its own.
    own = SELECTION_GROUPS[options.selection]
    for name in ("exemplar",) * ("torso" not in own) + tuple(f"exemplar_{group}" for group in own):
        chosen = columns[name][columns[name] >= 0]
        log.info("pose_warp: %s: %d exemplar(s) among the target's first %d frames, %d switch(es)",
                 name.replace("exemplar_", "") if name != "exemplar" else "body", len(np.unique(chosen)),
                 first_heldout, int((np.diff(chosen) != 0).sum()) if len(chosen) else 0)
    frames, masks = exemplar_sources(frames, masks, target, first_heldout, options)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(create_image_store(output, len(requested), (width, height)))
        validity = (None if validity_output is None else
                    stack.enter_context(create_image_store(validity_output, len(requested), (width, height),
                                                           channels=None)))
        draw_pose_warp(frames, masks, target, requested, exemplars, plates, out, options=options,
                       validity_out=validity)
        drew = time.perf_counter()
        if exemplars_output is not None:
            with atomic_path(exemplars_output) as temporary:
                pd.DataFrame({"frame": np.arange(len(exemplars)), **columns}).to_csv(temporary, index=False)
    log.info("pose_warp: %d frames at %dx%d, exemplars chosen by %s (%.1f ms), drawn in %.1f ms per frame",
             len(requested), width, height, options.selection, 1000.0 * (chose - started),
             1000.0 * (drew - chose) / max(len(requested), 1))
    return exemplars
