"""Camera registration: every frame of a target mapped onto one reference view, from its background alone.

A camera that drifts, shakes or zooms turns the plate's per-pixel median into a
double exposure. Each frame t gets a 3x3 transform ``H_t`` that takes its pixel
``(x, y, 1)`` to the reference frame's pixel (pixel centres at whole numbers, as
OpenCV warps them), estimated from the pixels the person does not cover:

1. **Features.** ORB keypoints on the background of frame t and of the
   reference frame, matched with Lowe's ratio test and fitted with RANSAC by the
   motion model (``cv2.estimateAffinePartial2D`` for a similarity,
   ``cv2.estimateAffine2D``, ``cv2.findHomography``).
2. **Refinement.** ``cv2.findTransformECC`` (Evangelidis and Psarakis 2008)
   from that start, on the pixels that are background in both frames, for
   sub-pixel accuracy. A frame without enough matches starts from its
   registered neighbour's transform. Every frame is registered to the
   reference, never to its neighbour, so errors do not add up over the video.
3. **Model.** ``auto`` fits a similarity, an affine and a homography on a few
   frames spread over the video and goes up from the similarity only when the
   next model's median residual is at least :data:`MODEL_IMPROVEMENT` lower.
4. **A still camera.** When no registered frame's corners move more than
   :data:`STILL_PX`, every transform is the identity and the frames are used
   as they are: a static camera's plate is what it was without registration.
5. **Brightness.** A global gain per frame (exposure, clouds): the median ratio
   of the reference's background to the registered frame's, kept where it
   differs from 1 by more than :data:`GAIN_TOLERANCE`.

The reference is the middle frame (``middle``) or the frame where the person
covers least (``most_background``). ``excluded`` arguments are anything indexed
by frame that gives bool [H, W] (True: the person, or might be), so that a long
video's masks can be made one frame at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

MOTION_MODELS = ("auto", "similarity", "affine", "homography")
REFERENCE_FRAMES = ("middle", "most_background")
#: A camera whose every registered frame moves its corners at most this far (pixels, mean of the four) is still:
#: the median of its frames as filmed is blurred by less than a pixel.
STILL_PX = 1.0
#: A frame's brightness gain within this of 1 is taken as 1.
GAIN_TOLERANCE = 0.02
#: ``auto`` takes the next, freer model when its median residual is below this times the current one's.
MODEL_IMPROVEMENT = 0.9
#: Frames spread over the video that ``auto`` compares the models on.
MODEL_SAMPLES = 9
#: RANSAC needs this many matched keypoints (and inliers) for a start.
MIN_MATCHES = 12
#: A frame whose background (in both it and the reference) is a smaller share of its pixels is not registered.
MIN_BACKGROUND = 0.05
#: A frame's footprint in the reference view may cover from 1/this to this times the frame's area.
MAX_AREA_RATIO = 4.0
#: The mosaic reaches at most this many frame widths (heights) beyond each side of the reference view.
MOSAIC_MARGIN = 0.5

_ECC_MOTIONS = {"similarity": cv2.MOTION_AFFINE, "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}
_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
_RANSAC_PX = 2.0
_RATIO = 0.75


@dataclass(frozen=True)
class Registration:
    """Each frame's transform to the reference view.

    ``transforms`` float64 [T, 3, 3]: frame pixel to reference pixel (identity for
    every frame of a still camera; NaN where ``registered`` is False).
    ``measured`` float64 [T, 3, 3]: the transforms as estimated, before a still
    camera's are set to the identity. ``displacement`` [T]: the mean distance the
    measured transform moves the frame's four corners (NaN: not registered).
    ``gains`` [T]: brightness gain that brings the registered frame to the
    reference's exposure. ``model``: the motion model fitted.
    """

    transforms: np.ndarray
    measured: np.ndarray
    registered: np.ndarray
    displacement: np.ndarray
    gains: np.ndarray
    reference: int
    model: str
    still: bool
    frame_size: tuple[int, int]

    @property
    def camera_motion(self) -> float:
        """The largest mean corner displacement over the registered frames (pixels)."""
        moved = self.displacement[self.registered]
        return float(moved.max()) if moved.size else float("nan")

    def canvas(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The mosaic's size (width, height) and where the reference frame's pixel (0, 0) lies in it (x, y).

        The reference view grown to hold every registered frame's footprint, at most
        :data:`MOSAIC_MARGIN` frames beyond each side; the reference view itself when the camera is still.
        """
        width, height = self.frame_size
        if self.still or not self.registered.any():
            return (width, height), (0, 0)
        points = np.concatenate([apply_transform(h, frame_corners(self.frame_size))
                                 for h in self.transforms[self.registered]])
        low = np.floor(points.min(axis=0) + 1e-6)
        high = np.ceil(points.max(axis=0) - 1e-6)
        margin = MOSAIC_MARGIN * np.array([width, height])
        low = np.clip(low, -margin, 0).astype(int)
        high = np.clip(high, np.array([width - 1, height - 1]), np.array([width - 1, height - 1]) + margin).astype(int)
        size = high - low + 1
        return (int(size[0]), int(size[1])), (int(-low[0]), int(-low[1]))


def frame_corners(size: tuple[int, int]) -> np.ndarray:
    """float64 [4, 2]: the centres of a (width, height) frame's corner pixels."""
    width, height = size
    return np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """float64 [N, 2]: ``points`` [N, 2] mapped by the 3x3 ``transform``."""
    mapped = np.c_[points, np.ones(len(points))] @ np.asarray(transform, np.float64).T
    return mapped[:, :2] / mapped[:, 2:]


def corner_displacement(transform: np.ndarray, size: tuple[int, int]) -> float:
    """The mean distance (pixels) ``transform`` moves the four corners of a (width, height) frame."""
    corners = frame_corners(size)
    return float(np.linalg.norm(apply_transform(transform, corners) - corners, axis=1).mean())


def corner_error(estimated: np.ndarray, true: np.ndarray, size: tuple[int, int]) -> float:
    """The mean distance (pixels) between where two transforms put the four corners of a frame."""
    corners = frame_corners(size)
    return float(np.linalg.norm(apply_transform(estimated, corners) - apply_transform(true, corners), axis=1).mean())


def translated(transform: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """``transform`` followed by a shift of ``origin`` (x, y): into the mosaic's pixels."""
    shift = np.array([[1, 0, origin[0]], [0, 1, origin[1]], [0, 0, 1]], np.float64)
    return shift @ transform


#: How a picture (not a mask) is resampled into another camera: Lanczos (an 8x8 windowed sinc). A plate of a
#: moving camera is resampled twice, each frame into the mosaic and the mosaic back into a frame's camera,
#: and bilinear both times blurs fine texture (grass, leaves): on the synthetic pan
#: (benchmarks/synthetic_camera.py) the mean |plate - frame| over the background fell from 6.0 to 3.9.
PICTURE_INTERPOLATION = cv2.INTER_LANCZOS4


def warp_into(image: np.ndarray, transform: np.ndarray, size: tuple[int, int], *,
              interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` seen in the view that ``transform`` maps it into, ``size`` (width, height), black outside;
    bilinear unless ``interpolation`` says otherwise (:data:`PICTURE_INTERPOLATION` for a picture). The
    identity returns the image itself (no resampling)."""
    transform = np.asarray(transform, np.float64)
    if np.array_equal(transform, np.eye(3)) and image.shape[1::-1] == tuple(size):
        return np.array(image)
    return cv2.warpPerspective(np.ascontiguousarray(image), transform, size, flags=interpolation,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def valid_in_view(usable: np.ndarray, transform: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool [H, W] of the view ``size``: the pixels that ``transform`` fills from usable pixels of the frame
    only (``usable`` bool [h, w], e.g. its background); a pixel interpolated from any other is left out."""
    return warp_into(np.where(usable, 255, 0).astype(np.uint8), transform, size) == 255


def reference_frame(excluded: Sequence, choice: str) -> int:
    """The index of the reference frame: the middle one, or the one where the person covers least."""
    if choice not in REFERENCE_FRAMES:
        raise ValueError(f"reference frame {choice!r}: not one of {REFERENCE_FRAMES}")
    if choice == "middle":
        return len(excluded) // 2
    shares = [float(np.asarray(excluded[t]).mean()) for t in range(len(excluded))]
    return int(np.argmin(shares))


def nearest_similarity(transform: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The similarity (rotation, zoom, shift) nearest to ``transform``'s linear part that maps the frame's
    centre where ``transform`` does."""
    linear = transform[:2, :2] / transform[2, 2]
    p, q = (linear[0, 0] + linear[1, 1]) / 2, (linear[1, 0] - linear[0, 1]) / 2
    rotation_zoom = np.array([[p, -q], [q, p]])
    centre = (np.array(size, np.float64) - 1) / 2
    mapped = apply_transform(transform, centre[None])[0]
    result = np.eye(3)
    result[:2, :2] = rotation_zoom
    result[:2, 2] = mapped - rotation_zoom @ centre
    return result


def _inverse(transform: np.ndarray) -> np.ndarray:
    """The inverse of a 3x3 transform, scaled so that its last entry is 1 (cv2.invert: no thread start-up)."""
    found, inverse = cv2.invert(np.asarray(transform, np.float64))
    if not found or abs(inverse[2, 2]) < 1e-12:
        return np.full((3, 3), np.nan)  # singular: no transform
    return inverse / inverse[2, 2]


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _plausible(transform: np.ndarray | None, size: tuple[int, int]) -> bool:
    """Whether ``transform`` is finite and keeps the frame a convex quadrilateral of a sensible area."""
    if transform is None or not np.isfinite(transform).all() or abs(transform[2, 2]) < 1e-12:
        return False
    quad = apply_transform(transform, frame_corners(size))
    if not np.isfinite(quad).all():
        return False
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not ((turns > 0).all() or (turns < 0).all()):
        return False
    area = abs(float(np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1]))) / 2
    full = float((size[0] - 1) * (size[1] - 1))
    return full / MAX_AREA_RATIO <= area <= full * MAX_AREA_RATIO


@dataclass
class _View:
    """One frame ready to register: gray image, background mask (uint8 255) and its keypoints."""

    gray: np.ndarray
    background: np.ndarray
    keypoints: np.ndarray | None
    descriptors: np.ndarray | None


class _Registrar:
    """Registers frames to one reference view (features, RANSAC, ECC)."""

    def __init__(self, frames: Sequence, excluded: Sequence, reference: int) -> None:
        self.frames, self.excluded = frames, excluded
        height, width = np.asarray(excluded[reference]).shape
        self.size = (width, height)
        edge = max(4, min(15, min(width, height) // 8))
        self.orb = cv2.ORB_create(nfeatures=500, edgeThreshold=edge, patchSize=edge)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self.reference = self.view(reference)

    def view(self, t: int) -> _View:
        gray = _gray(np.asarray(self.frames[t]))
        background = np.where(np.asarray(self.excluded[t]), 0, 255).astype(np.uint8)
        keypoints, descriptors = self.orb.detectAndCompute(gray, background)
        points = np.array([k.pt for k in keypoints], np.float32) if keypoints else None
        return _View(gray, background, points, descriptors)

    def start(self, view: _View, model: str) -> np.ndarray | None:
        """A first estimate of the frame-to-reference transform from matched keypoints (None: too few)."""
        reference = self.reference
        if view.descriptors is None or reference.descriptors is None or len(view.descriptors) < 2 \
                or len(reference.descriptors) < 2:
            return None
        pairs = self.matcher.knnMatch(view.descriptors, reference.descriptors, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO * p[1].distance]
        if len(good) < MIN_MATCHES:
            return None
        source = view.keypoints[[m.queryIdx for m in good]]
        target = reference.keypoints[[m.trainIdx for m in good]]
        if model == "homography":
            matrix, inliers = cv2.findHomography(source, target, cv2.RANSAC, _RANSAC_PX, maxIters=2000,
                                                 confidence=0.999)
        else:
            fit = cv2.estimateAffinePartial2D if model == "similarity" else cv2.estimateAffine2D
            matrix, inliers = fit(source, target, method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_PX,
                                  maxIters=2000, confidence=0.999, refineIters=10)
            matrix = None if matrix is None else np.vstack([matrix, [0, 0, 1]])
        if matrix is None or inliers is None or int(inliers.sum()) < MIN_MATCHES:
            return None
        matrix = np.asarray(matrix, np.float64)
        return matrix / matrix[2, 2] if _plausible(matrix, self.size) else None

    def refine(self, view: _View, model: str, start: np.ndarray) -> np.ndarray | None:
        """``start`` refined by ECC on the pixels that are background in both frames (None: it failed)."""
        # Where the reference's person lies in this frame, by the start transform.
        reference_there = cv2.warpPerspective(self.reference.background, start, self.size,
                                              flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        both = cv2.bitwise_and(view.background, reference_there)
        if np.count_nonzero(both) < MIN_BACKGROUND * both.size:
            return None
        # ECC's warp maps the template's (reference's) pixels to the input's (this frame's).
        warp = _inverse(start)
        motion = _ECC_MOTIONS[model]
        matrix = (warp if motion == cv2.MOTION_HOMOGRAPHY else warp[:2]).astype(np.float32)
        try:
            _, matrix = cv2.findTransformECC(self.reference.gray, view.gray, matrix, motion, _ECC_CRITERIA, both, 5)
        except cv2.error:
            return None
        warp = np.vstack([matrix, [0, 0, 1]]) if matrix.shape[0] == 2 else np.asarray(matrix, np.float64)
        if not np.isfinite(warp).all():
            return None
        transform = _inverse(warp.astype(np.float64))
        if model == "similarity":
            transform = nearest_similarity(transform, self.size)
        return transform if _plausible(transform, self.size) else None

    def register(self, t: int, model: str, fallback: np.ndarray | None) -> np.ndarray | None:
        """Frame t's transform to the reference (None: not registered)."""
        view = self.view(t)
        start = self.start(view, model)
        refined = self.refine(view, model, start if start is not None else
                              (fallback if fallback is not None else np.eye(3)))
        return refined if refined is not None else start

    def residual(self, t: int, transform: np.ndarray) -> float:
        """Mean |gray difference| between frame t brought into the reference view and the reference,
        over the pixels that are background in both (inf: too few)."""
        view_gray = _gray(np.asarray(self.frames[t]))
        warped = warp_into(view_gray, transform, self.size).astype(np.float32)
        valid = valid_in_view(~np.asarray(self.excluded[t]), transform, self.size) & (self.reference.background > 0)
        if valid.sum() < MIN_BACKGROUND * valid.size:
            return float("inf")
        reference = self.reference.gray.astype(np.float32)
        gain = brightness_gain(warped[valid], reference[valid])
        return float(np.abs(gain * warped[valid] - reference[valid]).mean())


def brightness_gain(values: np.ndarray, reference: np.ndarray) -> float:
    """The gain that brings ``values`` to ``reference`` (matching pixels, 0-255): the median ratio over the
    pixels bright enough to measure it, 1 when within :data:`GAIN_TOLERANCE` of 1 or not measurable."""
    usable = (values > 16) & (reference > 16)
    if usable.sum() < 16:
        return 1.0
    gain = float(np.median(reference[usable] / values[usable]))
    return 1.0 if abs(gain - 1.0) <= GAIN_TOLERANCE else gain


def _spread(count: int, reference: int, samples: int) -> list[int]:
    chosen = np.unique(np.linspace(0, count - 1, samples + 2).round().astype(int))
    return [int(t) for t in chosen if t != reference] or [t for t in range(count) if t != reference][:1]


def choose_model(registrar: _Registrar, count: int, reference: int) -> str:
    """``auto``'s model: the similarity unless a freer model's median residual over a few frames is clearly lower."""
    frames = _spread(count, reference, MODEL_SAMPLES)
    medians = {}
    for model in ("similarity", "affine", "homography"):
        residuals, moves = [], []
        for t in frames:
            transform = registrar.register(t, model, None)
            residuals.append(float("inf") if transform is None else registrar.residual(t, transform))
            moves.append(float("inf") if transform is None else corner_displacement(transform, registrar.size))
        medians[model] = float(np.median(residuals))
        if model == "similarity" and max(moves) <= STILL_PX:
            return model  # a still camera: no freer model to look for
    chosen = "similarity"
    for model in ("affine", "homography"):
        if np.isfinite(medians[model]) and medians[model] < MODEL_IMPROVEMENT * medians[chosen]:
            chosen = model
    log.debug("motion models' median residuals %s: %s", medians, chosen)
    return chosen


def _frame_order(count: int, reference: int) -> list[tuple[int, int]]:
    """(frame, neighbour nearer the reference) from the reference outwards."""
    after = [(t, t - 1) for t in range(reference + 1, count)]
    before = [(t, t + 1) for t in range(reference - 1, -1, -1)]
    return after + before


def register_frames(frames: Sequence, excluded: Sequence, *, reference: str = "middle",
                    motion_model: str = "auto") -> Registration:
    """Each frame's transform to the reference view, from the pixels ``excluded`` leaves (see the module).

    ``frames`` uint8 [T, H, W, 3] (or anything indexed so), ``excluded`` bool [H, W] per frame.
    """
    if motion_model not in MOTION_MODELS:
        raise ValueError(f"motion model {motion_model!r}: not one of {MOTION_MODELS}")
    count = len(frames)
    height, width = np.asarray(excluded[0]).shape
    size = (width, height)
    anchor = reference_frame(excluded, reference)
    registrar = _Registrar(frames, excluded, anchor)
    model = motion_model
    if model == "auto":
        model = choose_model(registrar, count, anchor) if count > 1 else "similarity"
    measured = np.full((count, 3, 3), np.nan)
    measured[anchor] = np.eye(3)
    for t, neighbour in _frame_order(count, anchor):
        fallback = measured[neighbour] if np.isfinite(measured[neighbour]).all() else None
        transform = registrar.register(t, model, fallback)
        if transform is not None:
            measured[t] = transform
    registered = np.isfinite(measured).all(axis=(1, 2))
    displacement = np.array([corner_displacement(h, size) if ok else np.nan for h, ok in zip(measured, registered)])
    still = bool(np.nanmax(displacement) <= STILL_PX) if registered.any() else True
    if still:
        transforms = np.repeat(np.eye(3)[None], count, axis=0)
        registered = np.ones(count, bool)
    else:
        transforms = measured.copy()
    gains = frame_gains(frames, excluded, transforms, registered, anchor)
    return Registration(transforms=transforms, measured=measured, registered=registered, displacement=displacement,
                        gains=gains, reference=anchor, model="identity" if still else model, still=still,
                        frame_size=size)


def frame_gains(frames: Sequence, excluded: Sequence, transforms: np.ndarray, registered: np.ndarray,
                reference: int) -> np.ndarray:
    """float64 [T]: each registered frame's brightness gain to the reference's exposure (1 elsewhere)."""
    reference_gray = _gray(np.asarray(frames[reference])).astype(np.float32)
    reference_background = ~np.asarray(excluded[reference])
    height, width = reference_background.shape
    gains = np.ones(len(frames))
    for t in np.flatnonzero(registered):
        if t == reference:
            continue
        warped = warp_into(_gray(np.asarray(frames[t])), transforms[t], (width, height)).astype(np.float32)
        valid = valid_in_view(~np.asarray(excluded[t]), transforms[t], (width, height)) & reference_background
        gains[t] = brightness_gain(warped[valid], reference_gray[valid])
    return gains
