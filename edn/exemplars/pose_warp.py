"""The ``pose_warp`` method: each requested pose drawn as the target's own exemplar, warped, over the plate.

No learning: for every requested pose (a normalized source's, or the target's
held-out ones), an exemplar is chosen among the target's training frames
(:func:`edn.exemplars.select.choose_exemplars`), its person moved to the pose
part by part (:func:`edn.exemplars.warp.warp_person`) and composited over the
target's background plate. It is the paper's PoseWarp baseline without its
network, and the floor a trained model must clear. Frames where the requested
pose has nobody are the plate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import numpy as np

from edn.core.atomic import atomic_path
from edn.core.options import ExemplarOptions
from edn.exemplars.select import choose_exemplars
from edn.exemplars.warp import warp_person
from edn.ingest.frames import create_image_store

log = logging.getLogger(__name__)


def warp_options(options: ExemplarOptions) -> dict:
    """The keyword arguments of :func:`edn.exemplars.warp.warp_person` among ``options``."""
    return {"feather_px": options.feather_px, "limb_radius": options.limb_radius,
            "head_from": options.head_from, "hands_and_feet": options.hands_and_feet}


def draw_pose_warp(frames: np.ndarray, masks: np.ndarray, target: np.ndarray, requested: np.ndarray,
                   exemplars: np.ndarray, plate: np.ndarray, out: np.ndarray, *, options: ExemplarOptions,
                   validity_out: np.ndarray | None = None, progress: bool = True) -> None:
    """Frame t of ``out`` (uint8 [N, H, W, 3]): exemplar ``exemplars[t]`` of the target (its ``frames``
    uint8 [T, H, W, 3], ``masks`` uint8 [T, H, W], keypoints ``target`` [T, K, 3]) warped to
    ``requested[t]`` [K, 3], over ``plate`` uint8 [H, W, 3]; -1: the plate. ``validity_out`` (uint8
    [N, H, W], optional) gets each frame's validity, 0-255."""
    from tqdm import tqdm

    keywords = warp_options(options)
    for t in tqdm(range(len(requested)), unit="frame", desc="pose-warp", leave=False, disable=not progress or None):
        exemplar = int(exemplars[t])
        if exemplar < 0:
            out[t] = plate
            if validity_out is not None:
                validity_out[t] = 255
            continue
        warped = warp_person(np.asarray(frames[exemplar]), np.asarray(masks[exemplar]), target[exemplar],
                             requested[t], **keywords)
        out[t] = warped.over(plate)
        if validity_out is not None:
            validity_out[t] = np.rint(warped.validity * 255).astype(np.uint8)


def write_pose_warp(frames: np.ndarray, masks: np.ndarray, target: np.ndarray, requested: np.ndarray,
                    plate: np.ndarray, first_heldout: int, output: str | os.PathLike, *, options: ExemplarOptions,
                    validity_output: str | os.PathLike | None = None,
                    exemplars_output: str | os.PathLike | None = None) -> np.ndarray:
    """Choose the exemplars and write the method's frames to ``output`` (frames .npy), its validity
    masks to ``validity_output`` (.npy, uint8 [N, H, W]) and each frame's exemplar to
    ``exemplars_output`` (.csv: frame, exemplar), each atomically. Returns the exemplars."""
    import pandas as pd

    height, width = frames.shape[1:3]
    exemplars = choose_exemplars(requested, target, first_heldout, switch_margin=options.switch_margin)
    chosen = exemplars[exemplars >= 0]
    log.info("pose_warp: %d frames at %dx%d from %d exemplar(s) among the target's first %d frames; "
             "%d switch(es)", len(requested), width, height, len(np.unique(chosen)), first_heldout,
             int((np.diff(chosen) != 0).sum()) if len(chosen) else 0)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(create_image_store(output, len(requested), (width, height)))
        validity = (None if validity_output is None else
                    stack.enter_context(create_image_store(validity_output, len(requested), (width, height),
                                                           channels=None)))
        draw_pose_warp(frames, masks, target, requested, exemplars, plate, out, options=options,
                       validity_out=validity)
        if exemplars_output is not None:
            with atomic_path(exemplars_output) as temporary:
                pd.DataFrame({"frame": np.arange(len(exemplars)), "exemplar": exemplars}).to_csv(temporary,
                                                                                                index=False)
    return exemplars
