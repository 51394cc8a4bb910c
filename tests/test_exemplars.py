"""Pose-warped exemplars: the part-by-part warp, the choice of exemplars, and ``edn pose-warp``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edn.core.options import ExemplarOptions, first_heldout_frame
from edn.exemplars.select import choose_exemplars, hysteresis_choice
from edn.exemplars.warp import (NECK_LENGTH, fit_affine, fit_similarity, person_coverage, plan_parts,
                                 segment_transform, warp_person)
from edn.pose.keypoints import PoseSequence, write_pose_table
from edn.pose.skeleton import FACE, RIGHT_HAND, Body
from helpers import DEMO, ffmpeg, run_edn
from synthetic_poses import standing_pose

SIZE = (128, 144)  # width, height
#: Each limb's colour (RGB) in the synthetic figure.
COLOURS = {
    "torso": (40, 40, 220), "right_upper_arm": (230, 30, 30), "right_lower_arm": (30, 230, 30),
    "left_upper_arm": (230, 160, 30), "left_lower_arm": (30, 200, 200), "legs": (150, 60, 150),
    "head": (220, 200, 160), "hands": (250, 250, 250),
}
LIMB_JOINTS = {
    "right_upper_arm": (Body.R_SHOULDER, Body.R_ELBOW), "right_lower_arm": (Body.R_ELBOW, Body.R_WRIST),
    "left_upper_arm": (Body.L_SHOULDER, Body.L_ELBOW), "left_lower_arm": (Body.L_ELBOW, Body.L_WRIST),
}


def figure_pose() -> np.ndarray:
    """A standing person 100 px tall (nose to ankles), arms hanging, in a 128x144 frame."""
    return standing_pose(64.0, 128.0, 100.0)


def draw_figure(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The person drawn with 5 px limbs, one colour per limb, on black: (image uint8 [H, W, 3], mask uint8 [H, W])."""
    width, height = SIZE
    image = np.zeros((height, width, 3), np.uint8)

    def point(joint: int) -> tuple[int, int]:
        x, y = pose[joint, :2]
        return int(round(x - 0.5)), int(round(y - 0.5))

    torso = [point(j) for j in (Body.R_SHOULDER, Body.L_SHOULDER, Body.L_HIP, Body.R_HIP)]
    cv2.fillConvexPoly(image, np.array(torso, np.int32), COLOURS["torso"])
    for a, b in ((Body.R_HIP, Body.R_KNEE), (Body.R_KNEE, Body.R_ANKLE), (Body.L_HIP, Body.L_KNEE),
                 (Body.L_KNEE, Body.L_ANKLE)):
        cv2.line(image, point(a), point(b), COLOURS["legs"], 5)
    for name, (a, b) in LIMB_JOINTS.items():
        cv2.line(image, point(a), point(b), COLOURS[name], 5)
    cv2.circle(image, point(Body.NOSE), 5, COLOURS["head"], -1)
    for wrist in (Body.R_WRIST, Body.L_WRIST):
        cv2.circle(image, point(wrist), 2, COLOURS["hands"], -1)
    mask = np.where(image.max(axis=-1) > 0, 255, 0).astype(np.uint8)
    return image, mask


def turned(pose: np.ndarray, pivot: int, moved: list[int], degrees: float) -> np.ndarray:
    """``pose`` with the ``moved`` keypoints turned by ``degrees`` about joint ``pivot``."""
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    out = pose.copy()
    centre = pose[pivot, :2]
    out[moved, :2] = (pose[moved, :2] - centre) @ rotation.T + centre
    return out


def colour_at(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    x, y = np.floor(xy).astype(int)
    return image[y, x].astype(int)


def segment_points(start: np.ndarray, end: np.ndarray, fractions) -> list[np.ndarray]:
    return [start + f * (end - start) for f in fractions]


RIGHT_FOREARM_AND_HAND = [int(Body.R_WRIST)] + list(range(RIGHT_HAND.start, RIGHT_HAND.stop))


# -- transforms ----------------------------------------------------------------------------------------


def test_fitted_transforms_recover_known_ones() -> None:
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 100, (8, 2))
    angle, scale, shift = 0.4, 1.3, np.array([5.0, -7.0])
    similarity = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(fit_similarity(source, source @ similarity.T + shift),
                               np.hstack([similarity, shift[:, None]]), atol=1e-9)
    affine = np.array([[1.2, 0.3], [-0.1, 0.8]])
    np.testing.assert_allclose(fit_affine(source, source @ affine.T + shift), np.hstack([affine, shift[:, None]]),
                               atol=1e-9)


def test_a_segment_transform_puts_both_joints_where_the_requested_pose_does() -> None:
    start, end, new_start, new_end = map(np.array, ([10.0, 10.0], [30.0, 10.0], [50.0, 40.0], [50.0, 65.0]))
    matrix = segment_transform(start, end, new_start, new_end, across_scale=1.0)
    moved = np.array([start, end]) @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(moved, [new_start, new_end], atol=1e-9)
    # Across the segment the body's scale (1 here), not the segment's stretch (1.25).
    across = np.array([20.0, 14.0]) @ matrix[:, :2].T + matrix[:, 2]
    assert np.linalg.norm(across - (new_start + 0.5 * (new_end - new_start))) == pytest.approx(4.0)


# -- the warp --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head_from", ["body", "face"])
def test_a_person_warped_onto_their_own_pose_is_unchanged(head_from: str) -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    warped = warp_person(image, mask, pose, pose, head_from=head_from)
    assert not warped.missing and warped.validity.min() == 1.0
    assert {"torso", "head", "right_lower_arm", "right_upper_leg"} <= set(warped.drawn)
    # Every pixel is the exemplar's own: over the exemplar itself nothing changes ...
    assert np.abs(warped.over(image).astype(int) - image).max() <= 1
    # ... and the limbs are drawn opaque, in their own colours, over anything else.
    for name, (a, b) in LIMB_JOINTS.items():
        for xy in segment_points(pose[a, :2], pose[b, :2], np.linspace(0.2, 0.8, 7)):
            x, y = np.floor(xy).astype(int)
            assert warped.alpha[y, x] > 0.999, name
            assert np.abs(colour_at(warped.image, xy) - COLOURS[name]).max() <= 1, name


@pytest.mark.parametrize("degrees", [70.0, -45.0])
def test_a_forearm_turned_about_its_elbow_lands_where_its_keypoints_say(degrees: float) -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    requested = turned(pose, Body.R_ELBOW, RIGHT_FOREARM_AND_HAND, degrees)
    warped = warp_person(image, mask, pose, requested)
    drawn = warped.image
    elbow, wrist, old_wrist = requested[Body.R_ELBOW, :2], requested[Body.R_WRIST, :2], pose[Body.R_WRIST, :2]
    for xy in segment_points(elbow, wrist, np.linspace(0.25, 0.7, 6)):  # short of the hand's white dot
        assert np.abs(colour_at(drawn, xy) - COLOURS["right_lower_arm"]).max() <= 12, xy
    # Where the forearm was, nothing is left.
    for xy in segment_points(elbow, old_wrist, np.linspace(0.55, 0.95, 5)):
        assert colour_at(drawn, xy).max() <= 12, xy
    # The moved forearm's pixels, as a whole, lie along the new segment and point its way.
    green = np.all(np.abs(drawn.astype(int) - COLOURS["right_lower_arm"]) <= 12, axis=-1)
    ys, xs = np.nonzero(green)
    pixels = np.stack([xs + 0.5, ys + 0.5], axis=1)
    direction = (wrist - elbow) / np.linalg.norm(wrist - elbow)
    offsets = pixels.mean(axis=0) - elbow
    assert abs(offsets[0] * direction[1] - offsets[1] * direction[0]) < 1.0  # off the segment's line, px
    principal = np.linalg.svd(pixels - pixels.mean(axis=0), full_matrices=False)[2][0]
    assert abs(principal @ direction) > np.cos(np.deg2rad(5))
    assert warped.validity.min() == 1.0


def test_a_whole_arm_turned_about_its_shoulder_moves_both_segments() -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    arm = [int(Body.R_ELBOW)] + RIGHT_FOREARM_AND_HAND
    requested = turned(pose, Body.R_SHOULDER, arm, 60.0)
    drawn = warp_person(image, mask, pose, requested).image
    shoulder, elbow, wrist = (requested[j, :2] for j in (Body.R_SHOULDER, Body.R_ELBOW, Body.R_WRIST))
    for name, (a, b) in (("right_upper_arm", (shoulder, elbow)), ("right_lower_arm", (elbow, wrist))):
        for xy in segment_points(a, b, np.linspace(0.3, 0.7, 5)):  # the drawn lines overlap at their ends
            assert np.abs(colour_at(drawn, xy) - COLOURS[name]).max() <= 12, (name, xy)


def test_the_torso_behind_a_forearm_that_moves_away_is_filled_and_marked() -> None:
    pose = figure_pose()
    across = turned(pose, Body.R_ELBOW, RIGHT_FOREARM_AND_HAND, -100.0)  # the forearm across the belly
    image, mask = draw_figure(across)
    warped = warp_person(image, mask, across, pose)  # requested: hanging by the body again
    elbow, wrist = across[Body.R_ELBOW, :2], across[Body.R_WRIST, :2]
    for xy in segment_points(elbow, wrist, np.linspace(0.55, 0.8, 4)):  # inside the torso's joints' hull
        assert np.abs(colour_at(image, xy) - COLOURS["right_lower_arm"]).max() <= 12  # the forearm was there
        assert np.abs(colour_at(warped.image, xy) - COLOURS["torso"]).max() <= 30, xy  # now the torso ...
        x, y = np.floor(xy).astype(int)
        assert warped.validity[y, x] < 0.5  # ... filled in, and marked so
    hanging = segment_points(pose[Body.R_ELBOW, :2], pose[Body.R_WRIST, :2], [0.5])[0]
    assert np.abs(colour_at(warped.image, hanging) - COLOURS["right_lower_arm"]).max() <= 12


MISSING_ENCODINGS = {
    "zero confidence": lambda k: np.concatenate([k[:2], [0.0]]),
    "NaN position": lambda k: np.array([np.nan, np.nan, k[2]]),
    "all NaN": lambda k: np.full(3, np.nan),
    "absent (zeros)": lambda k: np.zeros(3),
}


@pytest.mark.parametrize("encoding", MISSING_ENCODINGS)
def test_a_part_missing_in_the_exemplar_is_marked_invalid_and_not_drawn(encoding: str) -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    exemplar = pose.copy()
    exemplar[Body.R_WRIST] = MISSING_ENCODINGS[encoding](exemplar[Body.R_WRIST])
    requested = turned(pose, Body.R_ELBOW, RIGHT_FOREARM_AND_HAND, 70.0)
    warped = warp_person(image, mask, exemplar, requested)
    assert "right_lower_arm" in warped.missing and "right_lower_arm" not in warped.drawn
    assert np.isfinite(warped.premultiplied).all() and np.isfinite(warped.validity).all()
    elbow, wrist = requested[Body.R_ELBOW, :2], requested[Body.R_WRIST, :2]
    for xy in segment_points(elbow, wrist, np.linspace(0.35, 0.8, 5)):
        x, y = np.floor(xy).astype(int)
        assert warped.validity[y, x] == 0.0
        assert warped.alpha[y, x] < 0.02  # nothing drawn from a guess
    # The rest of the body is still drawn and valid.
    left = np.floor(pose[Body.L_ELBOW, :2] + 0.5 * (pose[Body.L_WRIST, :2] - pose[Body.L_ELBOW, :2])).astype(int)
    assert warped.validity[left[1], left[0]] == 1.0 and warped.alpha[left[1], left[0]] > 0.999


def test_a_part_missing_in_the_requested_pose_is_not_drawn_and_its_reach_is_invalid() -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    requested = pose.copy()
    requested[Body.R_WRIST] = 0.0
    warped = warp_person(image, mask, pose, requested)
    assert "right_lower_arm" in warped.missing
    middle = np.floor((pose[Body.R_ELBOW, :2] + pose[Body.R_WRIST, :2]) / 2).astype(int)
    assert warped.alpha[middle[1], middle[0]] < 0.02
    assert warped.validity[middle[1], middle[0]] == 0.0


def test_nobody_requested_draws_nothing_and_an_exemplar_without_a_body_marks_the_pose_invalid() -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    nobody = np.zeros_like(pose)
    empty = warp_person(image, mask, pose, nobody)
    assert empty.alpha.max() == 0.0 and empty.validity.min() == 1.0 and not empty.drawn
    blind = warp_person(image, mask, nobody, pose)
    assert blind.alpha.max() == 0.0 and not blind.drawn
    assert {"torso", "head", "right_lower_arm"} <= set(blind.missing)
    neck = np.floor(pose[Body.NECK, :2] + [0, 10]).astype(int)
    assert blind.validity[neck[1], neck[0]] == 0.0


NECK_COLOUR = (90, 60, 40)
HEAD_POINTS = [int(j) for j in (Body.NOSE, Body.R_EYE, Body.L_EYE, Body.R_EAR, Body.L_EAR)]


def with_head_points(pose: np.ndarray, change) -> np.ndarray:
    """``pose`` with its nose, eyes, ears and face points moved by ``change`` (points [n, 2] -> [n, 2])."""
    out = pose.copy()
    points = HEAD_POINTS + list(range(FACE.start, FACE.stop))
    out[points, :2] = change(out[points, :2])
    return out


def test_a_head_thrust_forward_stays_joined_to_the_torso_by_its_neck() -> None:
    pose = figure_pose()
    image, _ = draw_figure(pose)
    cv2.line(image, tuple(int(v) for v in pose[Body.NECK, :2]), tuple(int(v) for v in pose[Body.NOSE, :2]),
             NECK_COLOUR, 6)
    cv2.circle(image, tuple(int(round(v - 0.5)) for v in pose[Body.NOSE, :2]), 5, COLOURS["head"], -1)
    mask = np.where(image.max(axis=-1) > 0, 255, 0).astype(np.uint8)
    requested = with_head_points(pose, lambda points: points + [-16.0, -6.0])
    warped = warp_person(image, mask, pose, requested)
    assert "neck" in warped.drawn and "neck" not in warped.missing
    neck, head = requested[Body.NECK, :2], requested[HEAD_POINTS, :2].mean(axis=0)
    # Between the torso's top and the moved head, neither of which reaches there, the neck is drawn whole.
    for fraction in (0.25, 0.3):
        xy = neck + fraction * (head - neck)
        x, y = np.floor(xy).astype(int)
        assert warped.alpha[y, x] > 0.9 and warped.validity[y, x] == 1.0, fraction
        assert np.abs(colour_at(warped.image, xy) - NECK_COLOUR).max() <= 12, fraction
    # The head itself is drawn where the requested head points put it, over its neck.
    assert np.abs(colour_at(warped.image, requested[Body.NOSE, :2]) - COLOURS["head"]).max() <= 1
    # A head in place needs no neck: over its own exemplar nothing changes.
    still = warp_person(image, mask, pose, pose)
    assert np.abs(still.over(image).astype(int) - image).max() <= 1


@pytest.mark.parametrize("shift", [(-8.0, -4.0), (0.0, -10.0)])  # stretched under LIMB_STRETCH
def test_the_neck_runs_from_the_requested_neck_joint_to_where_the_head_puts_the_chin(shift) -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    requested = with_head_points(pose, lambda points: points + shift)
    moved, _ = plan_parts(image, person_coverage(mask), pose, requested)
    plans = {plan.name: plan for plan in moved}

    def apply(matrix: np.ndarray, point: np.ndarray) -> np.ndarray:
        return matrix[:, :2] @ point + matrix[:, 2]

    neck = pose[Body.NECK, :2].astype(np.float64)
    chin = neck + NECK_LENGTH * (pose[HEAD_POINTS, :2].mean(axis=0) - neck)
    np.testing.assert_allclose(apply(plans["neck"].matrix, neck), requested[Body.NECK, :2], atol=1e-4)
    np.testing.assert_allclose(apply(plans["neck"].matrix, chin), apply(plans["head"].matrix, chin), atol=1e-4)


@pytest.mark.parametrize("factor", [0.4, 2.5])
def test_a_head_whose_points_bunch_up_or_spread_keeps_about_the_bodys_scale(factor: float) -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    centre = pose[HEAD_POINTS, :2].mean(axis=0)
    requested = with_head_points(pose, lambda points: centre + factor * (points - centre))
    warped = warp_person(image, mask, pose, requested)

    # The head's area: how much of each pixel it covers, where the colour drawn there is the head's.
    colour = warped.premultiplied / np.maximum(warped.alpha[..., None], 1e-6)
    area = float((warped.alpha * (np.abs(colour - COLOURS["head"]).max(axis=-1) <= 12)).sum())
    original = int((np.abs(image.astype(int) - COLOURS["head"]).max(axis=-1) <= 12).sum())
    # HEAD_SCALE_LIMIT (1.2) of the body's scale, which is unchanged: the area 1.2 squared smaller or larger,
    # not the points' own 0.4 or 2.5 (the limit for other parts, 1.6, would give 0.39 or 2.56 of it).
    expected = original * (1.2 ** 2 if factor > 1 else 1 / 1.2 ** 2)
    assert area == pytest.approx(expected, rel=0.1), (area, original)


def test_the_warp_is_deterministic() -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    requested = turned(pose, Body.R_SHOULDER, [int(Body.R_ELBOW)] + RIGHT_FOREARM_AND_HAND, 35.0)
    first, second = warp_person(image, mask, pose, requested), warp_person(image, mask, pose, requested)
    assert np.array_equal(first.premultiplied, second.premultiplied)
    assert np.array_equal(first.validity, second.validity)


# -- choosing exemplars --------------------------------------------------------------------------------


def shifted_poses(offsets) -> np.ndarray:
    """One pose per offset: the standing figure moved right by that many pixels (eq. 6 between two is
    the difference of their offsets)."""
    base = standing_pose(200.0, 230.0, 180.0)
    poses = np.repeat(base[None], len(offsets), axis=0)
    poses[:, :, 0] += np.asarray(offsets, np.float32)[:, None]
    return poses


def test_held_out_frames_are_never_exemplars() -> None:
    frame_count, holdout = 40, 0.25
    first = first_heldout_frame(frame_count, holdout)
    target = shifted_poses(np.arange(frame_count) * 3.0)
    requested = target[first:]  # the held-out poses themselves: their own frames would be at distance 0
    chosen = choose_exemplars(requested, target, first, switch_margin=0.0)
    assert len(chosen) == frame_count - first
    assert (chosen >= 0).all() and (chosen < first).all()
    assert (chosen == first - 1).all()  # the nearest training frame
    # The same poses with nothing held out pick the held-out frames themselves: the boundary is what stops it.
    assert np.array_equal(choose_exemplars(requested, target, frame_count, switch_margin=0.0),
                          np.arange(first, frame_count))


def test_the_exemplar_is_kept_unless_another_is_clearly_closer() -> None:
    target = shifted_poses([0.0, 20.0])  # training frames A (offset 0) and B (offset 20)
    # Requested: at A; nearer A; B marginally nearer (9.7 against 10.3); B clearly nearer (4 against 16).
    requested = shifted_poses([0.0, 9.7, 10.3, 16.0])
    np.testing.assert_array_equal(choose_exemplars(requested, target, 2, switch_margin=0.2), [0, 0, 0, 1])
    np.testing.assert_array_equal(choose_exemplars(requested, target, 2, switch_margin=0.0), [0, 0, 1, 1])
    # Frames with nobody get no exemplar and keep the kept one for the frames after them.
    distances = np.array([[1.0, 2.0], [np.inf, np.inf], [1.0, 0.9], [3.0, 1.0]])
    np.testing.assert_array_equal(hysteresis_choice(distances, 0.2), [0, -1, 0, 1])


def test_exemplar_options_are_checked() -> None:
    from edn.core.errors import EdnError

    assert ExemplarOptions().switch_margin == 0.2
    with pytest.raises(EdnError, match="switch_margin"):
        ExemplarOptions(switch_margin=1.0)


# -- edn pose-warp ---------------------------------------------------------------------------------------


def _write_small_target(directory, frame_count=6):
    """A synthetic target on disk: frames, masks, poses and a plate (the figure waving its right forearm)."""
    width, height = SIZE
    pose = figure_pose()
    poses = np.stack([turned(pose, Body.R_ELBOW, RIGHT_FOREARM_AND_HAND, 15.0 * t) for t in range(frame_count)])
    drawn = [draw_figure(p) for p in poses]
    return write_target(directory, poses, [image for image, _ in drawn], [m for _, m in drawn])


def write_target(directory, poses: np.ndarray, images, masks) -> dict:
    """A target on disk from its ``poses`` and each frame's figure ``images`` and ``masks``: frames (the
    figures over a grey plate), masks, the pose table and the plate. Returns their paths."""
    width, height = SIZE
    plate = np.full((height, width, 3), 90, np.uint8)
    frames = np.stack([np.where(m[..., None] > 0, image, plate) for image, m in zip(images, masks)])
    paths = {name: directory / f"{name}.npy" for name in ("frames", "masks")}
    np.save(paths["frames"], frames)
    np.save(paths["masks"], np.stack(masks))
    paths["poses"] = directory / "poses.parquet"
    write_pose_table(paths["poses"], PoseSequence(poses.astype(np.float32), (width, height), "synthetic"))
    paths["plate"] = directory / "plate.png"
    cv2.imwrite(str(paths["plate"]), plate)
    return paths


def test_pose_warp_refuses_a_requested_table_of_another_frame_size(tmp_path) -> None:
    paths = _write_small_target(tmp_path)
    other = tmp_path / "other.parquet"
    write_pose_table(other, PoseSequence(np.stack([figure_pose()] * 3), (256, 128), "synthetic"))
    output = tmp_path / "out.npy"
    result = run_edn("pose-warp", "--frames", paths["frames"], "--masks", paths["masks"], "--poses", paths["poses"],
                     "--plate", paths["plate"], "--requested", other, "--output", output)
    assert result.returncode == 1
    assert result.error_lines == [f"edn pose-warp: error: requested poses {str(other)!r}: 256x128, the target's "
                                  f"frames are {SIZE[0]}x{SIZE[1]}"]
    assert not output.exists()


def test_pose_warp_of_the_held_out_frames_uses_training_frames_only(tmp_path) -> None:
    paths = _write_small_target(tmp_path, frame_count=6)
    output, exemplars = tmp_path / "out.npy", tmp_path / "exemplars.csv"
    result = run_edn("pose-warp", "--frames", paths["frames"], "--masks", paths["masks"], "--poses", paths["poses"],
                     "--plate", paths["plate"], "--requested", paths["poses"], "--heldout-only",
                     "--holdout-fraction", "0.5", "--output", output, "--exemplars", exemplars,
                     "--validity", tmp_path / "validity.npy")
    assert result.returncode == 0, result.stderr
    frames = np.load(output)
    assert frames.shape == (3, SIZE[1], SIZE[0], 3)
    import pandas as pd

    table = pd.read_csv(exemplars)
    assert list(table["frame"]) == [0, 1, 2] and (table["exemplar"] < 3).all() and (table["exemplar"] >= 0).all()
    assert np.load(tmp_path / "validity.npy").shape == (3, SIZE[1], SIZE[0])


@pytest.mark.slow
def test_pose_warp_on_the_demo_target_writes_a_frame_per_requested_pose_at_the_plate_size(tmp_path) -> None:
    """A second and a half of the demo juggler through decode, pose, render and background, then pose-warp
    on its held-out end and on all its poses."""
    clip = tmp_path / "juggler.mp4"
    ffmpeg("-i", DEMO / "target_juggler.mp4", "-t", "1.5", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", clip)
    frames, meta, poses = tmp_path / "frames.npy", tmp_path / "meta.json", tmp_path / "poses.parquet"
    steps = [
        ("decode", "--video", clip, "--frames", frames, "--meta", meta, "--width", "256", "--height", "128"),
        ("pose", "--frames", frames, "--meta", meta, "--video", clip, "--output", poses, "--workers", "1"),
        ("render", "--poses", poses, "--labels", tmp_path / "labels.npy", "--index", tmp_path / "index.csv"),
        ("background", "--subject", "juggler", "--frames", frames, "--labels", tmp_path / "labels.npy",
         "--plate", tmp_path / "plate.png", "--coverage", tmp_path / "coverage.png",
         "--report", tmp_path / "plate.json", "--masks", tmp_path / "masks.npy", "--workers", "1"),
    ]
    for step in steps:
        result = run_edn(*step)
        assert result.returncode == 0, result.stderr
    frame_count = len(np.load(frames, mmap_mode="r"))
    common = ("pose-warp", "--frames", frames, "--masks", tmp_path / "masks.npy", "--poses", poses,
              "--plate", tmp_path / "plate.png", "--requested", poses, "--holdout-fraction", "0.2")
    heldout = tmp_path / "heldout.npy"
    result = run_edn(*common, "--heldout-only", "--output", heldout)
    assert result.returncode == 0, result.stderr
    plate = cv2.imread(str(tmp_path / "plate.png"))
    generated = np.load(heldout)
    assert generated.shape == (frame_count - first_heldout_frame(frame_count, 0.2),) + plate.shape
    everything = tmp_path / "all.npy"
    result = run_edn(*common, "--output", everything)
    assert result.returncode == 0, result.stderr
    assert np.load(everything).shape == (frame_count,) + plate.shape
    # A person is drawn: the frames differ from the bare plate.
    assert np.abs(generated.astype(int) - cv2.cvtColor(plate, cv2.COLOR_BGR2RGB)[None]).max() > 60
