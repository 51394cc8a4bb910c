"""The warped exemplar's own face, kept over the generator's correction (option ``synthesis.exemplar_face``).

A generator that corrects a warped exemplar (``training.exemplar: residual``,
:mod:`edn.models.compositing`) learns, for the face too, to pull the exemplar
towards the real frame it is scored against. A face is where that fails: the
exemplar's head comes from another moment of the video (its own nearest frame,
``exemplars.selection: head``), looking up where the real one looks down, and the
correction that best fits the real face from it is a blend of the two. On the
demo's held-out frames it darkened the juggler's face in blotches, and MediaPipe
found no face on 36% of them where it finds one on 96% of the uncorrected
exemplars (docs/evaluation.md, "The exemplar's own face").

So at synthesis, inside a disc over the requested pose's face, the frame is the
exemplar's own pixels where the warp drew the person (its silhouette: where it is
not the plate, :func:`edn.models.compositing.silhouette`), and the generator's
elsewhere. Not where its validity says: a hidden arm's possible reach is marked
invalid around the shoulder, and on the juggler's side views that disc covers his
face. The disc is :data:`FACE_SHARE` of the one the warp cuts the head from
(:func:`edn.exemplars.warp.head_disc`: 0.42 torso lengths around the centre of
the nose, eyes and ears): the face without the hair's edge, which the correction
keeps fixing. Its edge is feathered over :data:`FEATHER_PX` pixels.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edn.exemplars.warp import disc_region, head_disc
from edn.pose.keypoints import PoseSequence

#: The kept disc's radius as a share of the warp's head disc.
FACE_SHARE = 0.7
#: Width of the disc's soft edge in pixels.
FEATHER_PX = 4.0


def face_disc(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """The kept face of one pose ``keypoints`` [K, 3] in a frame of ``size`` (width, height), as
    float32 [H, W] in [0, 1] (1 inside, a linear ramp of :data:`FEATHER_PX` across the edge), or None
    when the pose has no head joint or no body scale."""
    head = head_disc(keypoints)
    if head is None:
        return None
    centre, radius = head
    region = disc_region(centre, FACE_SHARE * radius, size, feather=FEATHER_PX)
    width, height = size
    disc = np.zeros((height, width), np.float32)
    if region is not None:  # None: the disc lies outside the frame
        rows, columns = region.alpha.shape
        disc[region.y0:region.y0 + rows, region.x0:region.x0 + columns] = region.alpha
    return disc


def face_discs(poses: PoseSequence) -> Iterator[np.ndarray | None]:
    """:func:`face_disc` of every frame of ``poses``, in order, one at a time (at the poses' frame size)."""
    for keypoints in poses.keypoints:
        yield face_disc(keypoints, poses.frame_size)
