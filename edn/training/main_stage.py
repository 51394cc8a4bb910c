"""The global and local stages (Chan et al. 2019, section 3.2): the main generator G and its PatchGAN D.

One iteration trains on a pair of consecutive frames with temporal smoothing
(:func:`edn.temporal_smoothing.unroll_pair`): I0 = G(label_t, zeros),
I1 = G(label_t+1, I0); D judges (label_t, label_t+1, I0, I1) against the real
pair. G's loss: LSGAN + feature matching + perceptual (mean over the two frames).

Frame by frame (``temporal=False``, the paper's FBF ablation): the same two
frames, each generated from the zero image and judged on its own by a per-frame
PatchGAN (pix2pixHD), so training sees as many frames for the same budget.
"""

from __future__ import annotations

import torch

from edn.checkpoint import Checkpoint, training_mode
from edn.errors import EdnError
from edn.generation import FrameGenerator
from edn.losses import PerceptualLoss, compose_loss, feature_matching, lsgan_discriminator, lsgan_generator
from edn.models import build_discriminator, build_generator
from edn.models.residual_conv import weight_casts_reused
from edn.options import TrainingOptions
from edn.presets import Preset
from edn.runtime import Runtime
from edn.temporal_smoothing import discriminator_input, unroll_pair
from edn.training.data import Sample
from edn.training.trainer import Trainer


class MainStageTrainer(Trainer):
    """G and D of the global stage, or of the local stage (the enhancer around the global stage's G).

    ``init``: the global stage's checkpoint for the local stage; None for the global stage.
    """

    needs_face = False

    def __init__(self, kind: str, preset: Preset, perceptual: PerceptualLoss, runtime: Runtime,
                 learning_rate: float, *, temporal: bool = True, init: Checkpoint | None = None,
                 init_path: str | None = None) -> None:
        self.kind = kind
        self.runtime = runtime
        self.temporal = temporal
        self.perceptual = runtime.place_module(perceptual)
        self.generator = build_generator(preset, kind)
        if kind == "local":
            # Stage-1 weights go into the enhancer's global branch (pix2pixHD's load_pretrain).
            self.generator.load_global_weights(init.models["generator"], source=f"global checkpoint {init_path!r}")
        self.discriminator = build_discriminator(preset, kind, temporal)
        self.saved = {"generator": self.generator, "discriminator": self.discriminator}
        self.make_optimizers(self.generator, self.discriminator, learning_rate)

    @staticmethod
    def check_init(options: TrainingOptions, init: Checkpoint | None, init_path: str | None) -> None:
        """The local stage trains at the working size, in the global stage's mode."""
        if options.stage != "local":
            return
        if options.downsample != 1:
            raise EdnError(f"local stage: trains at the working size (downsample 1, not {options.downsample})")
        if init.temporal != options.temporal:
            raise EdnError(f"previous-stage checkpoint {init_path!r}: trained {training_mode(init.temporal)}"
                           f", the local stage is asked to train {training_mode(options.temporal)}")

    @classmethod
    def for_stage(cls, options: TrainingOptions, preset: Preset, init: Checkpoint | None, init_path: str | None,
                  perceptual: PerceptualLoss, runtime: Runtime) -> MainStageTrainer:
        return cls(options.stage, preset, perceptual, runtime, options.learning_rate, temporal=options.temporal,
                   init=init, init_path=init_path)

    def frame_generator(self) -> FrameGenerator:
        return FrameGenerator(generator=self.generator, temporal=self.temporal)

    def step(self, first: Sample, second: Sample) -> dict[str, float]:
        """Train on the pair (first, second); return every logged loss term."""
        place = self.runtime.place
        label0, label1, real0, real1 = place(first.label), place(second.label), place(first.image), place(second.image)
        d = self.discriminator
        d_input = discriminator_input(self.temporal)
        with self.runtime.autocast(), weight_casts_reused(self.generator):
            fake0, fake1 = unroll_pair(lambda label, previous, _: self.generator(label, previous), label0, label1,
                                       temporal=self.temporal)
            real_input = d_input(label0, label1, real0, real1)
            fake_input = d_input(label0, label1, fake0, fake1)
            real_out = d(real_input)
            fake_out_detached = d(fake_input.detach())
            d_real, d_fake = lsgan_discriminator([o[-1] for o in real_out], [o[-1] for o in fake_out_detached])
            d.requires_grad_(False)  # G's terms need gradients through D, not for D
            fake_out = d(fake_input)
            d.requires_grad_(True)
            g_total, g_logged = compose_loss({
                "gan": lsgan_generator([o[-1] for o in fake_out]),
                "feature_matching": feature_matching(fake_out, real_out),
                "perceptual": 0.5 * (self.perceptual(fake0, real0) + self.perceptual(fake1, real1)),
            })
        self.last_pair = (label0, label1, fake0.detach(), fake1.detach(), real0, real1)
        return self.update(g_total, g_logged, d_real, d_fake)
