"""The ``openpose`` backend: CMU OpenPose (the paper's detector) through its Python API, pyopenpose.

pyopenpose is not on PyPI: it is built with OpenPose (CMake option
``BUILD_PYTHON=ON``) and needs OpenPose's model folder (``models/`` of its
checkout, with the BODY_25, face and hand models downloaded). It is imported as
``pyopenpose`` or ``openpose.pyopenpose``, whichever the build installed.

The adapter runs body, face and hand detection on each frame (BGR, as OpenPose
expects) and returns every person found, in OpenPose's pixel-index convention;
:mod:`edn.pose.detect` maps them to working pixels and keeps the main person.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import numpy as np

from edn.errors import EdnError
from edn.skeleton import BODY, FACE, KEYPOINT_COUNT, LEFT_HAND, RIGHT_HAND

BUILD_HINT = ("build OpenPose with its Python API (cmake -DBUILD_PYTHON=ON .. && make -j && make install, see "
              "https://github.com/CMU-Perceptual-Computing-Lab/openpose, doc/03_python_api.md) and put its "
              "build/python folder on PYTHONPATH; or use the mediapipe backend, or run OpenPose elsewhere "
              "and use the openpose_json backend")


def import_pyopenpose() -> ModuleType:
    """The pyopenpose module, or EdnError saying how to get it."""
    for name in ("pyopenpose", "openpose.pyopenpose"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise EdnError(f"pose backend 'openpose': the Python module pyopenpose is not installed; {BUILD_HINT}")


def _people_array(value: object, count: int, people: int) -> np.ndarray:
    """OpenPose's per-part output ([P, count, 3], or None/empty when not detected) as [people, count, 3]."""
    out = np.zeros((people, count, 3), dtype=np.float32)
    if value is None:
        return out
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 3 or array.shape[0] == 0:
        return out
    if array.shape[1:] != (count, 3):
        raise EdnError(f"pose backend 'openpose': pyopenpose returned {list(array.shape)} keypoints, expected "
                       f"[people, {count}, 3] (is the model BODY_25?)")
    out[: min(people, len(array))] = array[:people]
    return out


class OpenPoseDetector:
    """pyopenpose with body, face and hands on; call it with RGB frames."""

    def __init__(self, model_folder: str | os.PathLike, *, module: ModuleType | None = None) -> None:
        folder = Path(model_folder)
        if not folder.is_dir():
            raise EdnError(f"OpenPose model folder {str(folder)!r}: not found (it is the models/ folder of an "
                           f"OpenPose checkout, with its models downloaded)")
        self.op = module or import_pyopenpose()
        self.wrapper = self.op.WrapperPython()
        self.wrapper.configure({"model_folder": str(folder), "model_pose": "BODY_25", "face": True, "hand": True})
        self.wrapper.start()

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Every person in ``image_rgb`` (uint8 [H, W, 3]) as float32 [P, K, 3], OpenPose's convention."""
        datum = self.op.Datum()
        datum.cvInputData = np.ascontiguousarray(image_rgb[..., ::-1])
        # OpenPose >= 1.7 takes a VectorDatum; older builds a plain list.
        batch = self.op.VectorDatum([datum]) if hasattr(self.op, "VectorDatum") else [datum]
        self.wrapper.emplaceAndPop(batch)
        pose = datum.poseKeypoints
        people = 0 if pose is None or np.ndim(pose) != 3 else len(pose)
        out = np.zeros((people, KEYPOINT_COUNT, 3), dtype=np.float32)
        if people == 0:
            return out
        out[:, BODY] = _people_array(pose, BODY.stop - BODY.start, people)
        out[:, FACE] = _people_array(datum.faceKeypoints, FACE.stop - FACE.start, people)
        hands = datum.handKeypoints
        if hands is not None and len(hands) == 2:
            out[:, LEFT_HAND] = _people_array(hands[0], LEFT_HAND.stop - LEFT_HAND.start, people)
            out[:, RIGHT_HAND] = _people_array(hands[1], RIGHT_HAND.stop - RIGHT_HAND.start, people)
        return out


def detect_openpose(frames: np.ndarray, model_folder: str | os.PathLike, *, module: ModuleType | None = None,
                    show_progress: bool = True) -> list[np.ndarray]:
    """OpenPose on every frame of uint8 [N, H, W, 3]: a list of [P_t, K, 3] (OpenPose's convention).

    ``module`` replaces ``import pyopenpose`` (tests pass a stand-in).
    """
    from tqdm import tqdm

    detector = OpenPoseDetector(model_folder, module=module)
    return [detector(np.asarray(frame)) for frame in tqdm(frames, unit="frame", desc="openpose",
                                                           disable=None if show_progress else True)]
