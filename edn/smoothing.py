"""Temporal smoothing of keypoints: fill short gaps, remove outliers, filter without a time shift.

Each keypoint's trajectory is treated on its own, in three steps:

1. **Gap filling.** A run of at most ``max_gap_frames`` missing frames with the
   keypoint present on both sides is filled by shape-preserving cubic
   interpolation (``scipy.interpolate.PchipInterpolator``, which never
   overshoots its neighbours). A filled point takes the smaller confidence of
   the two frames around the gap. Longer gaps, and the ends of the video, stay
   missing.
2. **Outlier removal.** A centred running median over ``median_window`` frames
   (``scipy.ndimage.median_filter``), as the authors' 7-frame median, removes
   single-frame jumps. It leaves monotonic motion unchanged.
3. **Filtering.** A confidence-weighted local-linear Gaussian smoother: at
   frame t the keypoint is the value at t of the straight line fitted to its
   neighbours, weighted by ``exp(-(s - t)^2 / (2 sigma^2)) * confidence(s)``.
   The kernel is centred (zero phase: nothing moves in time), confident frames
   pull harder than doubtful ones, and motion at constant speed passes
   unchanged, also at the ends of a run.

Steps 2 and 3 run within each run of consecutive present frames, so nothing
leaks across a gap or into missing frames. The frame count never changes and
confidences are kept (filled points get theirs from step 1).
"""

from __future__ import annotations

import numpy as np

from edn.keypoints import PoseSequence


def _runs(present: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], present.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def fill_gaps(track: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """One keypoint's [T, 3] with interior gaps of at most ``max_gap_frames`` filled (step 1)."""
    from scipy.interpolate import PchipInterpolator

    out = track.astype(np.float64, copy=True)
    present = out[:, 2] > 0
    if max_gap_frames < 1 or present.sum() < 2:
        return out
    gaps = [(a, b) for a, b in _runs(~present) if a > 0 and b < len(out) and b - a <= max_gap_frames]
    if not gaps:
        return out
    known = np.flatnonzero(present)
    interpolate = PchipInterpolator(known, out[known, :2], axis=0)
    for a, b in gaps:
        frames = np.arange(a, b)
        out[frames, :2] = interpolate(frames)
        out[frames, 2] = min(out[a - 1, 2], out[b, 2])
    return out


def _local_linear(values: np.ndarray, weights: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Weighted local-linear Gaussian smoothing of [n, 2] values (step 3)."""
    from scipy.ndimage import correlate1d

    radius = max(1, int(np.ceil(4 * sigma_frames)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma_frames) ** 2)

    def window_sum(signal: np.ndarray, power: int) -> np.ndarray:
        # sum over s of kernel(s - t) * (s - t)^power * signal(s); zeros outside the run.
        return correlate1d(signal, kernel * offsets**power, axis=0, mode="constant", cval=0.0)

    w = weights[:, None]
    s0, s1, s2 = (window_sum(w, p) for p in (0, 1, 2))
    t0, t1 = window_sum(w * values, 0), window_sum(w * values, 1)
    determinant = s0 * s2 - s1 * s1
    # The fitted line's value at its centre; where the window holds one frame
    # only, the line is undetermined and the weighted mean is used.
    steady = determinant > 1e-9 * np.maximum(s0 * s2, 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        linear = (s2 * t0 - s1 * t1) / determinant
        mean = t0 / s0
    return np.where(steady, linear, mean)


def smooth_track(track: np.ndarray, *, max_gap_frames: int, median_window: int, sigma_frames: float) -> np.ndarray:
    """One keypoint's [T, 3] (x, y, confidence) through the three steps; float64 [T, 3]."""
    from scipy.ndimage import median_filter

    out = fill_gaps(track, max_gap_frames)
    for a, b in _runs(out[:, 2] > 0):
        xy = out[a:b, :2]
        if median_window > 1 and b - a > 2:
            window = min(median_window, b - a if (b - a) % 2 else b - a - 1)
            xy = median_filter(xy, size=(window, 1), mode="nearest")
        if sigma_frames > 0 and b - a > 1:
            xy = _local_linear(xy, out[a:b, 2], sigma_frames)
        out[a:b, :2] = xy
    return out


def smooth_poses(poses: PoseSequence, *, max_gap_frames: int = 5, median_window: int = 5,
                 sigma_frames: float = 1.5, show_progress: bool = False) -> PoseSequence:
    """Smoothed copy of ``poses``: same frames, same layout (see the module docstring).

    ``max_gap_frames`` 0 fills nothing; ``median_window`` 1 skips the median
    (an even window is used as the next odd one); ``sigma_frames`` 0 skips the
    Gaussian filter.
    """
    from tqdm import tqdm

    if max_gap_frames < 0 or median_window < 1 or sigma_frames < 0:
        raise ValueError("max_gap_frames >= 0, median_window >= 1 and sigma_frames >= 0 are required")
    median_window += 1 - median_window % 2
    keypoints = poses.keypoints.astype(np.float64)
    out = np.zeros_like(keypoints)
    for k in tqdm(range(keypoints.shape[1]), unit="keypoint", desc="smooth", leave=False,
                  disable=None if show_progress else True):
        out[:, k] = smooth_track(keypoints[:, k], max_gap_frames=max_gap_frames, median_window=median_window,
                                 sigma_frames=sigma_frames)
    out[out[..., 2] <= 0] = 0.0
    extra = dict(poses.extra, smoothing={"max_gap_frames": max_gap_frames, "median_window": median_window,
                                         "sigma_frames": sigma_frames})
    return poses.replace(out.astype(np.float32), extra=extra)
