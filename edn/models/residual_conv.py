"""The residual blocks' 3x3 convolution, with a faster bf16 weight gradient on the CPU.

``ResidualConv(channels)`` is ``nn.Conv2d(channels, channels, 3)`` (stride 1, no
padding: the block pads by reflection), with the same parameters, state-dict keys
and function. What differs is how its weight gradient is computed in one case:
under bf16 autocast on the CPU, at :data:`MIN_CHANNELS` channels or more and no
more output positions than channels. That is the paper generator's bottleneck
(1024 channels at 16x32 for 512x256 frames): its 18 convolutions, run twice per
training step for the temporal pair, were about half of the paper preset's bf16
step. There oneDNN's bf16 weight-gradient kernel runs at about half the machine's
bf16 matrix-multiply rate (44-55 ms against 24 ms for the forward pass), so the
gradient is taken as one matrix multiply of the output gradient with the input's
patches instead (24 ms). In fp32 the same change made a whole step no faster,
smaller layers are faster with oneDNN, and CUDA has its own kernels: everywhere
else it is ``nn.Conv2d``. ``tests/test_residual_conv.py`` checks the gradients
against ``nn.Conv2d``'s.

Autocast casts a weight to bf16 once per autocast region and reuses the cast for
every later use; a custom autograd function cannot use that cache, so without
help each of the two generator passes of a step casts every bottleneck weight
again, forward and backward. :func:`weight_casts_reused` restores the reuse
explicitly for the span of one training step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

MIN_CHANNELS = 1024


class ResidualConv(nn.Conv2d):
    """``nn.Conv2d(channels, channels, 3)``; see the module docstring."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, 3)
        self._reuse_casts = False  # inside weight_casts_reused
        self._cast: tuple[torch.Tensor, torch.Tensor] | None = None  # bf16 weight and bias, while reused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._weight_gradient_by_matmul(x):
            return super().forward(x)
        weight, bias = self._bf16_parameters()
        with torch.autocast("cpu", enabled=False):
            return conv2d_with_matmul_weight_gradient(x.to(torch.bfloat16), weight, bias)

    def _weight_gradient_by_matmul(self, x: torch.Tensor) -> bool:
        positions = (x.shape[-2] - 2) * (x.shape[-1] - 2)
        return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16
                and torch.is_grad_enabled() and self.weight.requires_grad
                and self.in_channels >= MIN_CHANNELS and positions <= self.in_channels)

    def _bf16_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cast is not None:
            return self._cast
        cast = self.weight.to(torch.bfloat16), self.bias.to(torch.bfloat16)
        if self._reuse_casts:
            self._cast = cast
        return cast


@contextlib.contextmanager
def weight_casts_reused(network: nn.Module) -> Iterator[None]:
    """Within the block, each :class:`ResidualConv` of ``network`` casts its parameters
    once, at its first use, and reuses that cast (autograd sums the gradients of
    every use before the one cast back to float32). The casts are dropped on leaving.
    The parameters must not change inside: wrap one step's forward passes, not
    the optimizer's update."""
    convs = [module for module in network.modules() if isinstance(module, ResidualConv)]
    for conv in convs:
        conv._reuse_casts = True
    try:
        yield
    finally:
        for conv in convs:
            conv._reuse_casts, conv._cast = False, None


def conv2d_with_matmul_weight_gradient(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, bias)``, stride 1, no padding, all three of one dtype, whose
    weight gradient is one matrix multiply: grad_out [O, N*L] @ columns(x) [N*L, C*k*k]."""
    return _ConvWithMatmulWeightGradient.apply(x, weight, bias)


class _ConvWithMatmulWeightGradient(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return nn.functional.conv2d(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_out.transpose(0, 1).flatten(1) @ _columns(x, weight.shape[-2:]).t()).view_as(weight)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias


def _columns(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """im2col: [C*kh*kw, N*L], row c*kh*kw + i*kw + j holding x[n, c, y+i, x+j] over the
    N*L output positions. One strided copy; faster here than ``nn.functional.unfold``."""
    patches = x.unfold(2, kernel[0], 1).unfold(3, kernel[1], 1)  # [N, C, Ho, Wo, kh, kw], a view
    return patches.permute(1, 4, 5, 0, 2, 3).reshape(x.shape[1] * kernel[0] * kernel[1], -1)
