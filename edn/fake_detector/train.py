"""Training the pair classifier: binary cross-entropy on logits, Adam, random crops and flips.

Each step draws ``batch_size / 2`` training pairs of the subject (every pair once
per epoch, in a seeded order) and shows each one real and generated, with the
same crop and flip (:func:`edn.fake_detector.data.training_batch`). The run
depends only on its options: same seed, same network.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from edn.errors import EdnError
from edn.fake_detector.data import SubjectFrames, training_batch
from edn.fake_detector.pairs import require_pairs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorTrainingOptions:
    """``batch_size``: samples per step, half real and half generated (even);
    ``crop_size``: side of the square training crops (clamped to the frame)."""

    iterations: int = 400
    batch_size: int = 16
    learning_rate: float = 5e-4
    seed: int = 0
    crop_size: int = 96
    flip: bool = True

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise EdnError(f"detector iterations {self.iterations}: must be at least 1")
        if self.batch_size < 2 or self.batch_size % 2:
            raise EdnError(f"detector batch size {self.batch_size}: must be even and at least 2 "
                           "(half real, half generated)")
        if not self.learning_rate > 0:
            raise EdnError(f"detector learning rate {self.learning_rate}: must be positive")
        if self.crop_size < 16:
            raise EdnError(f"detector crop size {self.crop_size}: must be at least 16 pixels")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainingSummary:
    """Mean loss and accuracy of the training batches over the last tenth of the run."""

    final_loss: float
    final_batch_accuracy: float


def train_detector(model: nn.Module, subject: SubjectFrames, options: DetectorTrainingOptions,
                   device: torch.device, *, progress: bool = True) -> TrainingSummary:
    """Train ``model`` (already initialised and on ``device``) in place on the subject's training pairs."""
    from tqdm import tqdm

    require_pairs(subject.pairs.training, f"detector training data {subject.name!r} (training frames)")
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    loss_function = nn.BCEWithLogitsLoss()
    model.train()
    losses, accuracies = [], []
    bar = tqdm(range(options.iterations), unit="step", desc="train detector", leave=False,
               disable=not progress or None)
    for step in bar:
        inputs, targets, _ = training_batch(subject, step, options.batch_size // 2, options.crop_size,
                                            options.seed, options.flip)
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs)
        loss = loss_function(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        accuracies.append(float(((logits.detach() >= 0) == (targets >= 0.5)).float().mean()))
        if step % 10 == 0 or step == options.iterations - 1:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}", acc=f"{np.mean(accuracies[-10:]):.2f}")
        if (step + 1) % 100 == 0:
            log.info("step %d: loss %.4f, batch accuracy %.3f (mean of the last 100)", step + 1,
                     np.mean(losses[-100:]), np.mean(accuracies[-100:]))
    bar.close()
    model.eval()
    tail = max(1, options.iterations // 10)
    return TrainingSummary(final_loss=float(np.mean(losses[-tail:])),
                           final_batch_accuracy=float(np.mean(accuracies[-tail:])))
