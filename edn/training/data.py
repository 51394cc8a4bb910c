"""Training data: consecutive frame pairs of the target with their labels and face boxes.

A pair is frames (t, t+1) and labels (t, t+1) of one subject. The last
``holdout_fraction`` of the video is held out for evaluation: no pair touches
it. A pair is used only when both frames have a body (and, for the face stage,
a face), so no pair spans a frame without a person (the authors' code paired
across dropped frames).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from edn.errors import EdnError
from edn.frames import load_frames
from edn.labels import LabelIndex, load_labels, read_label_index


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
    if not 0.0 <= holdout_fraction < 1.0:
        raise EdnError(f"holdout fraction {holdout_fraction}: must be in [0, 1)")
    count = index.frame_count
    first_heldout = count - math.ceil(count * holdout_fraction)
    usable = index.has_body & index.has_face if need_face else index.has_body.copy()
    usable[first_heldout:] = False
    pairs = np.flatnonzero(usable[:-1] & usable[1:]) if count > 1 else np.zeros(0, dtype=np.int64)
    if len(pairs) == 0:
        what = "a body and a face" if need_face else "a body"
        raise EdnError(f"training data {source!r}: no training pair ({count} frames, {count - first_heldout} held "
                       f"out, {int(usable.sum())} of the rest with {what}; a pair needs two consecutive such frames)")
    return Split(pairs=pairs.astype(np.int64), first_heldout=first_heldout, frame_count=count)


def pair_for_step(split: Split, step: int, seed: int) -> int:
    """The first frame of the pair trained at ``step`` (0-based).

    Each epoch visits every pair once in an order drawn from (seed, epoch), so
    the sequence depends on nothing but these and resumes exactly after a kill.
    """
    count = len(split.pairs)
    epoch, position = divmod(step, count)
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return int(split.pairs[order[position]])


@dataclass(frozen=True)
class Sample:
    """One frame's tensors at the training size, batch of 1.

    ``label``: [1, 3, H, W] in [0, 1]; ``image``: [1, 3, H, W] in [-1, 1];
    ``box``: (x0, y0, x1, y1) face box at the training size; ``has_face``.
    """

    label: torch.Tensor
    image: torch.Tensor
    box: tuple[int, int, int, int]
    has_face: bool


class TrainingFrames:
    """A subject's frames, labels and index, memory-mapped, read one frame at a time.

    ``downsample``: the training size is the working size divided by this (2 for
    the global stage when a local stage follows, as in the paper's 512x256 ->
    1024x512 schedule). ``size_multiple``: both training sides must be multiples
    of it (the generator's total downsampling).
    """

    def __init__(self, frames_path: str | os.PathLike, labels_path: str | os.PathLike,
                 index_path: str | os.PathLike, *, downsample: int, size_multiple: int) -> None:
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
        if self.size[0] % size_multiple or self.size[1] % size_multiple:
            raise EdnError(f"frames {self.source!r}: training size {self.size[0]}x{self.size[1]} is not a multiple "
                           f"of {size_multiple} on both sides, which this preset's generator needs "
                           f"(choose frames.width/height accordingly)")

    def __len__(self) -> int:
        return len(self.frames)

    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].float() / 255.0
        if self.downsample > 1:
            # Area average: thin stick-figure lines keep their colour instead of breaking up.
            x = torch.nn.functional.avg_pool2d(x, self.downsample)
        return x

    def sample(self, t: int, device: torch.device | str = "cpu") -> Sample:
        label = self._to_tensor(self.labels[t]).to(device)
        image = (self._to_tensor(self.frames[t]) * 2.0 - 1.0).to(device)
        x0, y0, x1, y1 = (int(v) for v in self.index.face_boxes[t])
        f = self.downsample
        box = (x0 // f, y0 // f, x0 // f + (x1 - x0) // f, y0 // f + (y1 - y0) // f)
        return Sample(label=label, image=image, box=box, has_face=bool(self.index.has_face[t]))
