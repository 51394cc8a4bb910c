"""The residual blocks' convolution: nn.Conv2d's function and gradients, with the weight
gradient of the bf16 bottleneck taken by a matrix multiply, and weight casts reused
within a step but never past it."""

from __future__ import annotations

import pytest
import torch

from edn.models import residual_conv
from edn.models.generator import GlobalGenerator
from edn.models.residual_conv import ResidualConv, conv2d_with_matmul_weight_gradient, weight_casts_reused
from edn.models.temporal_smoothing import unroll_pair


def _gradients(conv: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor, bf16: bool):
    leaf = x.clone().requires_grad_(True)
    conv.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = conv(leaf)
    out.float().backward(upstream)
    return out, (leaf.grad, conv.weight.grad, conv.bias.grad)


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.detach().float() - reference.float()).norm() / reference.float().norm())


def test_matmul_weight_gradient_is_conv2ds_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 7, 9, generator=generator, dtype=torch.float64)  # a batch of 2: the flattening
    weight = torch.randn(4, 5, 3, 3, generator=generator, dtype=torch.float64)
    bias = torch.randn(4, generator=generator, dtype=torch.float64)
    upstream = torch.randn(2, 4, 5, 7, generator=generator, dtype=torch.float64)
    grads = []
    for conv in (conv2d_with_matmul_weight_gradient, torch.nn.functional.conv2d):
        leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
        out = conv(*leaves)
        out.backward(upstream)
        grads.append((out, *[leaf.grad for leaf in leaves]))
    for ours, reference in zip(*grads, strict=True):
        torch.testing.assert_close(ours, reference)


# The bottleneck's tests below lower MIN_CHANNELS to a width a CPU without native bf16 (where
# torch emulates it) convolves in seconds: the path is chosen by the same comparisons at any
# threshold, and 1024-channel bf16 convolutions took three and a half minutes there.
LOWERED = 128


def test_bf16_bottleneck_takes_the_matmul_path_with_conv2ds_accuracy(monkeypatch) -> None:
    monkeypatch.setattr(residual_conv, "MIN_CHANNELS", LOWERED)
    torch.manual_seed(0)
    conv = ResidualConv(LOWERED)
    reference = torch.nn.Conv2d(LOWERED, LOWERED, 3)
    reference.load_state_dict(conv.state_dict())
    x, upstream = torch.randn(1, LOWERED, 10, 18), torch.randn(1, LOWERED, 8, 16)  # 128 positions
    out, ours = _gradients(conv, x, upstream, bf16=True)
    assert type(out.grad_fn).__name__ == "_ConvWithMatmulWeightGradientBackward"
    assert out.dtype == torch.bfloat16
    _, onednn = _gradients(reference, x, upstream, bf16=True)
    _, exact = _gradients(reference, x, upstream, bf16=False)
    for name, o, d, e in zip(("input", "weight", "bias"), ours, onednn, exact, strict=True):
        # bf16 rounding: the same order of error as torch's own bf16 convolution
        assert _relative_error(o, e) < 0.01, name
        assert _relative_error(o, e) < 2 * _relative_error(d, e) + 1e-3, name


def test_everywhere_else_it_is_conv2d(monkeypatch) -> None:
    monkeypatch.setattr(residual_conv, "MIN_CHANNELS", LOWERED)
    torch.manual_seed(0)
    cases = [(LOWERED, (1, LOWERED, 10, 18), False),  # fp32
             (LOWERED // 2, (1, LOWERED // 2, 6, 10), True),  # too few channels
             (LOWERED, (1, LOWERED, 40, 40), True)]  # more positions than channels
    for channels, shape, bf16 in cases:
        conv = ResidualConv(channels)
        reference = torch.nn.Conv2d(channels, channels, 3)
        reference.load_state_dict(conv.state_dict())
        x = torch.randn(shape)
        upstream = torch.randn(shape[0], channels, shape[2] - 2, shape[3] - 2)
        out, ours = _gradients(conv, x, upstream, bf16)
        expected_out, expected = _gradients(reference, x, upstream, bf16)
        assert type(out.grad_fn).__name__ == "ConvolutionBackward0"
        torch.testing.assert_close(out, expected_out, rtol=0, atol=0)
        for o, e in zip(ours, expected, strict=True):
            torch.testing.assert_close(o, e, rtol=0, atol=0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = ResidualConv(LOWERED)(torch.randn(1, LOWERED, 10, 18))
    assert out.grad_fn is None and out.dtype == torch.bfloat16


def test_state_dict_is_conv2ds() -> None:
    conv = ResidualConv(8)
    assert set(conv.state_dict()) == {"weight", "bias"}
    torch.nn.Conv2d(8, 8, 3).load_state_dict(conv.state_dict())


def test_weight_casts_are_reused_within_the_block_and_dropped_after_it() -> None:
    torch.manual_seed(0)
    conv = ResidualConv(1024)
    x = torch.randn(1, 1024, 6, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with weight_casts_reused(conv):
            first, second = conv(x), conv(x)
        outside = conv(x)
    assert first.grad_fn.next_functions[1][0] is second.grad_fn.next_functions[1][0]  # one cast, used twice
    assert first.grad_fn.next_functions[1][0] is not outside.grad_fn.next_functions[1][0]
    (first.float().sum() + second.float().sum()).backward()
    reused = conv.weight.grad.clone()
    conv.zero_grad(set_to_none=True)
    (outside.float().sum() * 2).backward()
    torch.testing.assert_close(reused, conv.weight.grad)

    with torch.no_grad():  # an optimizer's update: fused Adam does not bump the version counter
        torch._foreach_mul_([conv.weight], 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with weight_casts_reused(conv):
            halved = conv(x)
    reference = torch.nn.functional.conv2d(x, conv.weight.detach(), conv.bias.detach())
    assert _relative_error(halved, reference) < 0.01


@pytest.mark.slow  # a bf16 generator's temporal pair and its gradients, twice
def test_a_bf16_temporal_pair_learns_the_same_through_the_matmul_path(monkeypatch) -> None:
    """A generator shaped like the paper's (four downsamplings: its bottleneck has as many
    output positions per channel as the paper's at 512x256, fewer channels), both passes of
    a temporal pair in one weight_casts_reused block, against the same with plain nn.Conv2d."""
    monkeypatch.setattr(residual_conv, "MIN_CHANNELS", 2 * LOWERED)
    torch.manual_seed(0)
    generator = GlobalGenerator(ngf=16, n_downsampling=4, n_blocks=1)  # a 256-channel bottleneck
    generator_input = torch.Generator().manual_seed(1)
    label0, label1 = (torch.rand(1, 3, 128, 256, generator=generator_input) for _ in range(2))
    target = torch.rand(1, 3, 128, 256, generator=generator_input) * 2 - 1

    def parameter_gradients() -> dict[str, torch.Tensor]:
        generator.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16), weight_casts_reused(generator):
            fake0, fake1 = unroll_pair(lambda label, previous, _: generator(label, previous), label0, label1,
                                       temporal=True)
        ((fake0.float() - target).abs().mean() + (fake1.float() - target).abs().mean()).backward()
        return {name: p.grad.clone() for name, p in generator.named_parameters()}

    matmul = parameter_gradients()
    monkeypatch.setattr(residual_conv, "MIN_CHANNELS", 10**9)
    onednn = parameter_gradients()
    bottleneck = [name for name, m in generator.named_modules() if isinstance(m, ResidualConv)]
    assert len(bottleneck) == 2
    for name in onednn:  # the two computations differ only by bf16 rounding in the bottleneck
        if name.endswith("weight"):  # (a bias in front of an instance norm has no true gradient)
            assert _relative_error(matmul[name], onednn[name]) < 0.01, name
