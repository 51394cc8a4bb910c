"""Training data: consecutive frame pairs of the target with their labels and face boxes.

A pair is frames (t, t+1) and labels (t, t+1) of one subject. The last
``holdout_fraction`` of the video is held out for evaluation: no pair touches
it. A pair is used only when both frames have a body (and, for the face stage,
a face), so no pair spans a frame without a person (the authors' code paired
across dropped frames).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from edn.background.camera import FramePlates
from edn.core.errors import EdnError
from edn.core.options import first_heldout_frame
from edn.ingest.frames import copy_released, load_frames, load_image_store, load_masks
from edn.models.generation import downsample_area, scale_box
from edn.labels.label_store import LabelIndex, load_labels, read_label_index


@dataclass(frozen=True)
class Split:
    """``pairs``: int64 [P], the first frame t of each training pair (t, t+1).
    ``first_heldout``: frames ``first_heldout .. frame_count - 1`` are held out."""

    pairs: np.ndarray
    first_heldout: int
    frame_count: int

    @property
    def heldout(self) -> range:
        return range(self.first_heldout, self.frame_count)


def split_pairs(index: LabelIndex, holdout_fraction: float, *, need_face: bool, source: str) -> Split:
    """Choose the training pairs; EdnError naming ``source`` when there is none."""
    count = index.frame_count
    first_heldout = first_heldout_frame(count, holdout_fraction)
    usable = index.has_body & index.has_face if need_face else index.has_body.copy()
    usable[first_heldout:] = False
    pairs = np.flatnonzero(usable[:-1] & usable[1:]) if count > 1 else np.zeros(0, dtype=np.int64)
    if len(pairs) == 0:
        what = "a body and a face" if need_face else "a body"
        frames = "1 frame" if count == 1 else f"{count} frames"
        raise EdnError(f"training data {source!r}: no training pair ({frames}, {count - first_heldout} held "
                       f"out, {int(usable.sum())} of the rest with {what}; a pair needs two consecutive such "
                       f"frames): give the target a longer span of video (its start and end in the config)")
    return Split(pairs=pairs.astype(np.int64), first_heldout=first_heldout, frame_count=count)


def history_for_step(split: Split, index: LabelIndex, t: int, step: int, seed: int, most: int) -> range:
    """The frames drawn before the pair (t, t + 1) of sample number ``step``: t - k .. t - 1.

    k is drawn from 0..``most`` by (seed, sample number), then shortened so that every
    frame has a body and none is held out: the generator draws these from the zero
    image, without gradients, and the pair then starts from its own previous
    frame, as at synthesis time.
    """
    if most <= 0:
        return range(t, t)
    k = int(np.random.default_rng([seed, step, 1]).integers(0, most + 1))
    start = t
    while start > max(0, t - k) and index.has_body[start - 1] and start - 1 < split.first_heldout:
        start -= 1
    return range(start, t)


def exemplar_choice(seed: int, sample_number: int, frame: int, choices: int) -> int:
    """Which of frame ``frame``'s ``choices`` warped exemplars sample number ``sample_number`` trains with
    (:mod:`edn.exemplars.for_training`): drawn from (seed, sample number, frame), so that it depends on
    nothing else and resumes exactly after a kill; 0 when there is one."""
    if choices <= 1:
        return 0
    return int(np.random.default_rng([seed, sample_number, 2, frame]).integers(0, choices))


def pair_for_step(split: Split, step: int, seed: int) -> int:
    """The first frame of the pair of sample number ``step`` (0-based; at batch 1 in one
    process, the training step; see :func:`samples_of_step`).

    Each epoch visits every pair once in an order drawn from (seed, epoch), so
    the sequence depends on nothing but these and resumes exactly after a kill.
    """
    count = len(split.pairs)
    epoch, position = divmod(step, count)
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return int(split.pairs[order[position]])


def samples_of_step(step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> range:
    """The numbers of the samples process ``rank`` of ``world_size`` trains on at ``step``,
    ``batch_size`` each: step s trains samples s * P * B .. (s + 1) * P * B - 1 over all P
    processes, each its own consecutive B. So the shares are disjoint, and P processes
    at batch B train on exactly the pairs of one process at batch P x B."""
    first = (step * world_size + rank) * batch_size
    return range(first, first + batch_size)


@dataclass(frozen=True)
class Sample:
    """One frame's tensors at the training size, batch of 1.

    ``label``: [1, 3, H, W] in [0, 1]; ``image``: [1, 3, H, W] in [-1, 1], the
    frame the generator must draw (on a compositing path, the real frame's person
    on the background plate); ``box``: (x0, y0, x1, y1) face box at the training
    size; ``has_face``. Compositing only: ``window``, the person's window, and
    ``mask`` [1, 1, H, W] in [0, 1], the person's segmentation mask. Conditioned on
    exemplars: ``exemplar`` [1, 4, H, W], the frame's warped exemplar (RGB in [-1, 1])
    and its validity (in [0, 1]). A camera that moves: ``plate`` [1, 3, H, W] in [-1, 1],
    the plate in this frame's camera (None: the one plate of a still camera).
    """

    label: torch.Tensor
    image: torch.Tensor
    box: tuple[int, int, int, int]
    has_face: bool
    window: tuple[int, int, int, int] | None = None
    mask: torch.Tensor | None = None
    exemplar: torch.Tensor | None = None
    plate: torch.Tensor | None = None


@dataclass(frozen=True)
class Batch:
    """Samples stacked: ``label``, ``image`` ``[B, 3, H, W]``, ``mask`` ``[B, 1, H, W]``; a face box
    (and, compositing, a person window) per item. Windows and face boxes have one size
    per subject, so their crops stack too. ``plate`` ``[B, 3, H, W]``: each item's plate in its
    frame's camera when the camera moves (None: the trainer's one plate)."""

    label: torch.Tensor
    image: torch.Tensor
    boxes: tuple[tuple[int, int, int, int], ...]
    windows: tuple[tuple[int, int, int, int], ...] | None = None
    mask: torch.Tensor | None = None
    exemplar: torch.Tensor | None = None
    plate: torch.Tensor | None = None

    @staticmethod
    def of(samples: Sample | Sequence[Sample]) -> Batch:
        samples = [samples] if isinstance(samples, Sample) else list(samples)
        windows = None if samples[0].window is None else tuple(s.window for s in samples)
        mask = None if samples[0].mask is None else torch.cat([s.mask for s in samples])
        exemplar = None if samples[0].exemplar is None else torch.cat([s.exemplar for s in samples])
        plate = None if samples[0].plate is None else torch.cat([s.plate for s in samples])
        return Batch(label=torch.cat([s.label for s in samples]), image=torch.cat([s.image for s in samples]),
                     boxes=tuple(s.box for s in samples), windows=windows, mask=mask, exemplar=exemplar, plate=plate)

    def __len__(self) -> int:
        return len(self.boxes)


class TrainingFrames:
    """A subject's frames, labels and index, memory-mapped, read one frame at a time.

    ``downsample``: the training size is the working size divided by this (2 for
    the global stage when a local stage follows, as in the paper's 512x256 ->
    1024x512 schedule). ``size_multiple``: both training sides must be multiples
    of it (the generator's total downsampling).

    Compositing (``plate`` uint8 [H, W, 3] and ``masks_path``, the person's
    segmentation masks): samples come with the frame's person window from the
    label index (at the training size, its sides multiples of ``size_multiple``),
    and the image is the real frame's person over the plate. A camera that moves
    (``frame_plates``, :class:`edn.background.camera.FramePlates`): each frame's own
    plate is the mosaic warped into its camera, and the sample carries it; the frame,
    its label, mask, window and face box stay in the frame's own pixels.

    Conditioned on exemplars (``exemplars_path`` and ``validity_path``, one or more
    warped exemplars and validity masks per frame, ``edn training-exemplars``, row
    ``c * T + t`` holding choice c of frame t): samples come with theirs, the choice
    given to :meth:`sample` (:attr:`exemplar_choices` of them per frame).
    """

    def __init__(self, frames_path: str | os.PathLike, labels_path: str | os.PathLike,
                 index_path: str | os.PathLike, *, downsample: int, size_multiple: int,
                 plate: np.ndarray | None = None, masks_path: str | os.PathLike | None = None,
                 exemplars_path: str | os.PathLike | None = None,
                 validity_path: str | os.PathLike | None = None, frame_plates: FramePlates | None = None) -> None:
        self.frames = load_frames(frames_path)
        self.labels = load_labels(labels_path)
        self.index = read_label_index(index_path)
        self.source = str(frames_path)
        self.index_path = str(index_path)
        if self.labels.shape != self.frames.shape:
            raise EdnError(f"labels {str(labels_path)!r}: shape {list(self.labels.shape)} does not match frames "
                           f"{str(frames_path)!r} {list(self.frames.shape)}")
        if self.index.frame_count != len(self.frames):
            raise EdnError(f"label index {str(index_path)!r}: {self.index.frame_count} rows for "
                           f"{len(self.frames)} frames")
        height, width = self.frames.shape[1:3]
        if downsample not in (1, 2) or height % downsample or width % downsample:
            raise EdnError(f"frames {self.source!r}: {width}x{height} cannot be downsampled by {downsample}")
        self.downsample = downsample
        self.size = (width // downsample, height // downsample)  # (W, H) at the training size
        self.plate = self.masks = self.exemplars = self.validity = self.frame_plates = None
        if plate is not None:
            self._check_compositing(plate, masks_path, size_multiple)
            if frame_plates is not None:
                self._check_frame_plates(frame_plates)
            if exemplars_path is not None:
                self._load_exemplars(exemplars_path, validity_path)
            return
        if self.size[0] % size_multiple or self.size[1] % size_multiple:
            raise EdnError(f"frames {self.source!r}: training size {self.size[0]}x{self.size[1]} is not a multiple "
                           f"of {size_multiple} on both sides, which this preset's generator needs "
                           f"(choose frames.width/height accordingly)")

    def _check_compositing(self, plate: np.ndarray, masks_path: str | os.PathLike | None, size_multiple: int) -> None:
        height, width = self.frames.shape[1:3]
        if plate.shape != (height, width, 3):
            raise EdnError(f"background plate: {plate.shape[1]}x{plate.shape[0]}, the frames {self.source!r} are "
                           f"{width}x{height}")
        if self.index.windows is None:
            raise EdnError(f"label index {self.index_path!r}: has no person windows (render the labels with the "
                           "target's statistics)")
        sides = (self.index.windows[:, 2:] - self.index.windows[:, :2]) // self.downsample
        if (sides % size_multiple).any():
            raise EdnError(f"label index {self.index_path!r}: person windows of {sides[0, 0]}x{sides[0, 1]} are "
                           f"not multiples of {size_multiple}, which this preset's generator needs")
        if masks_path is None:
            raise EdnError("compositing needs the person's segmentation masks")
        self.masks = load_masks(masks_path)
        if self.masks.shape != self.frames.shape[:3]:
            raise EdnError(f"person masks {str(masks_path)!r}: {list(self.masks.shape)} for frames "
                           f"{list(self.frames.shape)}")
        self.plate = self._to_tensor(plate) * 2.0 - 1.0

    def _check_frame_plates(self, frame_plates: FramePlates) -> None:
        height, width = self.frames.shape[1:3]
        if len(frame_plates) != len(self.frames) or tuple(frame_plates.size) != (width, height):
            raise EdnError(f"camera table: {len(frame_plates)} frames of {frame_plates.size[0]}x"
                           f"{frame_plates.size[1]}, the frames {self.source!r} are {len(self.frames)} of "
                           f"{width}x{height} (make the plate from these frames)")
        self.frame_plates = frame_plates

    def _load_exemplars(self, exemplars_path: str | os.PathLike, validity_path: str | os.PathLike | None) -> None:
        if validity_path is None:
            raise EdnError("the warped exemplars go with their validity masks")
        self.exemplars = load_image_store(exemplars_path, "warped exemplars")
        self.validity = load_masks(validity_path, "exemplar validity masks")
        count = len(self.frames)
        if self.exemplars.shape[1:] != self.frames.shape[1:] or not len(self.exemplars) or len(self.exemplars) % count:
            raise EdnError(f"warped exemplars {str(exemplars_path)!r}: {list(self.exemplars.shape)} for frames "
                           f"{self.source!r} {list(self.frames.shape)} (one or more per frame, choice by choice: "
                           "edn training-exemplars)")
        if self.validity.shape != self.exemplars.shape[:3]:
            raise EdnError(f"exemplar validity {str(validity_path)!r}: {list(self.validity.shape)} for the "
                           f"warped exemplars {str(exemplars_path)!r} {list(self.exemplars.shape)}")

    @property
    def exemplar_choices(self) -> int:
        """How many warped exemplars each frame has (1 when not conditioned on them)."""
        return 1 if self.exemplars is None else len(self.exemplars) // len(self.frames)

    @property
    def window_size(self) -> tuple[int, int] | None:
        """(width, height) of the person windows at the training size when compositing."""
        if self.plate is None:
            return None
        x0, y0, x1, y1 = self.index.windows[0]
        return int(x1 - x0) // self.downsample, int(y1 - y0) // self.downsample

    def __len__(self) -> int:
        return len(self.frames)

    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(copy_released(array)).permute(2, 0, 1)[None].float() / 255.0  # pages let go
        if self.downsample > 1:
            # Area average: thin stick-figure lines keep their colour instead of breaking up.
            x = torch.nn.functional.avg_pool2d(x, self.downsample)
        return x

    def sample(self, t: int, device: torch.device | str = "cpu", exemplar_choice: int = 0) -> Sample:
        """Frame ``t``'s tensors, with its warped exemplar number ``exemplar_choice`` when conditioned."""
        label = self._to_tensor(self.labels[t]).to(device)
        image = (self._to_tensor(self.frames[t]) * 2.0 - 1.0).to(device)
        box = scale_box(tuple(int(v) for v in self.index.face_boxes[t]), self.downsample)
        has_face = bool(self.index.has_face[t])
        if self.plate is None:
            return Sample(label=label, image=image, box=box, has_face=has_face)
        mask = downsample_area(torch.from_numpy(copy_released(self.masks[t]))[None, None].float().div_(255.0),
                               self.downsample)
        plate = None if self.frame_plates is None else self._to_tensor(self.frame_plates(t)) * 2.0 - 1.0
        on_plate = mask * image + (1.0 - mask) * (self.plate if plate is None else plate)
        window = scale_box(tuple(int(v) for v in self.index.windows[t]), self.downsample)
        exemplar = None
        if self.exemplars is not None:
            if not 0 <= exemplar_choice < self.exemplar_choices:
                raise ValueError(f"exemplar choice {exemplar_choice}: frame {t} has {self.exemplar_choices}")
            row = exemplar_choice * len(self.frames) + t
            valid = torch.from_numpy(copy_released(self.validity[row]))[None, None].float().div_(255.0)
            exemplar = torch.cat([self._to_tensor(self.exemplars[row]) * 2.0 - 1.0,
                                  downsample_area(valid, self.downsample)], dim=1).to(device)
        return Sample(label=label, image=on_plate.to(device), box=box, has_face=has_face, window=window,
                      mask=mask.to(device), exemplar=exemplar, plate=None if plate is None else plate.to(device))
