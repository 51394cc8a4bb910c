"""Stick-figure rendering, face boxes, label stores and previews."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edn.pose.keypoints import PoseSequence, empty_keypoints, write_pose_table
from edn.labels.label_store import load_labels, read_label_index
from edn.ingest.media import count_frames
from edn.labels.render import PALETTE, LineWidths, face_box_side, face_boxes, render_pose
from edn.pose.skeleton import BODY_COLOURS, KEYPOINT_COUNT, Body
from helpers import run_edn
from synthetic_poses import standing_pose, walking_sequence


def colours(image: np.ndarray) -> set[tuple[int, int, int]]:
    return set(map(tuple, np.unique(image.reshape(-1, 3), axis=0).tolist()))


poses = arrays(np.float32, (KEYPOINT_COUNT, 3), elements=st.floats(-50, 600, width=32)).map(
    lambda k: np.concatenate([k[:, :2], (k[:, 2:] > 250).astype(np.float32)], axis=1))


@settings(max_examples=60, deadline=None)
@given(poses)
def test_only_palette_colours(pose: np.ndarray) -> None:
    assert colours(render_pose(pose, (512, 256))) <= PALETTE


def test_real_figure_uses_palette_and_is_drawn(tmp_path) -> None:
    image = render_pose(standing_pose(256, 220, 180), (512, 256))
    found = colours(image)
    assert found <= PALETTE and len(found) > 15


def test_limb_with_a_missing_end_is_not_drawn() -> None:
    pose = empty_keypoints(1)[0]
    pose[Body.R_SHOULDER] = (100, 100, 0.9)
    pose[Body.R_ELBOW] = (200, 100, 0.9)
    elbow_colour = np.array(BODY_COLOURS[Body.R_ELBOW])
    drawn = render_pose(pose, (512, 256))
    assert (drawn[100, 150] == elbow_colour).all()  # the limb, halfway along
    pose[Body.R_ELBOW, 2] = 0.0
    missing = render_pose(pose, (512, 256))
    assert not missing[100, 150].any()
    assert not (missing == elbow_colour).all(axis=-1).any()
    # The present joint is still drawn as a dot.
    assert (missing[100, 100] == np.array(BODY_COLOURS[Body.R_SHOULDER])).all()


def test_same_input_same_bytes() -> None:
    pose = standing_pose(200, 230, 150)
    assert render_pose(pose, (512, 256)).tobytes() == render_pose(pose.copy(), (512, 256)).tobytes()


def test_nothing_drawn_for_nobody() -> None:
    assert not render_pose(empty_keypoints(1)[0], (256, 128)).any()


def test_line_widths_and_face_box_scale_with_resolution() -> None:
    assert LineWidths.for_width(1024) == LineWidths(body=8, hand=3, face=2)
    assert LineWidths.for_width(256) == LineWidths(body=2, hand=1, face=1)
    assert face_box_side(1024) == 128 and face_box_side(512) == 64 and face_box_side(256) == 32
    thin = (render_pose(standing_pose(128, 120, 90), (256, 128)) != 0).any(axis=-1).mean()
    thick = (render_pose(standing_pose(512, 480, 360), (1024, 512)) != 0).any(axis=-1).mean()
    assert thick == pytest.approx(thin, rel=0.35)  # same figure, same share of the frame


def test_face_box_centre_fallback_and_clamping() -> None:
    sequence = walking_sequence(np.array([200.0, 200.0, 200.0, 90.0]), np.array([100.0] * 4),
                                frame_size=(256, 128))
    k = sequence.keypoints.copy()
    k[1, Body.NOSE] = 0  # no nose: the ears' midpoint
    k[2, [Body.NOSE, Body.R_EAR, Body.L_EAR]] = 0  # no head at all
    k[3, :, 0] -= 195  # nose near the left edge, and above the top
    boxes, found = face_boxes(sequence.replace(k))
    side = 32
    nose = sequence.keypoints[0, Body.NOSE, :2]
    assert list(boxes[0]) == [round(nose[0] - 16), round(nose[1] - 16), round(nose[0] + 16), round(nose[1] + 16)]
    ears = (k[1, Body.R_EAR, :2] + k[1, Body.L_EAR, :2]) / 2
    assert boxes[1][0] == round(ears[0] - 16)
    assert list(found) == [True, True, False, True]
    assert boxes[3][0] == 0 and boxes[3][1] == 0  # clamped into the frame, not shrunk
    assert np.all(boxes[:, 2] - boxes[:, 0] == side) and np.all(boxes[:, 3] - boxes[:, 1] == side)
    assert np.all((boxes[:, :2] >= 0) & (boxes[:, 2:] <= [256, 128]))


def test_render_command_writes_labels_index_and_preview(tmp_path) -> None:
    sequence = walking_sequence(np.linspace(100, 120, 12), np.full(12, 80.0), ankle_x=128, frame_size=(256, 128))
    k = sequence.keypoints.copy()
    k[5] = 0  # nobody in frame 5
    write_pose_table(tmp_path / "p.parquet", PoseSequence(k, (256, 128), "synthetic"))
    result = run_edn("render", "--poses", tmp_path / "p.parquet", "--labels", tmp_path / "labels.npy",
                     "--index", tmp_path / "index.csv")
    assert result.returncode == 0, result.stderr
    labels = load_labels(tmp_path / "labels.npy")
    index = read_label_index(tmp_path / "index.csv")
    assert labels.shape == (12, 128, 256, 3)
    assert not labels[5].any() and labels[4].any()
    assert list(index.has_body) == [True] * 5 + [False] + [True] * 6
    assert not index.has_face[5] and index.has_face[4]
    for t in (0, 7):
        assert labels[t].tobytes() == render_pose(k[t], (256, 128)).tobytes()

    (tmp_path / "meta.json").write_text('{"video": "x.mp4", "fps": "24", "frame_count": 12, '
                                        '"source_size": [256, 128], "working_size": [256, 128], "fit": "pad", '
                                        '"scaled_size": [256, 128], "offset": [0, 0]}')
    result = run_edn("label-preview", "--labels", tmp_path / "labels.npy", "--index", tmp_path / "index.csv",
                     "--meta", tmp_path / "meta.json", "--output", tmp_path / "preview.mp4")
    assert result.returncode == 0, result.stderr
    assert count_frames(tmp_path / "preview.mp4") == 12
