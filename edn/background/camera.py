"""The one rule between a frame's camera and the reference view.

The plate stage (:mod:`edn.background.plate`) registers every frame t of a target
to one reference view: a 3x3 transform ``H_t`` takes frame t's pixel ``(x, y, 1)``
to the reference view's pixel (pixel centres at whole numbers, as OpenCV warps).
It writes them to the camera table (``results/background/{target}.camera.csv``)
and the background it saw to the mosaic (``{target}.mosaic.png``): the reference
view grown to hold what the camera saw, the reference view's pixel (0, 0) at the
mosaic's ``reference_origin`` (the plate report's). Everything that moves between
the two views goes through this module:

- :func:`plate_in_frame`: the mosaic as frame t's camera saw it (the mosaic
  warped by ``H_t`` followed by the origin's shift, read backwards: each frame
  pixel samples the mosaic where ``H_t`` puts it), with a mask of the pixels the
  mosaic holds (never seen, or beyond the mosaic, is invalid);
- :func:`points_to_reference` and :func:`points_to_frame`: keypoints by ``H_t``
  and its inverse (NaN stays NaN); :func:`keypoints_to_reference` and
  :func:`keypoints_to_frame` do a keypoint table ``[T, K, 3]`` frame by frame,
  leaving missing keypoints (confidence 0) at (0, 0, 0).

A still camera is the identity everywhere: every function then returns its input
unchanged (a copy, bit for bit), so a static target is treated exactly as
before registration existed.

The working frame's padding bars (where decoding fit a video of another shape
into it, black in every frame) belong to the frame, not to the background: they
stay where they are whatever the camera does. :func:`blank_outside` is the one
rule for them: a plate in a frame's camera is black outside the frame's content
box, as every real frame is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edn.background.registration import PICTURE_INTERPOLATION, Registration, apply_transform, translated
from edn.pose.keypoints import PoseSequence

IDENTITY = np.eye(3)


@dataclass(frozen=True)
class Camera:
    """Each frame's transform to the reference view.

    ``transforms`` float64 [T, 3, 3]: frame pixel to reference pixel. A frame the
    plate stage could not register takes the transform of the nearest registered
    frame (the earlier one on a tie; the identity when none is), so that every
    frame has one; ``registered`` bool [T] says which were measured.
    ``frame_size``: (width, height) of the frames.
    """

    transforms: np.ndarray
    registered: np.ndarray
    frame_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.transforms)

    @property
    def still(self) -> bool:
        """Every frame's transform is exactly the identity."""
        return bool((self.transforms == IDENTITY).all())

    def transform(self, t: int) -> np.ndarray:
        """Frame t's transform; a sequence longer than the video (a replayed path) goes round: t mod T."""
        return self.transforms[t % len(self.transforms)]


def still_camera(count: int, frame_size: tuple[int, int]) -> Camera:
    """A camera that never moves: ``count`` identity transforms."""
    return Camera(np.repeat(IDENTITY[None], count, axis=0), np.ones(count, bool), tuple(frame_size))


def camera_from(transforms: np.ndarray, registered: np.ndarray | None, frame_size: tuple[int, int]) -> Camera:
    """A :class:`Camera` from per-frame transforms (NaN rows where ``registered`` is False or not finite),
    each unregistered frame given its nearest registered frame's transform."""
    transforms = np.array(transforms, np.float64).reshape(-1, 3, 3)
    finite = np.isfinite(transforms).all(axis=(1, 2))
    registered = finite if registered is None else np.asarray(registered, bool) & finite
    if not registered.any():
        return Camera(np.repeat(IDENTITY[None], len(transforms), axis=0), registered, tuple(frame_size))
    known = np.flatnonzero(registered)
    filled = transforms.copy()
    for t in np.flatnonzero(~registered):
        distance = np.abs(known - t)
        filled[t] = transforms[known[np.argmin(distance)]]  # argmin: the earlier one on a tie
    return Camera(filled, registered, tuple(frame_size))


def camera_of_registration(registration: Registration) -> Camera:
    """The camera that :func:`edn.background.registration.register_frames` measured."""
    return camera_from(registration.transforms, registration.registered, registration.frame_size)


def read_camera(path: str | os.PathLike, frame_size: tuple[int, int]) -> Camera:
    """The camera of a target from its camera table (``edn background --camera``); EdnError naming
    ``path`` when it is missing or not a camera table."""
    from edn.background.plate import read_camera_table

    table = read_camera_table(path)
    return camera_from(table.transforms, table.registered, frame_size)


def plate_in_frame(mosaic: np.ndarray, origin: tuple[int, int], transform: np.ndarray, size: tuple[int, int],
                   seen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mosaic as a frame with camera ``transform`` (frame pixel to reference pixel) saw it.

    ``mosaic`` uint8 [Hm, Wm, C] (the reference view's pixel (0, 0) at ``origin`` (x, y));
    ``size`` (width, height) of the frame; ``seen`` bool [Hm, Wm], the mosaic's pixels
    some frame saw (None: all of them). Returns (image uint8 [H, W, C], valid bool [H, W]):
    the frame's pixel samples the mosaic where the transform puts it (Lanczos,
    :data:`edn.background.registration.PICTURE_INTERPOLATION`); valid where every mosaic
    pixel it interpolates from is seen (elsewhere the image is 0).
    A whole-pixel shift (the identity included) is a crop, bit for bit.
    """
    width, height = size
    mosaic = np.asarray(mosaic)
    into = translated(np.asarray(transform, np.float64), origin)
    shift = _whole_shift(into)
    if shift is not None:
        return _shifted(mosaic, shift, size, seen)
    image = cv2.warpPerspective(np.ascontiguousarray(mosaic), into, (width, height),
                                flags=PICTURE_INTERPOLATION | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
    known = np.full(mosaic.shape[:2], 255, np.uint8) if seen is None else np.where(seen, 255, 0).astype(np.uint8)
    # Lanczos reads 8x8 mosaic pixels (3 before, 4 after): a pixel is known when all of them are.
    known = cv2.erode(known, np.ones((8, 8), np.uint8), anchor=(3, 3), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    valid = cv2.warpPerspective(known, into, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0) == 255
    image[~valid] = 0
    return image, valid


def _whole_shift(into: np.ndarray) -> tuple[int, int] | None:
    """(x, y) when ``into`` is a translation by whole pixels, else None."""
    if not np.array_equal(into[:, :2], IDENTITY[:, :2]) or into[2, 2] != 1.0:
        return None
    dx, dy = into[0, 2], into[1, 2]
    if dx != round(dx) or dy != round(dy):
        return None
    return int(dx), int(dy)


def _shifted(mosaic: np.ndarray, shift: tuple[int, int], size: tuple[int, int],
             seen: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The frame-sized window of ``mosaic`` whose pixel (0, 0) is the mosaic's ``shift``, 0 beyond it."""
    width, height = size
    dx, dy = shift
    image = np.zeros((height, width, *mosaic.shape[2:]), mosaic.dtype)
    valid = np.zeros((height, width), bool)
    x0, y0 = max(0, dx), max(0, dy)
    x1, y1 = min(mosaic.shape[1], dx + width), min(mosaic.shape[0], dy + height)
    if x0 < x1 and y0 < y1:
        image[y0 - dy:y1 - dy, x0 - dx:x1 - dx] = mosaic[y0:y1, x0:x1]
        valid[y0 - dy:y1 - dy, x0 - dx:x1 - dx] = True if seen is None else seen[y0:y1, x0:x1]
    image[~valid] = 0
    return image, valid


def blank_outside(image: np.ndarray, content_box: Sequence[int] | None) -> np.ndarray:
    """``image`` [H, W, ...] (a frame, or a mask) with every pixel outside ``content_box`` set to 0: black, or
    False. ``content_box`` (x0, y0, x1, y1; x1 and y1 exclusive) is the working frame's picture in frame pixels
    (the plate report's ``content_box``): outside it lie decoding's padding bars, black in every real frame
    whatever the camera does. None, or a box holding the whole frame: ``image`` itself; else a new array."""
    if content_box is None:
        return image
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (int(value) for value in content_box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if (x0, y0, x1, y1) == (0, 0, width, height):
        return image
    out = np.zeros_like(image)
    if x0 < x1 and y0 < y1:
        out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    return out


def seen_area(camera: Camera, canvas: tuple[int, int], origin: tuple[int, int]) -> np.ndarray:
    """bool [Hm, Wm]: the mosaic's pixels that the reference view or a registered frame covers (what the
    plate stage's median could fill); the rest of the mosaic is black."""
    width, height = camera.frame_size
    ox, oy = origin
    area = np.zeros((canvas[1], canvas[0]), bool)
    area[max(0, oy):oy + height, max(0, ox):ox + width] = True
    if camera.still:
        return area
    ones = np.full((height, width), 255, np.uint8)
    for t in np.flatnonzero(camera.registered):
        into = translated(camera.transforms[t], origin)
        area |= cv2.warpPerspective(ones, into, canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=0) == 255
    return area


class FramePlates:
    """The plate in each frame's camera: the mosaic warped into frame t's view, for a camera that moves.

    Pixels the mosaic never saw (beyond :data:`edn.background.registration.MOSAIC_MARGIN`,
    or outside every registered frame's footprint) are filled once, when made, by
    OpenCV's inpainting (Telea, as the plate stage fills what the person always covered);
    beyond the mosaic its edge is repeated. So every frame gets a whole plate inside ``content_box``
    (the working frame's picture, the plate report's; None: the whole frame), and black outside it, where
    every real frame has decoding's padding bars (:func:`blank_outside`); :meth:`valid` says which of its
    pixels the camera actually saw (none outside the content box).
    """

    def __init__(self, mosaic: np.ndarray, origin: tuple[int, int], camera: Camera,
                 content_box: Sequence[int] | None = None) -> None:
        self.origin, self.camera, self.size = tuple(origin), camera, camera.frame_size
        self.content_box = None if content_box is None else tuple(int(value) for value in content_box)
        mosaic = np.ascontiguousarray(mosaic)
        self.seen = seen_area(camera, mosaic.shape[1::-1], self.origin)
        unseen = ~self.seen
        self.mosaic = mosaic if not unseen.any() or self.seen.sum() == 0 else \
            cv2.inpaint(mosaic, unseen.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)

    def __len__(self) -> int:
        return len(self.camera)

    def __call__(self, t: int) -> np.ndarray:
        """uint8 [H, W, 3]: the plate in frame t's camera (t mod T past the video's end)."""
        into = translated(self.camera.transform(t), self.origin)
        plate = cv2.warpPerspective(self.mosaic, into, self.size, flags=PICTURE_INTERPOLATION | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE)
        return blank_outside(plate, self.content_box)

    def valid(self, t: int) -> np.ndarray:
        """bool [H, W]: the pixels of frame t's plate that the mosaic saw (not filled), inside the content box."""
        valid = plate_in_frame(self.mosaic, self.origin, self.camera.transform(t), self.size, self.seen)[1]
        return blank_outside(valid, self.content_box)


def camera_moves(report) -> bool:
    """Whether a plate report (:class:`edn.background.plate.PlateReport`) says the camera moved: registered,
    by more than the identity."""
    return report.registered_residual is not None and report.motion_model != "identity"


def read_frame_plates(mosaic_path: str | os.PathLike, camera_path: str | os.PathLike, origin: tuple[int, int],
                      frame_size: tuple[int, int], content_box: Sequence[int] | None = None) -> FramePlates:
    """:class:`FramePlates` of a target from its mosaic (PNG), camera table and the report's
    ``reference_origin`` and ``content_box``; EdnError naming a file that is missing or unreadable."""
    from edn.background.plate import read_plate

    return FramePlates(read_plate(mosaic_path), origin, read_camera(camera_path, frame_size), content_box)


def points_to_reference(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """float64 [..., 2]: ``points`` [..., 2] (a frame's pixels) in the reference view; NaN stays NaN."""
    return _mapped(points, np.asarray(transform, np.float64))


def points_to_frame(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """float64 [..., 2]: reference-view ``points`` [..., 2] in the frame whose transform is ``transform``."""
    return _mapped(points, np.linalg.inv(np.asarray(transform, np.float64)))


def _mapped(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    if np.array_equal(transform, IDENTITY):
        return points.copy()
    flat = points.reshape(-1, 2)
    out = np.full_like(flat, np.nan)
    finite = np.isfinite(flat).all(axis=1)
    if finite.any():
        out[finite] = apply_transform(transform, flat[finite])
    return out.reshape(points.shape)


def keypoints_to_reference(keypoints: np.ndarray, camera: Camera, frames: Sequence[int] | None = None) -> np.ndarray:
    """A keypoint table float32 [T, K, 3] (x, y, confidence) moved into the reference view, row i by the
    transform of frame ``frames[i]`` (default: row i's own frame, going round past the video's end).
    Missing keypoints (confidence 0) stay (0, 0, 0); a still camera returns a copy."""
    return _keypoints(keypoints, camera, frames, to_reference=True)


def keypoints_to_frame(keypoints: np.ndarray, camera: Camera, frames: Sequence[int] | None = None) -> np.ndarray:
    """Reference-view keypoints float32 [T, K, 3] moved into frame ``frames[i]``'s camera (default: row i's
    own frame, going round past the video's end: the target's camera path replayed). Missing keypoints stay."""
    return _keypoints(keypoints, camera, frames, to_reference=False)


def _keypoints(keypoints: np.ndarray, camera: Camera, frames: Sequence[int] | None, *, to_reference: bool
               ) -> np.ndarray:
    keypoints = np.asarray(keypoints)
    out = keypoints.copy()
    if camera.still:
        return out
    move = points_to_reference if to_reference else points_to_frame
    chosen = range(len(keypoints)) if frames is None else frames
    for row, t in enumerate(chosen):
        present = keypoints[row, :, 2] > 0
        if present.any():
            out[row, present, :2] = move(keypoints[row, present, :2], camera.transform(int(t)))
    return out


def poses_to_reference(poses: PoseSequence, camera: Camera) -> PoseSequence:
    """A subject's keypoint table with every frame's keypoints in the reference view (the same table for a
    still camera)."""
    if camera.still:
        return poses
    return poses.replace(keypoints_to_reference(poses.keypoints, camera))


def poses_replayed(poses: PoseSequence, camera: Camera) -> PoseSequence:
    """Reference-view poses (a transfer's normalised poses) with row i moved into target frame (i mod T)'s
    camera: the target's camera path replayed (the same table for a still camera)."""
    if camera.still:
        return poses
    return poses.replace(keypoints_to_frame(poses.keypoints, camera), extra={**poses.extra, "camera": "replay"})
