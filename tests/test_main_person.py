"""The main-person rule: the largest, most continuous track is the subject."""

from __future__ import annotations

import numpy as np

from edn.pose.main_person import frame_ranges, select_main_person
from edn.pose.skeleton import BODY, KEYPOINT_COUNT


#: A body's joints as fractions of its height around its centre (a fixed random figure).
TEMPLATE = np.random.default_rng(99).uniform([-0.2, -0.5], [0.2, 0.5], (BODY.stop, 2))


def person(centre_x: float, height: float, rng: np.random.Generator, centre_y: float = 64.0) -> np.ndarray:
    """A [K, 3] pose: the template figure ``height`` pixels tall around a centre, with a little jitter."""
    pose = np.zeros((KEYPOINT_COUNT, 3), np.float32)
    pose[BODY, :2] = [centre_x, centre_y] + (TEMPLATE + rng.normal(0, 0.01, TEMPLATE.shape)) * height
    pose[BODY, 2] = 0.9
    return pose


def frames_of(*people_per_frame: list[np.ndarray]) -> list[np.ndarray]:
    return [np.stack(p) if p else np.zeros((0, KEYPOINT_COUNT, 3), np.float32) for p in people_per_frame]


def test_the_larger_person_is_kept_whatever_the_listing_order() -> None:
    rng = np.random.default_rng(0)
    subject = [person(80 + t, 100, rng) for t in range(20)]
    passer = [person(200 - 2 * t, 40, rng) for t in range(20)]
    listed = [[passer[t], subject[t]] if t % 2 else [subject[t], passer[t]] for t in range(20)]
    out = select_main_person(frames_of(*listed))
    np.testing.assert_array_equal(out, np.stack(subject))


def test_a_long_track_beats_a_brief_larger_one() -> None:
    rng = np.random.default_rng(1)
    subject = [person(60, 80, rng) for _ in range(40)]
    visitor = {t: person(180, 110, rng) for t in range(10, 16)}  # bigger, but only 6 frames
    out = select_main_person(frames_of(*[[subject[t]] + ([visitor[t]] if t in visitor else []) for t in range(40)]))
    np.testing.assert_array_equal(out, np.stack(subject))


def test_a_detector_jumping_to_someone_else_is_not_followed() -> None:
    """One person per frame (as Holistic reports), but frames 12-14 show another person far away."""
    rng = np.random.default_rng(2)
    listed = [[person(60 + 0.5 * t, 90, rng)] for t in range(30)]
    for t in (12, 13, 14):
        listed[t] = [person(200, 90, rng)]
    out = select_main_person(frames_of(*listed))
    found = out[..., 2].max(axis=1) > 0
    assert not found[12:15].any() and found[:12].all() and found[15:].all()
    np.testing.assert_array_equal(out[20], listed[20][0])


def test_the_subject_is_followed_across_a_short_absence_and_empty_frames_stay() -> None:
    rng = np.random.default_rng(3)
    listed = [[person(50 + t, 90, rng)] if not 10 <= t < 18 else [] for t in range(30)]
    out = select_main_person(frames_of(*listed))
    assert out.shape == (30, KEYPOINT_COUNT, 3)
    found = out[..., 2].max(axis=1) > 0
    assert found[:10].all() and found[18:].all() and not found[10:18].any()
    assert (out[10:18] == 0).all()


def test_people_taking_turns_are_different_tracks() -> None:
    """A first person for 30 frames, nobody for 40, then a second person elsewhere for 20: only the first is kept."""
    rng = np.random.default_rng(4)
    listed = [[person(60, 90, rng)] if t < 30 else [person(190, 90, rng)] if t >= 70 else [] for t in range(90)]
    out = select_main_person(frames_of(*listed))
    found = out[..., 2].max(axis=1) > 0
    assert found[:30].all() and not found[30:].any()


def test_nobody_anywhere_gives_all_missing_frames() -> None:
    out = select_main_person(frames_of(*[[] for _ in range(7)]))
    assert out.shape == (7, KEYPOINT_COUNT, 3) and not out.any()
    assert select_main_person([]).shape == (0, KEYPOINT_COUNT, 3)


def test_scattered_small_hallucinations_are_never_the_subject() -> None:
    """An empty room where a detector sees a small 'person' in a table now and then."""
    rng = np.random.default_rng(5)
    listed = [[person(146, 25, rng, centre_y=86)] if t in (1, 4, 7, 8) else [] for t in range(40)]
    assert not select_main_person(frames_of(*listed)).any()
    # Beside a real subject, a tiny detection is not linked into the subject's track.
    listed = [[person(150, 90, rng)] for t in range(20)] + [[person(151, 6, rng, centre_y=84)] for t in range(5)]
    out = select_main_person(frames_of(*listed))
    found = out[..., 2].max(axis=1) > 0
    assert found[:20].all() and not found[20:].any()


def test_two_people_of_like_size_throughout_are_a_warning_naming_their_frames(caplog) -> None:
    """Both seen in every frame, one a little larger: the larger is kept, and the close call is said."""
    rng = np.random.default_rng(6)
    dancer = [person(60, 100, rng) for _ in range(30)]
    other = [person(190, 90, rng) for _ in range(30)]
    listed = [[other[t], dancer[t]] if t >= 12 else [dancer[t], other[t]] for t in range(30)]
    listed[20] = [dancer[20]]  # the other one hidden for a frame
    with caplog.at_level("WARNING", logger="edn.pose.main_person"):
        out = select_main_person(frames_of(*listed))
    np.testing.assert_array_equal(out, np.stack(dancer))
    # The other's score: 29 frames of 0.9 the size, 29 * 0.9 / 30 = 87% of the kept one's.
    assert [record.getMessage() for record in caplog.records] == [
        "two people compete to be the subject: the one kept is seen in frames 0-29; another, 87% of its size "
        "times frames, in frames 0-19, 21-29"]


def test_a_passer_by_or_a_small_figure_is_no_competition(caplog) -> None:
    rng = np.random.default_rng(7)
    listed = [[person(60, 100, rng)] + ([person(150 + 2 * t, 90, rng)] if t < 12 else [person(220, 30, rng)])
              for t in range(30)]
    with caplog.at_level("WARNING", logger="edn.pose.main_person"):
        select_main_person(frames_of(*listed))
    assert not caplog.records


def test_frame_ranges() -> None:
    assert frame_ranges([0, 1, 2, 5, 7, 8, 10, 11, 12, 13]) == "0-2, 5, 7-8, 10-13"
    assert frame_ranges([4]) == "4" and frame_ranges([]) == ""
