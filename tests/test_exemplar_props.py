"""Props painted out of an exemplar's legs (edn.exemplars.props): a ball on a thigh takes the
trousers' colour; a hand on the thigh, a patterned leg and everything outside the legs stay."""

from __future__ import annotations

import cv2
import numpy as np

from edn.core.options import ExemplarOptions
from edn.exemplars.pose_warp import exemplar_sources
from edn.exemplars.props import LEG_SEGMENTS, leg_colours, repaint_props
from edn.exemplars.warp import LIMB_BY_NAME
from edn.pose.skeleton import Body
from synthetic_poses import standing_pose

SIZE = (128, 144)  # width, height
GRASS, TROUSERS, SHIRT, SKIN, BALL = (60, 140, 50), (30, 35, 80), (110, 115, 125), (205, 150, 120), (245, 245, 240)


def pose() -> np.ndarray:
    """A person 100 px tall, ankles at (64, 134)."""
    return standing_pose(64.0, 134.0, 100.0)


def point(keypoints: np.ndarray, joint: int, towards: int | None = None, share: float = 0.0) -> tuple[int, int]:
    xy = keypoints[joint, :2] if towards is None else keypoints[joint, :2] + share * (keypoints[towards, :2]
                                                                                      - keypoints[joint, :2])
    return int(round(xy[0] - 0.5)), int(round(xy[1] - 0.5))


def draw(keypoints: np.ndarray, *, trousers=TROUSERS, stripes: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The person on grass: (image uint8 [H, W, 3], mask uint8 [H, W]); legs 9 px wide."""
    width, height = SIZE
    person = np.zeros((height, width, 3), np.uint8)
    torso = [point(keypoints, j) for j in (Body.R_SHOULDER, Body.L_SHOULDER, Body.L_HIP, Body.R_HIP)]
    for hip, knee, ankle in ((Body.R_HIP, Body.R_KNEE, Body.R_ANKLE), (Body.L_HIP, Body.L_KNEE, Body.L_ANKLE)):
        cv2.line(person, point(keypoints, hip), point(keypoints, knee), trousers, 9)
        cv2.line(person, point(keypoints, knee), point(keypoints, ankle), trousers, 9)
    if stripes:
        legs = person.any(axis=-1)
        person[legs & (np.arange(height)[:, None] % 4 < 2)] = BALL
    cv2.fillConvexPoly(person, np.array(torso, np.int32), SHIRT)
    for a, b in ((Body.R_SHOULDER, Body.R_ELBOW), (Body.R_ELBOW, Body.R_WRIST), (Body.L_SHOULDER, Body.L_ELBOW),
                 (Body.L_ELBOW, Body.L_WRIST)):
        cv2.line(person, point(keypoints, a), point(keypoints, b), SKIN, 5)
    for wrist in (Body.R_WRIST, Body.L_WRIST):
        cv2.circle(person, point(keypoints, wrist), 4, SKIN, -1)
    cv2.circle(person, point(keypoints, Body.NOSE), 7, SKIN, -1)
    mask = np.where(person.any(axis=-1), 255, 0).astype(np.uint8)
    image = np.where(mask[..., None] > 0, person, np.array(GRASS, np.uint8))
    return image.astype(np.uint8), mask


def with_ball(image: np.ndarray, mask: np.ndarray, centre: tuple[int, int], radius: int = 5):
    image, mask = image.copy(), mask.copy()
    cv2.circle(image, centre, radius, BALL, -1)
    cv2.circle(mask, centre, radius, 255, -1)
    return image, mask


def training_set(count: int = 8, **drawing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keypoints = np.stack([pose()] * count)
    image, mask = draw(keypoints[0], **drawing)
    return np.stack([image] * count), np.stack([mask] * count), keypoints


def test_a_ball_on_a_thigh_takes_the_trousers_colour_and_nothing_else_changes():
    frames, masks, keypoints = training_set()
    colours = leg_colours(frames, masks, keypoints, len(frames))
    assert all(colours.painted[name] for name in LEG_SEGMENTS)
    plain, plain_mask = frames[0], masks[0]
    out, out_mask = repaint_props(plain, plain_mask, keypoints[0], colours)
    assert out is plain and out_mask is plain_mask  # nothing far from the legs' colour: the frame as it is

    centre = point(keypoints[0], Body.R_HIP, Body.R_KNEE, 0.6)
    image, mask = with_ball(frames[0], masks[0], centre, radius=8)
    painted, painted_mask = repaint_props(image, mask, keypoints[0], colours)
    x, y = centre
    on_leg = image[y - 3:y + 4, x - 3:x + 4]
    assert (on_leg == BALL).all(), "the ball covers the thigh there"
    assert np.abs(painted[y - 3:y + 4, x - 3:x + 4].astype(int) - TROUSERS).max() <= 12
    changed = np.any(painted != image, axis=-1)
    ys, xs = np.nonzero(changed)
    assert np.hypot(xs + 0.5 - x, ys + 0.5 - y).max() <= 8 + 1.5, "only the ball (and its rim) changes"
    assert not np.any(painted[..., None, :] == np.array(GRASS, np.uint8), axis=-1)[changed].any()
    assert painted_mask[y, x] == 255, "on the leg itself the ball is painted, and stays person"
    # The ball's pixels beyond the leg's usual width are not the leg: they leave the mask.
    beside = (x - 7, y)  # the ball's edge, past the 9 px wide leg
    assert mask[beside[1], beside[0]] == 255 and painted_mask[beside[1], beside[0]] == 0
    assert np.array_equal(painted_mask[:, :x - 10], mask[:, :x - 10]) and np.array_equal(
        painted_mask[:, x + 10:], mask[:, x + 10:])


def test_a_hand_on_the_thigh_stays_while_the_ball_on_the_other_goes():
    keypoints = pose()
    # The right arm reaches down and across: its hand rests on the right thigh.
    keypoints[Body.R_WRIST, :2] = keypoints[Body.R_HIP, :2] + 0.5 * (keypoints[Body.R_KNEE, :2]
                                                                      - keypoints[Body.R_HIP, :2])
    keypoints[Body.R_ELBOW, :2] = (keypoints[Body.R_SHOULDER, :2] + keypoints[Body.R_WRIST, :2]) / 2 + (-6, 0)
    frames, masks, _ = training_set()
    colours = leg_colours(frames, masks, np.stack([pose()] * len(frames)), len(frames))
    image, mask = draw(keypoints)
    hand = point(keypoints, Body.R_WRIST)
    assert (image[hand[1], hand[0]] == SKIN).all()
    ball = point(keypoints, Body.L_KNEE, Body.L_ANKLE, 0.3)
    image, mask = with_ball(image, mask, ball)
    painted, painted_mask = repaint_props(image, mask, keypoints, colours)
    x, y = hand
    assert np.array_equal(painted[y - 3:y + 4, x - 3:x + 4], image[y - 3:y + 4, x - 3:x + 4]), "the hand is kept"
    assert (painted_mask[y - 3:y + 4, x - 3:x + 4] == mask[y - 3:y + 4, x - 3:x + 4]).all()
    assert np.abs(painted[ball[1], ball[0]].astype(int) - TROUSERS).max() <= 12, "the ball is painted"


def test_patterned_legs_are_never_painted():
    frames, masks, keypoints = training_set(stripes=True)
    colours = leg_colours(frames, masks, keypoints, len(frames))
    assert not any(colours.painted.values()), "stripes are the clothing, not a prop"
    image, mask = with_ball(frames[0], masks[0], point(keypoints[0], Body.R_HIP, Body.R_KNEE, 0.6))
    out, out_mask = repaint_props(image, mask, keypoints[0], colours)
    assert out is image and out_mask is mask


def test_the_usual_colours_come_from_training_frames_only():
    frames, masks, keypoints = training_set(count=10)
    red, _ = draw(keypoints[0], trousers=(200, 30, 30))
    frames[8:] = red  # held out from frame 8 on
    colours = leg_colours(frames, masks, keypoints, first_heldout=8)
    navy = cv2.cvtColor(np.array([[TROUSERS]], np.uint8), cv2.COLOR_RGB2LAB)[0, 0].astype(float)
    for name in LEG_SEGMENTS:
        assert np.abs(colours.usual[name] - navy).max() <= 2, name


def test_the_option_switches_it():
    frames, masks, keypoints = training_set()
    frames[3], masks[3] = with_ball(frames[3], masks[3], point(keypoints[3], Body.L_HIP, Body.L_KNEE, 0.6), 8)
    off = exemplar_sources(frames, masks, keypoints, len(frames), ExemplarOptions(repaint_props=False))
    assert off[0] is frames and off[1] is masks
    sources, source_masks = exemplar_sources(frames, masks, keypoints, len(frames), ExemplarOptions())
    assert sources.shape == frames.shape and len(sources) == len(frames) and source_masks.shape == masks.shape
    assert np.array_equal(sources[2], frames[2]) and np.array_equal(source_masks[2], masks[2])
    assert (sources[3] == BALL).all(axis=-1).sum() < (frames[3] == BALL).all(axis=-1).sum()
    assert (source_masks[3] <= masks[3]).all() and (source_masks[3] < masks[3]).any()
    assert LIMB_BY_NAME["left_upper_leg"].start == Body.L_HIP


def test_the_jugglers_ball_leaves_his_legs(juggler, tmp_path):
    """The demo juggler, real MediaPipe poses and segmentation: the white ball on his legs in most
    training frames is painted out, and nothing off his legs changes."""
    from benchmarks.props_on_legs import bright_leg_pixels
    from edn.core.options import first_heldout_frame
    from edn.exemplars.props import covered, limb_bands
    from helpers import run_edn

    frames = np.load(juggler.frames)
    np.save(tmp_path / "labels.npy", np.zeros_like(frames))
    masks_path = tmp_path / "masks.npy"
    result = run_edn("background", "--subject", "juggler", "--frames", juggler.frames, "--labels",
                     tmp_path / "labels.npy", f"--plate={tmp_path / 'plate.png'}",
                     f"--coverage={tmp_path / 'coverage.png'}", f"--report={tmp_path / 'plate.json'}",
                     f"--masks={masks_path}")
    assert result.returncode == 0, result.stderr
    masks, keypoints = np.load(masks_path), juggler.poses.keypoints
    training = first_heldout_frame(len(frames), 0.1)
    sources, _ = exemplar_sources(frames, masks, keypoints, training, ExemplarOptions())
    before = np.array([bright_leg_pixels(frames[t], keypoints[t], 190) for t in range(training)])
    after = np.array([bright_leg_pixels(sources[t], keypoints[t], 190) for t in range(training)])
    assert (before >= 10).sum() >= training // 2, "the ball is on his legs in most training frames"
    assert after.sum() < 0.1 * before.sum()
    height, width = frames.shape[1:3]
    painted_frames = 0
    for t in np.flatnonzero(before >= 10)[::10]:
        legs, _ = limb_bands(keypoints[t], (width, height))
        on_legs = covered([region for region, _ in legs.values()], (height, width))
        on_legs = cv2.dilate(on_legs.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        changed = np.any(sources[t] != frames[t], axis=-1)
        assert not (changed & ~on_legs).any(), f"frame {t}: a pixel off the legs changed"
        painted_frames += bool(changed.any())
    assert painted_frames >= 0.8 * len(np.flatnonzero(before >= 10)[::10])
