"""The paper's distance between two poses (section 4, eq. 6).

The mean, over the body joints detected in both poses, of the Euclidean
distance between them, in working-frame pixels. The nearest-neighbour baseline
(:mod:`edn.evaluation.baseline`), pose fidelity and the choice of exemplars
(:mod:`edn.exemplars.select`) all measure poses with it.
"""

from __future__ import annotations

import numpy as np

from edn.pose.skeleton import BODY


def pose_distances(query: np.ndarray, reference: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Eq. 6 between every query pose and every reference pose.

    ``query`` [Nq, K, 3] and ``reference`` [Nr, K, 3] keypoints (x, y, confidence);
    only body joints count, and only those with confidence > 0 in both poses.
    Returns [Nq, Nr]; pairs sharing no joint are at infinity.
    """
    q = query[:, BODY].astype(np.float64)
    r = reference[:, BODY].astype(np.float64)
    r_present = r[..., 2] > 0
    out = np.empty((len(q), len(r)))
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        both = (block[:, None, :, 2] > 0) & r_present[None]  # [b, Nr, J]
        distance = np.linalg.norm(block[:, None, :, :2] - r[None, :, :, :2], axis=-1)
        shared = both.sum(axis=-1)
        total = np.where(both, distance, 0.0).sum(axis=-1)
        out[start:start + chunk] = np.where(shared > 0, total / np.maximum(shared, 1), np.inf)
    return out
