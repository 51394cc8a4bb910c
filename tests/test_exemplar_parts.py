"""One exemplar per part group (exemplars.selection: parts): the choice, its hysteresis, and the drawing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edn.core.options import ExemplarOptions
from edn.exemplars.for_training import training_exemplars
from edn.exemplars.select import (GROUP_JOINTS, SELECTION_GROUPS, choose_by_selection, choose_exemplars,
                                  choose_part_exemplars, covered_heads, part_distances)
from edn.exemplars.warp import HEAD_RADIUS_BODY, PART_GROUPS, warp_parts, warp_person
from edn.pose.skeleton import LEFT_HAND, RIGHT_HAND, Body
from helpers import run_edn
from synthetic_poses import standing_pose
from test_exemplars import SIZE, draw_figure, figure_pose, turned, write_target

GROUPS = list(PART_GROUPS)
RIGHT_ARM = [int(Body.R_ELBOW), int(Body.R_WRIST)] + list(range(RIGHT_HAND.start, RIGHT_HAND.stop))
LEFT_ARM = [int(Body.L_ELBOW), int(Body.L_WRIST)] + list(range(LEFT_HAND.start, LEFT_HAND.stop))
RIGHT_LEG = [int(Body.R_KNEE), int(Body.R_ANKLE), int(Body.R_BIG_TOE), int(Body.R_SMALL_TOE), int(Body.R_HEEL)]
RIGHT_FOREARM = [int(Body.R_WRIST)] + list(range(RIGHT_HAND.start, RIGHT_HAND.stop))


def person(*, arm: float = 0.0, leg: float = 0.0, left_arm: float = 0.0, shift: float = 0.0) -> np.ndarray:
    """The standing pose (180 px tall) with its right arm turned by ``arm`` degrees about the shoulder,
    its left arm by ``left_arm``, its right leg by ``leg`` about the hip, moved ``shift`` px right."""
    pose = standing_pose(200.0, 230.0, 180.0)
    pose = turned(pose, Body.R_SHOULDER, RIGHT_ARM, arm)
    pose = turned(pose, Body.L_SHOULDER, LEFT_ARM, left_arm)
    pose = turned(pose, Body.R_HIP, RIGHT_LEG, leg)
    pose[:, 0] += shift
    return pose.astype(np.float32)


def column(chosen: np.ndarray, group: str) -> list[int]:
    return chosen[:, GROUPS.index(group)].tolist()


# -- the choice -------------------------------------------------------------------------------------------


def test_each_part_takes_the_frame_whose_own_joints_match_wherever_the_person_stands() -> None:
    # Requested: the right arm raised 70 degrees and the right leg kicked 35 degrees.
    requested = person(arm=70.0, leg=35.0)[None]
    target = np.stack([
        person(),                           # 0: standing where the requested pose stands
        person(arm=70.0, shift=40.0),       # A = 1: the same raised arm, 40 px to the right
        person(leg=35.0, left_arm=-50.0),   # B = 2: the same kick, the left arm out
    ])
    chosen = choose_part_exemplars(requested, target, 3, switch_margin=0.0)
    assert column(chosen, "right_arm") == [1]
    assert column(chosen, "right_leg") == [2]
    # The left arm hangs in frames 0 and 1 as requested, not in B; the position of frame 1 does not count.
    assert column(chosen, "left_arm") in ([0], [1])
    # The whole-body choice (eq. 6) never takes frame A, whose raised arm is the requested one: its 40 px
    # count at every joint.
    assert choose_exemplars(requested, target, 3, switch_margin=0.0).tolist() != [1]
    # Held-out frames are never chosen, for any part: with frame 2 held out the kick comes from a training frame.
    assert (choose_part_exemplars(requested, target, 2, switch_margin=0.0) < 2).all()


def test_part_distances_ignore_the_position_and_count_only_the_parts_joints() -> None:
    base = person()
    joints = GROUP_JOINTS["right_arm"]
    moved = person(shift=55.0)
    moved[:, 1] -= 20.0
    assert part_distances(base[None], moved[None], joints)[0, 0] == pytest.approx(0.0, abs=1e-9)
    # Another part moving does not count; this part turning does.
    assert part_distances(base[None], person(leg=40.0)[None], joints)[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert part_distances(base[None], person(arm=30.0)[None], joints)[0, 0] > 10.0
    # A candidate lacking one of the part's requested joints loses to one that has them all, even a far one.
    lacking = person(arm=5.0)
    lacking[Body.R_WRIST] = 0.0
    distances = part_distances(base[None], np.stack([lacking, person(arm=60.0)]), joints)
    assert np.isinf(distances[0, 0]) and np.isfinite(distances[0, 1])
    # Under two shared joints: no distance.
    alone = np.zeros_like(base)
    alone[Body.R_ELBOW] = base[Body.R_ELBOW]
    assert np.isinf(part_distances(alone[None], base[None], joints)[0, 0])


def test_each_part_keeps_its_exemplar_until_another_is_clearly_closer() -> None:
    target = np.stack([
        person(arm=0.0),                  # A: arm down, legs standing
        person(arm=40.0),                 # B: arm at 40 degrees, legs standing
        person(arm=-80.0, leg=30.0),      # C: the requested kick, the arm far off
    ])
    # The arm goes 0 -> 19 (nearer A) -> 21 (B marginally nearer) -> 35 (B clearly nearer); the leg stays kicked.
    requested = np.stack([person(arm=a, leg=30.0) for a in (0.0, 19.0, 21.0, 35.0)])
    chosen = choose_part_exemplars(requested, target, 3, switch_margin=0.2)
    assert column(chosen, "right_arm") == [0, 0, 0, 1]
    assert column(chosen, "right_leg") == [2, 2, 2, 2]  # unmoved by the arm's switch
    assert column(choose_part_exemplars(requested, target, 3, switch_margin=0.0), "right_arm") == [0, 0, 1, 1]
    # A requested pose with nobody gets no exemplar in any group, and the next frame keeps the kept ones.
    nobody = np.zeros_like(requested[:1])
    chosen = choose_part_exemplars(np.concatenate([requested[:2], nobody, requested[2:]]), target, 3)
    assert (chosen[2] == -1).all()
    assert column(chosen, "right_arm") == [0, 0, -1, 0, 1]


def test_a_group_no_candidate_can_give_comes_from_the_whole_body_choice() -> None:
    target = np.stack([person(), person(arm=30.0)])
    target[:, Body.L_ELBOW] = 0.0  # no training frame shows the left elbow ...
    target[:, Body.L_WRIST] = 0.0
    requested = person(arm=30.0)[None]
    requested[:, Body.L_SHOULDER] = 0.0  # ... and the requested pose shows the neck and left wrist only
    requested[:, Body.L_ELBOW] = 0.0
    chosen = choose_part_exemplars(requested, target, 2, switch_margin=0.0)
    body = choose_exemplars(requested, target, 2, switch_margin=0.0)
    assert column(chosen, "left_arm") == body.tolist() == [1]


# -- the drawing ------------------------------------------------------------------------------------------


def recoloured(image: np.ndarray) -> np.ndarray:
    """The same figure in other colours (channels rotated), so that its pixels are told apart."""
    return np.ascontiguousarray(np.roll(image, 1, axis=-1))


def test_one_exemplar_for_every_group_is_warp_person_bit_for_bit() -> None:
    pose = figure_pose()
    image, mask = draw_figure(pose)
    requested = turned(pose, Body.R_ELBOW, RIGHT_FOREARM, 60.0)
    one = warp_person(image, mask, pose, requested)
    other_image, other_mask = draw_figure(turned(pose, Body.R_ELBOW, RIGHT_FOREARM, 30.0))
    # A second exemplar no group uses changes nothing.
    both = warp_parts([(image, mask, pose), (other_image, other_mask, pose)], requested, {g: 0 for g in GROUPS})
    for a, b in ((one.premultiplied, both.premultiplied), (one.alpha, both.alpha), (one.validity, both.validity)):
        assert np.array_equal(a, b)
    assert one.drawn == both.drawn and one.missing == both.missing
    with pytest.raises(ValueError, match="unknown part group"):
        warp_parts([(image, mask, pose)], requested, {"tail": 0})


def test_an_arm_drawn_from_its_own_exemplar_takes_that_frames_pixels() -> None:
    pose = figure_pose()
    requested = turned(pose, Body.R_ELBOW, RIGHT_FOREARM, 80.0)
    image_a, mask_a = draw_figure(pose)  # A: the forearm hanging
    image_b, mask_b = draw_figure(requested)  # B: the forearm as requested, in other colours
    image_b = recoloured(image_b)
    warped = warp_parts([(image_a, mask_a, pose), (image_b, mask_b, requested)], requested, {"right_arm": 1})
    elbow, wrist = requested[Body.R_ELBOW, :2], requested[Body.R_WRIST, :2]
    for f in (0.3, 0.5, 0.7):
        x, y = np.floor(elbow + f * (wrist - elbow)).astype(int)
        assert np.abs(warped.image[y, x].astype(int) - image_b[y, x]).max() <= 2  # B's forearm, unmoved
    # The torso and legs are A's, in A's colours.
    hip = np.floor((pose[Body.R_HIP, :2] + pose[Body.R_KNEE, :2]) / 2).astype(int)
    assert np.abs(warped.image[hip[1], hip[0]].astype(int) - image_a[hip[1], hip[0]]).max() <= 2
    assert not np.array_equal(image_a[hip[1], hip[0]], image_b[hip[1], hip[0]])
    chest = np.floor((pose[Body.NECK, :2] + pose[Body.MID_HIP, :2]) / 2).astype(int)
    assert np.abs(warped.image[chest[1], chest[0]].astype(int) - image_a[chest[1], chest[0]]).max() <= 2


def test_pose_warp_with_selection_parts_draws_the_limb_from_the_other_frame(tmp_path) -> None:
    """Frame 0 stands as requested but for the right forearm; frame 1 has the requested forearm, in other
    colours, but kicks its right leg. The whole-body choice takes frame 0 for everything; by parts the
    right arm comes from frame 1 and the rest from frame 0."""
    pose = figure_pose()
    requested = turned(pose, Body.R_ELBOW, RIGHT_FOREARM, 80.0)
    kicking = turned(requested, Body.R_HIP, RIGHT_LEG, 50.0)
    image_0, mask_0 = draw_figure(pose)
    image_1, mask_1 = draw_figure(kicking)
    # The third frame, held out (--holdout-fraction 0.3 of 3), is the requested pose.
    image_2, mask_2 = draw_figure(requested)
    paths = write_target(tmp_path, np.stack([pose, kicking, requested]), [image_0, recoloured(image_1), image_2],
                          [mask_0, mask_1, mask_2])
    outputs = {}
    for selection in ("body", "parts"):
        output, table = tmp_path / f"{selection}.npy", tmp_path / f"{selection}.csv"
        result = run_edn("pose-warp", "--frames", paths["frames"], "--masks", paths["masks"],
                         "--poses", paths["poses"], "--plate", paths["plate"], "--requested", paths["poses"],
                         "--heldout-only", "--holdout-fraction", "0.3", "--selection", selection,
                         "--output", output, "--exemplars", table)
        assert result.returncode == 0, result.stderr
        outputs[selection] = (np.load(output)[0], pd.read_csv(table))
    body, body_table = outputs["body"]
    parts, parts_table = outputs["parts"]
    assert body_table["exemplar"].tolist() == [0]
    assert parts_table["exemplar_right_arm"].tolist() == [1]
    assert parts_table["exemplar_torso"].tolist() == parts_table["exemplar_right_leg"].tolist() == [0]
    assert parts_table["exemplar"].tolist() == [0]  # the torso's
    elbow, wrist = requested[Body.R_ELBOW, :2], requested[Body.R_WRIST, :2]
    x, y = np.floor(elbow + 0.5 * (wrist - elbow)).astype(int)
    forearm_1 = recoloured(image_1)[y, x].astype(int)
    assert np.abs(parts[y, x].astype(int) - forearm_1).max() <= 2  # frame 1's pixels
    assert np.abs(body[y, x].astype(int) - forearm_1).max() > 60  # the whole-body choice: frame 0's, moved
    # The right leg stands as requested in both, drawn from frame 0.
    knee = np.floor((requested[Body.R_HIP, :2] + requested[Body.R_KNEE, :2]) / 2).astype(int)
    assert np.abs(parts[knee[1], knee[0]].astype(int) - image_0[knee[1], knee[0]]).max() <= 2


def test_the_selection_option_is_checked() -> None:
    from edn.core.errors import EdnError

    assert ExemplarOptions().selection == "head"  # measured best on the demo (docs/evaluation.md)
    with pytest.raises(EdnError, match="selection"):
        ExemplarOptions(selection="limbs")


def test_selection_head_gives_only_the_head_its_own_frame() -> None:
    tilted = person()
    tilted = turned(tilted, Body.NECK, [int(Body.NOSE), int(Body.R_EYE), int(Body.L_EYE), int(Body.R_EAR),
                                        int(Body.L_EAR)], 30.0)
    target = np.stack([person(arm=60.0), tilted, person()])
    requested = turned(person(arm=60.0), Body.NECK, [int(Body.NOSE), int(Body.R_EYE), int(Body.L_EYE),
                                                     int(Body.R_EAR), int(Body.L_EAR)], 30.0)[None]
    chosen = choose_by_selection(requested, target, 3, "head", switch_margin=0.0)
    assert column(chosen, "head") == [1]
    assert all(column(chosen, group) == [0] for group in GROUPS if group != "head")  # the whole-body choice
    assert choose_by_selection(requested, target, 3, "body", switch_margin=0.0).tolist() == [0]
    assert column(choose_by_selection(requested, target, 3, "parts", switch_margin=0.0), "right_arm") == [0]


HEAD = [int(Body.NOSE), int(Body.R_EYE), int(Body.L_EYE), int(Body.R_EAR), int(Body.L_EAR)]


def wiping(pose: np.ndarray, *, along: float = 0.0) -> np.ndarray:
    """``pose`` with its right forearm across its face, as the demo juggler wipes it: the elbow out
    in front of the chest, the wrist (and the hand around it) ``along`` px past the nose."""
    out = pose.copy()
    nose = pose[Body.NOSE, :2]
    out[Body.R_ELBOW, :2] = nose + (-35.0, 25.0)
    hand = list(range(RIGHT_HAND.start, RIGHT_HAND.stop))
    out[hand, :2] += nose + (along, 0.0) - out[Body.R_WRIST, :2]
    out[Body.R_WRIST, :2] = nose + (along, 0.0)
    return out


def test_covered_heads_finds_a_forearm_or_a_hand_over_the_head_and_nothing_else() -> None:
    standing = person()
    beside = person(arm=150.0)  # the right arm raised high beside the head
    hand_only = standing.copy()
    hand = list(range(RIGHT_HAND.start, RIGHT_HAND.stop))
    hand_only[hand[:4], :2] = standing[Body.NOSE, :2] + (3.0, 2.0)  # fingers at the mouth, the wrist below
    no_head = wiping(standing)
    no_head[HEAD] = 0.0
    no_arms = wiping(standing)
    no_arms[[int(Body.R_ELBOW), int(Body.R_WRIST), *hand]] = 0.0
    flags = covered_heads(np.stack([standing, beside, wiping(standing), wiping(standing, along=20.0), hand_only,
                                    no_head, no_arms]))
    # The forearm across the face, past the nose or not, and fingers alone at the mouth cover it; an arm
    # raised beside the head, a frame without head joints and one without the arm do not.
    assert flags.tolist() == [False, False, True, True, True, False, False]
    # The raised arm's wrist is beyond the head's disc, not just off the nose.
    scale = np.linalg.norm(standing[Body.NECK, :2] - standing[Body.MID_HIP, :2])
    centre = standing[HEAD, :2].mean(axis=0)
    assert np.linalg.norm(beside[Body.R_WRIST, :2] - centre) > HEAD_RADIUS_BODY * scale


def test_a_head_no_arm_covers_never_comes_from_a_frame_whose_arm_covers_its_head() -> None:
    tilt = 25.0
    wiped = wiping(turned(person(), Body.NECK, HEAD, tilt))  # 0: the requested tilt, his forearm on his face
    # 1: nearly the tilt, nothing over the face, the left arm and right leg far from the requested pose's
    clear = turned(person(left_arm=90.0, leg=40.0), Body.NECK, HEAD, tilt - 12.0)
    target = np.stack([wiped, clear])
    requested = turned(person(), Body.NECK, HEAD, tilt)[None]
    assert column(choose_by_selection(requested, target, 2, "head", switch_margin=0.0, clear_head=False),
                  "head") == [0]
    assert column(choose_by_selection(requested, target, 2, "head", switch_margin=0.0, clear_head=True),
                  "head") == [1]
    # The rest of the body still comes from the whole-body choice: the covered frame.
    assert choose_exemplars(requested, target, 2, switch_margin=0.0).tolist() == [0]
    chosen = choose_by_selection(requested, target, 2, "head", switch_margin=0.0, clear_head=True)
    assert all(column(chosen, group) == [0] for group in GROUPS if group != "head")
    # A requested pose with its own arm over its head may take any frame's head: the nearest.
    assert column(choose_by_selection(wiping(requested[0])[None], target, 2, "head", switch_margin=0.0,
                                      clear_head=True), "head") == [0]
    # Every candidate covered: the head is chosen among them all.
    assert column(choose_by_selection(requested, np.stack([wiped, wiping(clear)]), 2, "head", switch_margin=0.0,
                                      clear_head=True), "head") == [0]
    # A covered candidate that shows more of the head's joints does not rule out a clear one that lacks an ear.
    earless = clear.copy()
    earless[Body.L_EAR] = 0.0
    assert column(choose_by_selection(requested, np.stack([wiped, earless]), 2, "head", switch_margin=0.0,
                                      clear_head=True), "head") == [1]
    assert ExemplarOptions().clear_head is True


@pytest.mark.parametrize("selection", ["head", "parts"])
def test_training_exemplars_by_part_keep_the_gap_and_the_held_out_boundary(selection: str) -> None:
    frame_count, gap = 30, 3
    rng = np.random.default_rng(4)
    keypoints = np.stack([person(arm=rng.uniform(-60, 60), leg=rng.uniform(0, 40), left_arm=rng.uniform(-60, 60),
                                 shift=rng.uniform(-20, 20)) for _ in range(frame_count)])
    first_heldout = 24
    chosen = training_exemplars(keypoints, first_heldout, gap, selection, choices=2)
    assert chosen.shape == (2, frame_count, len(GROUPS))
    frames = np.arange(frame_count)[:, None]
    assert ((chosen >= 0) & (chosen < first_heldout) & (np.abs(chosen - frames) > gap)).all()
    body = training_exemplars(keypoints, first_heldout, gap, choices=2)
    own = [GROUPS.index(group) for group in SELECTION_GROUPS[selection]]
    others = [g for g in range(len(GROUPS)) if g not in own]
    assert (chosen[:, :, others] == body[:, :, None]).all()  # the whole-body choice, choice by choice
    assert (chosen[:, :, own] != body[:, :, None]).any()  # the random arms and legs make the groups differ somewhere
    assert (chosen[0, :, own] == chosen[1, :, own]).all()  # a group with its own frame keeps its nearest
