"""The openpose backend against the real pyopenpose (OpenPose's own Python API), end to end.

It runs wherever pyopenpose is importable (``make test-openpose`` puts the one
built into .openpose/ on the path) and is skipped elsewhere. The weights are
random, written from the official prototxts by envs/openpose/make_weights.py:
what OpenPose detects with them means nothing, but every call edn makes goes
through the real module, and the keypoints edn writes are checked against what
the module itself returns for the same frames.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edn.ingest.decode import decode_video
from edn.core.errors import EdnError
from edn.pose.keypoints import read_pose_table
from edn.pose.openpose import MODEL_FILES, import_pyopenpose
from edn.pose.skeleton import BODY, FACE, KEYPOINT_COUNT, LEFT_HAND, RIGHT_HAND
from helpers import DEMO, ROOT, run_edn

try:
    op = import_pyopenpose()
    NOT_IMPORTABLE = ""
except EdnError as error:
    op, NOT_IMPORTABLE = None, str(error)

if op is None and os.environ.get("EDN_REQUIRE_PYOPENPOSE") == "1":  # make test-openpose: no skipping
    pytest.fail(f"EDN_REQUIRE_PYOPENPOSE=1 but {NOT_IMPORTABLE}", pytrace=False)

pytestmark = pytest.mark.skipif(
    op is None, reason="pyopenpose not importable (build it: docs/poses.md, Building OpenPose; make test-openpose "
                       "runs this with the one in .openpose/)")

# Small networks: a CPU runs the ten frames in about a minute.
FLAGS = {"net_resolution": "-1x128", "face_net_resolution": "128x128", "hand_net_resolution": "128x128",
         "number_people_max": "3"}
FLAGS_TEXT = ",".join(f"{k}={v}" for k, v in FLAGS.items())
WORKING = (256, 128)
SCALE = 2
THRESHOLD = 0.05  # edn's default min confidence for OpenPose


def official_models() -> Path:
    """An OpenPose models/ folder with the official prototxts: $EDN_OPENPOSE_MODELS, else the one in .openpose/."""
    folder = Path(os.environ.get("EDN_OPENPOSE_MODELS", ROOT / ".openpose" / "src" / "openpose" / "models"))
    missing = [name for name in MODEL_FILES if name.endswith(".prototxt") and not (folder / name).is_file()]
    if missing:
        pytest.fail(f"pyopenpose is importable but {folder / missing[0]} is not there: set EDN_OPENPOSE_MODELS to "
                    f"the models/ folder of the OpenPose checkout it was built from")
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("openpose") / "models"
    for name in MODEL_FILES:
        if name.endswith(".prototxt"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(official_models() / name, folder / name)
    # The part bias makes OpenPose assemble people with most of their parts (ankles and head included).
    result = subprocess.run([sys.executable, str(ROOT / "envs" / "openpose" / "make_weights.py"), str(folder),
                             "--part-bias", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert all((folder / name).stat().st_size > 10**8 for name in MODEL_FILES if name.endswith(".caffemodel"))
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    """The demo dancer (600x600) at 2 fps: working frames at 256x128 (padded) and the video they came from."""
    directory = tmp_path_factory.mktemp("clip")
    video = DEMO / "source_dancer.mp4"
    from fractions import Fraction

    meta = decode_video(video, directory / "frames.npy", directory / "meta.json", working_size=WORKING,
                        fps=Fraction(2))
    # The square video sits in the middle of the wide frame: x_working = x_detection / SCALE exactly.
    assert tuple(meta.scaled_size) == (128, 128) and tuple(meta.offset) == (64, 0)
    return {"video": video, "frames": directory / "frames.npy", "meta": directory / "meta.json",
            "count": meta.frame_count, "dir": directory}


def run_real_module(frames: np.ndarray, models: Path) -> list[dict]:
    """pyopenpose called directly (not through edn): each frame's raw arrays."""
    wrapper = op.WrapperPython()
    wrapper.configure({"model_folder": str(models) + "/", "model_pose": "BODY_25", "face": True, "hand": True,
                       "render_pose": 0, **FLAGS})
    wrapper.start()
    out = []
    for frame in frames:
        datum = op.Datum()
        image = np.ascontiguousarray(frame[..., ::-1])
        datum.cvInputData = image
        assert wrapper.emplaceAndPop(op.VectorDatum([datum]))
        hands = datum.handKeypoints
        out.append({"pose": datum.poseKeypoints, "face": datum.faceKeypoints, "left": hands[0], "right": hands[1]})
    wrapper.stop()
    return out


def test_edn_pose_through_the_real_pyopenpose(models: Path, clip: dict, tmp_path: Path) -> None:
    table = tmp_path / "dancer.parquet"
    result = subprocess.run(
        [sys.executable, "-m", "edn", "pose", "--backend", "openpose", "--frames", str(clip["frames"]), "--meta",
         str(clip["meta"]), "--video", str(clip["video"]), "--detection-scale", str(SCALE),
         "--openpose-model-folder", str(models), "--openpose-flags", FLAGS_TEXT, "--output", str(table)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]

    poses = read_pose_table(table)
    assert poses.detector == "openpose" and tuple(poses.frame_size) == WORKING
    assert poses.keypoints.shape == (clip["count"], KEYPOINT_COUNT, 3) and clip["count"] == 10

    # What the module itself returns on the frames edn detected on (the video at twice the working size).
    big = decode_video(clip["video"], tmp_path / "big.npy", tmp_path / "big.json",
                       working_size=(WORKING[0] * SCALE, WORKING[1] * SCALE), fps=2)
    raw = run_real_module(np.load(tmp_path / "big.npy"), models)
    assert big.frame_count == clip["count"]
    assert sum(r["pose"] is not None for r in raw) >= 5, "the random weights found people in too few frames"

    matched = 0
    for t, frame in enumerate(raw):
        mine = poses.keypoints[t]
        if not (mine[:, 2] > 0).any():
            continue
        assert frame["pose"] is not None, f"frame {t}: edn has a person where OpenPose found nobody"
        people = np.concatenate([frame["pose"], frame["face"], frame["left"], frame["right"]], axis=1)
        assert people.shape[1:] == (KEYPOINT_COUNT, 3)
        # Pixel index -> continuous pixel (+0.5), then detection pixels -> working pixels (/2).
        expected = people.copy()
        expected[..., :2] = (expected[..., :2] + 0.5) / SCALE
        expected[..., 2] = np.minimum(expected[..., 2], 1)  # heat-map peaks can exceed 1
        expected[expected[..., 2] < THRESHOLD] = 0
        errors = [np.abs(e - mine).max() for e in expected]
        assert min(errors) < 1e-3, f"frame {t}: edn's person is none of OpenPose's (closest off by {min(errors)})"
        matched += 1
    assert matched >= 5
    present = poses.keypoints[..., 2] > 0
    assert present[:, BODY].any() and present[:, FACE].any()
    assert present[:, LEFT_HAND].any() or present[:, RIGHT_HAND].any()
    assert poses.keypoints[..., 2].max() <= 1 and (poses.keypoints[..., 2] > 0.5).any()

    # The table goes on: keypoint filtering, then the subject statistics and normalization.
    filtered = tmp_path / "dancer.filtered.parquet"
    assert run_edn("filter-poses", "--poses", table, "--output", filtered).returncode == 0
    smooth = read_pose_table(filtered)
    assert smooth.keypoints.shape == poses.keypoints.shape
    stats = tmp_path / "dancer.json"
    done = run_edn("stats", "--poses", filtered, "--subject", "dancer", "--output", stats)
    assert done.returncode == 0, done.stderr
    normalized = tmp_path / "normalized.parquet"
    done = run_edn("normalize", "--source-poses", filtered, "--source-stats", stats, "--target-stats", stats,
                   "--output", normalized)
    assert done.returncode == 0, done.stderr
    mapped = read_pose_table(normalized)
    # Onto itself, normalization moves nothing.
    assert mapped.keypoints.shape == smooth.keypoints.shape
    np.testing.assert_allclose(mapped.keypoints, smooth.keypoints, atol=1e-3)


def test_real_module_facts_the_adapter_relies_on(models: Path) -> None:
    # 1.7 takes only a VectorDatum: a plain list (what 1.5 and 1.6 took) is refused.
    wrapper = op.WrapperPython()
    wrapper.configure({"model_folder": str(models) + "/", "model_pose": "BODY_25", "render_pose": 0, **FLAGS})
    wrapper.start()
    datum = op.Datum()
    image = np.zeros((64, 64, 3), np.uint8)
    datum.cvInputData = image
    image[:] = 7  # the datum shares the buffer: edn keeps its array alive through emplaceAndPop
    assert datum.cvInputData[0, 0].tolist() == [7, 7, 7]
    with pytest.raises(TypeError):
        wrapper.emplaceAndPop([datum])
    assert wrapper.emplaceAndPop(op.VectorDatum([datum]))
    assert datum.poseKeypoints is None or datum.poseKeypoints.shape[1:] == (25, 3)
    wrapper.stop()


def test_real_module_errors_are_one_line(models: Path, clip: dict, tmp_path: Path) -> None:
    args = ["pose", "--backend", "openpose", "--frames", str(clip["frames"]), "--meta", str(clip["meta"]),
            "--openpose-model-folder", str(models), "--output", str(tmp_path / "p.parquet")]
    # OpenPose's own check (its error, raised by the real module), as one line.
    result = subprocess.run([sys.executable, "-m", "edn", *args, "--openpose-flags", "net_resolution=-1x100"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("edn pose: error: OpenPose") and "16" in errors[0]
    assert not (tmp_path / "p.parquet").exists()
