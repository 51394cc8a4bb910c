"""The working frame follows the video's orientation (config ``frames.orientation``).

A portrait target (here a 9:16 window cut out of the demo juggler, as a phone held
upright films) is decoded portrait at the configured pixel count, so its person is
drawn nearly twice as tall as in the landscape frame padded around it; a pair works
and is delivered in its target's frame (docs/configuration.md).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from edn.core.errors import EdnError
from edn.ingest.decode import decode_video
from edn.ingest.frames import load_frames, oriented_size, read_meta
from edn.ingest.media import probe_video
from edn.labels.label_store import load_labels
from edn.normalize.pose_transform import depth_mapping, normalize_poses
from edn.normalize.subject_stats import compute_stats, head_points, ankle_measures
from edn.pose.keypoints import read_pose_table
from edn.pose.skeleton import Body
from helpers import DEMO, ffmpeg, run_edn, run_snakemake
from synthetic_poses import walking_sequence

DEMO_SIZE = (512, 256)  # config/config.yaml's frames


@pytest.fixture(scope="module")
def portrait_clip(tmp_path_factory) -> Path:
    """1.5 s of the demo juggler through a centred 9:16 window: 404x720 displayed upright."""
    path = tmp_path_factory.mktemp("portrait") / "juggler_portrait.mp4"
    ffmpeg("-ss", "2", "-t", "1.5", "-i", DEMO / "target_juggler.mp4", "-vf", "crop=trunc(ih*9/16/2)*2:ih",
           "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
    return path


@pytest.fixture(scope="module")
def rotated_clip(tmp_path_factory) -> Path:
    """A landscape-coded 320x240 clip whose rotation metadata shows it upright (as phones record)."""
    directory = tmp_path_factory.mktemp("rotated")
    coded = directory / "coded.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=1", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", coded)
    path = directory / "rotated.mp4"
    ffmpeg("-i", coded, "-c", "copy", "-metadata:s:v:0", "rotate=90", path)
    return path


def test_oriented_size_keeps_the_pixel_count() -> None:
    assert oriented_size((512, 256), (404, 720), "auto") == (256, 512)
    assert oriented_size((512, 256), (1280, 720), "auto") == (512, 256)
    assert oriented_size((256, 512), (1280, 720), "auto") == (512, 256)  # a configured portrait size turns too
    assert oriented_size((512, 256), (500, 500), "auto") == (512, 256)  # square: as configured
    assert oriented_size((512, 256), (1280, 720), "portrait") == (256, 512)
    assert oriented_size((256, 512), (404, 720), "landscape") == (512, 256)
    with pytest.raises(EdnError, match="orientation 'sideways': must be one of auto, landscape, portrait"):
        oriented_size((512, 256), (404, 720), "sideways")


def test_a_portrait_video_is_decoded_portrait_and_a_landscape_one_unchanged(portrait_clip, tmp_path) -> None:
    portrait = decode_video(portrait_clip, tmp_path / "p.npy", tmp_path / "p.json", working_size=DEMO_SIZE,
                            orientation="auto")
    frames = load_frames(tmp_path / "p.npy")
    assert portrait.working_size == (256, 512) and frames.shape[1:] == (512, 256, 3)
    assert frames.shape[1] * frames.shape[2] == DEMO_SIZE[0] * DEMO_SIZE[1]
    assert read_meta(tmp_path / "p.json").working_size == (256, 512)
    # 404x720 into 256x512: 256 wide, 456 tall, centred; into 512x256 (today): 144 wide, 256 tall.
    assert portrait.scaled_size == (256, 456) and portrait.offset == (0, 28)
    padded = decode_video(portrait_clip, tmp_path / "l.npy", tmp_path / "l.json", working_size=DEMO_SIZE,
                          orientation="landscape")
    assert padded.working_size == DEMO_SIZE and padded.scaled_size == (144, 256)

    landscape = decode_video(DEMO / "target_juggler.mp4", tmp_path / "j.npy", tmp_path / "j.json",
                             working_size=DEMO_SIZE, orientation="auto")
    assert landscape.working_size == DEMO_SIZE
    assert load_frames(tmp_path / "j.npy").shape[1:] == (256, 512, 3)


def test_rotation_metadata_decides_the_orientation(rotated_clip, tmp_path) -> None:
    assert probe_video(rotated_clip).size == (240, 320)
    meta = decode_video(rotated_clip, tmp_path / "f.npy", tmp_path / "m.json", working_size=(256, 128),
                        orientation="auto")
    assert meta.working_size == (128, 256)
    # ffmpeg applies the rotation while decoding: the content fills the portrait frame's width.
    assert meta.scaled_size == (128, 171)
    assert load_frames(tmp_path / "f.npy").shape == (10, 256, 128, 3)


def test_the_decode_command_takes_the_orientation(portrait_clip, tmp_path) -> None:
    result = run_edn("decode", "--video", portrait_clip, "--frames", tmp_path / "f.npy", "--meta",
                     tmp_path / "m.json", "--width", "512", "--height", "256", "--orientation", "auto")
    assert result.returncode == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["working_size"] == [256, 512]
    bad = run_edn("decode", "--video", portrait_clip, "--frames", tmp_path / "g.npy", "--meta",
                  tmp_path / "g.json", "--orientation", "upright")
    assert bad.returncode != 0 and "upright" in bad.output and not (tmp_path / "g.npy").exists()


def test_a_landscape_source_is_normalized_into_a_portrait_targets_frame() -> None:
    # The source at 512x256, its ankles at x = 300 (44 px right of its centre); the target at 256x512.
    source_poses = walking_sequence(np.linspace(150, 210, 7), np.linspace(90, 120, 7), ankle_x=300,
                                    frame_size=(512, 256))
    target_poses = walking_sequence(np.linspace(300, 460, 9), np.linspace(250, 330, 9), ankle_x=128,
                                    frame_size=(256, 512))
    source, target = compute_stats(source_poses, "landscape"), compute_stats(target_poses, "portrait")
    normalized, _ = normalize_poses(source_poses, source, target)
    assert normalized.frame_size == (256, 512)
    _, ankle_mid, _ = ankle_measures(normalized.keypoints)
    np.testing.assert_allclose(ankle_mid[:, 0], 128 + 44, atol=1e-3)  # 44 px right of the target's centre
    lower = np.maximum(normalized.keypoints[:, Body.R_ANKLE, 1], normalized.keypoints[:, Body.L_ANKLE, 1])
    mapping = depth_mapping(source, target)  # eq. 7 in the target's rows: the closest frame lands on close_t
    assert lower.max() == pytest.approx(mapping.close_t, abs=1e-3) and target.far <= mapping.close_t <= target.close
    head, _ = head_points(normalized.keypoints)
    assert (head[:, 1] >= 0).all() and (head[:, 1] < lower).all()


def _body_heights(poses) -> np.ndarray:
    """Head-to-ankle height in pixels of every frame that shows both (as the statistics measure it)."""
    _, ankle_mid, has_ankles = ankle_measures(poses.keypoints)
    head, has_head = head_points(poses.keypoints)
    valid = has_ankles & has_head
    return np.linalg.norm(head[valid] - ankle_mid[valid], axis=1)


@pytest.mark.slow
def test_the_portrait_person_is_drawn_nearly_twice_as_tall(portrait_clip, tmp_path) -> None:
    """MediaPipe on the same 9:16 clip decoded three ways: padded into 512x256 (before this
    option), portrait at the same pixel count (auto: 256x512), and a size asked for (288x512)."""
    from edn.pose.detect import detect

    heights = {}
    for name, size, orientation in (("padded", (512, 256), "landscape"), ("auto", (512, 256), "auto"),
                                    ("asked", (512, 288), "portrait")):
        directory = tmp_path / name
        directory.mkdir()
        decode_video(portrait_clip, directory / "f.npy", directory / "m.json", working_size=size,
                     orientation=orientation, fps=8)
        poses = detect("mediapipe", frames_path=directory / "f.npy", meta_path=directory / "m.json",
                       workers=1, scratch_dir=directory, show_progress=False)
        found = _body_heights(poses)
        assert len(found) >= 6, f"{name}: a body with head and ankles in only {len(found)} of 12 frames"
        heights[name] = float(np.median(found))
    print("median body height, px:", heights)
    # The geometric ratios are 456/256 = 1.78 (same pixel count) and 512/256 = 2.0 (288x512, no padding).
    assert heights["auto"] / heights["padded"] == pytest.approx(456 / 256, rel=0.06)
    assert heights["asked"] / heights["padded"] >= 1.8


def _commands(output: str) -> dict[str, list[str]]:
    """Each planned rule's shell commands, from ``snakemake -n -p``'s printout."""
    commands: dict[str, list[str]] = {}
    rule = None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif rule and line.startswith("Shell command: python -m edn"):
            commands.setdefault(rule, []).append(line.removeprefix("Shell command: "))
    return commands


@pytest.mark.slow
def test_a_dry_run_with_a_portrait_target_takes_its_size_from_the_targets_frames(portrait_clip, tmp_path) -> None:
    config = {
        "subjects": {"dancer": {"video": str(DEMO / "source_dancer.mp4"), "end": 1.0},
                     "phone": {"video": str(portrait_clip)}},
        "pairs": [{"source": "dancer", "target": "phone"}],
        "frames": {"width": 512, "height": 256, "orientation": "auto"},
        "training": {"preset": "tiny", "iterations": {"global": 3, "local": 3, "face": 3}},
    }
    result = run_snakemake(tmp_path, config, "-n", "-p", "results/transfer/dancer_to_phone.mp4")
    assert result.returncode == 0, result.output
    commands = _commands(result.output)
    decodes = commands["decode_frames"]
    assert len(decodes) == 2 and all("--orientation auto" in c and "--width 512 --height 256" in c for c in decodes)
    stages = [rule for rule in commands if rule != "decode_frames"]
    assert any("render" in r for r in stages) and any("train" in r for r in stages) and "synthesize" in stages
    for rule in stages:  # no later stage is told a size: each reads its target's decoded frames and poses
        for command in commands[rule]:
            words = shlex.split(command)
            assert "--width" not in words and "--height" not in words, f"{rule}: {command}"
    # ...and the pair's stages read the target's: its statistics, its frames, its plate.
    assert "--target-stats results/stats/phone.json" in commands["normalize_transfer"][0]
    assert "--window-stats results/stats/phone.json" in commands["render_transfer_labels"][0]
    assert all("--frames results/frames/phone/frames.npy" in c for r in stages if r.startswith("train")
               for c in commands[r])
    assert "--plate results/background/phone.png" in commands["synthesize"][0]


@pytest.mark.slow
def test_a_portrait_targets_pair_labels_are_rendered_portrait(portrait_clip, tmp_path) -> None:
    """The real chain up to the pair's labels: decode, MediaPipe, statistics, normalization, rendering."""
    config = {
        "subjects": {"dancer": {"video": str(DEMO / "source_dancer.mp4"), "start": 1.0, "end": 2.0},
                     "phone": {"video": str(portrait_clip)}},
        "pairs": [{"source": "dancer", "target": "phone"}],
        "frames": {"width": 256, "height": 128, "orientation": "auto"},
        "pose": {"workers": 1, "detection_scale": 2},
    }
    labels = "results/transfer/dancer_to_phone/labels/labels.npy"
    result = run_snakemake(tmp_path, config, labels, timeout=900)
    assert result.returncode == 0, result.output
    assert read_meta(tmp_path / "results/frames/phone/meta.json").working_size == (128, 256)
    assert read_meta(tmp_path / "results/frames/dancer/meta.json").working_size == (256, 128)
    rendered = load_labels(tmp_path / labels)
    assert rendered.shape[1:3] == (256, 128)  # [N, H, W]: the target's portrait frame
    normalized = [p for p in (tmp_path / "results").rglob("*.parquet") if "dancer_to_phone" in str(p)]
    assert normalized and all(read_pose_table(p).frame_size == (128, 256) for p in normalized)


def test_a_portrait_pair_is_encoded_portrait_beside_a_landscape_source(portrait_clip, tmp_path) -> None:
    """encode and compare with the source's landscape frames and the pair's portrait labels and result."""
    from edn.ingest.frames import create_image_store
    from edn.transfer.encode import encode_comparison, encode_transfer

    source = decode_video(portrait_clip, tmp_path / "s.npy", tmp_path / "s.json", working_size=(256, 128),
                          orientation="landscape", fps=8)
    count = source.frame_count
    for name in ("labels", "result"):
        with create_image_store(tmp_path / f"{name}.npy", count, (128, 256)) as store:
            store[:] = 0
            store[:, 100:200, 40:90] = 200  # a bright upright block where the person would be
    for framing in ("working", "source"):
        video = encode_transfer(tmp_path / "result.npy", source, tmp_path / f"{framing}.mp4", audio_from=None,
                                framing=framing)
        assert probe_video(video).size == (128, 256)
    compare = encode_comparison(tmp_path / "s.npy", tmp_path / "labels.npy", tmp_path / "result.npy", source,
                                tmp_path / "compare.mp4")
    assert probe_video(compare).size == (256 + 4 + 128 + 4 + 128, 256)
