"""The warped exemplar's own face, kept over the correction (edn.exemplars.own_face, synthesis.exemplar_face)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edn.core.errors import EdnError
from edn.core.presets import PRESETS
from edn.core.runtime import Runtime
from edn.exemplars.own_face import FACE_SHARE, FEATHER_PX, face_disc, face_discs
from edn.exemplars.warp import HEAD_JOINTS, HEAD_RADIUS_BODY
from edn.models import build_generator
from edn.models.generation import FrameGenerator, generate_frames, label_tensor, plate_tensor, to_uint8_hwc
from edn.pose.keypoints import PoseSequence, read_pose_table, write_pose_table
from edn.pose.skeleton import Body
from edn.transfer.synthesize import kept_faces
from synthetic_poses import standing_pose

SIZE = (128, 64)  # width, height


def _pose(ankle_x: float = 60.0, ankle_y: float = 60.0, height: float = 50.0) -> np.ndarray:
    return standing_pose(ankle_x, ankle_y, height).astype(np.float32)


def test_the_disc_is_a_share_of_the_warps_head_disc_around_the_heads_joints() -> None:
    pose = _pose()
    torso = float(np.linalg.norm(pose[Body.NECK, :2] - pose[Body.MID_HIP, :2]))
    radius = FACE_SHARE * HEAD_RADIUS_BODY * torso
    centre = pose[list(HEAD_JOINTS), :2].mean(axis=0)
    disc = face_disc(pose, SIZE)
    assert disc.shape == (SIZE[1], SIZE[0]) and disc.dtype == np.float32
    x = np.arange(SIZE[0]) + 0.5
    y = np.arange(SIZE[1])[:, None] + 0.5
    distance = np.hypot(x - centre[0], y - centre[1])
    assert np.all(disc[distance <= radius - FEATHER_PX / 2] == 1.0)
    assert np.all(disc[distance >= radius + FEATHER_PX / 2] == 0.0)
    ramp = (distance > radius - FEATHER_PX / 2) & (distance < radius + FEATHER_PX / 2)
    assert ramp.any() and np.all((disc[ramp] > 0) & (disc[ramp] < 1))
    # It follows the head: the same pose 20 px to the right.
    moved = face_disc(_pose(ankle_x=80.0), SIZE)
    np.testing.assert_array_equal(moved[:, 20:], disc[:, :-20])


def test_no_disc_without_a_head_joint_and_an_empty_one_outside_the_frame() -> None:
    headless = _pose()
    headless[list(HEAD_JOINTS), 2] = 0.0
    assert face_disc(headless, SIZE) is None
    outside = _pose(ankle_x=400.0)
    assert not face_disc(outside, SIZE).any()
    poses = PoseSequence(keypoints=np.stack([_pose(), headless]), frame_size=SIZE, detector="synthetic")
    discs = list(face_discs(poses))
    assert discs[0] is not None and discs[0].any() and discs[1] is None


def _residual_models(seed: int = 0) -> tuple[FrameGenerator, np.ndarray]:
    torch.manual_seed(seed)
    generator = build_generator(PRESETS["tiny"], "global", compositing=True, exemplar="residual").eval()
    with torch.no_grad():  # a correction that changes every pixel (it starts at zero)
        for parameter in generator.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    plate = np.random.default_rng(1).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    return FrameGenerator(generator=generator, plate=plate_tensor(plate), exemplar=True, residual=True), plate


def _draw(models: FrameGenerator, exemplar: torch.Tensor, faces) -> np.ndarray:
    label = label_tensor(np.random.default_rng(3).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8))
    frames = generate_frames(models, [label], [None], Runtime(torch.device("cpu")), windows=[(0, 0, *SIZE)],
                             exemplars=[exemplar], faces=faces)
    return to_uint8_hwc(next(iter(frames)))


def test_the_frame_is_the_exemplar_inside_the_disc_where_the_warp_drew_the_person_and_the_generators_elsewhere(
) -> None:
    models, plate = _residual_models()
    rng = np.random.default_rng(2)
    exemplar_rgb = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    drawn = np.ones((SIZE[1], SIZE[0]), bool)
    drawn[:, : SIZE[0] // 2 - 4] = False  # the warp drew no one on the left of the head: the plate shows there
    exemplar_rgb[~drawn] = plate[~drawn]
    exemplar_rgb[9, 61] = np.minimum(plate[9, 61].astype(int) + 1, 255)  # within the threshold: still the plate
    drawn[9, 61] = False
    # Validity says nothing here: the warp marks a hidden arm's reach invalid even over a face it drew.
    validity = np.zeros((SIZE[1], SIZE[0]), np.float32)
    exemplar = torch.cat([plate_tensor(exemplar_rgb), torch.from_numpy(validity)[None, None]], dim=1)
    disc = face_disc(_pose(), SIZE)
    inside = disc == 1.0
    assert (inside & ~drawn).any() and (inside & drawn).any() and inside[9, 61]

    without = _draw(models, exemplar, None)
    kept = _draw(models, exemplar, [torch.from_numpy(disc)[None, None]])
    assert not np.array_equal(without[inside & drawn], exemplar_rgb[inside & drawn])  # the correction changed it
    np.testing.assert_array_equal(kept[inside & drawn], exemplar_rgb[inside & drawn])
    np.testing.assert_array_equal(kept[disc == 0], without[disc == 0])
    np.testing.assert_array_equal(kept[~drawn], without[~drawn])  # where the warp drew no one: the generator's
    # A frame without a face (None) is drawn as without the option.
    np.testing.assert_array_equal(_draw(models, exemplar, [None]), without)


def test_only_a_generator_correcting_the_exemplar_keeps_its_face() -> None:
    models, _ = _residual_models()
    models.residual = False  # conditioned on the exemplar as input: it draws the person itself
    exemplar = torch.zeros(1, 4, SIZE[1], SIZE[0])
    with pytest.raises(ValueError, match="only a generator correcting the warped exemplar"):
        _draw(models, exemplar, [torch.ones(1, 1, SIZE[1], SIZE[0])])
    assert kept_faces(models, None, 1, enabled=True) is None


def test_kept_faces_needs_the_labels_poses_and_checks_them(tmp_path) -> None:
    models, _ = _residual_models()
    models.size = SIZE
    assert kept_faces(models, None, 2, enabled=False) is None
    with pytest.raises(EdnError, match="give the poses the labels were drawn from"):
        kept_faces(models, None, 2, enabled=True)
    poses = PoseSequence(keypoints=np.stack([_pose(), _pose(ankle_x=80.0), _pose(ankle_x=90.0)]),
                         frame_size=SIZE, detector="synthetic")
    path = tmp_path / "poses.parquet"
    write_pose_table(path, poses)
    read = read_pose_table(path)
    with pytest.raises(EdnError, match=f"pose table '{path}': 3 frames for 2 labels"):
        kept_faces(models, read, 2, enabled=True, source=str(path))
    # The held-out end: labels from frame 1 on.
    discs = list(kept_faces(models, read.replace(read.keypoints[1:]), 2, enabled=True, source=str(path)))
    np.testing.assert_array_equal(discs[0], face_disc(poses.keypoints[1], SIZE))
    np.testing.assert_array_equal(discs[1], face_disc(poses.keypoints[2], SIZE))
    models.size = (256, 128)
    with pytest.raises(EdnError, match="128x64 frames, the generator draws 256x128"):
        kept_faces(models, read, 3, enabled=True, source=str(path))
