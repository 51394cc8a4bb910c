"""The nearest-neighbour baseline of the paper's evaluation (section 4, eq. 6).

For each query pose, the training frame whose pose is closest is returned as the
"generated" frame. The distance between two poses is the paper's eq. 6
(:func:`edn.pose.distance.pose_distances`, imported here for the evaluation's
other users).
"""

from __future__ import annotations

import numpy as np

from edn.pose.distance import pose_distances

__all__ = ["nearest_neighbours", "pose_distances"]


def nearest_neighbours(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Index [Nq] of the closest reference pose (eq. 6) for every query pose; ties go to the first."""
    if len(reference) == 0:
        raise ValueError("nearest neighbours: no reference poses")
    return np.argmin(pose_distances(query, reference), axis=1)
