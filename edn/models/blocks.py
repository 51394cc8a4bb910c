"""Building blocks shared by the generators and discriminators (pix2pixHD style)."""

from __future__ import annotations

import torch
from torch import nn

from edn.models.residual_conv import ResidualConv


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for every convolution's weights and zero biases (pix2pixHD's init).

    Instance norms carry no parameters (affine=False), so nothing else is drawn.
    Use as ``network.apply(init_weights)``.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class InstanceNorm(nn.Module):
    """Instance normalization without learned scale and shift (pix2pixHD's ``--norm instance``).

    ``nn.InstanceNorm2d``'s function, with one fix: in torch 2.14 on the CPU its
    backward pass returns wrong input gradients (unrelated to the true ones)
    whenever the incoming gradient is channels_last, which it is in a
    channels_last network. The output's gradient is made contiguous (the
    layout of instance norm's output) before it reaches that backward.
    ``tests/test_models.py`` checks the gradients in both layouts.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.instance_norm(x, eps=self.eps)
        if y.requires_grad:
            y.register_hook(_contiguous_gradient)
        return y

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


def _contiguous_gradient(gradient: torch.Tensor) -> torch.Tensor:
    return gradient.contiguous()


def norm(channels: int) -> nn.Module:
    """The normalization of every network here: instance norm, no learned parameters."""
    return InstanceNorm(channels)


class ResidualBlock(nn.Module):
    """x + (reflect-pad, 3x3 conv, norm, ReLU, reflect-pad, 3x3 conv, norm)(x); channels unchanged."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), ResidualConv(channels), norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), ResidualConv(channels), norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def downsample(images: torch.Tensor) -> torch.Tensor:
    """Halve H and W (rounding up) with a 3x3 average of stride 2 that ignores padding.

    The pyramid pix2pixHD uses between discriminator scales and in front of the
    local enhancer's global branch.
    """
    return nn.functional.avg_pool2d(images, 3, stride=2, padding=1, count_include_pad=False)
