"""Global pose normalization: the source's poses in the target's body and camera.

Paper section 3.1, equations 7 and 8 (appendix 8.5). For a source frame whose
lower ankle is at image height ``a``::

    p      = (a - far_s) / (close_s - far_s)                  relative depth
    a'     = far_t + p (close_t - far_t)                     translation (eq. 7)
    s      = c_far + p (c_close - c_far),                    scale (eq. 8)
    c_close = h_close_t / h_close_s,  c_far = h_far_t / h_far_s

and every keypoint of the frame (body, face, hands) is scaled by ``s`` about the
frame's ankle point and moved so that the lower ankle lands exactly at ``a'``:
``q' = anchor' + s (q - anchor)`` with ``anchor = (ankle midpoint x, a)`` and
``anchor' = (anchor x + shift, a')``. Differences from the authors' code, each on
purpose (see tests/test_normalize.py):

- scaling is about each frame's own ankle point, not a fixed anchor, so the
  ankle lands where eq. 7 says whatever the scale;
- no frame is dropped: frames without both ankles get the parameters
  interpolated in time from the nearest frames that have them;
- a source whose depth range is narrower than the target's is mapped onto a
  target range of the same length centred in the target's range (the authors'
  rule), so moving 10 px forward stays moving 10 px forward;
- a source who never changes depth (close == far) is therefore placed in the
  middle of the target's range, scaled by the mean of the two scales, and any
  small movement is kept pixel for pixel;
- ``p`` is clamped to [0, 1] for the scale only, so a jump above ``far`` is
  translated faithfully but never scaled beyond the measured range;
- horizontal re-centring (the source's median ankle x moved onto the target's)
  is available and off by default, as in the paper;
- a source decoded at another working size than the target (a landscape source
  for a portrait target, docs/configuration.md) keeps its horizontal place
  relative to the frame's centre: x moves by half the difference of the widths,
  and the result is in the target's frame. Heights and ankle rows are already in
  each subject's own pixels, so eqs. 7 and 8 need nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edn.core.errors import EdnError
from edn.pose.keypoints import PoseSequence
from edn.normalize.subject_stats import SubjectStats, ankle_measures

#: A depth range below this many pixels counts as "never changes depth".
DEGENERATE_RANGE_PX = 1e-3


@dataclass(frozen=True)
class DepthMapping:
    """The pair-level constants of eqs. 7 and 8."""

    far_s: float
    close_s: float
    far_t: float
    close_t: float
    scale_far: float
    scale_close: float
    shift_x: float

    @property
    def _source_span(self) -> float:
        return self.close_s - self.far_s

    def target_ankle_y(self, a: np.ndarray) -> np.ndarray:
        """Eq. 7: ``far_t + p (close_t - far_t)``, written as a slope so that a
        source without depth range (close == far) moves pixel for pixel."""
        span = self._source_span
        slope = (self.close_t - self.far_t) / span if span > DEGENERATE_RANGE_PX else 1.0
        return self.far_t + slope * (a - self.far_s)

    def relative_depth(self, a: np.ndarray) -> np.ndarray:
        """``p`` clamped to [0, 1]; 0.5 for a source without depth range."""
        span = self._source_span
        if span <= DEGENERATE_RANGE_PX:
            return np.full_like(a, 0.5, dtype=np.float64)
        return np.clip((a - self.far_s) / span, 0.0, 1.0)

    def scale(self, a: np.ndarray) -> np.ndarray:
        """Eq. 8: ``c_far + p (c_close - c_far)``."""
        return self.scale_far + self.relative_depth(a) * (self.scale_close - self.scale_far)


def depth_mapping(source: SubjectStats, target: SubjectStats, *, recenter_x: bool = False) -> DepthMapping:
    """The constants of eqs. 7 and 8 for a source and target pair."""
    far_t, close_t = target.far, target.close
    if source.depth_range < target.depth_range:
        middle = (target.far + target.close) / 2
        far_t, close_t = middle - source.depth_range / 2, middle + source.depth_range / 2
    return DepthMapping(
        far_s=source.far, close_s=source.close, far_t=far_t, close_t=close_t,
        scale_far=target.h_far / source.h_far, scale_close=target.h_close / source.h_close,
        shift_x=((target.median_ankle_x - source.median_ankle_x) if recenter_x
                 else (target.frame_size[0] - source.frame_size[0]) / 2),
    )


@dataclass(frozen=True)
class FrameTransforms:
    """Per-frame similarity transforms ``q' = scale * q + offset``.

    ``scale`` [T], ``offset`` [T, 2], ``measured`` [T]: True where the frame's own
    ankles gave the parameters, False where they were interpolated.
    """

    scale: np.ndarray
    offset: np.ndarray
    measured: np.ndarray


def frame_transforms(source: PoseSequence, mapping: DepthMapping) -> FrameTransforms:
    """Eqs. 7 and 8 for every frame of ``source``; gaps interpolated in time."""
    a, ankle_mid, has_ankles = ankle_measures(source.keypoints)
    if not has_ankles.any():
        raise EdnError("normalization: no source frame shows both ankles")
    s = mapping.scale(a)
    anchor_x, anchor_y = ankle_mid[:, 0], a
    offset = np.stack([anchor_x + mapping.shift_x - s * anchor_x,
                       mapping.target_ankle_y(a) - s * anchor_y], axis=1)
    frames = np.arange(source.frame_count)
    known = frames[has_ankles]
    # np.interp holds the first and last known values beyond the ends.
    scale = np.interp(frames, known, s[has_ankles])
    offset = np.stack([np.interp(frames, known, offset[has_ankles, i]) for i in range(2)], axis=1)
    return FrameTransforms(scale=scale.astype(np.float64), offset=offset, measured=has_ankles)


def apply_transforms(poses: PoseSequence, transforms: FrameTransforms) -> PoseSequence:
    """Move every detected keypoint of every frame; missing ones stay (0, 0, 0)."""
    keypoints = poses.keypoints.astype(np.float64, copy=True)
    present = keypoints[..., 2] > 0
    moved = transforms.scale[:, None, None] * keypoints[..., :2] + transforms.offset[:, None, :]
    keypoints[..., :2] = np.where(present[..., None], moved, 0.0)
    return poses.replace(keypoints.astype(np.float32))


def normalize_poses(source_poses: PoseSequence, source: SubjectStats, target: SubjectStats,
                    *, recenter_x: bool = False) -> tuple[PoseSequence, FrameTransforms]:
    """The source's poses mapped into the target's frame; same frame count."""
    transforms = frame_transforms(source_poses, depth_mapping(source, target, recenter_x=recenter_x))
    normalized = apply_transforms(source_poses, transforms)
    normalized = normalized.replace(normalized.keypoints, frame_size=tuple(target.frame_size), extra={
        **source_poses.extra, "normalized_from": source.subject, "normalized_to": target.subject})
    return normalized, transforms
