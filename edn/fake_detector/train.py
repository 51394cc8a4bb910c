"""Training the pair classifier: binary cross-entropy on logits, Adam, random crops and flips.

Each step draws ``batch_size / 2`` training pairs of the subject (every pair once
per epoch, in a seeded order) and shows each one real and generated, with the
same crop and flip (:func:`edn.fake_detector.data.training_batch`). The run
depends only on its options: same seed, same network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edn.fake_detector.data import SubjectFrames, training_batch
from edn.fake_detector.pairs import require_pairs
from edn.core.options import DetectorOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSummary:
    """Mean loss and accuracy of the training batches over the last tenth of the run."""

    final_loss: float
    final_batch_accuracy: float


def train_detector(model: nn.Module, subject: SubjectFrames, options: DetectorOptions,
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
