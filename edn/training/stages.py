"""What one training iteration of each stage computes (Chan et al. 2019, sections 3.2 and 3.3).

Global and local stages train the main generator G and the temporal multi-scale
PatchGAN D on a pair of consecutive frames: I0 = G(label_t, zeros),
I1 = G(label_t+1, I0), gradients flowing through both passes; D judges
(label_t, label_t+1, I0, I1) against the real pair. G's loss: LSGAN + feature
matching + perceptual (mean over the two frames). The face stage freezes G and
trains the face residual generator G_f and its PatchGAN D_f: each generated
frame is face-corrected before it is fed back; G_f's loss is the face GAN term
plus the perceptual loss on the face crops (the paper's face objective).

Frame by frame (``temporal=False``, the paper's FBF ablation): the same two
frames, each generated from the zero image and judged on its own by a per-frame
PatchGAN (pix2pixHD), so training sees as many frames for the same budget; at
synthesis time such a generator is always fed the zero image.

Order per iteration, as the authors: both losses from one forward pass, then the
generator's update, then the discriminator's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from edn.checkpoint import Checkpoint, load_state
from edn.losses import (PerceptualLoss, compose_loss, feature_matching, lsgan_discriminator,
                        lsgan_generator)
from edn.models import (FaceGenerator, build_discriminator, build_face_discriminator, build_face_generator,
                        build_generator, frame_input, temporal_input)
from edn.models.face import crop
from edn.models.residual_conv import weight_casts_reused
from edn.presets import Preset
from edn.training.data import Sample


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed: device, bf16 autocast, channels_last memory layout."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def place(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def place_module(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module


def generate_pair(generator: nn.Module, label0: torch.Tensor, label1: torch.Tensor,
                  face: tuple[FaceGenerator, tuple, tuple] | None = None,
                  temporal: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The temporal pair: I0 = G(label0, zeros), I1 = G(label1, I0); nothing is detached.
    Frame by frame (``temporal=False``): I1 = G(label1, zeros).

    With ``face = (G_f, box0, box1)`` each frame is face-corrected before it is
    used (and fed back), as at synthesis time.
    """
    zeros = torch.zeros_like(label0)
    fake0 = generator(label0, zeros)
    if face is not None:
        fake0 = face[0](fake0, label0, [face[1]])
    fake1 = generator(label1, fake0 if temporal else zeros)
    if face is not None:
        fake1 = face[0](fake1, label1, [face[2]])
    return fake0, fake1


def _adam(parameters: Iterable[nn.Parameter], learning_rate: float, betas: tuple[float, float]) -> torch.optim.Adam:
    parameters = [p for p in parameters if p.requires_grad]
    # The authors' code listed the generator's parameters twice in one optimiser.
    if len({id(p) for p in parameters}) != len(parameters):
        raise ValueError("a parameter appears twice in one optimiser")
    # fused: one pass over each parameter instead of torch's default multi-pass update,
    # the same Adam to float rounding; on a CPU 6x faster (0.12 s instead of 0.7 s a
    # step for the paper generator on one core; README "Performance").
    return torch.optim.Adam(parameters, lr=learning_rate, betas=betas, fused=True)


class StageTrainer:
    """The networks and optimisers of one stage, and its iteration.

    ``init``: the previous stage's checkpoint (global for the local stage;
    global or local for the face stage); None for the global stage.
    ``temporal``: False trains frame by frame (global and local stages; the face
    stage follows the generator it starts from).
    """

    def __init__(self, stage: str, preset: Preset, init: Checkpoint | None, init_path: str | None,
                 perceptual: PerceptualLoss, runtime: Runtime, learning_rate: float, betas: tuple[float, float],
                 temporal: bool = True) -> None:
        self.stage = stage
        self.runtime = runtime
        self.temporal = init.temporal if stage == "face" else temporal
        self.perceptual = runtime.place_module(perceptual)
        self.generator_kind = stage if stage in ("global", "local") else init.options["generator_kind"]
        self.generator = build_generator(preset, self.generator_kind)
        if stage == "local":
            # Stage-1 weights go into the enhancer's global branch (pix2pixHD's load_pretrain).
            self.generator.load_global_weights(init.models["generator"], source=f"global checkpoint {init_path!r}")
        if stage == "face":
            load_state(self.generator, init, "generator", init_path)
            self.generator.requires_grad_(False)  # frozen for the whole face stage
            self.face_generator = build_face_generator(preset)
            self.face_discriminator = build_face_discriminator(preset)
            self.trained = {"face_generator": self.face_generator, "face_discriminator": self.face_discriminator}
            self.saved = {"generator": self.generator, **self.trained}
        else:
            self.discriminator = build_discriminator(preset, self.generator_kind, self.temporal)
            self.trained = {"generator": self.generator, "discriminator": self.discriminator}
            self.saved = dict(self.trained)
        for module in self.saved.values():
            runtime.place_module(module)
        generator_side = self.trained["face_generator" if stage == "face" else "generator"]
        discriminator_side = self.trained["face_discriminator" if stage == "face" else "discriminator"]
        self.optimizers = {"generator": _adam(generator_side.parameters(), learning_rate, betas),
                           "discriminator": _adam(discriminator_side.parameters(), learning_rate, betas)}
        self.last_pair: tuple[torch.Tensor, ...] | None = None

    # -- state -------------------------------------------------------------------------------------
    def model_states(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
                for name, module in self.saved.items()}

    def optimizer_states(self) -> dict[str, dict]:
        return {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}

    def load(self, checkpoint: Checkpoint, path: str) -> None:
        """Resume: every saved network and both optimisers, strictly."""
        for name, module in self.saved.items():
            load_state(module, checkpoint, name, path)
            self.runtime.place_module(module)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(checkpoint.optimizers[name])

    def set_learning_rate(self, learning_rate: float) -> None:
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = learning_rate

    # -- one iteration -----------------------------------------------------------------------------
    def step(self, first: Sample, second: Sample) -> dict[str, float]:
        """Train on the pair (first, second); return every logged loss term."""
        place = self.runtime.place
        label0, label1, real0, real1 = place(first.label), place(second.label), place(first.image), place(second.image)
        if self.stage == "face":
            return self._face_step(label0, label1, real0, real1, first.box, second.box)
        return self._main_step(label0, label1, real0, real1)

    def _main_step(self, label0, label1, real0, real1) -> dict[str, float]:
        d = self.discriminator
        d_input = temporal_input if self.temporal else frame_input
        with self.runtime.autocast(), weight_casts_reused(self.generator):
            fake0, fake1 = generate_pair(self.generator, label0, label1, temporal=self.temporal)
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
        return self._update(g_total, g_logged, d_real, d_fake)

    def _face_step(self, label0, label1, real0, real1, box0, box1) -> dict[str, float]:
        g_f, d_f = self.face_generator, self.face_discriminator
        with self.runtime.autocast():
            fake0, fake1 = generate_pair(self.generator, label0, label1, face=(g_f, box0, box1),
                                         temporal=self.temporal)
            frames = [(label0, real0, fake0, box0), (label1, real1, fake1, box1)]
            d_real = d_fake = face_gan = face_perceptual = 0.0
            for label, real, fake, box in frames:
                label_crop, real_crop, fake_crop = crop(label, [box]), crop(real, [box]), crop(fake, [box])
                real_term, fake_term = lsgan_discriminator([d_f(label_crop, real_crop)],
                                                           [d_f(label_crop, fake_crop.detach())])
                d_real, d_fake = d_real + 0.5 * real_term, d_fake + 0.5 * fake_term
                d_f.requires_grad_(False)
                face_gan = face_gan + 0.5 * lsgan_generator([d_f(label_crop, fake_crop)])
                d_f.requires_grad_(True)
                face_perceptual = face_perceptual + 0.5 * self.perceptual(fake_crop, real_crop)
            g_total, g_logged = compose_loss({"face_gan": face_gan, "face_perceptual": face_perceptual})
        self.last_pair = (label0, label1, fake0.detach(), fake1.detach(), real0, real1)
        return self._update(g_total, g_logged, d_real, d_fake)

    def _update(self, g_total: torch.Tensor, g_logged: dict[str, float],
                d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, float]:
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_total.backward()
        self.optimizers["generator"].step()
        d_total = 0.5 * (d_real + d_fake)
        self.optimizers["discriminator"].zero_grad(set_to_none=True)
        d_total.backward()
        self.optimizers["discriminator"].step()
        logged = {f"g_{name}": value for name, value in g_logged.items()}
        logged.update(d_real=float(d_real.detach()), d_fake=float(d_fake.detach()), d_total=float(d_total.detach()))
        return logged

    # -- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def render_sequence(self, samples: Iterable[Sample]) -> list[torch.Tensor]:
        """Generate frames one after another, each fed the previous output (zeros first;
        always zeros frame by frame), face-corrected where the frame has a face;
        returns [1, 3, H, W] tensors in [-1, 1]."""
        outputs, previous = [], None
        with self.runtime.autocast():
            for sample in samples:
                label = self.runtime.place(sample.label)
                if previous is None or not self.temporal:
                    previous = torch.zeros_like(label)
                frame = self.generator(label, previous)
                if self.stage == "face" and sample.has_face:
                    frame = self.face_generator(frame, label, [sample.box])
                frame = frame.float()
                outputs.append(frame.cpu())
                previous = frame
        return outputs
