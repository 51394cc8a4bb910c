"""Fake detector (paper section 5): which pairs it sees, its batches, its measures, its
checkpoints, and the whole chain through Snakemake and `edn detect` on real and
generated videos, with a tiny classifier."""

from __future__ import annotations

import csv
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from edn.core.checkpoint import Checkpoint, save_checkpoint
from edn.ingest.decode import decode_video
from edn.core.errors import EdnError
from edn.fake_detector.checkpoint import DetectorCheckpoint, load_detector, save_detector
from edn.fake_detector.compression import h264_round_trip
from edn.fake_detector.data import SubjectFrames, pair_for_sample, pair_tensors, training_batch
from edn.fake_detector.metrics import accuracy, average_precision, roc_auc, roc_curve
from edn.fake_detector.model import DetectorArchitecture, ResNetPair, build_detector, load_backbone_weights
from edn.fake_detector.pairs import DEFAULT_CUT_THRESHOLD, frame_changes, scene_cuts, split_subject_pairs
from edn.fake_detector.score import score_pairs, score_subject, tile_origins, tiles
from edn.fake_detector.train import train_detector
from edn.ingest.frames import load_frames
from edn.ingest.media import count_frames, encode_video
from edn.models import build_generator
from edn.core.options import DetectorOptions
from edn.core.presets import PRESETS
from helpers import DEMO, leftovers, run_edn, run_snakemake
from training_data import write_subject

@pytest.fixture
def one_thread():
    """Torch on one thread for the in-process tests: on a busy 2-core machine two
    threads wait on each other far longer than they compute."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- pairs -------------------------------------------------------------------------------------------


def test_pairs_never_span_a_frame_without_a_person_a_cut_or_the_held_out_boundary() -> None:
    #                    0  1  2  3  4  5  6  7  8  9 10 11
    has_body = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1], bool)
    cuts = np.zeros(11, bool)
    cuts[5] = True  # a cut between frames 5 and 6
    pairs = split_subject_pairs(has_body, cuts, first_heldout=8)
    assert list(pairs.training) == [0, 1, 4, 6]  # not 2 (3 empty), 3 (empty), 5 (cut), 7 (7 | 8 is the boundary)
    assert list(pairs.heldout) == [8, 9, 10]
    assert list(pairs.everything) == [0, 1, 4, 6, 8, 9, 10]


def test_scene_cut_found_where_two_real_videos_are_joined(tmp_path: Path) -> None:
    stores = []
    for name in ("source_dancer", "target_juggler"):
        decode_video(DEMO / f"{name}.mp4", tmp_path / f"{name}.npy", tmp_path / f"{name}.json", working_size=(64, 32))
        stores.append(np.asarray(load_frames(tmp_path / f"{name}.npy")))
    joined = np.concatenate(stores)
    cuts = scene_cuts(joined, DEFAULT_CUT_THRESHOLD)
    assert list(np.flatnonzero(cuts)) == [len(stores[0]) - 1]
    changes = frame_changes(joined)
    assert changes[len(stores[0]) - 1] > 2 * DEFAULT_CUT_THRESHOLD
    assert np.delete(changes, len(stores[0]) - 1).max() < DEFAULT_CUT_THRESHOLD / 3


def _coded_subject(frames: int = 20, size: tuple[int, int] = (48, 32), first_heldout: int = 15) -> SubjectFrames:
    """Frames whose pixels say what they are: red = frame number (+ 100 when generated),
    green = x, blue = y."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    real = np.empty((frames, height, width, 3), np.uint8)
    real[..., 1], real[..., 2] = xx * 4, yy * 4
    generated = real.copy()
    real[..., 0] = np.arange(frames)[:, None, None]
    generated[..., 0] = 100 + np.arange(frames)[:, None, None]
    has_body = np.ones(frames, bool)
    has_body[6] = False
    pairs = split_subject_pairs(has_body, np.zeros(frames - 1, bool), first_heldout)
    return SubjectFrames(name="coded", real=real, generated=generated, pairs=pairs)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x + 1.0) * 127.5).round().to(torch.int64).numpy()


@pytest.mark.parametrize("step", [0, 1, 7])
def test_a_training_batch_pairs_frame_t_with_t_plus_1_real_then_generated(step: int) -> None:
    subject = _coded_subject()
    inputs, targets, chosen = training_batch(subject, step, pairs_per_step=4, crop_size=16, seed=3)
    assert inputs.shape == (8, 6, 16, 16) and inputs.dtype == torch.float32
    assert float(inputs.min()) >= -1.0 and float(inputs.max()) <= 1.0
    assert targets.tolist() == [0.0] * 4 + [1.0] * 4
    assert set(chosen) <= set(subject.pairs.training)
    pixels = _to_uint8(inputs)
    for i in range(8):
        t = int(chosen[i % 4])
        offset = 100 if i >= 4 else 0
        assert (pixels[i, 0] == t + offset).all()  # frame t, from the right store
        assert (pixels[i, 3] == t + 1 + offset).all()  # then frame t + 1
        assert (pixels[i, 1:3] == pixels[i, 4:6]).all()  # both frames cropped and flipped alike
        assert (pixels[i, 1:3] == pixels[(i + 4) % 8, 1:3]).all()  # real and generated versions alike
        columns = pixels[i, 1, 0] // 4
        assert abs(int(np.diff(columns)[0])) == 1 and len(set(np.diff(columns))) == 1  # a crop, maybe mirrored


def test_flips_happen_and_are_seeded() -> None:
    subject = _coded_subject()
    directions = set()
    for step in range(6):
        first, _, _ = training_batch(subject, step, 4, 16, seed=3)
        again, _, _ = training_batch(subject, step, 4, 16, seed=3)
        assert torch.equal(first, again)
        directions |= {int(np.sign(np.diff(_to_uint8(first)[i, 1, 0])[0])) for i in range(4)}
    assert directions == {-1, 1}
    unflipped, _, _ = training_batch(subject, 0, 4, 16, seed=3, flip=False)
    assert all(np.diff(_to_uint8(unflipped)[i, 1, 0])[0] > 0 for i in range(8))


def test_compressed_copies_are_chosen_for_a_pair_and_its_twin_together() -> None:
    subject = _coded_subject()
    # Stand-ins for the H.264 copies whose pixels say so: red + 50.
    marked = {name: getattr(subject, name).copy() for name in ("real", "generated")}
    for array in marked.values():
        array[..., 0] += 50
    subject = replace(subject, real_compressed=marked["real"], generated_compressed=marked["generated"])
    kinds = []
    for step in range(8):
        inputs, _, chosen = training_batch(subject, step, pairs_per_step=4, crop_size=16, seed=3)
        red = _to_uint8(inputs)[:, 0, 0, 0]
        for i, t in enumerate(chosen):
            real_kind, generated_kind = red[i] - t, red[i + 4] - t - 100
            assert real_kind == generated_kind and real_kind in (0, 50)
            kinds.append(real_kind)
    assert 0.3 < np.mean(np.array(kinds) == 50) < 0.7


def test_h264_round_trip_keeps_the_frames_and_changes_their_pixels_a_little(tmp_path: Path) -> None:
    decode_video(DEMO / "target_juggler.mp4", tmp_path / "frames.npy", tmp_path / "meta.json", working_size=(128, 64))
    frames = np.asarray(load_frames(tmp_path / "frames.npy")[:40])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    compressed = h264_round_trip(frames, scratch, "juggler", fps="24", crf=18)
    assert compressed.shape == frames.shape and compressed.dtype == np.uint8
    change = np.abs(compressed.astype(float) - frames).mean(axis=(1, 2, 3))
    assert np.all(change > 0.1) and np.all(change < 5)  # every frame touched, none replaced
    harder = h264_round_trip(frames, scratch, "juggler_hard", fps="24", crf=40)
    assert np.abs(harder.astype(float) - frames).mean() > 2 * change.mean()


def test_every_training_pair_once_per_epoch() -> None:
    pairs = np.array([0, 1, 4, 6, 9])
    epoch = [pair_for_sample(pairs, k, seed=1) for k in range(5)]
    assert sorted(epoch) == list(pairs)
    assert epoch != [pair_for_sample(pairs, k, seed=1) for k in range(5, 10)]


def test_whole_frame_pair_tensors() -> None:
    subject = _coded_subject()
    pixels = _to_uint8(pair_tensors(subject.generated, np.array([3, 15])))
    assert pixels.shape == (2, 6, 32, 48)
    assert (pixels[:, 0, 0, 0] == [103, 115]).all() and (pixels[:, 3, 0, 0] == [104, 116]).all()


# -- measures ----------------------------------------------------------------------------------------


def test_average_precision_roc_and_accuracy_by_hand() -> None:
    scores, truth = np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0], bool)
    # Generated pairs found at ranks 1 and 3: AP = 1/2 * 1/1 + 1/2 * 2/3.
    assert average_precision(scores, truth) == pytest.approx(0.5 + 1 / 3)
    assert roc_auc(scores, truth) == pytest.approx(0.75)  # 3 of the 4 (generated, real) orderings right
    fpr, tpr, thresholds = roc_curve(scores, truth)
    assert list(fpr) == [0, 0, 0.5, 0.5, 1] and list(tpr) == [0, 0.5, 0.5, 1, 1]
    assert thresholds[0] == np.inf and list(thresholds[1:]) == [0.9, 0.8, 0.7, 0.6]
    assert accuracy(scores, truth) == 0.5 and accuracy(scores, truth, threshold=0.65) == 0.75
    # A tie is one threshold: the order of tied samples changes nothing.
    assert average_precision(np.array([0.5, 0.5]), np.array([1, 0], bool)) == 0.5
    assert average_precision(np.array([0.5, 0.5]), np.array([0, 1], bool)) == 0.5
    assert roc_auc(np.array([0.5, 0.5]), np.array([1, 0], bool)) == 0.5
    assert average_precision(np.array([0.2, 0.9]), np.array([0, 1], bool)) == 1.0
    assert np.isnan(average_precision(np.array([0.2]), np.array([0], bool)))


def test_roc_auc_is_the_share_of_correctly_ordered_pairs() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 10, 60) / 10  # many ties
    truth = rng.random(60) < 0.4
    generated, real = scores[truth], scores[~truth]
    pairwise = ((generated[:, None] > real[None]).sum() + 0.5 * (generated[:, None] == real[None]).sum())
    assert roc_auc(scores, truth) == pytest.approx(pairwise / (len(generated) * len(real)))
    shuffled = rng.permutation(60)
    assert average_precision(scores[shuffled], truth[shuffled]) == pytest.approx(average_precision(scores, truth))


# -- model and checkpoints ---------------------------------------------------------------------------


def test_scores_are_probabilities_for_any_frame_size(one_thread) -> None:
    torch.manual_seed(0)
    model = build_detector(DetectorArchitecture(width=4)).eval()
    rng = np.random.default_rng(0)
    for size in ((48, 32), (100, 70)):
        frames = rng.integers(0, 256, (5, size[1], size[0], 3), dtype=np.uint8)
        frames[0] = 255
        frames[1] = 0
        for tile in (None, 16, 40):
            scores = score_pairs(model, frames, np.arange(4), torch.device("cpu"), tile_size=tile, batch_pairs=3)
            assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1)) and len(set(scores)) > 1


def test_tiles_cover_the_frame_like_training_crops() -> None:
    assert tile_origins(256, 96) == [0, 80, 160] and tile_origins(128, 96) == [0, 32]
    assert tile_origins(96, 96) == [0] and tile_origins(50, 96) == [0]
    pairs = torch.arange(2 * 6 * 128 * 256, dtype=torch.float32).view(2, 6, 128, 256)
    windows = tiles(pairs, 96)
    assert windows.shape == (2, 6, 6, 96, 96)
    assert torch.equal(windows[1, 4], pairs[1, :, 32:128, 80:176])  # second row, middle column
    assert tiles(pairs, None).shape == (2, 1, 6, 128, 256)
    assert tiles(pairs[:, :, :64, :64], 96).shape == (2, 1, 6, 64, 64)  # a tile never exceeds the frame


def test_the_detector_learns_a_visible_difference_and_generalises_to_held_out_frames(one_thread) -> None:
    torch.manual_seed(0)
    subject = _blurred_subject()
    model = build_detector(DetectorArchitecture(width=4))
    options = DetectorOptions(iterations=80, batch_size=8, learning_rate=2e-3, crop_size=32)
    summary = train_detector(model, subject, options, torch.device("cpu"), progress=False)
    scored = score_subject(model, subject, subject.pairs.heldout, "heldout_frames", torch.device("cpu"),
                           tile_size=options.crop_size)
    assert summary.final_batch_accuracy > 0.9
    # Trained on 32x32 crops, scored on 64x32 frames it never saw (two tiles each).
    assert average_precision(scored.scores, scored.is_generated) > 0.95
    assert accuracy(scored.scores, scored.is_generated) > 0.8


def _blurred_subject() -> SubjectFrames:
    """Real: textured frames drifting right; generated: the same frames blurred (what a
    small generator's output looks like next to a camera's)."""
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (32, 96, 3)).astype(np.float32)
    real = np.stack([np.roll(texture, t, axis=1)[:, :64] for t in range(40)]).astype(np.uint8)
    padded = np.pad(real.astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(padded[:, dy:dy + 32, dx:dx + 64] for dy in range(3) for dx in range(3)) / 9
    pairs = split_subject_pairs(np.ones(40, bool), np.zeros(39, bool), first_heldout=30)
    return SubjectFrames(name="blur", real=real, generated=blurred.round().astype(np.uint8), pairs=pairs)


def test_checkpoint_round_trip_is_strict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    architecture = DetectorArchitecture(width=4)
    model = build_detector(architecture)
    path = tmp_path / "detector.pt"
    save_detector(path, DetectorCheckpoint(step=3, architecture=architecture, options={"subject": "x"},
                                           model=model.state_dict()))
    loaded, checkpoint = load_detector(path)
    assert checkpoint.step == 3 and checkpoint.architecture == architecture and checkpoint.options == {"subject": "x"}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)

    wrong = tmp_path / "wrong.pt"
    save_detector(wrong, DetectorCheckpoint(step=3, architecture=DetectorArchitecture(width=8), options={},
                                            model=model.state_dict()))
    with pytest.raises(EdnError, match="the classifier does not fit the network"):
        load_detector(wrong)
    gan = tmp_path / "global.pt"
    save_checkpoint(gan, Checkpoint(stage="global", step=1, preset=PRESETS["tiny"], options={},
                                    models={"generator": build_generator(PRESETS["tiny"], "global").state_dict()}))
    with pytest.raises(EdnError, match="not an edn fake-detector checkpoint"):
        load_detector(gan)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(EdnError, match="not readable as an edn"):
        load_detector(text)
    with pytest.raises(EdnError, match="file not found"):
        load_detector(tmp_path / "missing.pt")
    assert not leftovers(tmp_path)


def test_resnet18_backbone_only_from_weights_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     one_thread) -> None:
    from torchvision.models import resnet18

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty cache
    model = build_detector(DetectorArchitecture(backbone="resnet18"))
    with pytest.raises(EdnError, match="not on this machine"):
        load_backbone_weights(model, None)
    with pytest.raises(EdnError, match="file not found"):
        load_backbone_weights(model, tmp_path / "nowhere.pth")
    # A torchvision-layout ResNet-18 state dict (random here: the layout is what is checked).
    torch.manual_seed(0)
    source = resnet18(weights=None).state_dict()
    torch.save(source, tmp_path / "resnet18.pth")
    assert load_backbone_weights(model, tmp_path / "resnet18.pth") == tmp_path / "resnet18.pth"
    assert isinstance(model, ResNetPair)
    inflated = model.net.conv1.weight.detach()
    assert inflated.shape == (64, 6, 7, 7)
    assert torch.allclose(inflated[:, :3], source["conv1.weight"] / 2) and torch.equal(inflated[:, :3], inflated[:, 3:])
    assert torch.equal(model.net.layer4[1].conv2.weight.detach(), source["layer4.1.conv2.weight"])
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    scores = score_pairs(model.eval(), frames, np.arange(2), torch.device("cpu"), tile_size=None)
    assert np.all((scores >= 0) & (scores <= 1))
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "other.pth")
    with pytest.raises(EdnError, match="not a torchvision ResNet-18 state dict"):
        load_backbone_weights(model, tmp_path / "other.pth")


def test_training_options_are_checked() -> None:
    with pytest.raises(EdnError, match="option batch_size 7: must be a multiple of 2"):
        DetectorOptions(batch_size=7)
    with pytest.raises(EdnError, match="option batch_size 0: must be at least 2"):
        DetectorOptions(batch_size=0)
    with pytest.raises(EdnError, match="backbone 'vgg'"):
        DetectorArchitecture(backbone="vgg")


# -- the chain: Snakemake rules, then `edn detect` on real and generated videos -----------------------

SIZE = (128, 64)  # the smallest working size the config allows


def _tiny_target(workdir: Path, name: str, video: Path) -> int:
    """A target whose real frames are a demo video decoded at 128x64, with synthetic
    stick-figure labels (a few frames without a person) and an untrained tiny generator
    standing in for its trained models."""
    frames_dir = workdir / "results" / "frames" / name
    meta = decode_video(video, frames_dir / "frames.npy", frames_dir / "meta.json", working_size=SIZE)
    has_body = np.ones(meta.frame_count, bool)
    has_body[[5, 6, 40]] = False
    write_subject(workdir / "results" / "labels" / name, frames=meta.frame_count, size=SIZE, has_body=has_body)
    (workdir / "results" / "labels" / name / "frames.npy").unlink()  # the synthetic frames: the video's are used
    torch.manual_seed(len(name))
    generator = build_generator(PRESETS["tiny"], "global")
    save_checkpoint(workdir / "results" / "models" / name / "global.pt",
                    Checkpoint(stage="global", step=1, preset=PRESETS["tiny"], options={"image_size": list(SIZE)},
                               models={"generator": generator.state_dict()}))
    return meta.frame_count


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory) -> dict:
    """`snakemake detectors` with two targets (each the other's held-out subject), tiny sizes."""
    workdir = tmp_path_factory.mktemp("detector")
    counts = {"juggler": _tiny_target(workdir, "juggler", DEMO / "target_juggler.mp4"),
              "dancer": _tiny_target(workdir, "dancer", DEMO / "source_dancer.mp4")}
    config = {
        "subjects": {"juggler": {"video": str(DEMO / "target_juggler.mp4")},
                     "dancer": {"video": str(DEMO / "source_dancer.mp4")}},
        "pairs": [{"source": "dancer", "target": "juggler"}, {"source": "juggler", "target": "dancer"}],
        "frames": {"width": SIZE[0], "height": SIZE[1]},
        # The stand-in models draw the whole frame (the paper's method): no background plate is needed.
        "training": {"preset": "tiny", "method": "paper", "use_face_gan": False, "holdout_fraction": 0.2},
        "synthesis": {"precision": "fp32", "threads": 1},
        "detector": {"iterations": 30, "batch_size": 8, "learning_rate": 0.002, "crop_size": 32, "width": 4,
                     "threads": 1},
    }
    # Only the detector's rules run: the frames, labels and models above stand for the earlier stages.
    result = run_snakemake(workdir, config, "--allowed-rules", "generate_own_frames", "train_detector",
                           "evaluate_detector", "detector_page", "detectors", "--", "detectors", timeout=900)
    return {"workdir": workdir, "result": result, "counts": counts}


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_detector_rules_train_on_the_start_and_score_the_held_out_end_and_the_other_target(detector_run) -> None:
    result, workdir, counts = detector_run["result"], detector_run["workdir"], detector_run["counts"]
    assert result.returncode == 0, result.output
    for name, count in counts.items():
        generated = load_frames(workdir / "results" / "detector" / name / "generated.npy")
        assert generated.shape == (count, SIZE[1], SIZE[0], 3)
        _, checkpoint = load_detector(workdir / "results" / "detector" / name / "detector.pt")
        first_heldout = count - int(np.ceil(count * 0.2))
        # frames 5, 6 and 40 have nobody: pairs 4, 5, 6, 39 and 40 are out, and the one across the boundary.
        assert checkpoint.options["first_heldout"] == first_heldout
        assert checkpoint.options["training_pairs"] == first_heldout - 1 - 5
        assert checkpoint.options["heldout_pairs"] == count - first_heldout - 1
        assert checkpoint.options["working_size"] == list(SIZE) and checkpoint.step == 30
        rows = _read_csv(workdir / "results" / "detector" / name / "metrics.csv")
        other = "dancer" if name == "juggler" else "juggler"
        pairs = {(row["split"], row["subject"]): int(row["pairs"]) for row in rows}
        assert pairs == {("heldout_frames", name): 2 * (count - first_heldout - 1),
                         ("heldout_frames_h264_crf18", name): 2 * (count - first_heldout - 1),
                         ("heldout_subject", other): 2 * (counts[other] - 1 - 5 - 1),
                         ("heldout_subject_h264_crf18", other): 2 * (counts[other] - 1 - 5 - 1),
                         ("training_frames", name): 2 * (first_heldout - 1 - 5)}
        assert checkpoint.options["compression_crf"] == 18
        for row in rows:
            assert 0.0 <= float(row["value"]) <= 1.0, row
        roc = workdir / "results" / "detector" / name / "roc.png"
        assert roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (workdir / "results" / "report" / f"{name}_detector.html").is_file()
        assert (workdir / "results" / "benchmarks" / "train_detector" / f"{name}.tsv").is_file()
    assert not leftovers(workdir)


@pytest.mark.slow
def test_edn_detect_scores_a_real_video_and_a_generated_one(detector_run, tmp_path: Path) -> None:
    assert detector_run["result"].returncode == 0, detector_run["result"].output
    workdir = detector_run["workdir"]
    detector = workdir / "results" / "detector" / "juggler" / "detector.pt"
    generated = load_frames(workdir / "results" / "detector" / "juggler" / "generated.npy")
    generated_video = encode_video(iter(generated), tmp_path / "generated.mp4", fps=Fraction(24), size=SIZE)
    verdicts = {}
    for name, video in (("real", DEMO / "source_aerobics.mp4"), ("generated", generated_video)):
        scores, plot = tmp_path / f"{name}.csv", tmp_path / f"{name}.png"
        run = run_edn("detect", video, "--detector", detector, "--output", scores, "--plot", plot, "--threads", "1")
        assert run.returncode == 0, run.stderr
        rows = _read_csv(scores)
        assert len(rows) == count_frames(video) - 1
        assert [(int(r["first_frame"]), int(r["second_frame"])) for r in rows] == [(t, t + 1) for t in range(len(rows))]
        values = np.array([float(r["score"]) for r in rows])
        assert np.all((values >= 0) & (values <= 1))
        verdict = "generated" if values.mean() >= 0.5 else "real"
        assert run.stdout.startswith(f"{video}: {verdict} (mean score ")
        assert f"over {len(rows)} frame pairs" in run.stdout
        printed_mean = float(run.stdout.split("mean score ")[1].split()[0])
        assert printed_mean == pytest.approx(values.mean(), abs=1e-3)
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        verdicts[name] = verdict
    # The untrained tiny generator's frames are easy to tell from a camera's.
    assert verdicts == {"real": "real", "generated": "generated"}


@pytest.mark.slow
def test_bad_input_is_one_line_and_writes_nothing(detector_run, tmp_path: Path) -> None:
    workdir = detector_run["workdir"]
    detector = workdir / "results" / "detector" / "juggler" / "detector.pt"
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video")
    gan = workdir / "results" / "models" / "juggler" / "global.pt"
    for video, model, message in (
        (not_a_video, detector, f"video {str(not_a_video)!r}: not a readable video"),
        (tmp_path / "missing.mp4", detector, f"video {str(tmp_path / 'missing.mp4')!r}: file not found"),
        (DEMO / "source_dancer.mp4", gan, f"detector {str(gan)!r}: not an edn fake-detector checkpoint"),
    ):
        run = run_edn("detect", video, "--detector", model, "--output", tmp_path / "scores.csv")
        assert run.returncode == 1 and len(run.error_lines) == 1 and message in run.error_lines[0], run.stderr
        assert not (tmp_path / "scores.csv").exists()
    results = workdir / "results"
    wrong = results / "detector" / "dancer" / "generated.npy"  # another subject's frames
    run = run_edn("train-detector", "--subject", "juggler", "--frames", results / "frames/juggler/frames.npy",
                  "--meta", results / "frames/juggler/meta.json", "--generated", wrong,
                  "--index", results / "labels/juggler/index.csv", "--holdout-fraction", "0.2",
                  "--output", tmp_path / "detector.pt")
    assert run.returncode == 1 and len(run.error_lines) == 1, run.stderr
    assert f"generated frames {str(wrong)!r}: shape [102, 64, 128, 3] does not match the real frames" in run.stderr
    assert not (tmp_path / "detector.pt").exists()
    assert not leftovers(tmp_path)


def test_the_demos_regenerated_video_reads_each_frames_first_training_exemplar_and_keeps_its_face(tmp_path) -> None:
    """A dry run with the demo's config (a residual generator, training.exemplar_choices exemplars per frame): the
    target's own video is drawn from its training exemplars, the first choice of each frame, keeping their faces
    where its own poses put them. Before, the four-per-frame store was refused as one per label."""
    from test_workflow import demo_config

    result = run_snakemake(tmp_path, demo_config(), "-n", "-p", "--forceall", "detectors")
    assert result.returncode == 0, result.output
    jobs = [job for job in result.output.split("\n\n") if "rule generate_own_frames:" in job]
    assert len(jobs) == 1
    assert "--exemplars results/exemplars/juggler/training.npy" in jobs[0]
    assert "--exemplar-choices 4" in jobs[0]
    assert "--poses results/poses/juggler.filtered.parquet --exemplar-face" in jobs[0]
