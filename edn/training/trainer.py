"""What every stage's trainer has: networks to save, two Adam optimisers, one update.

A stage trainer (:class:`edn.training.main_stage.MainStageTrainer`,
:class:`edn.training.face_stage.FaceStageTrainer`) builds its networks, computes
one iteration's losses in ``step`` and hands them to :meth:`Trainer.update`.
Order per iteration, as the authors: both losses from one forward pass, then the
generator's update, then the discriminator's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from edn.core.checkpoint import Checkpoint, load_state
from edn.training.distributed import SINGLE, Group
from edn.models.generation import FrameGenerator, draw_in_window
from edn.core.runtime import Runtime
from edn.models.temporal_smoothing import first_previous_frame
from edn.training.data import Batch, Sample

#: Adam's betas in the paper and pix2pixHD.
ADAM_BETAS = (0.5, 0.999)


def adam(parameters: Iterable[nn.Parameter], learning_rate: float) -> torch.optim.Adam:
    parameters = [p for p in parameters if p.requires_grad]
    # The authors' code listed the generator's parameters twice in one optimiser.
    if len({id(p) for p in parameters}) != len(parameters):
        raise ValueError("a parameter appears twice in one optimiser")
    # fused: one pass over each parameter instead of torch's default multi-pass update,
    # the same Adam to float rounding; on a CPU 6x faster (0.12 s instead of 0.7 s a
    # step for the paper generator on one core; docs/performance.md).
    return torch.optim.Adam(parameters, lr=learning_rate, betas=ADAM_BETAS, fused=True)


class Trainer:
    """The networks and optimisers of one stage.

    Subclasses set ``saved`` (every network the checkpoint holds, by name) and
    call :meth:`make_optimizers` with the generator side and the discriminator
    side they train.
    """

    runtime: Runtime
    temporal: bool
    #: The main generator (trained, or frozen under the face GAN).
    generator: nn.Module
    #: The target's background plate ``[1, 3, H, W]`` in [-1, 1] for a compositing generator, else None.
    plate: torch.Tensor | None = None
    #: The data-parallel processes training together (one by default): gradients are averaged over them.
    group: Group = SINGLE
    saved: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Adam]
    #: The last pair trained on: (label0, label1, fake0, fake1, real0, real1), for sample grids.
    last_pair: tuple[torch.Tensor, ...] | None = None

    def make_optimizers(self, generator_side: nn.Module, discriminator_side: nn.Module,
                        learning_rate: float) -> None:
        for module in self.saved.values():
            self.runtime.place_module(module)
        self.optimizers = {"generator": adam(generator_side.parameters(), learning_rate),
                           "discriminator": adam(discriminator_side.parameters(), learning_rate)}

    def frame_generator(self) -> FrameGenerator:
        """The networks as they draw a sequence now (for held-out samples)."""
        raise NotImplementedError

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

    def draw_histories(self, histories: Sequence[Sequence[Sample]], labels: torch.Tensor) -> torch.Tensor | None:
        """Per batch item, the networks' frame of the last sample of its history, each drawn
        from the one before (zeros first; face-corrected where there is a face GAN), without
        gradients; the zero image for an item without history; None when no item has one
        (every pair then starts from the zero image, as in the paper)."""
        if not self.temporal or not any(histories):
            return None
        models, frames = self.frame_generator(), []
        with torch.no_grad():
            for item, history in enumerate(histories):
                state = None
                for sample in history:
                    box = sample.box if sample.has_face else None
                    exemplar = None if sample.exemplar is None else self.runtime.place(sample.exemplar)
                    plate = None if sample.plate is None else self.runtime.place(sample.plate)
                    _, state = models.draw(self.runtime.place(sample.label), state, box, sample.window, exemplar,
                                           plate)
                frames.append(first_previous_frame(labels[item:item + 1]) if state is None else state.detach())
        return torch.cat(frames)

    def draw_over_plate(self, frames: Batch, label: torch.Tensor,
                        previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The compositing generator's frames and masks ``[B, C, H, W]`` for the batch ``frames``
        (``label``: its labels on the device), fed ``previous``: each drawn in its frame's
        person window over the plate (its frame's own plate when the camera moves, the
        batch's ``plate``; and, for a generator conditioned on it, from its frame's warped
        exemplar).

        Both stages draw a training pair through here, so every input the compositing
        generator is fed beside the label and the previous frame is read from ``frames`` in
        this one place; like the frames drawn before a pair and at synthesis
        (:meth:`FrameGenerator.draw`), it ends in :func:`edn.models.generation.draw_in_window`,
        which crops the inputs to the window and calls the generator."""
        exemplar = None
        if getattr(self.generator, "exemplar", False):
            if frames.exemplar is None:
                raise ValueError("this generator is conditioned on the warped exemplar: the batch has none")
            exemplar = self.runtime.place(frames.exemplar)
        plate = self.plate if frames.plate is None else self.runtime.place(frames.plate)
        return draw_in_window(self.generator, label, previous, plate, frames.windows, exemplar)

    # -- one update --------------------------------------------------------------------------------
    def update(self, g_total: torch.Tensor, g_logged: dict[str, float],
               d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, float]:
        """The generator's step on ``g_total``, then the discriminator's on
        ``0.5 * (d_real + d_fake)`` (pix2pixHD halves the sum once), each with its gradients
        averaged over the data-parallel processes; every term logged."""
        d_total = 0.5 * (d_real + d_fake)
        for name, loss in (("generator", g_total), ("discriminator", d_total)):
            optimizer = self.optimizers[name]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.group.average_gradients(p for group in optimizer.param_groups for p in group["params"])
            optimizer.step()
        logged = {f"g_{name}": value for name, value in g_logged.items()}
        logged.update(d_real=float(d_real.detach()), d_fake=float(d_fake.detach()), d_total=float(d_total.detach()))
        return logged


def as_batches(first: Sample | Batch, second: Sample | Batch,
               history: Sequence[Sample] | Sequence[Sequence[Sample]]) -> tuple[Batch, Batch, list[list[Sample]]]:
    """A step's inputs as batches, and each item's history (frames drawn before its pair);
    one sample and its history stand for a batch of one."""
    first, second = (x if isinstance(x, Batch) else Batch.of(x) for x in (first, second))
    history = list(history)
    if not history or isinstance(history[0], Sample):
        histories = [history] + [[] for _ in range(len(first) - 1)]
    else:
        histories = [list(h) for h in history]
    if len(histories) != len(first):
        raise ValueError(f"{len(histories)} histories for a batch of {len(first)}")
    return first, second, histories
