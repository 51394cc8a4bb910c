"""Evaluation on a target whose camera moves: every held-out frame is scored as it was filmed, so what a
method takes from the target's background is seen from that frame's own camera.

The plate stage registers each frame to one reference view and keeps what the camera saw in the mosaic
(:mod:`edn.background.plate`); :mod:`edn.background.camera` is the one rule between the two views. Here:

- :class:`TargetView`: each frame's camera, and ``plate(t)``, the mosaic as frame t's camera saw it (the
  ``background`` baseline's frame t, and what a compositing generator draws over there, as in training). A
  still camera needs none of this: its plate is every frame's view.
- :func:`registered_nearest_neighbours`: the paper's nearest-neighbour baseline (eq. 6) on a moving camera:
  poses compared in the reference view (so that the camera's motion does not count as the person's), the
  chosen training frame seen from the held-out frame's camera, the plate where that frame saw nothing.

Both are black outside the working frame's content box (decoding's padding bars, the plate report's
``content_box``), as every real frame is: :func:`edn.background.camera.blank_outside`.
"""

from __future__ import annotations

import os

import numpy as np

from collections.abc import Sequence

from edn.background.camera import (Camera, FramePlates, blank_outside, keypoints_to_reference, plate_in_frame,
                                   read_camera)
from edn.background.plate import read_plate, read_plate_report
from edn.core.errors import EdnError
from edn.evaluation.baseline import nearest_neighbours
from edn.pose.keypoints import PoseSequence
from edn.pose.skeleton import BODY


class TargetView:
    """A target's background and camera: ``camera``, each frame's transform to the reference view, and
    ``plates``, the mosaic warped into each frame's camera (:class:`edn.background.camera.FramePlates`, the
    plate a compositing generator draws over in that frame; the pixels no frame saw are filled, those outside
    ``content_box``, the working frame's picture, black)."""

    def __init__(self, mosaic: np.ndarray, origin: tuple[int, int], camera: Camera,
                 content_box: Sequence[int] | None = None) -> None:
        self.camera = camera
        self.plates = FramePlates(mosaic, origin, camera, content_box)

    @property
    def content_box(self) -> tuple[int, int, int, int] | None:
        return self.plates.content_box

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.camera.frame_size

    @property
    def still(self) -> bool:
        return self.camera.still

    def plate(self, t: int) -> np.ndarray:
        """uint8 [H, W, 3]: the background as frame t's camera saw it."""
        return self.plates(t)


def read_target_view(mosaic_path: str | os.PathLike, camera_path: str | os.PathLike,
                     report_path: str | os.PathLike, frames: np.ndarray) -> TargetView:
    """The view of the target whose ``frames`` (uint8 [T, H, W, 3]) the plate stage registered: its mosaic,
    camera table and report, each checked against the frames (an EdnError naming the file that does not fit)."""
    count, height, width = frames.shape[:3]
    report = read_plate_report(report_path)
    if tuple(report.frame_size) != (width, height):
        raise EdnError(f"background report {str(report_path)!r}: made for {report.frame_size[0]}x"
                       f"{report.frame_size[1]} frames, the frames are {width}x{height}")
    mosaic = read_plate(mosaic_path)
    expected = tuple(report.mosaic_size or report.frame_size)
    if tuple(mosaic.shape[1::-1]) != expected:
        raise EdnError(f"background mosaic {str(mosaic_path)!r}: {mosaic.shape[1]}x{mosaic.shape[0]}, its report "
                       f"{str(report_path)!r} says {expected[0]}x{expected[1]}")
    camera = read_camera(camera_path, (width, height))
    if len(camera) != count:
        raise EdnError(f"camera table {str(camera_path)!r}: {len(camera)} frames, the target has {count} "
                       "(made for another video?)")
    return TargetView(mosaic=mosaic, origin=tuple(report.reference_origin), camera=camera,
                      content_box=report.content_box)


def seen_from(frame: np.ndarray, source: np.ndarray, target: np.ndarray,
              content_box: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A frame filmed with camera ``source`` as a camera ``target`` would have seen it (both 3x3, frame pixel
    to reference pixel): (image uint8 [H, W, 3], valid bool [H, W], where the frame saw the pixel; its padding
    bars, outside ``content_box``, saw nothing). The same camera returns the frame itself. The frame is the
    "mosaic" of :func:`plate_in_frame`, its pixel (0, 0) the reference's, seen through the camera that takes
    the target's pixels to the source's."""
    height, width = frame.shape[:2]
    move = np.linalg.inv(np.asarray(source, np.float64)) @ np.asarray(target, np.float64)
    seen = blank_outside(np.ones((height, width), bool), content_box)
    if np.allclose(move, np.eye(3), rtol=0.0, atol=1e-9):
        return np.asarray(frame).copy(), seen
    return plate_in_frame(np.asarray(frame), (0, 0), move, (width, height), None if seen.all() else seen)


def registered_nearest_neighbours(poses: PoseSequence, frames: np.ndarray, first_heldout: int,
                                  view: TargetView) -> tuple[np.ndarray, np.ndarray]:
    """The nearest-neighbour baseline of a registered target: for each held-out frame t, the training frame
    whose pose is closest by eq. 6 with both poses in the reference view, seen from frame t's camera, and
    frame t's plate where that training frame saw nothing (its padding bars included), black outside the
    content box as frame t is. Returns (frames uint8 [N, H, W, 3], the chosen
    training frames [N])."""
    keypoints = keypoints_to_reference(poses.keypoints, view.camera)
    training = np.flatnonzero((keypoints[:first_heldout, BODY, 2] > 0).any(axis=1))
    if len(training) == 0:
        raise EdnError("nearest-neighbour baseline: no training frame has a body")
    chosen = training[nearest_neighbours(keypoints[first_heldout:], keypoints[training])]
    width, height = view.frame_size
    out = np.empty((len(chosen), height, width, 3), np.uint8)
    for i, source in enumerate(chosen):
        t = first_heldout + i
        image, valid = seen_from(np.asarray(frames[source]), view.camera.transform(int(source)),
                                 view.camera.transform(t), view.content_box)
        if not valid.all():
            image[~valid] = view.plate(t)[~valid]
        out[i] = blank_outside(image, view.content_box)
    return out, chosen
