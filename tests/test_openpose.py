"""OpenPose: JSON files in and out, the pyopenpose adapter (with a stand-in module), bad input."""

from __future__ import annotations

import importlib.util
import json
import re
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from edn.core.atomic import write_json
from edn.core.errors import EdnError
from edn.ingest.frames import FrameMeta, fit_geometry
from edn.pose.keypoints import PoseSequence, read_pose_table, write_pose_table
from edn.pose.detect import detect
from edn.pose.openpose import MODEL_FILES, OpenPoseDetector, extra_flags, import_pyopenpose
from edn.pose.openpose_json import parse_people
from edn.pose.skeleton import BODY, FACE, KEYPOINT_COUNT, LEFT_HAND, RIGHT_HAND, Body
from helpers import ROOT, leftovers, run_edn


def write_meta(path: Path, *, source_size: tuple[int, int], working_size: tuple[int, int], frame_count: int,
               fps: str = "10") -> FrameMeta:
    geometry = fit_geometry(source_size, working_size, "pad")
    meta = FrameMeta(video="clip.mp4", fps=fps, frame_count=frame_count, source_size=source_size,
                     working_size=working_size, fit="pad", scaled_size=geometry.scaled_size, offset=geometry.offset)
    write_json(path, meta.to_json())
    return meta


# A hand-written OpenPose file: one person, BODY_25 with RHeel missing, no face,
# a left hand, no right hand.
HAND_WRITTEN = """{"version": 1.3, "people": [{"person_id": [-1],
 "pose_keypoints_2d": [
   100, 20, 0.9,   100, 35, 0.8,   90, 36, 0.7,   85, 50, 0.6,   82, 64, 0.5,
   110, 36, 0.75,  115, 50, 0.65,  118, 64, 0.55, 100, 70, 0.85,  94, 70, 0.8,
   93, 90, 0.7,    92, 110, 0.6,   106, 70, 0.8,  107, 90, 0.7,   108, 110, 0.6,
   98, 18, 0.9,    102, 18, 0.9,   96, 19, 0.4,   104, 19, 0.3,   110, 114, 0.25,
   112, 114, 0.2,  107, 112, 0.15, 90, 114, 0.125, 88, 114, 0.0625, 0, 0, 0],
 "face_keypoints_2d": [],
 "hand_left_keypoints_2d": [
   118, 64, 0.5, 119, 65, 0.5, 120, 66, 0.5, 121, 67, 0.5, 122, 68, 0.5,
   119.25, 66, 0.5, 119.5, 68, 0.5, 119.75, 70, 0.5, 120, 72, 0.5,
   118.25, 66, 0.5, 118.5, 68, 0.5, 118.75, 70, 0.5, 119, 72, 0.5,
   117.25, 66, 0.5, 117.5, 68, 0.5, 117.75, 70, 0.5, 118, 72, 0.5,
   116.25, 66, 0.5, 116.5, 68, 0.5, 116.75, 70, 0.5, 117, 72, 0.01],
 "hand_right_keypoints_2d": []}]}"""


def _hand_written_dir(directory: Path) -> Path:
    directory.mkdir()
    (directory / "clip_000000000000_keypoints.json").write_text(HAND_WRITTEN)
    (directory / "clip_000000000001_keypoints.json").write_text('{"version": 1.3, "people": []}')
    return directory


def _expected_hand_written() -> np.ndarray:
    values = json.loads(HAND_WRITTEN)["people"][0]
    expected = np.zeros((KEYPOINT_COUNT, 3), np.float64)
    expected[BODY] = np.reshape(values["pose_keypoints_2d"], (-1, 3))
    expected[LEFT_HAND] = np.reshape(values["hand_left_keypoints_2d"], (-1, 3))
    return expected


@pytest.mark.parametrize("coordinates", ["working", "source"])
def test_hand_written_json_imports_exactly(tmp_path: Path, coordinates: str) -> None:
    """Known numbers in, the same numbers out: OpenPose's pixel index + 0.5 (edn's
    continuous pixels), through the recorded transform for source pixels."""
    json_dir = _hand_written_dir(tmp_path / "json")
    # A 200x200 source padded into 256x128: scale 0.64, offset (64, 0).
    meta = write_meta(tmp_path / "meta.json", source_size=(200, 200), working_size=(256, 128), frame_count=2)
    result = run_edn("pose", "--backend", "openpose_json", "--meta",
                     tmp_path / "meta.json", "--json-dir", json_dir, "--openpose-json-coordinates", coordinates,
                     "--output", tmp_path / "poses.parquet")
    assert result.returncode == 0, result.stderr
    poses = read_pose_table(tmp_path / "poses.parquet")
    assert poses.frame_count == 2 and poses.frame_size == (256, 128) and poses.detector == "openpose_json"

    expected = _expected_hand_written()
    present = expected[:, 2] >= 0.05  # the default OpenPose threshold drops the 0.01 finger tip
    x, y = expected[:, 0] + 0.5, expected[:, 1] + 0.5
    if coordinates == "source":
        assert meta.transform.scale_x == 0.64 and meta.transform.offset_x == 64
        x, y = meta.transform.to_working(x, y)
    want = np.zeros((KEYPOINT_COUNT, 3), np.float32)
    want[present] = np.stack([x, y, expected[:, 2]], axis=1)[present].astype(np.float32)
    np.testing.assert_array_equal(poses.keypoints[0], want)
    assert poses.keypoints[0, Body.R_HEEL].tolist() == [0, 0, 0]
    nose = [100.5, 20.5] if coordinates == "working" else [0.64 * 100.5 + 64, 0.64 * 20.5]
    assert poses.keypoints[0, Body.NOSE].tolist() == np.float32(nose + [0.9]).tolist()
    assert (poses.keypoints[0, FACE] == 0).all() and (poses.keypoints[0, RIGHT_HAND] == 0).all()
    assert (poses.keypoints[1] == 0).all()  # nobody in frame 1: kept, all missing


def _moving_person(frame_count: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible person walking right: [T, K, 3] with some keypoints missing."""
    base = np.zeros((KEYPOINT_COUNT, 2))
    base[:, 0] = rng.uniform(60, 100, KEYPOINT_COUNT)
    base[:, 1] = rng.uniform(10, 120, KEYPOINT_COUNT)
    people = np.zeros((frame_count, KEYPOINT_COUNT, 3), np.float32)
    for t in range(frame_count):
        people[t, :, :2] = base + [1.5 * t, 0] + rng.normal(0, 0.3, base.shape)
        people[t, :, 2] = rng.uniform(0.3, 1.0, KEYPOINT_COUNT)
    people[rng.random(people.shape[:2]) < 0.1] = 0
    return people


def test_export_then_import_is_lossless(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    keypoints = _moving_person(12, rng)
    keypoints[5] = 0  # a frame with nobody
    poses = PoseSequence(keypoints=keypoints, frame_size=(256, 128), detector="mediapipe")
    write_pose_table(tmp_path / "poses.parquet", poses)
    write_meta(tmp_path / "meta.json", source_size=(1280, 720), working_size=(256, 128), frame_count=12)

    exported = run_edn("export-openpose", "--poses", tmp_path / "poses.parquet", "--output", tmp_path / "json",
                       "--prefix", "clip")
    assert exported.returncode == 0, exported.stderr
    files = sorted((tmp_path / "json").iterdir())
    assert [f.name for f in files[:2]] == ["clip_000000000000_keypoints.json", "clip_000000000001_keypoints.json"]
    assert len(files) == 12
    document = json.loads(files[0].read_text())
    assert set(document["people"][0]) >= {"pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                                          "hand_right_keypoints_2d"}
    assert len(document["people"][0]["pose_keypoints_2d"]) == 75
    assert json.loads(files[5].read_text())["people"] == []

    imported = run_edn("pose", "--backend", "openpose_json", "--meta",
                       tmp_path / "meta.json", "--json-dir", tmp_path / "json", "--openpose-json-coordinates", "working",
                       "--min-confidence-openpose", "0", "--output", tmp_path / "back.parquet")
    assert imported.returncode == 0, imported.stderr
    np.testing.assert_array_equal(read_pose_table(tmp_path / "back.parquet").keypoints, keypoints)

    # In the source video's pixels (1280x720 padded into 256x128), up to float rounding.
    run_edn("export-openpose", "--poses", tmp_path / "poses.parquet", "--meta", tmp_path / "meta.json",
            "--output", tmp_path / "json_source")
    nose = json.loads((tmp_path / "json_source/frame_000000000000_keypoints.json").read_text())
    nose_x = nose["people"][0]["pose_keypoints_2d"][0]
    assert nose_x == pytest.approx((keypoints[0, Body.NOSE, 0] - 14) * 1280 / 228 - 0.5, abs=1e-3)
    again = run_edn("pose", "--backend", "openpose_json", "--meta",
                    tmp_path / "meta.json", "--json-dir", tmp_path / "json_source", "--min-confidence-openpose", "0",
                    "--output", tmp_path / "back_source.parquet")
    assert again.returncode == 0, again.stderr
    np.testing.assert_allclose(read_pose_table(tmp_path / "back_source.parquet").keypoints, keypoints, atol=1e-4)


def test_json_with_several_people_keeps_the_main_one(tmp_path: Path) -> None:
    """A large person through all 30 frames and a small one in 10-19 (listed first there)."""
    rng = np.random.default_rng(7)
    main = _moving_person(30, rng)
    other = np.zeros_like(main)
    other[:, BODY, 0] = rng.uniform(200, 215, (30, BODY.stop))
    other[:, BODY, 1] = rng.uniform(40, 60, (30, BODY.stop))
    other[:, BODY, 2] = 0.9
    directory = tmp_path / "json"
    directory.mkdir()
    for t in range(30):
        people = [other[t], main[t]] if 10 <= t < 20 else [main[t]]
        document = {"version": 1.3, "people": [
            {"pose_keypoints_2d": _flat(p[BODY]), "face_keypoints_2d": _flat(p[FACE]),
             "hand_left_keypoints_2d": _flat(p[LEFT_HAND]), "hand_right_keypoints_2d": _flat(p[RIGHT_HAND])}
            for p in people]}
        (directory / f"v_{t:012d}_keypoints.json").write_text(json.dumps(document))
    meta_path = tmp_path / "meta.json"
    write_meta(meta_path, source_size=(256, 128), working_size=(256, 128), frame_count=30)
    poses = detect("openpose_json", frames_path=None, meta_path=meta_path, json_dir=directory,
                   json_coordinates="working", min_confidence=0, show_progress=False)
    np.testing.assert_allclose(poses.keypoints, main, atol=1e-4)


def _flat(part: np.ndarray) -> list[float]:
    """OpenPose convention (pixel index) for one part: continuous - 0.5 where present."""
    values = part.astype(np.float64).copy()
    present = values[:, 2] > 0
    values[present, :2] -= 0.5
    return values.reshape(-1).tolist()


def _pose_json(tmp_path: Path, json_dir: Path, frame_count: int = 2, *extra: str):
    write_meta(tmp_path / "meta.json", source_size=(256, 128), working_size=(256, 128), frame_count=frame_count)
    return run_edn("pose", "--backend", "openpose_json", "--meta",
                   tmp_path / "meta.json", "--json-dir", json_dir, "--output", tmp_path / "out" / "p.parquet", *extra)


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.error_lines[0], result.error_lines[0]


def test_confidences_above_one_are_clipped() -> None:
    # OpenPose writes heat-map peaks as confidences, and they can exceed 1.
    person = json.loads(HAND_WRITTEN)
    person["people"][0]["pose_keypoints_2d"][2] = 1.4
    people = parse_people(person, "frame 0")
    assert people[0, 0, 2] == 1.0 and people[0, 1, 2] == pytest.approx(0.8)


def test_bad_openpose_json_gives_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_line_error(_pose_json(tmp_path, empty), f"OpenPose JSON directory '{empty}': no .json files")
    _assert_one_line_error(_pose_json(tmp_path, tmp_path / "nowhere"), "'" + str(tmp_path / "nowhere") + "': not found")

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    person = json.loads(HAND_WRITTEN)
    person["people"][0]["pose_keypoints_2d"] = person["people"][0]["pose_keypoints_2d"][:54]  # COCO-18 size
    (wrong / "a_000000000000_keypoints.json").write_text(json.dumps(person))
    (wrong / "a_000000000001_keypoints.json").write_text('{"people": []}')
    _assert_one_line_error(_pose_json(tmp_path, wrong), "a_000000000000_keypoints.json",
                           "person 0 pose_keypoints_2d has 54 values, expected 75 (25 keypoints x (x, y, confidence))")

    hole = tmp_path / "hole"
    hole.mkdir()
    for frame in (0, 1, 3):
        (hole / f"a_{frame:012d}_keypoints.json").write_text('{"people": []}')
    _assert_one_line_error(_pose_json(tmp_path, hole, 3), "frame 2 is missing (files jump from 1 to 3)")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a_000000000000_keypoints.json").write_text('{"people": [')
    _assert_one_line_error(_pose_json(tmp_path, broken, 1), "a_000000000000_keypoints.json", "not valid JSON")

    negative = tmp_path / "negative"
    negative.mkdir()
    person = json.loads(HAND_WRITTEN)
    person["people"][0]["pose_keypoints_2d"][2] = -0.5
    (negative / "a_000000000000_keypoints.json").write_text(json.dumps(person))
    _assert_one_line_error(_pose_json(tmp_path, negative, 1), "a_000000000000_keypoints.json",
                           "a confidence is negative")

    _assert_one_line_error(_pose_json(tmp_path, _hand_written_dir(tmp_path / "short"), 5),
                           "2 files, but the video was decoded to 5 frames")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- pyopenpose: the adapter against a stand-in module ----------------------------

def make_stand_in_pyopenpose(results: list[dict], seen: dict) -> types.ModuleType:
    """A stand-in for pyopenpose (OpenPose's Python API, which needs a CUDA build of
    OpenPose): the same classes and calls, returning the known arrays of ``results``,
    one dict per frame in call order, and recording what the adapter gave it."""
    module = types.ModuleType("pyopenpose")

    class Datum:
        def __init__(self) -> None:
            self.cvInputData = None
            self.poseKeypoints = None
            self.faceKeypoints = None
            self.handKeypoints = None

    class VectorDatum(list):
        pass

    class WrapperPython:
        def configure(self, params: dict) -> None:
            seen["params"] = dict(params)

        def start(self) -> None:
            seen["started"] = True

        def emplaceAndPop(self, batch) -> bool:
            assert isinstance(batch, VectorDatum)
            for datum in batch:
                seen.setdefault("images", []).append(np.array(datum.cvInputData))
                frame = results[len(seen["images"]) - 1]
                datum.poseKeypoints = frame.get("pose")
                datum.faceKeypoints = frame.get("face")
                datum.handKeypoints = frame.get("hands")
            return True

    module.Datum, module.VectorDatum, module.WrapperPython = Datum, VectorDatum, WrapperPython
    return module


# A serialised caffe.NetParameter with one empty layer (field 100, length 0).
ONE_EMPTY_LAYER = b"\xa2\x06\x00"


def stand_in_model_folder(folder: Path) -> Path:
    """A models/ folder with stand-in files where OpenPose looks for BODY_25, face and hand."""
    for name in MODEL_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(ONE_EMPTY_LAYER if name.endswith(".caffemodel") else b"")
    return folder


def test_pyopenpose_adapter_with_a_stand_in_module(tmp_path: Path, monkeypatch) -> None:
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    frames[..., 0] = 250  # pure red in RGB: OpenPose must get it as BGR
    np.save(tmp_path / "frames.npy", frames)
    write_meta(tmp_path / "meta.json", source_size=(64, 48), working_size=(64, 48), frame_count=3)
    rng = np.random.default_rng(1)
    big = np.concatenate([rng.uniform(10, 50, (25, 2)), rng.uniform(0.2, 1, (25, 1))], axis=1).astype(np.float32)
    small = np.concatenate([rng.uniform(55, 60, (25, 2)), np.full((25, 1), 0.9)], axis=1).astype(np.float32)
    big[3, 2] = 0.01  # below OpenPose's 0.05 threshold: dropped
    face = np.concatenate([rng.uniform(20, 30, (70, 2)), np.full((70, 1), 0.6)], axis=1).astype(np.float32)
    left = np.concatenate([rng.uniform(40, 45, (21, 2)), np.full((21, 1), 0.7)], axis=1).astype(np.float32)
    right = np.concatenate([rng.uniform(10, 15, (21, 2)), np.full((21, 1), 0.8)], axis=1).astype(np.float32)
    results = [
        {"pose": np.stack([small, big]), "face": np.stack([np.zeros_like(face), face]),
         "hands": [np.stack([np.zeros_like(left), left]), np.stack([np.zeros_like(right), right])]},
        {"pose": np.stack([big + [0.5, 0, 0]]), "face": None, "hands": [np.zeros((0, 21, 3)), np.zeros((0, 21, 3))]},
        {"pose": None, "face": None, "hands": None},  # nobody
    ]
    seen: dict = {}
    monkeypatch.setitem(sys.modules, "pyopenpose", make_stand_in_pyopenpose(results, seen))
    models = stand_in_model_folder(tmp_path / "models")
    poses = detect("openpose", frames_path=tmp_path / "frames.npy", meta_path=tmp_path / "meta.json",
                   model_folder=models, show_progress=False)

    # OpenPose prefixes the folder to "pose/body_25/..." as it is: it must end with a separator.
    assert seen["params"]["model_folder"] == str(models.resolve()) + os.sep
    assert seen["params"]["face"] and seen["params"]["hand"] and seen["params"]["model_pose"] == "BODY_25"
    assert seen["started"] and len(seen["images"]) == 3
    assert (seen["images"][0][..., 2] == 250).all() and (seen["images"][0][..., 0] == 0).all()  # BGR
    assert poses.frame_count == 3 and poses.detector == "openpose"
    expected = np.zeros((KEYPOINT_COUNT, 3), np.float32)
    expected[BODY], expected[FACE], expected[LEFT_HAND], expected[RIGHT_HAND] = big, face, left, right
    expected[:, :2] += 0.5  # OpenPose's pixel index -> edn's continuous pixels
    expected[Body.R_ELBOW] = 0
    np.testing.assert_allclose(poses.keypoints[0], expected, atol=1e-6)
    np.testing.assert_allclose(poses.keypoints[1, BODY, 0], np.where(big[:, 2] >= 0.05, big[:, 0] + 1.0, 0),
                               atol=1e-6)
    assert (poses.keypoints[1, FACE] == 0).all() and (poses.keypoints[2] == 0).all()


def test_missing_pyopenpose_says_how_to_build_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyopenpose", None)  # None in sys.modules makes the import fail
    monkeypatch.setitem(sys.modules, "openpose", None)
    monkeypatch.setitem(sys.modules, "openpose.pyopenpose", None)  # a real one imported by an earlier test
    with pytest.raises(EdnError) as error:
        import_pyopenpose()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("pose backend 'openpose': the Python module pyopenpose is not installed")
    assert "BUILD_PYTHON=ON" in message and "PYTHONPATH" in message and "openpose_json" in message

    # Through the command line: one line, exit 1, no table.
    np.save(tmp_path / "frames.npy", np.zeros((2, 32, 32, 3), np.uint8))
    write_meta(tmp_path / "meta.json", source_size=(32, 32), working_size=(32, 32), frame_count=2)
    (tmp_path / "models").mkdir()
    block = "import sys; sys.modules['pyopenpose'] = sys.modules['openpose'] = None; from edn.cli import main; "
    args = ["pose", "--backend", "openpose", "--frames", str(tmp_path / "frames.npy"), "--meta",
            str(tmp_path / "meta.json"), "--openpose-model-folder", str(tmp_path / "models"), "--output",
            str(tmp_path / "p.parquet")]
    result = subprocess.run([sys.executable, "-c", block + f"raise SystemExit(main({args!r}))"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert result.returncode == 1 and len(errors) == 1
    assert errors[0].startswith("edn pose: error: pose backend 'openpose': the Python module pyopenpose")
    assert not (tmp_path / "p.parquet").exists() and not leftovers(tmp_path)


def test_openpose_needs_an_existing_model_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyopenpose", make_stand_in_pyopenpose([], {}))
    np.save(tmp_path / "frames.npy", np.zeros((1, 32, 32, 3), np.uint8))
    write_meta(tmp_path / "meta.json", source_size=(32, 32), working_size=(32, 32), frame_count=1)
    with pytest.raises(EdnError, match=r"OpenPose model folder '.*nope': not found"):
        detect("openpose", frames_path=tmp_path / "frames.npy", meta_path=tmp_path / "meta.json",
               model_folder=tmp_path / "nope", show_progress=False)
    # A folder without the weights: the first missing file is named, before OpenPose starts.
    models = stand_in_model_folder(tmp_path / "models")
    (models / "face" / "pose_iter_116000.caffemodel").unlink()
    with pytest.raises(EdnError) as error:
        detect("openpose", frames_path=tmp_path / "frames.npy", meta_path=tmp_path / "meta.json",
               model_folder=models, show_progress=False)
    assert "\n" not in str(error.value)
    assert str(error.value).endswith("face/pose_iter_116000.caffemodel not found; run models/getModels.sh in it "
                                     "(BODY_25, face and hand)")


def test_cut_off_weights_are_refused_before_caffe_sees_them(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_weights", ROOT / "envs" / "openpose" / "make_weights.py")
    make_weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_weights)
    whole = make_weights.caffemodel([("conv", "Convolution", [np.ones((4, 3, 3, 3), np.float32), np.zeros(4)]),
                                     ("prelu", "PReLU", [np.full(4, 0.25, np.float32)])])
    models = stand_in_model_folder(tmp_path / "models")
    weights = models / "pose" / "body_25" / "pose_iter_584000.caffemodel"
    weights.write_bytes(whole)
    OpenPoseDetector(models, module=make_stand_in_pyopenpose([], {}), flags={})
    for cut in (len(whole) - 1, len(whole) // 2, 1, 0):  # Caffe would abort the process on each
        weights.write_bytes(whole[:cut])
        with pytest.raises(EdnError) as error:
            OpenPoseDetector(models, module=make_stand_in_pyopenpose([], {}), flags={})
        assert str(error.value) == (f"OpenPose weights {str(weights)!r}: not a whole .caffemodel ({cut} bytes; a "
                                    f"cut-off download?); fetch it again with models/getModels.sh")


def test_openpose_versions_the_adapter_refuses_or_adapts_to(tmp_path: Path) -> None:
    models = stand_in_model_folder(tmp_path / "models")
    person = np.concatenate([np.full((25, 2), 7.0), np.full((25, 1), 0.9)], axis=1).astype(np.float32)
    image = np.zeros((8, 8, 3), np.uint8)

    # 1.5 and 1.6: no VectorDatum, emplaceAndPop takes a list.
    seen: dict = {}
    old = make_stand_in_pyopenpose([{"pose": person[None]}], seen)
    del old.VectorDatum
    taken = []

    def emplace_and_pop(self, batch) -> bool:
        taken.append(type(batch))
        batch[0].poseKeypoints = person[None]
        return True

    old.WrapperPython.emplaceAndPop = emplace_and_pop
    assert OpenPoseDetector(models, module=old, flags={})(image).shape == (1, KEYPOINT_COUNT, 3)
    assert taken == [list]

    # 1.4 and older: a class OpenPose and no WrapperPython.
    ancient = types.ModuleType("pyopenpose")
    ancient.OpenPose = type("OpenPose", (), {})
    with pytest.raises(EdnError, match=r"has no WrapperPython \(a class OpenPose: the Python API of OpenPose 1\.4 "
                                       r"or older\); OpenPose 1\.5 or later is needed"):
        OpenPoseDetector(models, module=ancient)

    # OpenPose's errors are RuntimeErrors with several lines: one line comes out.
    failing = make_stand_in_pyopenpose([], {})

    def start(self) -> None:
        raise RuntimeError("\nError:\nPrototxt file not found: x.\nPossible causes:\n\t1. ...\n\nComing from:\n- a")

    failing.WrapperPython.start = start
    with pytest.raises(EdnError) as error:
        OpenPoseDetector(models, module=failing, flags={})
    assert str(error.value) == f"OpenPose (model folder {str(models)!r}): Prototxt file not found: x."

    # emplaceAndPop returning False (its worker stopped) is an error, not an empty frame.
    stopped = make_stand_in_pyopenpose([], {})
    stopped.WrapperPython.emplaceAndPop = lambda self, batch: False
    with pytest.raises(EdnError, match="emplaceAndPop returned no result"):
        OpenPoseDetector(models, module=stopped, flags={})(image)


def test_extra_openpose_flags_are_checked() -> None:
    assert extra_flags("net_resolution=-1x128, face_net_resolution=96x96,number_people_max=3") == {
        "net_resolution": "-1x128", "face_net_resolution": "96x96", "number_people_max": "3"}
    assert extra_flags("") == {}
    # An unknown name would make gflags end the process: refused here instead, in one line.
    for text, message in [("model_pose=COCO", "'model_pose=COCO' is not name=value with a name among"),
                          ("net_resolution", "'net_resolution' is not name=value"),
                          ("net_resolution=big", "net_resolution='big' is not a valid value"),
                          ("number_people_max=-2", "number_people_max='-2' is not a valid value")]:
        with pytest.raises(EdnError, match=re.escape(message)) as error:
            extra_flags(text)
        assert "\n" not in str(error.value)
