"""What every stage's trainer has: networks to save, two Adam optimisers, one update.

A stage trainer (:class:`edn.training.main_stage.MainStageTrainer`,
:class:`edn.training.face_stage.FaceStageTrainer`) builds its networks, computes
one iteration's losses in ``step`` and hands them to :meth:`Trainer.update`.
Order per iteration, as the authors: both losses from one forward pass, then the
generator's update, then the discriminator's.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from edn.checkpoint import Checkpoint, load_state
from edn.generation import FrameGenerator
from edn.runtime import Runtime

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

    # -- one update --------------------------------------------------------------------------------
    def update(self, g_total: torch.Tensor, g_logged: dict[str, float],
               d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, float]:
        """The generator's step on ``g_total``, then the discriminator's on
        ``0.5 * (d_real + d_fake)`` (pix2pixHD halves the sum once); every term logged."""
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
