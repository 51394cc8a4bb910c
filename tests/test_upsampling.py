"""Resize-convolution upsampling (edn.models.generator): the networks it builds, which method
gets which upsampling, the checkpoint that records it, synthesis that rebuilds it from the
checkpoint, and a resumed training run that is still bit-equal to a straight one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edn.background.plate import read_plate
from edn.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edn.core.errors import EdnError
from edn.core.options import TrainingOptions
from edn.core.presets import PRESETS
from edn.models import build_face_generator, build_generator
from edn.models.generation import load_frame_generator
from edn.models.generator import ResizeConv
from helpers import run_edn
from test_training import _train_args
from training_data import resume_after_a_kill, write_subject

TINY, SMALL = PRESETS["tiny"], PRESETS["small"]


def _count(network: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(module, kind) for module in network.modules())


def _inputs(height: int, width: int, compositing: bool) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    label = torch.rand(1, 3, height, width, generator=generator)
    previous = torch.rand(1, 3, height, width, generator=generator) * 2 - 1
    plate = torch.rand(1, 3, height, width, generator=generator) * 2 - 1
    return (label, previous, plate) if compositing else (label, previous)


@pytest.mark.parametrize("preset", [TINY, SMALL], ids=lambda p: p.name)
@pytest.mark.parametrize("compositing", [False, True], ids=["whole-frame", "compositing"])
@pytest.mark.parametrize("kind", ["global", "local"])
@pytest.mark.parametrize("size", [(64, 128), (48, 80)], ids=["64x128", "48x80"])
def test_the_resize_convolution_generators_output_has_the_requested_shape(preset, compositing, kind,
                                                                           size) -> None:
    height, width = size  # multiples of 16, the small local enhancer's size multiple
    torch.manual_seed(0)
    generator = build_generator(preset, kind, compositing=compositing, upsampling="resize")
    transposed = build_generator(preset, kind, compositing=compositing)
    with torch.no_grad():
        out = generator(*_inputs(height, width, compositing))
    if compositing:
        frame, mask = out
        assert frame.shape == (1, 3, height, width) and mask.shape == (1, 1, height, width)
        assert 0 <= float(mask.min()) and float(mask.max()) <= 1
    else:
        frame = out
        assert frame.shape == (1, 3, height, width)
    assert float(frame.min()) >= -1 and float(frame.max()) <= 1 and float(frame.std()) > 0
    # Every transposed convolution became a resize convolution, with the same parameters.
    ups = preset.n_downsampling + (kind == "local")
    assert _count(generator, torch.nn.ConvTranspose2d) == 0 and _count(generator, ResizeConv) == ups
    assert _count(transposed, torch.nn.ConvTranspose2d) == ups and _count(transposed, ResizeConv) == 0
    assert sum(p.numel() for p in generator.parameters()) == sum(p.numel() for p in transposed.parameters())
    assert generator.state_dict().keys() == transposed.state_dict().keys()


def test_the_local_enhancer_takes_the_global_stage_of_its_own_upsampling() -> None:
    torch.manual_seed(1)
    global_generator = build_generator(TINY, "global", compositing=True, upsampling="resize")
    local = build_generator(TINY, "local", compositing=True, upsampling="resize")
    local.body.load_global_weights({key.removeprefix("body."): value
                                    for key, value in global_generator.state_dict().items()})
    x = torch.rand(1, 9, 32, 64)
    with torch.no_grad():
        assert torch.equal(local.body.global_trunk(x), global_generator.body.trunk(x))
    transposed = build_generator(TINY, "global", compositing=True)
    with pytest.raises(EdnError, match="does not fit the local enhancer"):
        local.body.load_global_weights({key.removeprefix("body."): value
                                        for key, value in transposed.state_dict().items()}, source="global.pt")


def test_the_resize_convolution_face_generator_keeps_the_frame_outside_its_box() -> None:
    torch.manual_seed(0)
    face = build_face_generator(SMALL, "resize")
    label, image = _inputs(64, 128, compositing=False)
    box = (3, 5, 24, 27)  # 21 x 22 px: padded to the 8 of 3 downsamplings inside
    with torch.no_grad():
        out = face(image, label, [box])
    assert out.shape == image.shape
    inside = torch.zeros_like(image, dtype=torch.bool)
    inside[..., 5:27, 3:24] = True
    assert torch.equal(out[~inside], image[~inside]) and not torch.equal(out[inside], image[inside])
    assert _count(face, torch.nn.ConvTranspose2d) == 0 and _count(face, ResizeConv) == SMALL.face_downsampling
    assert (sum(p.numel() for p in face.parameters())
            == sum(p.numel() for p in build_face_generator(SMALL).parameters()))


def test_a_resize_convolution_spreads_a_flat_input_evenly_a_transposed_one_does_not() -> None:
    """The checkerboard (Odena, Dumoulin and Olah 2016): with equal weights, a 3x3 stride-2
    transposed convolution gives the output pixels 1, 2 or 4 contributions by their parity;
    upsampling first gives each of them 9."""
    flat = torch.ones(1, 1, 8, 8)
    transposed = torch.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
    resize = ResizeConv(1, 1)
    with torch.no_grad():
        transposed.weight.fill_(1.0)
        resize.weight.fill_(1.0)
        resize.bias.zero_()
        checkerboard, even = transposed(flat)[0, 0, 1:-1, 1:-1], resize(flat)[0, 0]
    assert even.shape == (16, 16) and torch.equal(even, torch.full_like(even, 9.0))
    assert set(checkerboard.unique().tolist()) == {1.0, 2.0, 4.0}


def test_which_method_upsamples_how() -> None:
    def resolved(started_from: str | None = None, **values) -> str:
        return TrainingOptions(stage="global", iterations=1, **values).generator_upsampling(started_from)

    assert TrainingOptions(stage="global", iterations=1).upsampling == "auto"
    assert resolved() == "transposed"  # the composite method drawing the person itself
    assert resolved(exemplar="input") == "transposed"
    assert resolved(exemplar="residual") == "resize"  # a correction of the target's own pixels
    assert resolved(exemplar="residual", upsampling="transposed") == "transposed"
    assert resolved(method="paper", exemplar="residual") == "transposed"
    assert resolved(upsampling="resize") == "resize"
    assert resolved(method="paper") == "transposed"
    assert resolved(method="paper", upsampling="transposed") == "transposed"
    assert resolved(upsampling="transposed") == "transposed"
    with pytest.raises(EdnError, match="upsampling resize: the paper's method keeps pix2pixHD's transposed"):
        TrainingOptions(stage="global", iterations=1, method="paper", upsampling="resize")
    # Later stages follow the checkpoint they start from.
    assert resolved("transposed") == "transposed" and resolved("resize", method="paper") == "resize"
    assert resolved("transposed", exemplar="residual") == "transposed"  # a face stage behind an older model
    with pytest.raises(EdnError, match="previous stage's generator upsamples by transposed"):
        resolved("transposed", upsampling="resize")
    with pytest.raises(EdnError, match="must be one of auto, transposed, resize"):
        TrainingOptions(stage="global", iterations=1, upsampling="bilinear")


def _without_upsampling(path: Path, output: Path) -> None:
    """``path`` saved again as a checkpoint written before the option (no upsampling recorded)."""
    checkpoint = load_checkpoint(path)
    options = {key: value for key, value in checkpoint.options.items() if key != "upsampling"}
    save_checkpoint(output, Checkpoint(checkpoint.stage, checkpoint.step, checkpoint.preset, options,
                                       checkpoint.models))


@pytest.mark.slow
def test_checkpoints_record_the_upsampling_and_synthesis_rebuilds_it(tmp_path: Path,
                                                                      perceptual_weights: Path) -> None:
    data = {**write_subject(tmp_path / "subject", size=(128, 64)), "perceptual": perceptual_weights}
    for name, extra in (("composite", ("--upsampling", "resize")), ("paper", ("--method", "paper"))):
        trained = run_edn(*_train_args(data, tmp_path, name, *extra, iterations=2))
        assert trained.returncode == 0, trained.stderr
    face = run_edn(*_train_args(data, tmp_path, "composite", "--init", tmp_path / "composite" / "global.pt",
                                stage="face", iterations=2))
    assert face.returncode == 0, face.stderr
    composite, paper = tmp_path / "composite", tmp_path / "paper"
    assert load_checkpoint(composite / "global.pt").options["upsampling"] == "resize"  # asked for
    assert load_checkpoint(composite / "face.pt").options["upsampling"] == "resize"  # the stage it started from
    assert load_checkpoint(paper / "global.pt").options["upsampling"] == "transposed"
    assert json.loads((composite / "run" / "options.json").read_text())["upsampling"] == "resize"

    plate = read_plate(data["plate"])
    cpu = torch.device("cpu")
    models = load_frame_generator(composite / "global.pt", composite / "face.pt", cpu, plate)
    for network in (models.generator, models.face_generator):
        assert _count(network, torch.nn.ConvTranspose2d) == 0 and _count(network, ResizeConv) > 0
    assert "resize upsampling" in models.description
    whole_frame = load_frame_generator(paper / "global.pt", None, cpu)
    assert _count(whole_frame.generator, torch.nn.ConvTranspose2d) == TINY.n_downsampling
    assert _count(whole_frame.generator, ResizeConv) == 0

    # A checkpoint from before the option loads as transposed: the paper's network loads and draws
    # as before, and the resize-convolution weights do not fit it (the record is what decides).
    _without_upsampling(paper / "global.pt", tmp_path / "old_paper.pt")
    old = load_frame_generator(tmp_path / "old_paper.pt", None, cpu)
    assert _count(old.generator, torch.nn.ConvTranspose2d) == TINY.n_downsampling
    label = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(old.generator(label, torch.zeros_like(label)),
                           whole_frame.generator(label, torch.zeros_like(label)))
    _without_upsampling(composite / "global.pt", tmp_path / "old_composite.pt")
    with pytest.raises(EdnError, match="does not fit the network"):
        load_frame_generator(tmp_path / "old_composite.pt", None, cpu, plate)
    # A face GAN of one upsampling is not put on a generator of the other.
    _without_upsampling(composite / "face.pt", tmp_path / "old_face.pt")
    with pytest.raises(EdnError, match="trained on another generator.*transposed upsampling"):
        load_frame_generator(composite / "global.pt", tmp_path / "old_face.pt", cpu, plate)


@pytest.mark.slow
@pytest.mark.parametrize("upsampling", ["resize", "transposed"])
def test_a_resumed_run_is_bit_equal_to_a_straight_one(tmp_path: Path, perceptual_weights: Path,
                                                      upsampling: str) -> None:
    """20 iterations straight, then the same run as a kill after the step-10 checkpoint
    leaves it (the newer checkpoint, the model and the finished mark gone), resumed."""
    data = {**write_subject(tmp_path / "subject"), "perceptual": perceptual_weights}
    args = ("--upsampling", upsampling)
    a, b = resume_after_a_kill(data, tmp_path, *args)
    assert a.options["upsampling"] == b.options["upsampling"] == upsampling
