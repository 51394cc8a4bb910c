"""Subject statistics and global pose normalization (paper eqs. 7-8)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edn.core.errors import EdnError
from edn.pose.keypoints import PoseSequence, read_pose_table, write_pose_table
from edn.normalize.pose_transform import DEGENERATE_RANGE_PX, depth_mapping, normalize_poses
from edn.pose.skeleton import BODY, FACE, LEFT_HAND, RIGHT_HAND, Body
from edn.normalize.subject_stats import compute_stats, read_stats, write_stats
from helpers import run_edn
from synthetic_poses import drop_joints, standing_pose, walking_sequence


def lower_ankle_y(keypoints: np.ndarray) -> np.ndarray:
    return np.maximum(keypoints[..., Body.R_ANKLE, 1], keypoints[..., Body.L_ANKLE, 1])


def nose_height(keypoints: np.ndarray) -> np.ndarray:
    """Distance from the nose to the ankle midpoint, per frame."""
    mid = (keypoints[..., Body.R_ANKLE, :2] + keypoints[..., Body.L_ANKLE, :2]) / 2
    return np.linalg.norm(keypoints[..., Body.NOSE, :2] - mid, axis=-1)


# -- the worked example: every number written out --------------------------------

SOURCE_A = np.array([150, 160, 170, 180, 190, 200, 210.0])
SOURCE_H = np.array([90, 95, 100, 105, 110, 115, 120.0])
TARGET_A = np.array([100, 110, 120, 130, 140.0])
TARGET_H = np.array([50, 55, 60, 65, 70.0])


def test_worked_example() -> None:
    source = compute_stats(walking_sequence(SOURCE_A, SOURCE_H), "source", alpha=0.7)
    target = compute_stats(walking_sequence(TARGET_A, TARGET_H), "target", alpha=0.7)
    # Source: close = max a = 210; median = 180; the far band is
    # (180 - 0.7 * (210 - 180), 180] = (159, 180], holding 160, 170, 180: far = 160.
    assert (source.close, source.median, source.far) == (210, 180, 160)
    # Tolerance = 5% of the 50 px range = 2.5 px: one frame at each end.
    assert source.tolerance_px == 2.5
    assert (source.h_close, source.h_far) == pytest.approx((120, 95))
    assert source.valid_frames == 7
    # Target: close 140, median 120, band (120 - 14, 120] = (106, 120]: far = 110.
    assert (target.close, target.median, target.far) == (140, 120, 110)
    assert (target.h_close, target.h_far) == pytest.approx((70, 55))

    mapping = depth_mapping(source, target)
    assert mapping.scale_close == pytest.approx(70 / 120)  # 0.58333
    assert mapping.scale_far == pytest.approx(55 / 95)  # 0.57895
    # A source frame standing at a = 185 with height 112.5:
    #   p  = (185 - 160) / (210 - 160) = 0.5
    #   a' = 110 + 0.5 * (140 - 110) = 125
    #   s  = 0.57895 + 0.5 * (0.58333 - 0.57895) = 0.58114
    frame = walking_sequence(np.array([185.0]), np.array([112.5]))
    normalized, transforms = normalize_poses(frame, source, target)
    s = 55 / 95 + 0.5 * (70 / 120 - 55 / 95)
    assert s == pytest.approx(0.581140, abs=1e-6)
    assert transforms.scale[0] == pytest.approx(s)
    k = normalized.keypoints[0]
    assert lower_ankle_y(k) == pytest.approx(125.0, abs=1e-3)
    assert k[Body.NOSE, 1] == pytest.approx(125.0 - 112.5 * s, abs=1e-3)  # 59.622
    assert k[Body.NOSE, 0] == pytest.approx(200.0, abs=1e-3)  # x about the ankle: unchanged at 200


# -- properties -------------------------------------------------------------------

depths = st.lists(st.floats(100, 240), min_size=5, max_size=30)


@st.composite
def subjects(draw):
    ankle_ys = np.array(draw(depths))
    base = draw(st.floats(40, 120))
    growth = draw(st.floats(0.0, 0.6))  # nearer is taller, by perspective
    return walking_sequence(ankle_ys, base + growth * (ankle_ys - 100))


@settings(deadline=None)
@given(subjects())
def test_identical_statistics_give_the_identity(poses: PoseSequence) -> None:
    stats = compute_stats(poses, "same")
    normalized, _ = normalize_poses(poses, stats, stats)
    np.testing.assert_allclose(normalized.keypoints, poses.keypoints, atol=1e-3)


@settings(deadline=None)
@given(subjects(), subjects())
# Hypothesis's shrunk counterexample to the property as first written (a CI run drew it): a source
# standing at one depth, so its far and close probe frames are one frame, which the property wanted
# mapped to the target's far height (40) and to its close height (41) at once; it lands at 40.5 in both.
@example(walking_sequence(np.full(5, 100.0), np.full(5, 40.0)),
         walking_sequence(np.array([100.0, 100, 100, 100, 102]), np.array([40.0, 40, 40, 40, 41])))
# A source that moves but stands at its nearest depth in most frames: the median is the close depth,
# so the paper's far band (median - alpha (close - median), median] holds the close depth alone.
@example(walking_sequence(np.array([150.0, 200, 200, 200, 200]), np.array([70.0, 90, 90, 90, 90])),
         walking_sequence(np.array([100.0, 100, 100, 120, 120]), np.array([40.0, 40, 40, 41, 41])))
def test_close_and_far_map_onto_the_target(source_poses: PoseSequence, target_poses: PoseSequence) -> None:
    source = compute_stats(source_poses, "s")
    target = compute_stats(target_poses, "t")
    mapping = depth_mapping(source, target)
    probe = walking_sequence(np.array([source.far, source.close]), np.array([source.h_far, source.h_close]))
    normalized, _ = normalize_poses(probe, source, target)
    ankles, heights = lower_ankle_y(normalized.keypoints), nose_height(normalized.keypoints)
    # Far goes to far (of the possibly shrunk target range), close to close,
    # heights scaled by c_far and c_close.
    assert ankles == pytest.approx([mapping.far_t, mapping.close_t], abs=1e-2)
    if source.depth_range > DEGENERATE_RANGE_PX:
        scales = [mapping.scale_far, mapping.scale_close]
    else:
        # No depth range (close == far): the two probe frames are one depth, so no map can send one to the
        # far scale and the other to the close scale. Both go to the middle of the target's range (the
        # ankle check above), with the mean of the two scales.
        scales = [(mapping.scale_far + mapping.scale_close) / 2] * 2
    assert heights == pytest.approx([source.h_far * scales[0], source.h_close * scales[1]], rel=1e-4, abs=1e-2)
    if source.depth_range >= target.depth_range:
        assert (mapping.far_t, mapping.close_t) == (target.far, target.close)
        assert heights == pytest.approx([target.h_far, target.h_close], rel=1e-4, abs=1e-2)


@settings(deadline=None)
@given(subjects(), subjects())
def test_monotone_between_far_and_close(source_poses: PoseSequence, target_poses: PoseSequence) -> None:
    source, target = compute_stats(source_poses, "s"), compute_stats(target_poses, "t")
    a = np.linspace(source.far, source.close, 9)
    normalized, transforms = normalize_poses(walking_sequence(a, np.full(9, 80.0)), source, target)
    ankles = lower_ankle_y(normalized.keypoints)
    assert np.all(np.diff(ankles) >= -1e-3)  # nearer in the source stays nearer in the target
    low, high = sorted((target.h_far / source.h_far, target.h_close / source.h_close))
    assert np.all((transforms.scale >= low * (1 - 1e-6)) & (transforms.scale <= high * (1 + 1e-6)))


@settings(deadline=None)
@given(subjects(), subjects())
def test_face_and_hands_move_with_the_body(source_poses: PoseSequence, target_poses: PoseSequence) -> None:
    source, target = compute_stats(source_poses, "s"), compute_stats(target_poses, "t")
    normalized, transforms = normalize_poses(source_poses, source, target)
    before, after = source_poses.keypoints, normalized.keypoints
    anchor_before = before[:, Body.R_ANKLE, :2]
    anchor_after = after[:, Body.R_ANKLE, :2]
    for part in (FACE, LEFT_HAND, RIGHT_HAND, BODY):
        expected = anchor_after[:, None] + transforms.scale[:, None, None] * (before[:, part, :2] - anchor_before[:, None])
        np.testing.assert_allclose(after[:, part, :2], expected, atol=2e-3)
        np.testing.assert_array_equal(after[:, part, 2], before[:, part, 2])  # confidences untouched
    assert normalized.frame_count == source_poses.frame_count


# -- the authors' bugs, each shown not to happen ------------------------------------

def test_validity_requires_both_ankles_not_an_ear() -> None:
    # The authors' check tested the left ear instead of the left ankle, so a frame
    # with no left ankle (at 0, 0) entered the statistics and corrupted them.
    poses = walking_sequence(np.array([150.0, 160, 170, 180]), np.full(4, 80.0))
    broken = drop_joints(poses, frames=[0, 1], joints=[Body.L_ANKLE])
    stats = compute_stats(broken, "s")
    assert stats.valid_frames == 2
    assert stats.close == 180 and stats.h_close == pytest.approx(80)


def test_no_valid_frame_is_an_error_not_an_endless_loop() -> None:
    poses = drop_joints(walking_sequence(np.full(5, 150.0), np.full(5, 80.0)), frames=range(5),
                        joints=[Body.L_ANKLE])
    with pytest.raises(EdnError, match="subject 'ghost': no frame shows both ankles and the head"):
        compute_stats(poses, "ghost")


def test_scaling_is_about_each_frames_ankle_so_it_lands_on_target() -> None:
    # With a fixed anchor (the authors' code), the ankle misses its target whenever s != 1.
    source = compute_stats(walking_sequence(SOURCE_A, SOURCE_H, ankle_x=400), "s")
    target = compute_stats(walking_sequence(TARGET_A, TARGET_H, ankle_x=100), "t")
    mapping = depth_mapping(source, target)
    a = np.array([150.0, 172.0, 205.0, 230.0])
    normalized, transforms = normalize_poses(walking_sequence(a, np.full(4, 100.0), ankle_x=400), source, target)
    assert np.all(np.abs(transforms.scale - 1) > 0.3)
    assert lower_ankle_y(normalized.keypoints) == pytest.approx(mapping.target_ankle_y(a), abs=1e-3)


def test_no_frame_is_dropped_and_gaps_are_interpolated() -> None:
    a = np.linspace(150, 210, 12)
    poses = walking_sequence(a, np.full(12, 100.0))
    source = compute_stats(poses, "s")
    target = compute_stats(walking_sequence(TARGET_A, TARGET_H), "t")
    _, full = normalize_poses(poses, source, target)
    # Frames 4-6 lose their ankles, frame 9 loses everyone (nobody in view).
    gappy = drop_joints(poses, frames=[4, 5, 6], joints=[Body.L_ANKLE, Body.R_ANKLE])
    gappy = gappy.replace(np.where(np.arange(12)[:, None, None] == 9, 0.0, gappy.keypoints))
    normalized, transforms = normalize_poses(gappy, source, target)
    assert normalized.frame_count == 12
    assert list(transforms.measured) == [True] * 4 + [False] * 3 + [True] * 2 + [False] + [True] * 2
    # Linear in time between frames 3 and 7; the depth is linear in time here too.
    np.testing.assert_allclose(transforms.scale[4:7], full.scale[4:7], rtol=1e-6)
    # Offsets are interpolated linearly too: the nose lands within a pixel of where
    # the frames' own (dropped) ankles would have put it.
    reference, _ = normalize_poses(poses, source, target)
    np.testing.assert_allclose(normalized.keypoints[4:7, Body.NOSE, :2], reference.keypoints[4:7, Body.NOSE, :2],
                               atol=1.0)
    assert not normalized.keypoints[9].any()  # nobody stays nobody, in place


def test_body_25_feet_are_normalized_too() -> None:
    # BODY_23 was hard-coded upstream; here heels and toes are moved with the rest.
    source = compute_stats(walking_sequence(SOURCE_A, SOURCE_H), "s")
    target = compute_stats(walking_sequence(TARGET_A, TARGET_H), "t")
    frame = walking_sequence(np.array([185.0]), np.array([100.0]))
    normalized, transforms = normalize_poses(frame, source, target)
    for joint in (Body.L_HEEL, Body.R_HEEL, Body.L_BIG_TOE, Body.R_SMALL_TOE):
        offset_before = frame.keypoints[0, joint, :2] - frame.keypoints[0, Body.R_ANKLE, :2]
        offset_after = normalized.keypoints[0, joint, :2] - normalized.keypoints[0, Body.R_ANKLE, :2]
        assert offset_after == pytest.approx(transforms.scale[0] * offset_before, abs=1e-3)


def test_statistics_are_deterministic_and_use_every_frame() -> None:
    # Upstream drew random frames with replacement; here the result cannot depend
    # on chance, nor on the order of the frames.
    rng = np.random.default_rng(1)
    a = rng.uniform(120, 220, 300)
    poses = walking_sequence(a, 60 + 0.3 * (a - 120))
    shuffled = poses.replace(poses.keypoints[rng.permutation(300)])
    assert compute_stats(poses, "s") == compute_stats(poses, "s")
    first, second = compute_stats(poses, "s").to_json(), compute_stats(shuffled, "s").to_json()
    assert first == second and first["valid_frames"] == 300


# -- edge cases -----------------------------------------------------------------------

def test_subject_that_never_changes_depth() -> None:
    still = compute_stats(walking_sequence(np.full(6, 180.0), np.full(6, 90.0)), "still")
    assert still.close == still.far == 180
    target = compute_stats(walking_sequence(TARGET_A, TARGET_H), "t")
    probe = walking_sequence(np.array([180.0, 182.0]), np.array([90.0, 90.0]))
    normalized, transforms = normalize_poses(probe, still, target)
    # The only depth goes to the middle of the target's range, a 2 px step stays 2 px,
    # and the scale is the mean of the close and far scales.
    middle = (target.close + target.far) / 2
    assert lower_ankle_y(normalized.keypoints) == pytest.approx([middle, middle + 2])
    mean_scale = (target.h_close / still.h_close + target.h_far / still.h_far) / 2
    assert transforms.scale == pytest.approx([mean_scale, mean_scale])
    assert nose_height(normalized.keypoints)[0] == pytest.approx(90 * mean_scale, rel=1e-4)


def test_narrow_source_range_keeps_its_length_centred_in_the_target_range() -> None:
    source = compute_stats(walking_sequence(np.array([170.0, 175, 180, 185, 190]), np.full(5, 100.0)), "s")
    target = compute_stats(walking_sequence(np.linspace(100, 180, 9), np.full(9, 60.0)), "t")
    assert source.depth_range < target.depth_range
    mapping = depth_mapping(source, target)
    assert mapping.close_t - mapping.far_t == pytest.approx(source.depth_range)
    assert (mapping.close_t + mapping.far_t) / 2 == pytest.approx((target.close + target.far) / 2)


def test_horizontal_recentring_is_optional() -> None:
    source = compute_stats(walking_sequence(SOURCE_A, SOURCE_H, ankle_x=400), "s")
    target = compute_stats(walking_sequence(TARGET_A, TARGET_H, ankle_x=100), "t")
    frame = walking_sequence(np.array([185.0]), np.array([100.0]), ankle_x=400)
    plain, _ = normalize_poses(frame, source, target)
    centred, _ = normalize_poses(frame, source, target, recenter_x=True)
    mid = lambda k: (k[0, Body.R_ANKLE, 0] + k[0, Body.L_ANKLE, 0]) / 2  # noqa: E731
    assert mid(plain.keypoints) == pytest.approx(400, abs=1e-3)
    assert mid(centred.keypoints) == pytest.approx(100, abs=1e-3)


def test_cli_round_trip_and_missing_ankles_error(tmp_path) -> None:
    write_pose_table(tmp_path / "s.parquet", walking_sequence(SOURCE_A, SOURCE_H))
    write_pose_table(tmp_path / "t.parquet", walking_sequence(TARGET_A, TARGET_H))
    for name in ("s", "t"):
        result = run_edn("stats", "--poses", tmp_path / f"{name}.parquet", "--subject", name,
                         "--output", tmp_path / f"{name}.json")
        assert result.returncode == 0, result.stderr
    assert read_stats(tmp_path / "s.json").close == 210
    result = run_edn("normalize", "--source-poses", tmp_path / "s.parquet", "--source-stats", tmp_path / "s.json",
                     "--target-stats", tmp_path / "t.json", "--output", tmp_path / "n.parquet")
    assert result.returncode == 0, result.stderr
    normalized = read_pose_table(tmp_path / "n.parquet")
    assert normalized.frame_count == 7
    assert lower_ankle_y(normalized.keypoints).max() == pytest.approx(140, abs=1e-3)

    no_ankles = drop_joints(walking_sequence(SOURCE_A, SOURCE_H), frames=range(7), joints=[Body.R_ANKLE])
    write_pose_table(tmp_path / "bad.parquet", no_ankles)
    result = run_edn("stats", "--poses", tmp_path / "bad.parquet", "--subject", "juggler",
                     "--output", tmp_path / "bad.json")
    assert result.returncode == 1 and len(result.error_lines) == 1
    assert "subject 'juggler': no frame shows both ankles" in result.error_lines[0]
    assert not (tmp_path / "bad.json").exists()


def test_stats_file_round_trip(tmp_path) -> None:
    stats = compute_stats(walking_sequence(SOURCE_A, SOURCE_H), "s")
    write_stats(tmp_path / "s.json", stats)
    assert read_stats(tmp_path / "s.json") == stats


def test_standing_pose_helper_is_what_the_tests_assume() -> None:
    pose = standing_pose(100, 200, 80)
    assert lower_ankle_y(pose[None])[0] == 200 and nose_height(pose[None])[0] == pytest.approx(80)


# -- the shipped pair: the dancer onto the juggler, real MediaPipe poses -------------

def test_shipped_dancer_lands_in_the_jugglers_range_at_his_height(dancer, juggler, tmp_path) -> None:
    from edn.ingest.frames import load_frames
    from edn.labels.preview import write_normalization_figure
    from edn.pose.keypoint_filter import filter_poses
    from edn.normalize.subject_stats import ankle_measures, head_points

    source_poses, target_poses = filter_poses(dancer.poses), filter_poses(juggler.poses)
    source, target = compute_stats(source_poses, "dancer"), compute_stats(target_poses, "juggler")
    normalized, _ = normalize_poses(source_poses, source, target)
    assert normalized.frame_count == source_poses.frame_count == 102

    a_n, mid_n, valid_n = ankle_measures(normalized.keypoints)
    a_t, mid_t, valid_t = ankle_measures(target_poses.keypoints)
    tolerance = target.tolerance_px
    inside = (a_n[valid_n] >= target.far - tolerance) & (a_n[valid_n] <= target.close + tolerance)
    assert inside.mean() >= 0.95, f"only {inside.mean():.0%} of the dancer's frames stand in the juggler's range"

    # Standing height (90th percentile of nose-to-ankles) at matching depth: the
    # juggler's frames within a pixel of each depth the normalized dancer stands at.
    head_n, has_head_n = head_points(normalized.keypoints)
    head_t, has_head_t = head_points(target_poses.keypoints)
    h_n = np.linalg.norm(head_n - mid_n, axis=1)[valid_n & has_head_n]
    h_t_all = np.linalg.norm(head_t - mid_t, axis=1)
    depths = a_n[valid_n & has_head_n]
    near = np.zeros(target_poses.frame_count, bool)
    for depth in np.unique(np.round(depths)):
        near |= valid_t & has_head_t & (np.abs(a_t - depth) <= 1.0)
    assert near.sum() >= 20
    dancer_height, juggler_height = np.percentile(h_n, 90), np.percentile(h_t_all[near], 90)
    print(f"standing height: dancer {dancer_height:.1f} px, juggler {juggler_height:.1f} px; inside {inside.mean():.0%}")
    assert dancer_height == pytest.approx(juggler_height, rel=0.10)

    figure = tmp_path / "normalization.png"
    write_normalization_figure(normalized, target_poses, load_frames(juggler.frames), figure)
    import cv2

    image = cv2.imread(str(figure))
    assert image.shape == (128, 2 * 256 + 4, 3)
