"""The detector's inputs: a subject's real and generated frames, and 6-channel pair tensors.

A pair tensor is float32 ``[6, H, W]`` in [-1, 1]: channels 0-2 are frame t
(RGB), channels 3-5 frame t + 1. Label 0 is real, 1 is generated. A training
batch shows each chosen pair twice, once real and once generated, with the same
random crop and horizontal flip for all four frames (and, when compressed copies
exist, the same choice of raw or H.264-compressed frames), so the classifier
compares like with like and can only learn how the frames were made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import torch

from edn.core.errors import EdnError
from edn.fake_detector.pairs import DEFAULT_CUT_THRESHOLD, SubjectPairs, scene_cuts, split_subject_pairs
from edn.ingest.frames import load_frames, load_image_store, read_meta
from edn.labels.label_store import read_label_index

REAL, GENERATED = 0.0, 1.0


@dataclass(frozen=True)
class SubjectFrames:
    """A subject's real frames and the frames its trained models generated for the same
    poses, both uint8 [N, H, W, 3] (memory-mapped), and its usable pairs; optionally
    both after an H.264 round trip (:mod:`edn.fake_detector.compression`)."""

    name: str
    real: np.ndarray
    generated: np.ndarray
    pairs: SubjectPairs
    real_compressed: np.ndarray | None = None
    generated_compressed: np.ndarray | None = None

    @property
    def has_compressed(self) -> bool:
        return self.real_compressed is not None and self.generated_compressed is not None

    def with_compressed_copies(self, scratch: str | os.PathLike, *, fps: str, crf: int) -> SubjectFrames:
        """The same subject with H.264 round-trip copies of both stores, kept in ``scratch``."""
        from edn.fake_detector.compression import h264_round_trip

        return replace(self,
                       real_compressed=h264_round_trip(self.real, scratch, f"{self.name}_real", fps=fps, crf=crf),
                       generated_compressed=h264_round_trip(self.generated, scratch, f"{self.name}_generated",
                                                            fps=fps, crf=crf))


def load_subject(name: str, frames_path: str | os.PathLike, generated_path: str | os.PathLike,
                 index_path: str | os.PathLike, holdout_fraction: float,
                 cut_threshold: float = DEFAULT_CUT_THRESHOLD,
                 camera_path: str | os.PathLike | None = None) -> SubjectFrames:
    """Open a subject's stores and choose its pairs, the last ``holdout_fraction`` of the
    video held out as in GAN training; EdnError naming the file that does not fit.
    ``camera_path``: the subject's camera table (``edn background --camera``), so that a camera that
    moves is not taken for scene cuts."""
    from edn.core.options import first_heldout_frame

    real = load_frames(frames_path)
    generated = load_image_store(generated_path, "generated frames")
    index = read_label_index(index_path)
    if generated.shape != real.shape:
        raise EdnError(f"generated frames {str(generated_path)!r}: shape {list(generated.shape)} does not match "
                       f"the real frames {str(frames_path)!r} {list(real.shape)}")
    if index.frame_count != len(real):
        raise EdnError(f"label index {str(index_path)!r}: {index.frame_count} rows for {len(real)} frames")
    first_heldout = first_heldout_frame(len(real), holdout_fraction)
    transforms = None
    if camera_path is not None:
        from edn.background.camera import read_camera

        camera = read_camera(camera_path, (real.shape[2], real.shape[1]))
        if len(camera) != len(real):
            raise EdnError(f"camera table {str(camera_path)!r}: {len(camera)} frames for {len(real)} frames in "
                           f"{str(frames_path)!r}")
        transforms = None if camera.still else camera.transforms
    # Cuts are a property of the real video; the generated one follows its poses (and its camera).
    pairs = split_subject_pairs(index.has_body, scene_cuts(real, cut_threshold, transforms), first_heldout)
    return SubjectFrames(name=name, real=real, generated=generated, pairs=pairs)


def working_geometry(meta_path: str | os.PathLike) -> dict:
    """What `edn detect` needs to decode any video like the training frames: working size, fit, fps."""
    meta = read_meta(meta_path)
    return {"working_size": list(meta.working_size), "fit": meta.fit, "fps": meta.fps}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    return x.movedim(-1, -3).div_(127.5).sub_(1.0)


def pair_tensors(frames: np.ndarray, first: np.ndarray) -> torch.Tensor:
    """Pairs (t, t+1) for each t in ``first``, whole frames: float32 [B, 6, H, W] in [-1, 1]."""
    first = np.asarray(first, dtype=np.int64)
    now = to_tensor(np.stack([np.asarray(frames[t]) for t in first]))
    after = to_tensor(np.stack([np.asarray(frames[t + 1]) for t in first]))
    return torch.cat([now, after], dim=1)


def crop_extent(frame_size: tuple[int, int], crop_size: int) -> tuple[int, int]:
    """The (width, height) of training crops: ``crop_size`` pixels square, within the frame."""
    width, height = frame_size
    return min(crop_size, width), min(crop_size, height)


def pair_for_sample(pairs: np.ndarray, sample: int, seed: int) -> int:
    """The pair of the ``sample``-th draw: every pair once per epoch, in an order drawn
    from (seed, epoch), so a run depends on nothing but its options."""
    epoch, position = divmod(sample, len(pairs))
    order = np.random.default_rng([seed, epoch, 7]).permutation(len(pairs))
    return int(pairs[order[position]])


def training_batch(subject: SubjectFrames, step: int, pairs_per_step: int, crop_size: int,
                   seed: int, flip: bool = True) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The batch of training step ``step`` (0-based).

    Returns ``inputs`` float32 [2P, 6, h, w] (the P pairs real, then the same P
    generated), ``targets`` float32 [2P] (0 real, 1 generated) and the pairs'
    first frames int64 [P]. Crops, flips and (with compressed copies) the choice
    of raw or compressed frames, half and half, are drawn from (seed, step).
    """
    pairs = subject.pairs.training
    chosen = np.array([pair_for_sample(pairs, step * pairs_per_step + j, seed) for j in range(pairs_per_step)],
                      dtype=np.int64)
    height, width = subject.real.shape[1:3]
    crop_w, crop_h = crop_extent((width, height), crop_size)
    rng = np.random.default_rng([seed, step, 11])
    x0s = rng.integers(0, width - crop_w + 1, size=pairs_per_step)
    y0s = rng.integers(0, height - crop_h + 1, size=pairs_per_step)
    flips = rng.random(pairs_per_step) < 0.5 if flip else np.zeros(pairs_per_step, bool)
    compressed = rng.random(pairs_per_step) < 0.5 if subject.has_compressed else np.zeros(pairs_per_step, bool)
    inputs = []
    for raw, squeezed in ((subject.real, subject.real_compressed),
                          (subject.generated, subject.generated_compressed)):
        crops = []
        for t, x0, y0, mirrored, use_compressed in zip(chosen, x0s, y0s, flips, compressed):
            store = squeezed if use_compressed else raw
            pair = np.stack([np.asarray(store[t]), np.asarray(store[t + 1])])[:, y0:y0 + crop_h, x0:x0 + crop_w]
            crops.append(pair[:, :, ::-1] if mirrored else pair)
        both = to_tensor(np.stack(crops))  # [P, 2, 3, h, w]
        inputs.append(both.flatten(1, 2))
    targets = torch.cat([torch.full((pairs_per_step,), REAL), torch.full((pairs_per_step,), GENERATED)])
    return torch.cat(inputs), targets, chosen
