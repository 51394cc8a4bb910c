"""A subject's body and camera statistics for global pose normalization.

Paper section 3.1 and appendix 8.5: the normalization maps a source's ankle
height in the image (its depth in the scene) and body height onto the target's.
Per subject, over every frame where both ankles and the head are detected:

- ``a`` = the lower ankle's y (image y grows downwards, so a larger ``a`` is
  nearer to the camera), ``h`` = distance from the head (nose, else the
  midpoint of the ears) to the midpoint of the ankles;
- ``close`` = max a, ``median`` = median a;
- ``far`` = the smallest a in the band (median - alpha * (close - median), median]:
  the far extreme, mirrored from ``close`` about the median but no further than
  alpha times close's distance, which rejects outliers such as jumps (alpha =
  0.7 in the paper; the authors' code defaults to 0.5);
- ``h_close`` and ``h_far`` = the subject's standing height near those two
  depths: the 90th percentile of h over frames whose a is within ``tolerance``
  of close (of far). The authors take the maximum; a high percentile keeps the
  standing height while ignoring single-frame detector outliers.

Every valid frame is used (no random sampling), so the statistics are
deterministic.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edn.core.atomic import write_json
from edn.core.errors import EdnError
from edn.pose.keypoints import PoseSequence
from edn.core.options import SubjectStatsOptions
from edn.pose.skeleton import Body

#: Fraction of the close-far range within which a frame counts as "at" close or far.
DEPTH_TOLERANCE_FRACTION = 0.05
#: Smallest tolerance, in pixels, so that a subject who never changes depth still has frames at close and far.
MIN_DEPTH_TOLERANCE_PX = 1.0
#: Percentile of heights near a depth taken as the standing height there.
HEIGHT_PERCENTILE = 90.0


@dataclass(frozen=True)
class SubjectStats:
    """Normalization statistics of one subject, in working-frame pixels."""

    subject: str
    frame_size: tuple[int, int]
    frame_count: int
    valid_frames: int
    alpha: float
    close: float
    far: float
    median: float
    h_close: float
    h_far: float
    tolerance_px: float
    median_ankle_x: float

    @property
    def depth_range(self) -> float:
        return self.close - self.far

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SubjectStats:
        values = dict(data)
        values["frame_size"] = tuple(values["frame_size"])
        return cls(**values)


def head_points(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head position [T, 2] and presence [T]: the nose, else the midpoint of both ears."""
    conf = keypoints[..., 2]
    nose, r_ear, l_ear = Body.NOSE, Body.R_EAR, Body.L_EAR
    has_nose = conf[:, nose] > 0
    has_ears = (conf[:, r_ear] > 0) & (conf[:, l_ear] > 0)
    ears = (keypoints[:, r_ear, :2] + keypoints[:, l_ear, :2]) / 2
    head = np.where(has_nose[:, None], keypoints[:, nose, :2], ears)
    return head, has_nose | has_ears


def ankle_measures(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: lower-ankle y ``a`` [T], ankle midpoint [T, 2], both ankles present [T]."""
    conf = keypoints[..., 2]
    right, left = keypoints[:, Body.R_ANKLE, :2], keypoints[:, Body.L_ANKLE, :2]
    present = (conf[:, Body.R_ANKLE] > 0) & (conf[:, Body.L_ANKLE] > 0)
    lower_y = np.maximum(right[:, 1], left[:, 1])
    return lower_y, (right + left) / 2, present


def compute_stats(poses: PoseSequence, subject: str, *, alpha: float = SubjectStatsOptions.alpha) -> SubjectStats:
    """Statistics of ``poses`` (see the module docstring).

    Raises EdnError naming ``subject`` when no frame has both ankles and a head.
    """
    if not 0 < alpha <= 1:
        raise EdnError(f"normalization alpha {alpha}: must be in (0, 1]")
    keypoints = poses.keypoints
    a_all, ankle_mid, has_ankles = ankle_measures(keypoints)
    head, has_head = head_points(keypoints)
    valid = has_ankles & has_head
    if not valid.any():
        raise EdnError(f"subject {subject!r}: no frame shows both ankles and the head "
                       f"({poses.frame_count} frames), so its body statistics cannot be measured")
    a = a_all[valid].astype(np.float64)
    h = np.linalg.norm(head[valid] - ankle_mid[valid], axis=1).astype(np.float64)

    close = float(a.max())
    median = float(np.median(a))
    band = (a > median - alpha * (close - median)) & (a <= median)
    # An empty band (close == median) leaves the nearest depth at or above the median.
    far = float(a[band].min()) if band.any() else float(a[a <= median].max())
    tolerance = max(DEPTH_TOLERANCE_FRACTION * (close - far), MIN_DEPTH_TOLERANCE_PX)
    h_close = float(np.percentile(h[a >= close - tolerance], HEIGHT_PERCENTILE))
    h_far = float(np.percentile(h[np.abs(a - far) <= tolerance], HEIGHT_PERCENTILE))
    if h_close <= 0 or h_far <= 0:
        raise EdnError(f"subject {subject!r}: measured body height is zero (head on the ankles)")
    return SubjectStats(
        subject=subject, frame_size=tuple(poses.frame_size), frame_count=poses.frame_count,
        valid_frames=int(valid.sum()), alpha=alpha, close=close, far=far, median=median,
        h_close=h_close, h_far=h_far, tolerance_px=tolerance,
        median_ankle_x=float(np.median(ankle_mid[valid, 0])),
    )


def write_stats(path: str | os.PathLike, stats: SubjectStats) -> None:
    write_json(path, stats.to_json())


def read_stats(path: str | os.PathLike) -> SubjectStats:
    import json

    path = Path(path)
    try:
        return SubjectStats.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise EdnError(f"subject statistics {str(path)!r}: file not found") from None
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise EdnError(f"subject statistics {str(path)!r}: not valid ({error})") from None
    except KeyError as error:
        raise EdnError(f"subject statistics {str(path)!r}: not valid (no {error.args[0]!r} entry)") from None
