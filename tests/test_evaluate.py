"""Held-out evaluation: the split, body boxes, scoring, tables and pages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edn.evaluation.report import markdown_table, read_metrics
from edn.core.options import first_heldout_frame
from edn.evaluation.evaluate import HeldOutClip, body_boxes, nearest_neighbour_frames, score, write_metrics
from edn.core.html_page import Item, write_page
from edn.pose.keypoints import PoseSequence
from edn.labels.label_store import LabelIndex
from edn.labels.render import label_index
from edn.pose.skeleton import Body
from edn.training.data import split_pairs
from helpers import DEMO, ffmpeg, run_edn
from standin_alexnet import torch_hub  # noqa: F401 (a fixture)
from synthetic_poses import walking_sequence


@pytest.mark.parametrize("count,fraction", [(247, 0.1), (100, 0.2), (31, 0.25), (10, 0.0)])
def test_held_out_frames_are_those_training_never_sees(count: int, fraction: float) -> None:
    index = LabelIndex(has_body=np.ones(count, bool), face_boxes=np.zeros((count, 4), np.int32),
                       has_face=np.ones(count, bool))
    split = split_pairs(index, fraction, need_face=False, source="test")
    assert first_heldout_frame(count, fraction) == split.first_heldout
    heldout = count - split.first_heldout
    assert heldout == math.ceil(count * fraction) and (heldout > 0) == (fraction > 0)
    # Pair i trains on frames i and i + 1: every frame before the held-out ones
    # is in a pair (all have a body), and no pair reaches a held-out frame.
    assert split.pairs.tolist() == list(range(split.first_heldout - 1))
    if fraction == 0.0:
        assert split.first_heldout == count and split.pairs[-1] + 1 == count - 1
    else:
        assert split.pairs.max() + 1 <= split.first_heldout - 1


def test_body_boxes_cover_the_joints_with_a_margin() -> None:
    poses = walking_sequence(np.array([85.0, 120.0]), np.array([80.0, 60.0]), ankle_x=150, frame_size=(256, 128))
    keypoints = poses.keypoints.copy()
    keypoints[1] = 0  # nobody in frame 1
    boxes, found = body_boxes(poses.replace(keypoints))
    assert list(found) == [True, False]
    x0, y0, x1, y1 = boxes[0]
    body = poses.keypoints[0, :25, :2]
    assert x0 < body[:, 0].min() and x1 > body[:, 0].max()
    assert y0 == 0  # the eyes are 3.4 px from the top: the margin is clamped to the frame
    assert y1 > body[:, 1].max() and y1 <= 128


def _clip(frames: np.ndarray, poses: PoseSequence, first: int) -> HeldOutClip:
    return HeldOutClip.from_target(frames, poses, label_index(poses), first)


@pytest.mark.parametrize("alexnet", ["standin_weights", "no_weights"])
def test_scores_of_a_perfect_reconstruction(real_poses_and_frames, torch_hub, alexnet: str) -> None:
    """Every metric of the real frames against themselves; LPIPS-Alex with STAND-IN
    AlexNet weights (random, see standin_alexnet.py) or with none in the torch hub."""
    poses, frames = real_poses_and_frames
    first = first_heldout_frame(len(frames), 0.25)
    clip = _clip(frames, poses, first)
    if alexnet == "standin_weights":
        torch_hub.install_standin_alexnet()
    rows = {(r["metric"], r["region"]): r for r in score("real", clip.real.copy(), clip, with_pose_fidelity=False)}
    assert rows[("ssim", "full")]["value"] == pytest.approx(1.0)
    assert rows[("ssim", "body")]["value"] == pytest.approx(1.0)
    assert rows[("stlpips_alex", "face")]["value"] == pytest.approx(0.0, abs=1e-6)
    assert rows[("temporal_change_ratio", "full")]["value"] == pytest.approx(1.0)
    assert rows[("temporal_change_error", "full")]["value"] == 0.0
    assert rows[("ssim", "full")]["frames"] == len(frames) - first
    lpips_rows = {region: row for (metric, region), row in rows.items() if metric == "lpips_alex"}
    if alexnet == "standin_weights":
        assert set(lpips_rows) == {"full", "body", "face"}
        for region, row in lpips_rows.items():
            assert row["note"] == "" and row["frames"] == rows[("ssim", region)]["frames"] > 0, region
            assert row["value"] == pytest.approx(0.0, abs=1e-6), region
    else:
        # Unavailable once, for the first region; the others are not tried.
        assert set(lpips_rows) == {"full"}
        row = lpips_rows["full"]
        assert row["note"] == ("unavailable: torchvision's ImageNet AlexNet weights are not at "
                               f"{torch_hub.alexnet_weights} (download them once, e.g. with "
                               "torchvision.models.alexnet(weights='DEFAULT'))")
        assert np.isnan(row["value"]) and row["frames"] == 0


def test_nearest_neighbour_beats_noise_and_pose_fidelity_of_real_frames(real_poses_and_frames) -> None:
    poses, frames = real_poses_and_frames
    first = first_heldout_frame(len(frames), 0.25)
    clip = _clip(frames, poses, first)
    neighbours = nearest_neighbour_frames(poses, frames, first)
    assert neighbours.shape == clip.real.shape
    noise = np.random.default_rng(0).integers(0, 256, clip.real.shape, dtype=np.uint8)
    nn = {(r["metric"], r["region"]): r["value"] for r in score("nn", neighbours, clip)}
    bad = {(r["metric"], r["region"]): r["value"] for r in score("noise", noise, clip, with_pose_fidelity=False)}
    assert nn[("ssim", "full")] > bad[("ssim", "full")] + 0.3
    assert nn[("stlpips_alex", "body")] < bad[("stlpips_alex", "body")]
    # The neighbours are real frames of the same person: MediaPipe finds the body,
    # a few pixels from the held-out pose.
    assert nn[("pose_detected_fraction", "body")] == 1.0
    assert nn[("pose_error_height_fraction", "body")] < 0.15


@pytest.fixture(scope="module")
def real_poses_and_frames(juggler):
    """40 real frames of the juggler with their detected poses."""
    from edn.ingest.frames import load_frames

    frames = np.asarray(load_frames(juggler.frames)[:40])
    return juggler.poses.replace(juggler.poses.keypoints[:40]), frames


def test_table_markdown_and_page(tmp_path) -> None:
    rows = [
        {"method": "nearest_neighbour", "region": "full", "metric": "ssim", "value": 0.9, "frames": 25, "note": ""},
        {"method": "edn", "region": "full", "metric": "ssim", "value": 0.8, "frames": 25, "note": ""},
        {"method": "edn", "region": "full", "metric": "lpips_alex", "value": float("nan"), "frames": 0,
         "note": "unavailable: no weights"},
    ]
    write_metrics(tmp_path / "m.csv", rows)
    table = markdown_table(read_metrics([tmp_path / "m.csv"]))
    lines = table.splitlines()
    assert lines[0].startswith("| method | SSIM ↑ |") and set(lines[1]) <= set("|-")
    assert lines[2].startswith("| nearest_neighbour | 0.9 |") and lines[3].startswith("| edn | 0.8 | ")
    assert "| n/a |" in lines[3] and "- lpips_alex: unavailable: no weights" in table
    (tmp_path / "m.md").write_text(table)
    write_page(tmp_path / "page.html", "evaluation", [Item.parse(f"table={tmp_path / 'm.md'}"),
                                                      Item.parse(f"table={tmp_path / 'm.csv'}")])
    page = (tmp_path / "page.html").read_text()
    assert page.count("<table") == 2 and "<td>nearest_neighbour</td>" in page and "SSIM ↑" in page


def test_page_embeds_videos_and_rejects_bad_items(tmp_path, demo_dir) -> None:
    result = run_edn("html-page", "--title", "t", "--item", f"video={demo_dir / 'source_aerobics.mp4'}",
                     "--output", tmp_path / "p.html")
    assert result.returncode == 0, result.stderr
    assert 'src="data:video/mp4;base64,' in (tmp_path / "p.html").read_text()
    bad = run_edn("html-page", "--title", "t", "--item", "movie=x.mp4", "--output", tmp_path / "q.html")
    assert bad.returncode == 1 and "page item 'movie=x.mp4'" in bad.error_lines[0]
    missing = run_edn("html-page", "--title", "t", "--item", "image=nope.png", "--output", tmp_path / "q.html")
    assert missing.returncode == 1 and "'nope.png': file not found" in missing.error_lines[0]
    assert not (tmp_path / "q.html").exists()


def test_pose_fidelity_sees_a_missing_body(real_poses_and_frames) -> None:
    from edn.evaluation.evaluate import pose_fidelity

    poses, frames = real_poses_and_frames
    empty = np.zeros_like(frames[:6])
    result = pose_fidelity(empty, poses.replace(poses.keypoints[:6]))
    assert result[("pose_detected_fraction", "body")] == (0.0, 6)
    assert np.isnan(result[("pose_error_px", "body")][0]) and result[("pose_error_px", "body")][1] == 0
    assert result[("pose_missed_per_frame", "body")] == (1.0, 6)
    assert poses.keypoints[0, Body.NOSE, 2] > 0


def test_pose_measures_score_each_part_against_the_input_pose() -> None:
    """Known offsets and dropped parts on synthetic poses: each part's eq. 6 error (in pixels and
    over the body's standing height) and the missed parts per frame (hands: up to two)."""
    from edn.evaluation.baseline import pose_distances
    from edn.evaluation.evaluate import part_distances, pose_measures
    from edn.pose.skeleton import BODY, FACE, LEFT_HAND, RIGHT_HAND

    poses = walking_sequence(np.full(4, 230.0), np.full(4, 200.0))  # standing height 200 px
    detected = poses.keypoints.copy()
    detected[:, BODY, :2] += (3.0, 4.0)  # 5 px
    detected[:, FACE, 0] += 2.0
    detected[:, LEFT_HAND, 1] -= 8.0
    detected[:, RIGHT_HAND, 1] -= 8.0
    detected[1, FACE] = 0.0  # frame 1: the face missed
    detected[2, LEFT_HAND] = 0.0  # frame 2: one hand missed, frame 3 both
    detected[3, LEFT_HAND] = detected[3, RIGHT_HAND] = 0.0
    detected[3, BODY.start + 1:BODY.stop] = 0.0  # frame 3: the nose alone found
    measures = pose_measures(detected, poses)
    assert measures[("pose_error_px", "body")] == pytest.approx((5.0, 4))
    assert measures[("pose_error_height_fraction", "body")] == pytest.approx((5.0 / 200, 4))
    assert measures[("pose_error_px", "face")] == pytest.approx((2.0, 3))
    assert measures[("pose_error_height_fraction", "face")] == pytest.approx((2.0 / 200, 3))
    assert measures[("pose_error_px", "hands")] == pytest.approx((8.0, 3))
    assert measures[("pose_missed_per_frame", "body")] == (0.0, 4)
    assert measures[("pose_missed_per_frame", "face")] == (0.25, 4)
    assert measures[("pose_missed_per_frame", "hands")] == (0.75, 4)  # 0 + 0 + 1 + 2 over 4 frames
    assert measures[("pose_detected_fraction", "body")] == (1.0, 4)
    # The body's error is the paper's eq. 6; a part the input lacks is never missed.
    np.testing.assert_allclose(part_distances(detected, poses.keypoints, "body"),
                               np.diagonal(pose_distances(detected, poses.keypoints)))
    no_face = poses.keypoints.copy()
    no_face[:, FACE] = 0.0
    assert pose_measures(detected, poses.replace(no_face))[("pose_missed_per_frame", "face")] == (0.0, 4)
    assert np.isnan(pose_measures(detected, poses.replace(no_face))[("pose_error_px", "face")][0])


@pytest.fixture(scope="module")
def juggler_clip(tmp_path_factory):
    """1.2 s of the demo juggler at the demo's working size (512x256, where MediaPipe finds
    his face and hands), with the poses the pose stage detects on it."""
    from edn.ingest.decode import decode_video
    from edn.ingest.frames import load_frames
    from edn.pose.detect import detect

    directory = tmp_path_factory.mktemp("juggler_clip")
    ffmpeg("-i", DEMO / "target_juggler.mp4", "-t", "1.2", "-an", directory / "clip.mp4")
    decode_video(directory / "clip.mp4", directory / "frames.npy", directory / "meta.json", working_size=(512, 256))
    poses = detect("mediapipe", frames_path=directory / "frames.npy", meta_path=directory / "meta.json",
                   workers=2, scratch_dir=directory, show_progress=False)
    return poses, np.asarray(load_frames(directory / "frames.npy"))


def _painted_over(frames: np.ndarray, poses: PoseSequence, parts, grey: int = 128) -> np.ndarray:
    """``frames`` with each part's keypoint box (grown by half its size) painted grey."""
    out = frames.copy()
    for t, pose in enumerate(poses.keypoints):
        for part in parts:
            points = pose[part][pose[part][:, 2] > 0, :2]
            if len(points) == 0:
                continue
            (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
            margin = 0.5 * max(x1 - x0, y1 - y0) + 2
            out[t, max(int(y0 - margin), 0):int(y1 + margin) + 1, max(int(x0 - margin), 0):int(x1 + margin) + 1] = grey
    return out


@pytest.mark.slow
def test_face_and_hands_are_scored_and_missed_when_painted_over(juggler_clip) -> None:
    """The demo's own frames against their own poses: the face and hands are found close to
    them, on every frame. Painted over, the face and then the hands count as missed."""
    from edn.evaluation.evaluate import pose_fidelity
    from edn.pose.skeleton import FACE, LEFT_HAND, RIGHT_HAND

    poses, frames = juggler_clip
    first = 12  # the held-out end: MediaPipe starts afresh there, as on a method's frames
    clip = _clip(frames, poses, first)
    shows = {part: int((clip.poses.keypoints[:, s, 2] > 0).any(axis=1).sum())
             for part, s in (("face", FACE), ("left hand", LEFT_HAND), ("right hand", RIGHT_HAND))}
    assert shows["face"] >= 0.8 * len(clip.real) and shows["left hand"] + shows["right hand"] >= len(clip.real)

    real = {(r["metric"], r["region"]): r for r in score("real", clip.real.copy(), clip)}  # the table's rows
    for part in ("body", "face", "hands"):
        row = real[("pose_error_height_fraction", part)]
        assert row["value"] < 0.02 and row["frames"] >= shows["face"] // 2, part  # under 2% of the height
        assert real[("pose_error_px", part)]["frames"] == row["frames"], part
        missed = real[("pose_missed_per_frame", part)]
        assert missed["value"] <= 0.15 and missed["frames"] == len(clip.real) and missed["note"] == "", part
    no_face = pose_fidelity(_painted_over(clip.real, clip.poses, [FACE]), clip.poses)
    assert no_face[("pose_missed_per_frame", "face")][0] >= real[("pose_missed_per_frame", "face")]["value"] + 0.6
    no_hands = pose_fidelity(_painted_over(clip.real, clip.poses, [LEFT_HAND, RIGHT_HAND]), clip.poses)
    assert no_hands[("pose_missed_per_frame", "hands")][0] >= real[("pose_missed_per_frame", "hands")]["value"] + 0.6
    assert no_hands[("pose_missed_per_frame", "face")][0] <= 0.15  # the face, untouched, is still found


def test_the_tables_have_the_face_and_hand_columns(tmp_path) -> None:
    from edn.evaluation.report import TABLE_COLUMNS

    measures = {("pose_detected_fraction", "body"): 1.0, ("pose_error_height_fraction", "body"): 0.02,
                ("pose_error_height_fraction", "face"): 0.011, ("pose_error_height_fraction", "hands"): 0.033,
                ("pose_missed_per_frame", "body"): 0.0, ("pose_missed_per_frame", "face"): 0.25,
                ("pose_missed_per_frame", "hands"): 1.5}
    rows = [{"method": "edn", "region": region, "metric": metric, "value": value, "frames": 8, "note": ""}
            for (metric, region), value in measures.items()]
    write_metrics(tmp_path / "m.csv", rows)
    lines = markdown_table(read_metrics([tmp_path / "m.csv"])).splitlines()
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    cells = dict(zip(headers, (cell.strip() for cell in lines[2].strip("|").split("|"))))
    assert {"face error / height ↓": "0.011", "hands error / height ↓": "0.033", "body missed / frame ↓": "0",
            "face missed / frame ↓": "0.25", "hands missed / frame ↓": "1.5", "pose found ↑": "1",
            "pose error / height ↓": "0.02", "SSIM ↑": "n/a"}.items() <= cells.items()
    assert {(metric, region) for metric, region, _ in TABLE_COLUMNS} >= set(measures)
