"""Pose detection with real MediaPipe on the shipped videos.

Detection runs once per test session on each video (module fixtures below) and
many properties are checked on the result: every frame has a body, legs are
confident and in anatomical order, left and right are the person's own, the
468 -> 70 face table lands on a real face, frames with nobody stay empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edn.ingest.decode import decode_video
from edn.ingest.fetch import fetch_video
from edn.ingest.frames import load_frames
from edn.pose.keypoints import PoseSequence, read_pose_table, write_pose_table
from edn.pose.main_person import body_size
from edn.pose.skeleton import (
    BODY,
    FACE,
    FACE_CHIN,
    FACE_JAW,
    FACE_LEFT_BROW,
    FACE_LEFT_EYE,
    FACE_LEFT_PUPIL,
    FACE_NOSE_TIP,
    FACE_OUTER_LIP,
    FACE_RIGHT_BROW,
    FACE_RIGHT_EYE,
    FACE_RIGHT_PUPIL,
    LEFT_HAND,
    RIGHT_HAND,
    Body,
)
from helpers import DEMO, WORKING_SIZE, Detected, decode_and_detect, run_edn

@pytest.fixture(scope="session")
def people_one_by_one(tmp_path_factory) -> Detected:
    """The first 26 s (260 frames) of people_one_by_one: nobody, a first person, nobody, a second person."""
    directory = tmp_path_factory.mktemp("people")
    clip = fetch_video(str(DEMO / "people_one_by_one.mp4"), directory / "clip.mp4", start_s=0, end_s=26,
                       cache_dir=directory / "cache")
    return decode_and_detect(directory, clip, scale=1)


def _present(poses: PoseSequence, joint: int) -> np.ndarray:
    return poses.confidence[:, joint] > 0


LEGS = (Body.R_HIP, Body.R_KNEE, Body.R_ANKLE, Body.L_HIP, Body.L_KNEE, Body.L_ANKLE)


@pytest.mark.slow  # MediaPipe over the whole dancer and juggler (fixtures requested by name)
@pytest.mark.parametrize("name", ["dancer", "juggler"])
def test_body_found_in_every_frame_with_confident_legs(name: str, request) -> None:
    detected: Detected = request.getfixturevalue(name)
    poses = detected.poses
    assert poses.frame_count == detected.meta.frame_count == len(load_frames(detected.frames))
    assert poses.frame_size == WORKING_SIZE
    assert (poses.confidence[:, BODY].max(axis=1) > 0).all(), "a frame without a body"
    for joint in LEGS:
        share = _present(poses, joint).mean()
        assert share >= 0.95, f"{joint.name} confident in {share:.1%} of frames"
    # Keypoints lie on the picture (working pixels), not in normalized units.
    xy = poses.xy[:, BODY][poses.confidence[:, BODY] > 0]
    x0, y0, x1, y1 = detected.meta.geometry.content_box
    assert np.median(xy[:, 0]) > x0 + 5 and np.median(xy[:, 0]) < x1 - 5 and xy[:, 1].max() > 64


@pytest.mark.slow  # MediaPipe over the whole dancer and juggler (fixtures requested by name)
@pytest.mark.parametrize("name", ["dancer", "juggler"])
def test_legs_are_in_anatomical_order(name: str, request) -> None:
    poses = request.getfixturevalue(name).poses
    y = poses.xy[..., 1]
    standing = np.zeros(poses.frame_count, bool)
    all_legs = np.ones(poses.frame_count, bool)
    for hip, knee, ankle in ((Body.R_HIP, Body.R_KNEE, Body.R_ANKLE), (Body.L_HIP, Body.L_KNEE, Body.L_ANKLE)):
        both = _present(poses, hip) & _present(poses, knee) & _present(poses, ankle)
        ordered = (y[:, ankle] > y[:, knee]) & (y[:, knee] > y[:, hip])
        assert ordered[both].mean() >= 0.95, f"{hip.name[:1]} leg in order in {ordered[both].mean():.1%}"
        standing |= ordered
        all_legs &= both
    # The juggler kicks the ball higher than his hip (frames 208-215); he still stands on the other leg.
    assert standing[all_legs].all()


@pytest.mark.slow  # MediaPipe over the whole dancer and juggler (fixtures requested by name)
@pytest.mark.parametrize("name", ["dancer", "juggler"])
def test_left_and_right_are_the_persons_own(name: str, request) -> None:
    """Both dancers face the camera: their right side is on the image's left, for the
    shoulders, hips, eyes and face alike, and each hand sits at its own wrist."""
    poses = request.getfixturevalue(name).poses
    x = poses.xy[..., 0]
    pairs = ((Body.R_SHOULDER, Body.L_SHOULDER), (Body.R_HIP, Body.L_HIP), (Body.R_EYE, Body.L_EYE))
    for right, left in pairs:
        both = _present(poses, right) & _present(poses, left)
        assert (x[both, right] < x[both, left]).mean() >= 0.95, f"{right.name} not left of {left.name}"
    shoulders = np.sign(x[:, Body.R_SHOULDER] - x[:, Body.L_SHOULDER])
    eyes = np.sign(x[:, Body.R_EYE] - x[:, Body.L_EYE])
    assert (shoulders == eyes).mean() >= 0.95
    face = poses.confidence[:, FACE.start] > 0
    face_right = poses.xy[:, FACE.start + np.array(FACE_RIGHT_EYE), 0].mean(axis=1)
    face_left = poses.xy[:, FACE.start + np.array(FACE_LEFT_EYE), 0].mean(axis=1)
    assert (face_right[face] < face_left[face]).all()
    sizes = np.array([body_size(p) for p in poses.keypoints])
    for hand, wrist in ((LEFT_HAND, Body.L_WRIST), (RIGHT_HAND, Body.R_WRIST)):
        found = (poses.confidence[:, hand.start] > 0) & _present(poses, wrist)
        assert found.sum() >= 10, f"{hand} hardly ever found"
        distance = np.linalg.norm(poses.xy[found, hand.start] - poses.xy[found, wrist], axis=1)
        assert np.median(distance / sizes[found]) < 0.05, f"hand wrist far from the body's {wrist.name}"


def test_face_is_found_on_the_demo_juggler_at_the_demo_detection_scale(juggler: Detected) -> None:
    face = juggler.poses.confidence[:, FACE].max(axis=1) > 0
    assert face.mean() >= 0.8, f"face in {face.mean():.0%} of frames"
    nose = juggler.poses.xy[face, Body.NOSE]
    face_centre = juggler.poses.xy[face][:, FACE].mean(axis=1)
    assert np.median(np.linalg.norm(face_centre - nose, axis=1)) < 3  # px, at 256x128


def test_detection_scale_maps_back_to_working_pixels(juggler: Detected, tmp_path: Path) -> None:
    """The same frames detected on the working frames and (in the fixture) at twice
    the size agree in working pixels: the detection -> source -> working map is right."""
    clip = fetch_video(str(DEMO / "target_juggler.mp4"), tmp_path / "clip.mp4", start_s=0, end_s=2,
                       cache_dir=tmp_path / "cache")
    direct = decode_and_detect(tmp_path / "direct", clip, scale=1).poses
    scaled = juggler.poses.keypoints[: direct.frame_count]
    both = (direct.confidence[:, BODY] > 0) & (scaled[:, BODY, 2] > 0)
    error = np.linalg.norm(direct.xy[:, BODY][both] - scaled[:, BODY, :2][both], axis=1)
    assert both.sum() > 20 * direct.frame_count
    assert np.median(error) < 1.5, f"median disagreement {np.median(error):.2f} px"


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    import cv2

    return cv2.pointPolygonTest(polygon.astype(np.float32), (float(point[0]), float(point[1])), False) >= 0


@pytest.mark.slow  # MediaPipe over 1 s of video at 1024x512
def test_face_table_lands_on_a_real_face(tmp_path: Path) -> None:
    """468 -> 70 on the aerobics dancer's face, facing the camera, found at 1024x512.

    Her eyes are open (the juggler looks down at his ball, lids almost shut), but
    an eye contour is still only 1-2 px tall here, so pupils are checked to lie
    inside their eye in most frames rather than in all.
    """
    from edn.pose.mediapipe_holistic import detect_chunk, open_holistic

    clip = fetch_video(str(DEMO / "source_aerobics.mp4"), tmp_path / "clip.mp4", start_s=0, end_s=1.0,
                       cache_dir=tmp_path / "cache")
    decode_video(clip, tmp_path / "f.npy", tmp_path / "m.json", working_size=(1024, 512))
    frames = load_frames(tmp_path / "f.npy")
    with open_holistic() as holistic:
        keypoints, found = detect_chunk(holistic, frames, 0, len(frames))
    faces = [k for k in keypoints if k[FACE.start, 2] > 0]
    assert len(faces) >= len(frames) - 2
    pupils_inside = []
    for pose in faces:
        face = pose[FACE, :2]
        right_eye, left_eye = face[list(FACE_RIGHT_EYE)], face[list(FACE_LEFT_EYE)]
        eye_y = np.concatenate([right_eye, left_eye])[:, 1].max()
        brows = face[list(FACE_RIGHT_BROW + FACE_LEFT_BROW)]
        height = face[FACE_CHIN, 1] - brows[:, 1].min()
        assert height > 12, f"face {height:.0f} px tall"
        # Facing the camera: the person's right eye, brow and jaw end are on the image's left.
        assert right_eye[:, 0].mean() < left_eye[:, 0].mean()
        assert face[FACE_JAW[0], 0] < right_eye[:, 0].min() and face[FACE_JAW[-1], 0] > left_eye[:, 0].max()
        assert face[list(FACE_RIGHT_BROW), 0].mean() < face[list(FACE_LEFT_BROW), 0].mean()
        # Top to bottom: brows, eyes, nose tip, mouth, chin; the jaw's lower half below the eyes.
        assert brows[:, 1].mean() < eye_y
        assert eye_y < face[FACE_NOSE_TIP, 1] < face[list(FACE_OUTER_LIP), 1].min()
        assert face[list(FACE_OUTER_LIP), 1].max() < face[FACE_CHIN, 1]
        assert (face[list(FACE_JAW[4:13]), 1] > eye_y).all()
        assert right_eye[:, 0].max() < face[FACE_NOSE_TIP, 0] < left_eye[:, 0].min()
        # The jaw runs down from the right ear towards the chin and up to the left ear (the
        # points beside the chin may sit as low as it when the head tilts).
        jaw = face[list(FACE_JAW)]
        assert (np.diff(jaw[: FACE_CHIN - 1, 1]) > 0).all() and (np.diff(jaw[FACE_CHIN + 2 :, 1]) < 0).all()
        assert jaw[FACE_CHIN, 1] > jaw[[0, -1], 1].max() + height / 3
        assert (np.diff(jaw[2:-2, 0]) > 0).all()
        # The face is where the body's nose is.
        assert np.linalg.norm(face[FACE_NOSE_TIP] - pose[Body.NOSE, :2]) < 0.2 * height
        pupils_inside.append(_inside(face[FACE_RIGHT_PUPIL], right_eye) and _inside(face[FACE_LEFT_PUPIL], left_eye))
    assert np.mean(pupils_inside) >= 0.9, f"pupils inside their eyes in {np.mean(pupils_inside):.0%} of frames"


def test_frames_with_nobody_stay_empty_and_only_the_main_person_is_kept(people_one_by_one: Detected) -> None:
    """Frames 0-54 and 198-216 show an empty room (checked by eye on a contact sheet);
    a first person stands in 80-170; a second walks in from about 228."""
    poses = people_one_by_one.poses
    assert poses.frame_count == people_one_by_one.meta.frame_count == 260
    anyone = poses.confidence.max(axis=1) > 0
    assert not anyone[:55].any() and not anyone[198:217].any()
    assert (poses.confidence[:, BODY] == 0).all(axis=1)[:55].all()
    assert (poses.keypoints[~anyone] == 0).all()
    assert anyone[80:171].mean() >= 0.95
    # One subject per video: the first person stands there longest, so the second is not kept.
    assert not anyone[240:].any()


def test_pose_cli_writes_the_table_and_rejects_bad_input(dancer: Detected, tmp_path: Path) -> None:
    table = tmp_path / "poses.parquet"
    write_pose_table(table, dancer.poses)
    assert read_pose_table(table).frame_count == dancer.poses.frame_count
    unknown = run_edn("pose", "--backend", "openpos", "--frames", dancer.frames, "--meta", dancer.meta_path,
                      "--output", tmp_path / "x.parquet")
    assert unknown.returncode == 1 and len(unknown.error_lines) == 1
    assert "option backend 'openpos': must be one of mediapipe, openpose, openpose_json" in unknown.stderr
    no_video = run_edn("pose", "--frames", dancer.frames, "--meta", dancer.meta_path, "--output",
                       tmp_path / "x.parquet", "--detection-scale", "2")
    assert no_video.returncode == 1 and "needs the subject's video" in no_video.error_lines[0]
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.slow  # MediaPipe over 4 s of video
def test_a_video_without_anybody_is_an_error(tmp_path: Path) -> None:
    """The first 4 s of people_one_by_one: the empty room."""
    video = fetch_video(str(DEMO / "people_one_by_one.mp4"), tmp_path / "empty.mp4", start_s=0, end_s=4,
                        cache_dir=tmp_path / "cache")
    decode_video(video, tmp_path / "f.npy", tmp_path / "m.json", working_size=WORKING_SIZE)
    result = run_edn("pose", "--frames", tmp_path / "f.npy", "--meta", tmp_path / "m.json", "--output",
                     tmp_path / "out" / "p.parquet")
    assert result.returncode == 1 and len(result.error_lines) == 1
    assert result.error_lines[0] == (f"edn pose: error: frames '{tmp_path / 'f.npy'}': no person found in any of "
                                     f"the 40 frames (mediapipe, min confidence 0.5)")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_smoothing_real_poses_keeps_frames_and_reduces_jitter(dancer: Detected) -> None:
    from edn.pose.keypoint_filter import filter_poses

    raw = dancer.poses
    smooth = filter_poses(raw)
    assert smooth.frame_count == raw.frame_count and smooth.frame_size == raw.frame_size
    # Every raw body detection is still there (gaps may be filled, nothing is removed).
    assert ((smooth.confidence[:, BODY] > 0) >= (raw.confidence[:, BODY] > 0)).all()

    def jitter(poses: PoseSequence) -> float:
        xy, present = poses.xy[:, BODY], poses.confidence[:, BODY] > 0
        ok = present[2:] & present[1:-1] & present[:-2]
        return float(np.abs(xy[2:] - 2 * xy[1:-1] + xy[:-2])[ok].mean())

    assert jitter(smooth) < 0.6 * jitter(raw)
    # No time shift: the smoothed wrists follow the raw ones most closely at lag 0.
    for wrist in (Body.L_WRIST, Body.R_WRIST):
        present = _present(raw, wrist)
        lags = list(range(-3, 4))
        errors = [np.mean([np.sum((smooth.xy[t + lag, wrist] - raw.xy[t, wrist]) ** 2)
                           for t in range(5, raw.frame_count - 5) if present[t] and present[t + lag]])
                  for lag in lags]
        assert lags[int(np.argmin(errors))] == 0, errors


def test_pose_preview_draws_the_skeleton_over_every_frame(dancer: Detected, tmp_path: Path) -> None:
    import subprocess

    table, output = tmp_path / "poses.parquet", tmp_path / "preview.mp4"
    write_pose_table(table, dancer.poses)
    result = run_edn("pose-preview", "--poses", table, "--frames", dancer.frames, "--meta", dancer.meta_path,
                     "--output", output)
    assert result.returncode == 0, result.stderr
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                            "stream=width,height,nb_read_frames,r_frame_rate", "-of", "csv=p=0", str(output)],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert probe == f"512,256,20/1,{dancer.poses.frame_count}"
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(output), "-vf", "select=eq(n\\,10)", "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    shown = np.frombuffer(raw, np.uint8).reshape(256, 512, 3).astype(int)
    plain = np.repeat(np.repeat(np.asarray(load_frames(dancer.frames)[10]), 2, 0), 2, 1).astype(int)
    hip = (dancer.poses.xy[10, Body.MID_HIP] * 2).astype(int)
    drawn = np.abs(shown - plain)[hip[1] - 2 : hip[1] + 3, hip[0] - 2 : hip[0] + 3].mean()
    untouched = np.abs(shown - plain)[-30:, -60:-40].mean()  # black padding, far from the dancer
    assert drawn > 40 and untouched < 4
