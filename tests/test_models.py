"""The networks at tiny sizes: shapes, the paper's sizes, weight loading, the face residual,
and gradients through both passes of a temporal pair."""

from __future__ import annotations

import pytest
import torch

from edn.core.errors import EdnError
from edn.models import build_discriminator, build_face_discriminator, build_face_generator, build_generator
from edn.models.blocks import InstanceNorm
from edn.core.presets import PRESETS
from edn.models.temporal_smoothing import temporal_input, unroll_pair

TINY, SMALL, PAPER = PRESETS["tiny"], PRESETS["small"], PRESETS["paper"]


def _images(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    label = torch.rand(1, 3, height, width, generator=generator)
    image = torch.rand(1, 3, height, width, generator=generator) * 2 - 1
    return label, image


@pytest.mark.parametrize("preset", [TINY, SMALL], ids=lambda p: p.name)
@pytest.mark.parametrize("kind", ["global", "local"])
def test_generator_maps_label_and_previous_frame_to_a_frame(preset, kind) -> None:
    torch.manual_seed(0)
    generator = build_generator(preset, kind)
    label, previous = _images(64, 128)
    out = generator(label, previous)
    assert out.shape == (1, 3, 64, 128)
    assert out.min() >= -1 and out.max() <= 1 and out.std() > 0
    first_conv = next(m for m in generator.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 6  # stick figure + previous frame


@pytest.mark.parametrize("preset", [TINY, SMALL], ids=lambda p: p.name)
@pytest.mark.parametrize("kind", ["global", "local"])
def test_temporal_discriminator_scales_and_features(preset, kind) -> None:
    discriminator = build_discriminator(preset, kind)
    label0, image0 = _images(64, 128, 1)
    label1, image1 = _images(64, 128, 2)
    x = temporal_input(label0, label1, image0, image1)
    assert x.shape[1] == 12
    outputs = discriminator(x)
    scales = preset.d_scales_global if kind == "global" else preset.d_scales_local
    assert len(outputs) == scales
    for scale, features in enumerate(outputs):
        assert len(features) == preset.d_layers + 2  # intermediate features for feature matching, prediction last
        assert features[-1].shape[:2] == (1, 1)
        # each scale sees the input downsampled once more
        assert features[0].shape[-1] == -(-(128 // 2 ** scale) // 2) + 1


def test_face_networks_shapes() -> None:
    face_generator, face_discriminator = build_face_generator(SMALL), build_face_discriminator(SMALL)
    label, image = _images(128, 256)
    out = face_generator(image, label, [(100, 10, 132, 42)])
    assert out.shape == image.shape
    prediction = face_discriminator(label[..., 10:42, 100:132], out[..., 10:42, 100:132])
    assert prediction.dim() == 4 and prediction.shape[:2] == (1, 1)


def test_paper_preset_has_the_paper_sizes() -> None:
    with torch.device("meta"):  # no memory, no time: shapes only
        generator = build_generator(PAPER, "global")
        local = build_generator(PAPER, "local")
        face = build_face_generator(PAPER)
        discriminator = build_discriminator(PAPER, "local")
    count = sum(p.numel() for p in generator.parameters())
    assert 181e6 < count < 184e6  # docs/training.md, "Presets": about 182 M parameters
    convs = [m for m in generator.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1024]  # 4 downsamplings
    assert sum(type(m).__name__ == "ResidualBlock" for m in generator.trunk) == 9
    assert sum(type(m).__name__ == "ResidualBlock" for m in local.back) == 3
    assert local.front[1].out_channels == 32
    assert sum(type(m).__name__ == "ResidualBlock" for m in face.body.trunk) == 5
    assert len(discriminator.scales) == 3


def test_weights_are_drawn_from_n_0_002() -> None:
    torch.manual_seed(0)
    generator = build_generator(SMALL, "global")
    weights = torch.cat([m.weight.detach().flatten() for m in generator.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(weights.mean())) < 1e-3 and abs(float(weights.std()) - 0.02) < 1e-3
    assert all(float(m.bias.detach().abs().max()) == 0 for m in generator.modules() if isinstance(m, torch.nn.Conv2d))
    assert all(not list(m.parameters()) for m in generator.modules() if isinstance(m, InstanceNorm))


def test_instance_norm_gradients_are_right_in_channels_last() -> None:
    """torch's InstanceNorm2d returns wrong input gradients on the CPU when the incoming
    gradient is channels_last; ours must match the contiguous computation."""
    torch.manual_seed(0)
    x, upstream = torch.randn(1, 16, 12, 20) * 2 + 1, torch.randn(1, 16, 12, 20)

    def input_gradient(module, channels_last: bool) -> torch.Tensor:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        leaf = x.clone().contiguous(memory_format=layout).requires_grad_(True)
        module(leaf).backward(upstream.contiguous(memory_format=layout))
        return leaf.grad

    reference = input_gradient(torch.nn.InstanceNorm2d(16), channels_last=False)
    torch.testing.assert_close(input_gradient(InstanceNorm(16), channels_last=False), reference)
    torch.testing.assert_close(input_gradient(InstanceNorm(16), channels_last=True), reference)
    torch.testing.assert_close(InstanceNorm(16)(x), torch.nn.InstanceNorm2d(16)(x))


def test_generator_learns_the_same_in_both_memory_layouts() -> None:
    label, target = _images(64, 128)
    gradients = []
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        generator = build_generator(SMALL, "global").to(memory_format=layout)
        x = label.contiguous(memory_format=layout)
        (generator(x, torch.zeros_like(x)) - target).abs().mean().backward()
        gradients.append(torch.cat([p.grad.flatten() for p in generator.parameters()]))
    contiguous, channels_last = gradients
    # Rounding differs between layouts; the gradient must not (torch's own instance norm: error ~140 %).
    assert float((contiguous - channels_last).norm()) < 1e-3 * float(contiguous.norm())


def test_local_enhancer_loads_the_global_generators_weights() -> None:
    torch.manual_seed(1)
    global_generator = build_generator(TINY, "global")
    torch.manual_seed(2)
    local = build_generator(TINY, "local")
    local.load_global_weights(global_generator.state_dict())
    for key, value in global_generator.trunk.state_dict().items():
        assert torch.equal(local.global_trunk.state_dict()[key], value), key
    x = torch.rand(1, 6, 32, 64)
    assert torch.equal(local.global_trunk(x), global_generator.trunk(x))


def test_local_enhancer_rejects_a_global_generator_of_other_sizes() -> None:
    other = build_generator(SMALL, "global")
    local = build_generator(TINY, "local")
    with pytest.raises(EdnError, match="does not fit the local enhancer"):
        local.load_global_weights(other.state_dict(), source="global.pt")
    with pytest.raises(EdnError, match="not a global generator"):
        local.load_global_weights(build_discriminator(TINY, "global").state_dict(), source="global.pt")


def test_face_residual_changes_only_pixels_inside_the_box() -> None:
    torch.manual_seed(0)
    face_generator = build_face_generator(TINY)
    label, image = _images(64, 128)
    box = (40, 8, 56, 24)
    out = face_generator(image, label, [box])
    inside = torch.zeros_like(image, dtype=torch.bool)
    inside[..., box[1]:box[3], box[0]:box[2]] = True
    assert torch.equal(out[~inside], image[~inside])  # bit for bit outside
    assert (out[inside] != image[inside]).float().mean() > 0.9
    assert out.min() >= -1 and out.max() <= 1
    # gradients reach the face generator only through the box
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in face_generator.parameters())


def test_face_box_of_a_size_not_divisible_by_the_downsampling() -> None:
    face_generator = build_face_generator(SMALL)  # 3 downsamplings
    label, image = _images(64, 128)
    out = face_generator(image, label, [(3, 5, 24, 27)])  # 21 x 22 px
    assert out.shape == image.shape and not torch.equal(out[..., 5:27, 3:24], image[..., 5:27, 3:24])


def test_gradients_reach_both_generator_passes_of_a_temporal_pair() -> None:
    torch.manual_seed(0)
    generator = build_generator(TINY, "global")
    label0, _ = _images(32, 64, 1)
    label1, _ = _images(32, 64, 2)
    fake0, fake1 = unroll_pair(lambda label, previous, _: generator(label, previous), label0, label1, temporal=True)
    fake0.retain_grad()
    fake1.mean().backward()  # a loss on the second frame only
    assert fake0.grad is not None and fake0.grad.abs().sum() > 0  # flows back into the first pass
    through_both = [p.grad.clone() for p in generator.parameters()]

    generator.zero_grad()
    second_only = generator(label1, generator(label0, torch.zeros_like(label0)).detach())
    second_only.mean().backward()
    # With the first frame detached the gradient differs: the first pass contributed.
    assert any(not torch.allclose(a, p.grad) for a, p in zip(through_both, generator.parameters()))
