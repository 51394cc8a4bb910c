"""The ``openpose`` backend: CMU OpenPose (the paper's detector) through its Python API, pyopenpose.

pyopenpose is not on PyPI: it is built with OpenPose (CMake option
``BUILD_PYTHON=ON``; docs/poses.md, "Building OpenPose") and needs OpenPose's
model folder (``models/`` of its checkout, with the BODY_25, face and hand
weights downloaded). It is imported as ``pyopenpose`` or
``openpose.pyopenpose``, whichever the build put on the path.

What the real module does, and this adapter follows (checked against OpenPose
1.7.0 at its last commit, 5c5d9652, built on Debian 12; 1.5 and 1.6 from their
sources):

- ``WrapperPython.configure`` takes a dict of OpenPose's command-line flags,
  which it turns into ``--name=value`` and parses with gflags (process-wide:
  a flag set once stays set for later wrappers).
- Unknown flag names and bad values (``face: maybe``) make gflags end the
  whole process with status 1, so only known flags, with checked values, are
  passed.
- ``model_folder`` is joined to ``pose/body_25/pose_deploy.prototxt`` by plain
  concatenation; 1.7's wrapper adds a missing trailing separator, and the
  adapter passes one anyway.
- ``Datum.cvInputData`` shares the numpy buffer (no copy; read as C-contiguous
  BGR): the array must stay alive until ``emplaceAndPop`` returns.
- A model file missing at start makes OpenPose fail in a worker thread, and
  the Python process then exits with status 0 in the middle of the run; a
  cut-off .caffemodel makes Caffe abort it. Both are checked before OpenPose
  starts.
- 1.7 takes an ``op.VectorDatum`` in ``emplaceAndPop`` (a plain list is
  refused); 1.5 and 1.6 take a list. Before 1.5 there was no ``WrapperPython``
  (a class ``OpenPose`` instead): refused with a one-line error.
- OpenPose's own errors raised in the calling thread (a net resolution that
  is not a multiple of 16) arrive as RuntimeError with a multi-line text and
  become one line; ``emplaceAndPop`` returning False is an error too.
- ``poseKeypoints`` is None when nobody is found, else [P, 25, 3] in the input
  image's pixels (OpenPose's pixel-index convention); ``faceKeypoints`` is
  [P, 70, 3]; ``handKeypoints`` is a pair (left, right) of [P, 21, 3]. The
  confidences are heat-map peaks, which can exceed 1: they are clipped to
  [0, 1], the keypoint table's range. Points may lie outside the image (a face
  box reaching past its edge): they are kept, as OpenPose writes them.

:mod:`edn.pose.detect` maps the people to working pixels and keeps the main person.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from types import ModuleType

import numpy as np

from edn.core.errors import EdnError
from edn.pose.skeleton import BODY, FACE, KEYPOINT_COUNT, LEFT_HAND, RIGHT_HAND

BUILD_HINT = ("build OpenPose with its Python API (cmake -DBUILD_PYTHON=ON; docs/poses.md, "
              "Building OpenPose) and put its build/python folder on PYTHONPATH; or use the mediapipe backend, "
              "or run OpenPose elsewhere and use the openpose_json backend")

#: The files OpenPose opens in its model folder for BODY_25 with face and hands.
MODEL_FILES = (
    "pose/body_25/pose_deploy.prototxt", "pose/body_25/pose_iter_584000.caffemodel",
    "face/pose_deploy.prototxt", "face/pose_iter_116000.caffemodel",
    "hand/pose_deploy.prototxt", "hand/pose_iter_102000.caffemodel",
)

#: Extra OpenPose flags a user may set (option ``pose.openpose_flags``, e.g.
#: ``net_resolution=-1x256,number_people_max=4``), each with the pattern its value must match.
#: All exist from OpenPose 1.5 to 1.7.
FLAGS_OPTION = "pose.openpose_flags"
_RESOLUTION = r"(-1|[1-9][0-9]*)x(-1|[1-9][0-9]*)"
EXTRA_FLAGS = {
    "net_resolution": _RESOLUTION,
    "face_net_resolution": r"[1-9][0-9]*x[1-9][0-9]*",
    "hand_net_resolution": r"[1-9][0-9]*x[1-9][0-9]*",
    "number_people_max": r"-1|[1-9][0-9]*",
    "num_gpu": r"-1|[0-9]+",
    "num_gpu_start": r"[0-9]+",
    "scale_number": r"[1-9][0-9]*",
    "scale_gap": r"0?\.[0-9]+|1(\.0*)?",
    "hand_scale_number": r"[1-9][0-9]*",
}


def import_pyopenpose() -> ModuleType:
    """The pyopenpose module, or EdnError saying how to get it."""
    for name in ("pyopenpose", "openpose.pyopenpose"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is not None and not name.startswith(error.name) and error.name != name:
                raise EdnError(f"pose backend 'openpose': {name} needs the module {error.name}, which is "
                               f"missing") from None
            continue
        except ImportError as error:  # found, but its libraries do not load
            raise EdnError(f"pose backend 'openpose': {name} was found but does not load: "
                           f"{_first_line(error)} (rebuild it, or put OpenPose's and Caffe's libraries on the "
                           f"loader path)") from None
    raise EdnError(f"pose backend 'openpose': the Python module pyopenpose is not installed; {BUILD_HINT}")


def check_api(op: ModuleType) -> None:
    """EdnError unless ``op`` has the Python API of OpenPose 1.5 to 1.7 (WrapperPython, Datum)."""
    where = getattr(op, "__file__", None) or getattr(op, "__name__", "pyopenpose")
    if not hasattr(op, "WrapperPython"):
        old = " (a class OpenPose: the Python API of OpenPose 1.4 or older)" if hasattr(op, "OpenPose") else ""
        raise EdnError(f"pose backend 'openpose': {where} has no WrapperPython{old}; OpenPose 1.5 or later is "
                       f"needed (1.7.0 is tested)")
    missing = [name for name in ("Datum",) if not hasattr(op, name)]
    missing += [f"WrapperPython.{m}" for m in ("configure", "start", "emplaceAndPop")
                if not hasattr(op.WrapperPython, m)]
    if missing:
        raise EdnError(f"pose backend 'openpose': {where} lacks {', '.join(missing)}; OpenPose 1.5 to 1.7 is "
                       f"needed (1.7.0 is tested)")


def check_model_folder(folder: str | os.PathLike) -> Path:
    """The model folder, after checking that OpenPose will find every file it opens there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdnError(f"OpenPose model folder {str(folder)!r}: not found (it is the models/ folder of an "
                       f"OpenPose checkout, with its models downloaded)")
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise EdnError(f"OpenPose model folder {str(folder)!r}: {missing[0]} not found"
                       f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; run models/getModels.sh "
                       f"in it (BODY_25, face and hand)")
    for name in MODEL_FILES:
        if name.endswith(".caffemodel"):
            check_caffemodel(folder / name)
    return folder


def _read_varint(file) -> int | None:
    value, shift = 0, 0
    while True:
        byte = file.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            return None


def check_caffemodel(path: Path) -> None:
    """EdnError unless ``path`` is a whole serialised protobuf message (a cut-off download is not).

    Caffe aborts the whole process on a weights file it cannot parse; this walks
    the top-level fields (seeking over their contents) before OpenPose sees it.
    """
    size = path.stat().st_size
    with open(path, "rb") as file:
        fields = 0
        while file.tell() < size:
            tag = _read_varint(file)
            wire = None if tag is None else tag & 7
            if wire == 2:
                length = _read_varint(file)
                if length is None:
                    break
                file.seek(length, os.SEEK_CUR)
            elif wire == 0:
                if _read_varint(file) is None:
                    break
            elif wire in (1, 5):
                file.seek(8 if wire == 1 else 4, os.SEEK_CUR)
            else:
                break
            fields += 1
        whole = file.tell() == size and fields > 0
    if not whole:
        raise EdnError(f"OpenPose weights {str(path)!r}: not a whole .caffemodel ({size} bytes; a cut-off "
                       f"download?); fetch it again with models/getModels.sh")


def extra_flags(text: str) -> dict[str, str]:
    """``name=value,...`` (option ``pose.openpose_flags``) as OpenPose flags, each checked."""
    flags: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in EXTRA_FLAGS:
            raise EdnError(f"{FLAGS_OPTION} {text!r}: {item!r} is not name=value with a name among "
                           f"{', '.join(EXTRA_FLAGS)}")
        if not re.fullmatch(EXTRA_FLAGS[name], value):
            raise EdnError(f"{FLAGS_OPTION} {text!r}: {name}={value!r} is not a valid value")
        flags[name] = value
    return flags


def _first_line(error: BaseException) -> str:
    """OpenPose's error text (``\\nError:\\nWhat went wrong.\\n\\nComing from:...``) as one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if line.rstrip(":") not in ("Error", "Coming from")]
    return lines[0] if lines else type(error).__name__


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

    def __init__(self, model_folder: str | os.PathLike, *, module: ModuleType | None = None,
                 flags: dict[str, str] | None = None) -> None:
        self.op = module or import_pyopenpose()
        check_api(self.op)
        folder = check_model_folder(model_folder)
        params = {"model_folder": os.path.join(str(folder.resolve()), ""),  # joined to "pose/..." as is
                  "model_pose": "BODY_25", "face": True, "hand": True, "render_pose": 0}
        params.update(flags or {})
        self.uses_vector = hasattr(self.op, "VectorDatum")  # 1.7; 1.5 and 1.6 take a list
        try:
            self.wrapper = self.op.WrapperPython()
            self.wrapper.configure(params)
            self.wrapper.start()
        except RuntimeError as error:
            raise EdnError(f"OpenPose (model folder {str(folder)!r}): {_first_line(error)}") from None

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """Every person in ``image_rgb`` (uint8 [H, W, 3]) as float32 [P, K, 3], OpenPose's convention."""
        if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise EdnError(f"pose backend 'openpose': frames must be uint8 [H, W, 3], not {image_rgb.dtype} "
                           f"{list(image_rgb.shape)}")
        # Kept in a name until emplaceAndPop returns: the datum points into this buffer.
        image_bgr = np.ascontiguousarray(image_rgb[..., ::-1])
        datum = self.op.Datum()
        datum.cvInputData = image_bgr
        batch = self.op.VectorDatum([datum]) if self.uses_vector else [datum]
        try:
            done = self.wrapper.emplaceAndPop(batch)
        except RuntimeError as error:
            raise EdnError(f"OpenPose: {_first_line(error)}") from None
        except TypeError as error:  # a build whose emplaceAndPop takes what this adapter does not give
            raise EdnError(f"pose backend 'openpose': this pyopenpose's emplaceAndPop does not take "
                           f"{type(batch).__name__} ({_first_line(error)}); OpenPose 1.5 to 1.7 is needed") from None
        if done is False:
            raise EdnError("OpenPose: emplaceAndPop returned no result (its worker stopped; see OpenPose's log "
                           "above)")
        del image_bgr
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
        # Heat-map peaks are not bounded by 1 (nor by the image: a face box may reach past its edge).
        np.clip(out[..., 2], 0.0, 1.0, out=out[..., 2])
        return out

    def close(self) -> None:
        stop = getattr(self.wrapper, "stop", None)
        if stop is not None:
            stop()


def detect_openpose(frames: np.ndarray, model_folder: str | os.PathLike, *, module: ModuleType | None = None,
                    flags: dict[str, str] | None = None, show_progress: bool = True) -> list[np.ndarray]:
    """OpenPose on every frame of uint8 [N, H, W, 3]: a list of [P_t, K, 3] (OpenPose's convention).

    ``module`` replaces ``import pyopenpose`` (tests pass a stand-in); ``flags``
    are extra OpenPose flags (:func:`extra_flags`), e.g. a smaller
    ``net_resolution`` on a CPU.
    """
    from tqdm import tqdm

    detector = OpenPoseDetector(model_folder, module=module, flags=flags)
    try:
        return [detector(np.asarray(frame)) for frame in tqdm(frames, unit="frame", desc="openpose",
                                                               disable=None if show_progress else True)]
    finally:
        detector.close()
