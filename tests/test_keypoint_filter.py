"""Keypoint filtering: gaps, outliers, noise, no time shift, frame count kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edn.pose.keypoints import PoseSequence, read_pose_table, write_pose_table
from edn.pose.skeleton import KEYPOINT_COUNT, Body
from edn.pose.keypoint_filter import fill_gaps, filter_poses, filter_track
from helpers import run_edn

J = Body.L_WRIST


def _poses(track: np.ndarray) -> PoseSequence:
    """A sequence whose joint J follows ``track`` [T, 3]; every other keypoint missing."""
    keypoints = np.zeros((len(track), KEYPOINT_COUNT, 3), np.float32)
    keypoints[:, J] = track
    return PoseSequence(keypoints=keypoints, frame_size=(256, 128), detector="test")


def _track(x: np.ndarray, y: np.ndarray | None = None, confidence: np.ndarray | float = 0.9) -> np.ndarray:
    y = np.full_like(x, 50.0) if y is None else y
    return np.stack([x, y, np.broadcast_to(confidence, x.shape)], axis=1).astype(np.float64)


def test_constant_speed_and_acceleration_pass_unchanged_even_at_the_ends() -> None:
    t = np.arange(40, dtype=float)
    track = _track(10 + 2.5 * t, 100 - 0.75 * t, confidence=np.linspace(0.3, 1.0, 40))
    out = filter_track(track, max_gap_frames=5, median_window=5, sigma_frames=2.0)
    np.testing.assert_allclose(out, track, atol=1e-9)
    thrown = _track(10 + 3 * t, 120 - 6 * t + 0.15 * t**2)  # a ball's flight
    out = filter_track(thrown, max_gap_frames=5, median_window=1, sigma_frames=2.0)
    np.testing.assert_allclose(out, thrown, atol=1e-7)


def test_noise_is_reduced_and_nothing_moves_in_time() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(120, dtype=float)
    truth = 100 + 30 * np.sin(2 * np.pi * t / 40)
    noisy = truth + rng.normal(0, 1.5, t.shape)
    out = filter_poses(_poses(_track(noisy)), sigma_frames=2.0).keypoints[:, J, 0]

    def rms(error: np.ndarray) -> float:
        return float(np.sqrt(np.mean(error**2)))

    assert rms(out - truth) < 0.6 * rms(noisy - truth)
    # The peaks of the smoothed wave are at the true peaks: zero phase.
    lags = list(range(-4, 5))
    errors = [np.mean((np.roll(out, lag) - truth)[10:-10] ** 2) for lag in lags]
    assert lags[int(np.argmin(errors))] == 0


def test_a_single_frame_jump_is_removed_by_the_median() -> None:
    x = np.full(30, 80.0)
    x[15] = 140.0  # a detector glitch
    out = filter_poses(_poses(_track(x)), median_window=5, sigma_frames=1.0).keypoints[:, J, 0]
    assert np.abs(out - 80).max() < 1e-4
    kept = filter_poses(_poses(_track(x)), median_window=1, sigma_frames=0).keypoints[:, J, 0]
    assert kept[15] == 140  # both steps off: the glitch stays


def test_confident_frames_pull_harder_than_doubtful_ones() -> None:
    x = np.full(21, 50.0)
    x[10] = 60.0
    doubtful, confident = np.full(21, 0.9), np.full(21, 0.9)
    doubtful[10], confident[10] = 0.1, 1.0
    low = filter_track(_track(x, confidence=doubtful), max_gap_frames=0, median_window=1, sigma_frames=1.5)
    high = filter_track(_track(x, confidence=confident), max_gap_frames=0, median_window=1, sigma_frames=1.5)
    assert 50 < low[10, 0] < high[10, 0] < 60


def test_short_gaps_are_filled_long_ones_and_ends_are_not() -> None:
    t = np.arange(40, dtype=float)
    track = _track(20 + 2 * t, confidence=np.linspace(0.5, 0.9, 40))
    track[[0, 1]] = 0  # the start: nothing before it to interpolate from
    track[10:13] = 0  # 3 frames: filled
    track[20:30] = 0  # 10 frames: left missing
    out = fill_gaps(track, max_gap_frames=5)
    np.testing.assert_allclose(out[10:13, 0], 20 + 2 * t[10:13])
    np.testing.assert_allclose(out[10:13, 2], track[9, 2])  # the smaller neighbouring confidence
    assert (out[20:30] == 0).all() and (out[:2] == 0).all()
    smoothed = filter_poses(_poses(track), max_gap_frames=5)
    present = smoothed.confidence[:, J] > 0
    assert present[10:13].all() and not present[20:30].any() and not present[:2].any()
    assert (smoothed.keypoints[~present] == 0).all()
    # No leak across the long gap: each side keeps its own straight line.
    np.testing.assert_allclose(smoothed.keypoints[30:, J, 0], 20 + 2 * t[30:], atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(frames=st.integers(1, 60), seed=st.integers(0, 2**16), gap=st.integers(0, 8),
       median=st.integers(1, 9), sigma=st.floats(0, 4))
def test_frame_count_and_missing_frames_are_kept(frames: int, seed: int, gap: int, median: int, sigma: float) -> None:
    rng = np.random.default_rng(seed)
    keypoints = np.zeros((frames, KEYPOINT_COUNT, 3), np.float32)
    keypoints[..., :2] = rng.uniform(0, 256, (frames, KEYPOINT_COUNT, 2))
    keypoints[..., 2] = rng.uniform(0.05, 1, (frames, KEYPOINT_COUNT))
    keypoints[rng.random((frames, KEYPOINT_COUNT)) < 0.3] = 0
    poses = PoseSequence(keypoints=keypoints, frame_size=(256, 128), detector="test")
    out = filter_poses(poses, max_gap_frames=gap, median_window=median, sigma_frames=sigma)
    assert out.keypoints.shape == keypoints.shape and np.isfinite(out.keypoints).all()
    present, was = out.confidence > 0, poses.confidence > 0
    assert (present >= was).all()  # nothing removed
    assert (out.keypoints[~present] == 0).all()
    # Smoothed points stay within the range their trajectory covered (no overshoot).
    lo = np.where(was, poses.xy.transpose(2, 0, 1), np.inf).min(axis=1).T
    hi = np.where(was, poses.xy.transpose(2, 0, 1), -np.inf).max(axis=1).T
    inside = (out.xy >= lo[None] - 1e-3) & (out.xy <= hi[None] + 1e-3)
    assert inside[present].all()


def test_filter_poses_cli(tmp_path: Path) -> None:
    t = np.arange(25, dtype=float)
    write_pose_table(tmp_path / "raw.parquet", _poses(_track(30 + t)))
    result = run_edn("filter-poses", "--poses", tmp_path / "raw.parquet", "--output", tmp_path / "smooth.parquet",
                     "--sigma-frames", "2")
    assert result.returncode == 0, result.stderr
    smooth = read_pose_table(tmp_path / "smooth.parquet")
    assert smooth.frame_count == 25 and smooth.extra["keypoint_filter"]["sigma_frames"] == 2.0
    bad = run_edn("filter-poses", "--poses", tmp_path / "raw.parquet", "--output", tmp_path / "x.parquet",
                  "--median-window", "0")
    assert bad.returncode == 1 and bad.error_lines == ["edn filter-poses: error: option median_window 0: must be at least 1"]
    missing = run_edn("filter-poses", "--poses", tmp_path / "nope.parquet", "--output", tmp_path / "x.parquet")
    assert missing.returncode == 1 and "nope.parquet" in missing.error_lines[0]
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("sigma", [0.5, 3.0])
def test_a_step_stays_centred(sigma: float) -> None:
    """A jump from 0 to 100 between frames 19 and 20 still crosses 50 there."""
    x = np.where(np.arange(40) < 20, 0.0, 100.0)
    out = filter_poses(_poses(_track(x)), median_window=1, sigma_frames=sigma).keypoints[:, J, 0]
    assert out[19] < 50 < out[20]
    assert out[19] + out[20] == pytest.approx(100, abs=1e-3)
