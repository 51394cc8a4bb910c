"""Filtering keypoints over time: fill short gaps, remove outliers, filter without a time shift.

Not the paper's temporal smoothing, which feeds the generator its previous frame
(:mod:`edn.models.temporal_smoothing`); this cleans the detected poses before anything is drawn.

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
3. **Filtering.** A confidence-weighted local-quadratic Gaussian smoother (a
   Savitzky-Golay filter with Gaussian, confidence-scaled weights): at frame t
   the keypoint is the value at t of the parabola fitted to its neighbours,
   weighted by ``exp(-(s - t)^2 / (2 sigma^2)) * confidence(s)``. The kernel is
   centred (zero phase: nothing moves in time), confident frames pull harder
   than doubtful ones, and motion at constant speed or acceleration passes
   unchanged, also at the ends of a run. A plain (local-constant) Gaussian
   would flatten fast moves instead: on a 30-pixel swing every 40 frames it
   misses the turning points by about a pixel at sigma 1.5, the parabola by
   hundredths. A fit can overshoot where it extrapolates (the end of a run, a
   doubtful frame beside confident ones), so the result is clamped to the
   values seen within the kernel's reach.

Steps 2 and 3 run within each run of consecutive present frames, so nothing
leaks across a gap or into missing frames. The frame count never changes and
confidences are kept (filled points get theirs from step 1).
"""

from __future__ import annotations

import numpy as np

from edn.pose.keypoints import PoseSequence
from edn.core.options import KeypointFilterOptions


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


def _local_polynomial(values: np.ndarray, weights: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Confidence-weighted local-quadratic Gaussian smoothing of [n, 2] values (step 3).

    At each frame t, fit ``a + b (s - t) + c (s - t)^2`` to the values at frames
    s by least squares with weights ``gaussian(s - t) * weights(s)`` and keep
    ``a``. Where the window holds too few frames for a parabola, a line, else
    the weighted mean, is fitted instead.
    """
    from scipy.ndimage import correlate1d, maximum_filter1d, minimum_filter1d

    radius = max(1, int(np.ceil(4 * sigma_frames)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    with np.errstate(over="ignore"):  # a tiny sigma: exp(-inf) = 0 is the right weight
        kernel = np.exp(-0.5 * (offsets / sigma_frames) ** 2)

    def window_sum(signal: np.ndarray, power: int) -> np.ndarray:
        # sum over s of kernel(s - t) * (s - t)^power * signal(s); zeros outside the run.
        return correlate1d(signal, kernel * offsets**power, axis=0, mode="constant", cval=0.0)

    moments = np.stack([window_sum(weights, p) for p in range(5)], axis=-1)  # [n, 5]
    targets = np.stack([window_sum(weights[:, None] * values, p) for p in range(3)], axis=1)  # [n, 3, 2]
    fitted = np.full_like(values, np.nan)
    for degree in (2, 1, 0):
        size = degree + 1
        normal = np.stack([moments[:, row : row + size] for row in range(size)], axis=1)  # [n, size, size]
        scale = np.prod([moments[:, 2 * i] for i in range(size)], axis=0)
        solvable = np.isnan(fitted[:, 0]) & (np.abs(np.linalg.det(normal)) > 1e-9 * np.maximum(scale, 1e-300))
        if solvable.any():
            fitted[solvable] = np.linalg.solve(normal[solvable], targets[solvable, :size])[:, 0]
    window = 2 * radius + 1
    low = minimum_filter1d(values, window, axis=0, mode="nearest")
    high = maximum_filter1d(values, window, axis=0, mode="nearest")
    return np.clip(fitted, low, high)


def filter_track(track: np.ndarray, *, max_gap_frames: int, median_window: int, sigma_frames: float) -> np.ndarray:
    """One keypoint's [T, 3] (x, y, confidence) through the three steps; float64 [T, 3]."""
    from scipy.ndimage import median_filter

    out = fill_gaps(track, max_gap_frames)
    for a, b in _runs(out[:, 2] > 0):
        xy = out[a:b, :2]
        if median_window > 1 and b - a > 2:
            window = min(median_window, b - a if (b - a) % 2 else b - a - 1)
            xy = median_filter(xy, size=(window, 1), mode="nearest")
        if sigma_frames > 0 and b - a > 1:
            xy = _local_polynomial(xy, out[a:b, 2], sigma_frames)
        out[a:b, :2] = xy
    return out


def filter_poses(poses: PoseSequence, *, max_gap_frames: int = KeypointFilterOptions.max_gap_frames,
                 median_window: int = KeypointFilterOptions.median_window,
                 sigma_frames: float = KeypointFilterOptions.sigma_frames, show_progress: bool = False
                 ) -> PoseSequence:
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
    for k in tqdm(range(keypoints.shape[1]), unit="keypoint", desc="filter keypoints", leave=False,
                  disable=None if show_progress else True):
        out[:, k] = filter_track(keypoints[:, k], max_gap_frames=max_gap_frames, median_window=median_window,
                                 sigma_frames=sigma_frames)
    out[out[..., 2] <= 0] = 0.0
    extra = dict(poses.extra, keypoint_filter={"max_gap_frames": max_gap_frames, "median_window": median_window,
                                               "sigma_frames": sigma_frames})
    return poses.replace(out.astype(np.float32), extra=extra)
