"""The GAN objective of Everybody Dance Now (Chan et al. 2019, equations 2 to 5).

Every term is computed unweighted by its own function; :func:`compose_loss` is
the one place that weighs and sums them, from :data:`LOSS_WEIGHTS`, and returns
each term for logging. Images are ``[B, 3, H, W]`` in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from edn.training.perceptual import LAYER_WEIGHTS, PerceptualFeatures

#: Weights of the generators' loss terms (pix2pixHD's, Wang et al. 2018, which Chan et al.
#: 2019 section 3.2 keeps): LSGAN 1, feature matching 10 (lambda_FM), perceptual 10
#: (lambda_VGG); the face GAN's terms get the same weights. The authors' code
#: doubles the perceptual weight in the local stage ("2x VGG for artifacts"); the
#: paper does not, and neither do we.
LOSS_WEIGHTS: Mapping[str, float] = {
    "gan": 1.0,
    "feature_matching": 10.0,
    "perceptual": 10.0,
    "face_gan": 1.0,
    "face_perceptual": 10.0,
}


def compose_loss(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float] = LOSS_WEIGHTS,
                 extra_weights: Mapping[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum ``weights[name] * term`` over ``terms``.

    ``extra_weights``: weights of terms that are options (the composite method's
    ``mask``, :class:`edn.core.options.TrainingOptions` ``mask_weight``). Returns the
    total (for ``backward``) and, for logging, every unweighted term and the
    weighted ``total`` as floats. A term without a weight is a bug (KeyError),
    never silently dropped.
    """
    weights = {**weights, **(extra_weights or {})}
    total = sum(weights[name] * term for name, term in terms.items())
    logged = {name: float(term.detach()) for name, term in terms.items()}
    logged["total"] = float(total.detach())
    return total, logged


def lsgan_generator(predictions: Sequence[torch.Tensor]) -> torch.Tensor:
    """LSGAN generator term: sum over discriminators (scales) of mean((D(fake) - 1)^2)."""
    return sum(nn.functional.mse_loss(p.float(), torch.ones_like(p, dtype=torch.float32)) for p in predictions)


def lsgan_discriminator(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """LSGAN discriminator terms (real, fake), each summed over scales: mean((D(real) - 1)^2),
    mean(D(fake)^2). The discriminator's loss is half their sum, as pix2pixHD's
    (:meth:`edn.training.trainer.Trainer.update` halves it, once)."""
    real_term = sum(nn.functional.mse_loss(p.float(), torch.ones_like(p, dtype=torch.float32)) for p in real)
    fake_term = sum(nn.functional.mse_loss(p.float(), torch.zeros_like(p, dtype=torch.float32)) for p in fake)
    return real_term, fake_term


def temporal_change(fake0: torch.Tensor, fake1: torch.Tensor, real0: torch.Tensor, real1: torch.Tensor) -> torch.Tensor:
    """L1 between the generated and the real frame-to-frame change, ``|(fake1 - fake0) - (real1 - real0)|``:
    the change the real motion does not explain (what ``temporal_change_error`` measures)."""
    return nn.functional.l1_loss((fake1 - fake0).float(), (real1 - real0).detach().float())


#: :func:`colour_difference` compares the images' means over blocks of this many pixels a side.
COLOUR_BLOCK = 8


def colour_difference(fake: torch.Tensor, real: torch.Tensor, block: int = COLOUR_BLOCK) -> torch.Tensor:
    """L1 between the two images' means over ``block`` x ``block`` pixels (a partial block at an edge
    averaged over its own pixels): their colours, not their texture, which the perceptual and GAN
    terms judge. Trained on those alone, the composite method drew the untuned woman_dog target's
    white shirt with yellow patches and fringes of magenta and green (docs/training.md)."""
    def blocks(image: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(image.float(), block, ceil_mode=True, count_include_pad=False)
    return nn.functional.l1_loss(blocks(fake), blocks(real.detach()))


def feature_matching(fake: Sequence[Sequence[torch.Tensor]], real: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Discriminator feature matching (pix2pixHD, equation 4 of Chan et al.).

    ``fake``/``real``: per scale, the discriminator's outputs (prediction last).
    L1 between fake and (detached) real features of every layer but the
    prediction, weighted as the authors do: ``(1 / scales) * (4 / (layers + 1))``,
    where ``layers + 1`` is the number of compared layers per scale.
    """
    total = 0.0
    for fake_scale, real_scale in zip(fake, real, strict=True):
        compared = len(fake_scale) - 1
        weight = (1.0 / len(fake)) * (4.0 / compared)
        for f, r in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            total = total + weight * nn.functional.l1_loss(f.float(), r.detach().float())
    return total


class PerceptualLoss(nn.Module):
    """VGG perceptual loss: sum over relu1_1..relu5_1 of w_k * L1(phi_k(fake), phi_k(real)),
    w = 1/32, 1/16, 1/8, 1/4, 1 (pix2pixHD's VGGLoss; see :mod:`edn.training.perceptual`
    for the network and how its inputs are converted). Images must be at least
    16 px on each side (relu5_1 is four poolings deep).
    """

    def __init__(self, features: PerceptualFeatures) -> None:
        super().__init__()
        self.features = features

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real_features = self.features(real)
        fake_features = self.features(fake)
        return sum(w * nn.functional.l1_loss(f.float(), r.float())
                   for w, f, r in zip(LAYER_WEIGHTS, fake_features, real_features, strict=True))
