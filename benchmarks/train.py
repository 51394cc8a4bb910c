"""Training speed: seconds of one training iteration, and of the main generator's forward pass.

An iteration is what ``edn train`` repeats: the temporal pair generated, the
discriminator and generator updated, the perceptual loss included (random VGG
weights: their values do not change the time). Inputs are random: speed does
not depend on what the frames show. Modes: ``fp32 eager`` (the reference: the
networks as written, float32, NCHW), ``bf16 + channels_last`` (bf16 autocast and
NHWC layout: ``edn train --precision bf16 --channels-last``) and ``bf16 +
contiguous`` (bf16 autocast, NCHW: ``--no-channels-last``).
"""

from __future__ import annotations

import torch

from benchmarks.timing import best_seconds
from edn.core.checkpoint import Checkpoint
from edn.training.losses import PerceptualLoss
from edn.models import build_generator
from edn.training.perceptual import PerceptualFeatures
from edn.core.presets import PRESETS
from edn.labels.render import face_box_side
from edn.training.data import Sample
from edn.core.runtime import Runtime
from edn.training.face_stage import FaceStageTrainer
from edn.training.main_stage import MainStageTrainer
from edn.training.trainer import Trainer

MODES = {"fp32 eager": dict(bf16=False, channels_last=False),
         "bf16 + channels_last": dict(bf16=True, channels_last=True),
         "bf16 + contiguous": dict(bf16=True, channels_last=False)}


def runtime(mode: str) -> Runtime:
    """The CPU runtime of ``mode`` (a key of :data:`MODES`)."""
    return Runtime(device=torch.device("cpu"), **MODES[mode])


def random_sample(size: tuple[int, int], generator: torch.Generator) -> Sample:
    """A frame's random label and image at ``size`` (width, height), with a face box."""
    width, height = size
    box_px = face_box_side(width)
    x0, y0 = width // 2 - box_px // 2, height // 8
    return Sample(label=torch.rand(1, 3, height, width, generator=generator),
                  image=torch.rand(1, 3, height, width, generator=generator) * 2 - 1,
                  box=(x0, y0, x0 + box_px, y0 + box_px), has_face=True)


def _trainer(stage: str, preset_name: str, mode: str) -> Trainer:
    preset = PRESETS[preset_name]
    torch.manual_seed(0)
    perceptual = PerceptualLoss(PerceptualFeatures("vgg16_hed"))
    if stage == "face":  # the face stage starts from a trained main generator
        init = Checkpoint(stage="global", step=0, preset=preset, options={"generator_kind": "global"},
                          models={"generator": build_generator(preset, "global").state_dict()})
        return FaceStageTrainer(preset, init, "benchmark", perceptual, runtime(mode), 2e-4)
    return MainStageTrainer(stage, preset, perceptual, runtime(mode), 2e-4)


def step_seconds(stage: str, preset: str, size: tuple[int, int], mode: str, iterations: int,
                 warmup: int = 1) -> float:
    """Seconds of one iteration of ``stage`` ("global" or "face") of ``preset`` at ``size``
    (width, height), batch 1: the fastest of ``iterations`` after ``warmup``."""
    trainer = _trainer(stage, preset, mode)
    generator = torch.Generator().manual_seed(1)
    first, second = random_sample(size, generator), random_sample(size, generator)
    return best_seconds(lambda: trainer.step(first, second), iterations, warmup)


def forward_seconds(preset: str, size: tuple[int, int], mode: str, repeats: int, warmup: int = 1) -> float:
    """Seconds of one forward pass (batch 1, no gradients) of ``preset``'s global generator
    at ``size`` (width, height): the fastest of ``repeats`` after ``warmup``. As synthesis
    runs it: one autocast region over all passes, so the weights are cast to bf16 once."""
    place = runtime(mode)
    torch.manual_seed(0)
    generator = place.place_module(build_generator(PRESETS[preset], "global")).eval()
    width, height = size
    label = place.place(torch.rand(1, 3, height, width))
    previous = place.place(torch.zeros(1, 3, height, width))
    with torch.no_grad(), place.autocast():
        return best_seconds(lambda: generator(label, previous), repeats, warmup)
