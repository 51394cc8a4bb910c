"""Synthesis speed: frames/s of ``edn synthesize``'s loop with the face GAN, on randomly initialised networks.

Each frame is one main-generator forward pass on (stick figure, previous output)
and one face-generator pass inside the frame's face box, with the labels read
ahead in a background thread, exactly as ``edn synthesize`` runs
(:func:`edn.transfer.synthesize.synthesize_sequence`). The weights' values do not change
the time, so no trained checkpoint is needed.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.timing import best_seconds
from benchmarks.train import runtime
from edn.labels.label_store import LabelIndex
from edn.models import build_face_generator, build_generator
from edn.core.presets import PRESETS
from edn.labels.render import face_box_side
from edn.models.generation import FrameGenerator
from edn.transfer.synthesize import synthesize_sequence


def _models(preset_name: str, size: tuple[int, int]) -> FrameGenerator:
    preset = PRESETS[preset_name]
    torch.manual_seed(0)
    return FrameGenerator(generator=build_generator(preset, "global").eval(),
                          face_generator=build_face_generator(preset).eval(), size=size,
                          description=f"random {preset_name} generator + face GAN")


def _labels(frames: int, size: tuple[int, int]) -> tuple[np.ndarray, LabelIndex]:
    """Random stick-figure frames uint8 [N, H, W, 3] and a face box in each."""
    width, height = size
    labels = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    side = face_box_side(width)
    x0, y0 = width // 2 - side // 2, height // 8
    boxes = np.tile(np.array([x0, y0, x0 + side, y0 + side], np.int32), (frames, 1))
    return labels, LabelIndex(has_body=np.ones(frames, bool), face_boxes=boxes, has_face=np.ones(frames, bool))


def frames_per_second(preset: str, size: tuple[int, int], mode: str, frames: int, repeats: int = 1) -> float:
    """Frames/s of synthesizing ``frames`` frames of ``preset`` at ``size`` (width, height)
    in ``mode`` (see :data:`benchmarks.train.MODES`): the fastest of ``repeats`` whole
    sequences, after one two-frame warm-up sequence."""
    models = _models(preset, size)
    labels, index = _labels(frames, size)
    out = np.empty_like(labels)
    place = runtime(mode)

    def sequence(count: int) -> None:
        synthesize_sequence(models, labels[:count], index.select(slice(0, count)), out[:count], place, progress=False)

    sequence(2)
    return frames / best_seconds(lambda: sequence(frames), repeats)
