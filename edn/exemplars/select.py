"""Choosing an exemplar for every requested pose: one of the target's training frames.

- **Training frames only.** The candidates are the frames before the held-out
  boundary (:func:`edn.core.options.first_heldout_frame`, the split training and
  evaluation use) whose pose has a body joint. A held-out frame is never an
  exemplar, so evaluating on the held-out poses stays honest.
- **The paper's pose distance.** Candidates are ranked by eq. 6
  (:func:`edn.pose.distance.pose_distances`), as the nearest-neighbour baseline
  ranks them.
- **Steady over time.** A video whose exemplar changes every time the nearest
  frame does shows its texture jumping. The exemplar of the previous frame is
  kept until another candidate is clearly closer: its distance below
  ``1 - switch_margin`` times the kept one's (hysteresis). ``switch_margin``
  0 takes the nearest frame every time, like the baseline.

A requested pose that shares no body joint with any candidate (nobody in the
frame) gets no exemplar (-1) and does not change the kept one.

**One exemplar per part** (:func:`choose_part_exemplars`, option ``selection:
parts``). One frame for the whole body may match the torso and not an arm, and
that arm is then warped a long way (stretched, wrongly shaded, with what the
hand held). Instead, each part group of :data:`edn.exemplars.warp.PART_GROUPS`
(torso, head, each arm, each leg) gets its own frame: the one whose joints of
that group (:data:`GROUP_JOINTS`: the part's own and the ones it hangs from) are
nearest once the frame's position no longer counts. The distance is eq. 6 over
the group's joints present in both poses, after moving each pose's joints so
that their mean is at the origin (the translation that best aligns the two);
candidates missing more of the group's requested joints than the most complete
candidate are not considered. Each group keeps its exemplar with the same
hysteresis; a group that no candidate can give comes from the whole-body choice.
``selection: head`` gives the head its own frame and the rest of the body the
whole-body choice.

**A clear head** (option ``clear_head``). The head is cut from a disc around the
nose, eyes and ears, so a training frame whose own lower arm or hand lies over its
head (:func:`covered_heads`) brings the arm along. A requested pose whose head no
arm covers takes its head from a frame whose head no arm covers; one with an arm
over its head, from any frame (the arm is drawn in front either way). On the demo
juggler, frames 210-216 (he wipes his face with his forearm) were the head of 12
of the demo transfer's 102 frames, whose poses have no arm near the head, and the
trained correction turned the pasted forearm into a smear that let the plate show
through the face. Those frames still give the rest of the body. Where no clear
candidate has the head's joints, the head is chosen among them all.

Measured on held-out frames (docs/evaluation.md): on the demo juggler the head's
own frame halves the face box's ST-LPIPS and lowers the body box's, while every
group on its own loses on the body box: a leg chosen by its own joints comes
from a frame where it kicks the ball, and brings the ball with it. On the
aerobics target the head's own frame is the whole-body one, and every group on
its own loses there too.
"""

from __future__ import annotations

import numpy as np

from edn.core.errors import EdnError
from edn.pose.distance import pose_distances
from edn.exemplars.warp import PART_GROUPS, head_disc
from edn.pose.skeleton import BODY, LEFT_HAND, RIGHT_HAND, Body

#: Default share by which another training frame must be closer to replace the kept exemplar.
SWITCH_MARGIN = 0.2
#: Elements of the query x candidate x joint arrays computed at once (bounds memory on long videos).
DISTANCE_BLOCK_ELEMENTS = 1 << 22
#: How exemplars are chosen (option ``selection``): the part groups that get their own frame, the others
#: taking the whole-body choice. body: one frame for the whole person; head: the head its own (measured
#: best on the demo); parts: every group its own.
SELECTION_GROUPS = {"body": (), "head": ("head",), "parts": tuple(PART_GROUPS)}
#: The body joints that choose each part group's exemplar: its own and those it hangs from.
GROUP_JOINTS = {
    "torso": (Body.NECK, Body.R_SHOULDER, Body.L_SHOULDER, Body.MID_HIP, Body.R_HIP, Body.L_HIP),
    "head": (Body.NECK, Body.NOSE, Body.R_EYE, Body.L_EYE, Body.R_EAR, Body.L_EAR),
    "right_arm": (Body.NECK, Body.R_SHOULDER, Body.R_ELBOW, Body.R_WRIST),
    "left_arm": (Body.NECK, Body.L_SHOULDER, Body.L_ELBOW, Body.L_WRIST),
    "right_leg": (Body.MID_HIP, Body.R_HIP, Body.R_KNEE, Body.R_ANKLE, Body.R_BIG_TOE, Body.R_SMALL_TOE,
                  Body.R_HEEL),
    "left_leg": (Body.MID_HIP, Body.L_HIP, Body.L_KNEE, Body.L_ANKLE, Body.L_BIG_TOE, Body.L_SMALL_TOE,
                 Body.L_HEEL),
}
assert tuple(GROUP_JOINTS) == tuple(PART_GROUPS), "one set of joints per part group, in the groups' order"
#: Each lower arm (elbow, wrist) with its hand's keypoints: what covers a head held in front of it.
FOREARMS = ((Body.R_ELBOW, Body.R_WRIST, RIGHT_HAND), (Body.L_ELBOW, Body.L_WRIST, LEFT_HAND))


def candidate_frames(keypoints: np.ndarray, first_heldout: int) -> np.ndarray:
    """int64 indices of the training frames (before ``first_heldout``) of ``keypoints`` [T, K, 3] that show a body."""
    training = np.asarray(keypoints[:first_heldout, BODY, 2])
    return np.flatnonzero((np.nan_to_num(training) > 0).any(axis=1)).astype(np.int64)


def _segment_distances(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """[T]: the distance from each of ``points`` [T, 2] to the segment from ``start`` to ``end`` (each [T, 2])."""
    along = end - start
    length = np.maximum((along * along).sum(axis=1), 1e-12)
    share = np.clip(((points - start) * along).sum(axis=1) / length, 0.0, 1.0)
    return np.linalg.norm(start + share[:, None] * along - points, axis=1)


def covered_heads(poses: np.ndarray) -> np.ndarray:
    """bool [T]: the frames of ``poses`` [T, K, 3] whose own lower arm or hand lies over their head: a
    lower arm (elbow to wrist; the wrist alone when the elbow is missing) or a hand keypoint within
    the disc the warp cuts the head from (:func:`edn.exemplars.warp.head_disc`:
    :data:`edn.exemplars.warp.HEAD_RADIUS_BODY` times the torso's length around the centre of the
    head's present joints, nose, eyes and ears). A frame without a head joint or a body scale is not
    covered."""
    poses = np.nan_to_num(np.asarray(poses, dtype=np.float64))
    present = poses[..., 2] > 0
    discs = [head_disc(pose) for pose in poses]
    centre = np.array([(0.0, 0.0) if disc is None else disc[0] for disc in discs]).reshape(-1, 2)
    radius = np.array([np.nan if disc is None else disc[1] for disc in discs])
    nearest = np.full(len(poses), np.inf)
    for elbow, wrist, hand in FOREARMS:
        start = np.where(present[:, elbow, None], poses[:, elbow, :2], poses[:, wrist, :2])
        arm = np.where(present[:, wrist], _segment_distances(centre, start, poses[:, wrist, :2]), np.inf)
        fingers = np.where(present[:, hand], np.linalg.norm(poses[:, hand, :2] - centre[:, None], axis=-1), np.inf)
        nearest = np.minimum(nearest, np.minimum(arm, fingers.min(axis=1, initial=np.inf)))
    with np.errstate(invalid="ignore"):
        return nearest < radius  # NaN (no head disc): False


def hysteresis_choice(distances: np.ndarray, switch_margin: float = SWITCH_MARGIN) -> np.ndarray:
    """For each row of ``distances`` [N, M] (requested pose x candidate), the chosen column, -1 where
    every distance is infinite: the previous row's choice, unless the nearest candidate's distance is
    below ``(1 - switch_margin)`` times the previous choice's (or the previous one is unavailable)."""
    if not 0.0 <= switch_margin < 1.0:
        raise ValueError(f"switch margin {switch_margin}: must be in [0, 1)")
    chosen = np.full(len(distances), -1, dtype=np.int64)
    nearest = np.argmin(distances, axis=1) if distances.shape[1] else np.zeros(len(distances), np.int64)
    current = -1
    for t, row in enumerate(distances):
        if not distances.shape[1] or not np.isfinite(row[nearest[t]]):
            continue
        best = nearest[t]
        if current < 0 or not np.isfinite(row[current]) or row[best] < (1.0 - switch_margin) * row[current]:
            current = best
        chosen[t] = current
    return chosen


def choose_exemplars(requested: np.ndarray, target: np.ndarray, first_heldout: int, *,
                     switch_margin: float = SWITCH_MARGIN) -> np.ndarray:
    """int64 [N]: the target frame chosen as the exemplar of each requested pose, -1 for none.

    ``requested`` [N, K, 3]: the poses to draw, in order (a normalized source's, or
    the target's held-out ones); ``target`` [T, K, 3]: the target's poses, frame t
    of its video; ``first_heldout``: frames from it on are held out and never chosen.
    """
    candidates, distances = candidate_distances(requested, target, first_heldout)
    columns = hysteresis_choice(distances, switch_margin)
    return np.where(columns >= 0, candidates[np.maximum(columns, 0)], -1)


def candidate_distances(requested: np.ndarray, target: np.ndarray,
                        first_heldout: int) -> tuple[np.ndarray, np.ndarray]:
    """The target's candidate frames (int64 [C], :func:`candidate_frames`) and the pose distance
    (eq. 6) of each requested pose [N, K, 3] to each of them (float64 [N, C], inf where no joint is
    shared); one error line when none of the target's training frames shows a body."""
    candidates = candidate_frames(target, first_heldout)
    if len(candidates) == 0:
        raise EdnError(f"exemplars: none of the target's {min(first_heldout, len(target))} training frames "
                       "shows a body")
    reference = np.nan_to_num(np.asarray(target[candidates], dtype=np.float64))
    query = np.nan_to_num(np.asarray(requested, dtype=np.float64))
    chunk = max(1, DISTANCE_BLOCK_ELEMENTS // (len(candidates) * (BODY.stop - BODY.start)))
    return candidates, pose_distances(query, reference, chunk=chunk)


def part_distances(query: np.ndarray, reference: np.ndarray, joints, chunk: int | None = None) -> np.ndarray:
    """float64 [Nq, Nr]: the distance between the ``joints`` (body indices) of every query pose
    [Nq, K, 3] and every reference pose [Nr, K, 3]: eq. 6 over the joints present in both, each pose's
    joints first moved so that their mean is at the origin. At infinity where fewer than two joints are
    shared, and where the reference lacks more of the query's joints than the reference that lacks the
    fewest (a more complete candidate always wins). ``chunk`` query poses at a time (default: as many
    as keep each block's arrays within :data:`DISTANCE_BLOCK_ELEMENTS`)."""
    joints = np.asarray(joints, dtype=np.int64)
    if chunk is None:
        chunk = max(1, DISTANCE_BLOCK_ELEMENTS // (max(len(reference), 1) * len(joints) * 2))
    q = np.nan_to_num(np.asarray(query, np.float64)[:, joints])
    r = np.nan_to_num(np.asarray(reference, np.float64)[:, joints])
    q_present, r_present = q[..., 2] > 0, r[..., 2] > 0
    out = np.empty((len(q), len(r)))
    for start in range(0, len(q), chunk):
        block, block_present = q[start:start + chunk, :, :2], q_present[start:start + chunk]
        both = block_present[:, None, :] & r_present[None]  # [b, Nr, J]
        shared = both.sum(axis=-1)
        count = np.maximum(shared, 1)[..., None]
        weight = both[..., None]
        q_centred = block[:, None] - (weight * block[:, None]).sum(axis=2, keepdims=True) / count[..., None]
        r_centred = r[None, :, :, :2] - (weight * r[None, :, :, :2]).sum(axis=2, keepdims=True) / count[..., None]
        distance = np.linalg.norm(q_centred - r_centred, axis=-1)
        total = np.where(both, distance, 0.0).sum(axis=-1)
        lacking = (block_present[:, None, :] & ~r_present[None]).sum(axis=-1)
        fewest = lacking.min(axis=1, keepdims=True) if lacking.shape[1] else lacking
        out[start:start + chunk] = np.where((shared >= 2) & (lacking <= fewest), total / count[..., 0], np.inf)
    return out


def choose_part_exemplars(requested: np.ndarray, target: np.ndarray, first_heldout: int, *,
                          switch_margin: float = SWITCH_MARGIN, groups=None, clear_head: bool = False) -> np.ndarray:
    """int64 [N, G]: for each requested pose [N, K, 3] and each part group (G columns, in the order of
    :data:`edn.exemplars.warp.PART_GROUPS`), the target frame its pixels come from; -1 in every column
    where the requested pose has nobody (:func:`choose_exemplars` gives none). Each group among
    ``groups`` (default: all) takes the nearest training frame by :func:`part_distances` over
    :data:`GROUP_JOINTS`, kept with the hysteresis of :func:`hysteresis_choice`; the other groups, and
    a group no candidate can give (its joints missing in the requested pose or in every candidate),
    take :func:`choose_exemplars`' frame. With ``clear_head`` a requested pose whose head no arm covers
    (:func:`covered_heads`) takes its head from the candidates whose head no arm covers, where one of
    them can give it."""
    groups = tuple(PART_GROUPS) if groups is None else tuple(groups)
    unknown = sorted(set(groups) - set(PART_GROUPS))
    if unknown:
        raise ValueError(f"unknown part group(s) {unknown}; the groups are {list(PART_GROUPS)}")
    candidates, distances = candidate_distances(requested, target, first_heldout)
    body_columns = hysteresis_choice(distances, switch_margin)
    body = np.where(body_columns >= 0, candidates[np.maximum(body_columns, 0)], -1)
    reference = np.asarray(target[candidates])
    query = np.asarray(requested)
    chosen = np.repeat(body[:, None], len(GROUP_JOINTS), axis=1)
    for g, (group, joints) in enumerate(GROUP_JOINTS.items()):
        if group not in groups:
            continue
        distances = part_distances(query, reference, joints)
        if group == "head" and clear_head:
            distances = clear_head_distances(distances, query, reference, joints)
        columns = hysteresis_choice(distances, switch_margin)
        chosen[:, g] = np.where(columns >= 0, candidates[np.maximum(columns, 0)], body)
    chosen[body < 0] = -1
    return chosen


def clear_head_distances(distances: np.ndarray, query: np.ndarray, reference: np.ndarray, joints) -> np.ndarray:
    """The head's ``distances`` [Nq, Nr] (:func:`part_distances` over ``joints``, changed in place and
    returned) with the candidates whose head an arm covers out of reach (infinite) for each query pose
    whose head no arm covers (:func:`covered_heads`), its distances to the others measured among them
    alone (a more complete covered candidate does not rule them out); a row none of them can give is
    kept as it was."""
    covered, wanted = covered_heads(reference), ~covered_heads(query)
    if not covered.any() or covered.all() or not wanted.any():
        return distances
    among_clear = part_distances(query[wanted], reference[~covered], joints)
    givable = np.isfinite(among_clear).any(axis=1)
    rows = np.flatnonzero(wanted)[givable]
    distances[rows] = np.inf
    distances[np.ix_(rows, np.flatnonzero(~covered))] = among_clear[givable]
    return distances


def choose_by_selection(requested: np.ndarray, target: np.ndarray, first_heldout: int, selection: str, *,
                        switch_margin: float = SWITCH_MARGIN, clear_head: bool = False) -> np.ndarray:
    """The exemplars of option ``selection`` (:data:`SELECTION_GROUPS`): int64 [N] for body
    (:func:`choose_exemplars`), [N, G] by part group otherwise (:func:`choose_part_exemplars`, with
    ``clear_head``)."""
    if selection not in SELECTION_GROUPS:
        raise ValueError(f"selection {selection!r}: one of {list(SELECTION_GROUPS)}")
    if selection == "body":
        return choose_exemplars(requested, target, first_heldout, switch_margin=switch_margin)
    return choose_part_exemplars(requested, target, first_heldout, switch_margin=switch_margin,
                                 groups=SELECTION_GROUPS[selection], clear_head=clear_head)
