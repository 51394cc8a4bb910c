"""Synthesis: the target drawn doing the source's moves, one frame after the other.

Paper section 3.2: the generator sees each frame's stick figure and the frame
it generated just before, so the sequence is generated in order
(:func:`edn.models.generation.generate_frames`). With the face GAN (section 3.3) the
face residual is added inside each frame's face box, and the corrected frame is
what the next frame sees, as in training. A generator that corrects warped
exemplars keeps each exemplar's own face (:func:`kept_faces`) before that.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from edn.core.errors import EdnError
from edn.ingest.frames import create_image_store, iter_frames, write_frames
from edn.models.generation import (FrameGenerator, exemplar_tensor, generate_frames, label_tensor, plate_tensor,
                                   to_uint8_hwc)
from edn.labels.label_store import LabelIndex
from edn.pose.keypoints import PoseSequence
from edn.core.runtime import Runtime

log = logging.getLogger(__name__)


def _prefetch(labels: np.ndarray, depth: int = 4) -> Iterator[np.ndarray]:
    """Yield copies of ``labels[t]`` in order, read ahead in a background thread
    so that disk reads overlap the model's work, a chunk at a time (:func:`iter_frames`:
    the pages read are let go, so memory does not grow with the video's length)."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def reader() -> None:
        for label in iter_frames(labels):
            slots.put(label)
        slots.put(done)

    threading.Thread(target=reader, daemon=True).start()
    while (item := slots.get()) is not done:
        yield item


def face_boxes(index: LabelIndex) -> list[tuple[int, int, int, int] | None]:
    """Each frame's face box, None where the frame has no face."""
    return [tuple(int(v) for v in box) if has_face else None
            for box, has_face in zip(index.face_boxes, index.has_face)]


def load_exemplars(images: str | None, validity: str | None, labels: np.ndarray,
                   generator: str, choices: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The warped exemplars (uint8 [N, H, W, 3]) and validity masks (uint8 [N, H, W]) that a
    generator conditioned on them (``generator``, a checkpoint path, named in errors) needs,
    one per label of ``labels``; EdnError when they are missing or do not match.

    ``choices``: the stores hold that many exemplars per label, choice by choice (a target's
    training exemplars, ``training.exemplar_choices``: row ``c * N + t`` is choice c of frame t,
    :mod:`edn.exemplars.for_training`); the first choice, each frame's nearest, is used."""
    from edn.ingest.frames import load_image_store, load_masks

    if images is None or validity is None:
        raise EdnError(f"generator checkpoint {generator!r}: trained with the exemplar option, it corrects the "
                       "target's own frames warped to each pose; give them (--exemplars and --exemplar-validity, "
                       "from edn pose-warp on these poses)")
    if choices < 1:
        raise EdnError(f"--exemplar-choices {choices}: the exemplars hold at least one per label")
    frames, masks = load_image_store(images, "warped exemplars"), load_masks(validity, "exemplar validity masks")
    count = len(labels)
    if frames.shape != (choices * count, *labels.shape[1:]):
        per_label = "one per label" if choices == 1 else f"{choices} per label"
        raise EdnError(f"warped exemplars {images!r}: {list(frames.shape)} for labels {list(labels.shape)} "
                       f"({per_label}, at their size)")
    if masks.shape != (choices * count, *labels.shape[1:3]):
        raise EdnError(f"exemplar validity {validity!r}: {list(masks.shape)} for labels {list(labels.shape)}")
    return frames[:count], masks[:count]


def kept_faces(models: FrameGenerator, poses: PoseSequence | None, count: int, *, enabled: bool,
               source: str = "poses") -> Iterator[np.ndarray | None] | None:
    """The faces a generator correcting warped exemplars keeps as the exemplars drew them
    (:mod:`edn.exemplars.own_face`, option ``exemplar_face``), from ``poses``, the ``count`` poses the
    labels were drawn from (``source``: where they were read, named in errors); None when the option is
    off or the generator draws no correction of an exemplar. EdnError when the poses are missing or do
    not match."""
    if not (enabled and models.residual):
        return None
    from edn.exemplars.own_face import face_discs

    if poses is None:
        raise EdnError("the generator corrects warped exemplars and keeps their faces (exemplar_face): give the "
                       "poses the labels were drawn from (--poses), or --no-exemplar-face")
    if poses.frame_count != count:
        raise EdnError(f"pose table {source!r}: {poses.frame_count} frames for {count} labels")
    if models.size is not None and tuple(poses.frame_size) != tuple(models.size):
        raise EdnError(f"pose table {source!r}: {poses.frame_size[0]}x{poses.frame_size[1]} frames, the "
                       f"generator draws {models.size[0]}x{models.size[1]}")
    return face_discs(poses)


def synthesize_sequence(models: FrameGenerator, labels: np.ndarray, index: LabelIndex, out: np.ndarray,
                        runtime: Runtime, *, progress: bool = True,
                        exemplars: tuple[np.ndarray, np.ndarray] | None = None,
                        plates: Callable[[int], np.ndarray] | None = None,
                        faces: Iterable[np.ndarray | None] | None = None) -> None:
    """Generate frame t of ``out`` (uint8 [N, H, W, 3]) from ``labels[t]`` and frame t - 1, in
    memory that does not grow with N (the stores are read and written a chunk at a time).

    ``labels``: uint8 [N, H, W, 3] stick figures; ``index``: their face boxes;
    ``exemplars``: (images, validity), label t's warped exemplar, for a generator
    conditioned on them (:func:`load_exemplars`); ``plates``: frame t's plate uint8 [H, W, 3] for a
    compositing generator replaying its target's camera (:class:`edn.background.camera.FramePlates`);
    ``faces``: label t's kept face float32 [H, W] or None, for a generator correcting the exemplars
    (:func:`edn.exemplars.own_face.face_discs` of the poses the labels were drawn from).
    """
    from tqdm import tqdm

    count, height, width = labels.shape[:3]
    if out.shape != labels.shape:
        raise ValueError(f"output {list(out.shape)} does not match labels {list(labels.shape)}")
    if index.frame_count != count:
        raise ValueError(f"{index.frame_count} index rows for {count} labels")
    if models.size is not None and tuple(models.size) != (width, height):
        raise EdnError(f"labels are {width}x{height} but the generator was trained at "
                       f"{models.size[0]}x{models.size[1]}; render and train at one working size")
    if models.plate is not None and index.windows is None:
        raise EdnError("labels without person windows: a compositing generator draws in them (render the labels "
                       "with the target's statistics)")
    windows = None if models.plate is None else [tuple(int(v) for v in w) for w in index.windows]
    exemplar_inputs = None
    if models.exemplar:
        if exemplars is None:
            raise ValueError("a generator conditioned on the warped exemplar: pass the exemplars")
        images, validity = exemplars
        if len(images) != len(validity):
            raise ValueError(f"{len(images)} exemplars for {len(validity)} validity masks")
        exemplar_inputs = (exemplar_tensor(image, valid)
                           for image, valid in zip(iter_frames(images), iter_frames(validity), strict=True))
    plate_inputs = None if plates is None else (plate_tensor(plates(t)) for t in range(count))  # camera: replay
    face_inputs = None if faces is None else (None if disc is None else torch.from_numpy(disc)[None, None]
                                              for disc in faces)
    frames = generate_frames(models, (label_tensor(label) for label in _prefetch(labels)), face_boxes(index),
                             runtime, windows=windows, exemplars=exemplar_inputs, plates=plate_inputs,
                             faces=face_inputs)
    # Written in order, the pages of a memory-mapped ``out`` let go a chunk at a time (write_frames).
    write_frames(out, (to_uint8_hwc(frame) for frame in tqdm(frames, total=count, unit="frame", desc="synthesize",
                                                             leave=False, disable=not progress or None)))


def write_synthesis(models: FrameGenerator, labels: np.ndarray, index: LabelIndex, output: str | os.PathLike,
                    runtime: Runtime, *, exemplars: tuple[np.ndarray, np.ndarray] | None = None,
                    plates: Callable[[int], np.ndarray] | None = None,
                    faces: Iterable[np.ndarray | None] | None = None) -> Path:
    """Synthesize every frame into ``output`` (frames .npy), atomically."""
    count, height, width = labels.shape[:3]
    log.info("synthesizing %d frames at %dx%d with the %s on %s%s", count, width, height, models.description,
             runtime.device, " (bf16)" if runtime.bf16 else "")
    with create_image_store(output, count, (width, height)) as store:
        synthesize_sequence(models, labels, index, store, runtime, exemplars=exemplars, plates=plates, faces=faces)
    return Path(output)
