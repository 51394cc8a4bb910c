"""The target's background plate: its video with the person left out.

The paper films its target with a fixed camera, so the background never
changes; a generator should not spend its capacity redrawing it. The plate is
made once per target:

1. **The person, left out.** A pixel of frame t is excluded where the person's
   segmentation mask (MediaPipe Holistic's, :func:`edn.pose.mediapipe_holistic.segment_mediapipe`)
   or the frame's stick figure, grown by ``grow_px``, covers it. Growing the
   stick figure catches what the mask misses (a hand in motion blur, a frame
   where segmentation found nobody).
2. **The camera, registered.** Every frame is mapped onto one reference view
   from its background alone (:mod:`edn.background.registration`). A still
   camera's transforms are all the identity and its frames are used as they are.
3. **A per-pixel temporal median** of what is left, over at most
   ``max_frames`` frames spread evenly over the video, each warped into the
   reference view (and brought to its exposure). A moving camera's median is a
   **mosaic**: the reference view grown to hold what the camera saw over the
   video; the plate is the mosaic's reference view, the working frame's size.
   Decoding's padding bars (black in every frame, where a video of another
   shape was fit into the working frame) are no background: the median of
   warped frames (a moving camera, or a changing exposure) leaves them out, and
   its plate is black over them, as every frame is (the report's
   ``content_box``; :func:`edn.background.camera.blank_outside`).
4. **Beside a person who stands in one place** the grown person covers a ring
   in nearly every frame, though the ring is background in most of them: a
   pixel seen in fewer than ``min_observations`` frames takes the median over
   the frames where the person grown by ``near_grow_px`` only leaves it, where
   there are enough of those (the shipped aerobics video, a woman dancing on one
   spot: 1594 of the 3508 pixels the plate filled are seen so; the demo
   juggler: 1402 of 2578).
5. **Pixels the person always covers** (still seen in fewer than ``min_observations``
   frames) are filled by :func:`fill_unseen` (``fill``: patches of the plate
   copied in by shift-map, or OpenCV's smoother FSR or Telea). ``coverage`` records how
   many frames saw each pixel of the mosaic; the filled ones are 0, and so are
   the mosaic's pixels no frame saw (black).
6. **Does the background hold still?** The mean absolute difference between
   each frame and the plate, outside the excluded pixels, in 0-255 units: before
   registration (the frame as filmed against the plate) and after (the
   registered frame against the mosaic). Its median over the frames after
   registration above ``max_camera_residual`` means the background itself
   moves (water, a crowd, wind in every leaf) or the frames cannot be
   registered: such a target is trained on the whole frame, as in the paper.
   A camera that moves over a background that holds still is drawn over by the
   composite method with the plate warped into each frame's camera
   (:mod:`edn.background.camera`).

Arrays: frames uint8 [T, H, W, 3]; masks uint8 [T, H, W] (0-255, 255: person).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from edn.background.camera import blank_outside
from edn.background.registration import (PICTURE_INTERPOLATION, Registration, register_frames, translated,
                                         valid_in_view, warp_into)
from edn.core.atomic import write_json, write_text
from edn.core.errors import EdnError
from edn.labels.preview import write_png

log = logging.getLogger(__name__)

#: Rows of the frame processed at once by the median (bounds memory for long videos).
ROWS_PER_BLOCK = 32
#: A mask value at or above this is the person (0-255).
MASK_THRESHOLD = 128
#: Default of ``near_grow_px`` (:class:`edn.core.options.BackgroundOptions` repeats it for the CLI).
NEAR_GROW_PX = 1


@dataclass(frozen=True)
class PlateReport:
    """What the plate stage measured (``results/background/{target}.json``).

    ``camera_residual``: median over frames of the mean |frame - plate| outside
    the person, the frames as filmed, 0-255 units. ``registered_residual``: the
    same for the registered frames against the mosaic (None in a report made
    before registration). ``background_moves``: the registered residual is above
    ``max_camera_residual``, or fewer than half the frames could be registered.
    ``static``: the composite method draws over the plate as it is (the
    background holds still, and the camera is still or moves less than the
    limit); :attr:`method` follows from it. ``camera_motion``: the largest mean
    distance a frame's registration moves its corners (pixels); ``motion_model``:
    the model fitted (``identity``: a still camera). ``reference_frame`` is the
    reference view's frame, whose pixel (0, 0) is the mosaic's ``reference_origin``;
    ``mosaic_size`` (width, height) equals ``frame_size`` for a still camera.
    ``filled_fraction``: share of the plate's pixels never seen without the person.
    ``content_box`` (x0, y0, x1, y1, frame pixels, x1 and y1 exclusive): the working frame's picture, outside
    it decoding's padding bars (:func:`padding_pixels`); None (a report made before it was recorded): the
    whole frame.
    """

    subject: str
    frame_size: tuple[int, int]
    frames_used: int
    camera_residual: float
    max_camera_residual: float
    static: bool
    filled_fraction: float
    person_fraction: float
    registered_residual: float | None = None
    background_moves: bool = False
    camera_motion: float = 0.0
    motion_model: str = "identity"
    reference_frame: int = 0
    registered_frames: int | None = None
    mosaic_size: tuple[int, int] | None = None
    reference_origin: tuple[int, int] = (0, 0)
    content_box: tuple[int, int, int, int] | None = None

    @property
    def method(self) -> str:
        """The training method the plate allows: ``composite`` (over the plate, warped into each frame's camera
        when the camera moves) or ``paper`` (the whole frame), when the background itself moves after
        registration; a report made before registration: composite only for a static camera."""
        if self.registered_residual is None:
            return "composite" if self.static else "paper"
        return "paper" if self.background_moves else "composite"

    def to_json(self) -> dict:
        return {**asdict(self), "method": self.method}

    @classmethod
    def from_json(cls, data: dict) -> PlateReport:
        names = {spec.name for spec in fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        for key in ("frame_size", "mosaic_size", "reference_origin", "content_box"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def read_plate_report(path: str | os.PathLike) -> PlateReport:
    path = Path(path)
    if not path.is_file():
        raise EdnError(f"background report {str(path)!r}: file not found (make the plate first)")
    try:
        return PlateReport.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as error:
        raise EdnError(f"background report {str(path)!r}: not a plate report ({error})") from None


def excluded_pixels(masks: np.ndarray, labels: np.ndarray | None, grow_px: int) -> np.ndarray:
    """bool [T, H, W]: where the person is, or might be, in each frame.

    The segmentation mask at :data:`MASK_THRESHOLD`, or any drawn stick-figure
    pixel (``labels`` uint8 [T, H, W, 3], black elsewhere), then grown by
    ``grow_px`` pixels in every direction.
    """
    person = masks >= MASK_THRESHOLD
    if labels is not None:
        person = person | (np.asarray(labels).max(axis=-1) > 0)
    if grow_px <= 0:
        return person
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
    return np.stack([cv2.dilate(frame.astype(np.uint8), kernel).astype(bool) for frame in person])


def frames_for_median(frame_count: int, max_frames: int) -> np.ndarray:
    """Indices of at most ``max_frames`` frames spread evenly over the video."""
    if frame_count <= max_frames:
        return np.arange(frame_count)
    return np.unique(np.linspace(0, frame_count - 1, max_frames).round().astype(np.int64))


def median_plate(frames: np.ndarray, excluded: np.ndarray, only: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The per-pixel median of the pixels not excluded: (plate float32 [H, W, 3] with NaN
    where no frame saw the pixel, observations int32 [H, W]); with ``only`` (bool [H, W]), the median
    of those pixels alone (NaN elsewhere)."""
    count, height, width = excluded.shape
    plate = np.full((height, width, 3), np.nan, np.float32)
    observed = (~excluded).sum(axis=0).astype(np.int32)
    for top in range(0, height, ROWS_PER_BLOCK):
        rows = slice(top, min(height, top + ROWS_PER_BLOCK))
        seen = observed[rows] > 0
        if only is not None:
            seen &= only[rows]
            if not seen.any():
                continue
        block = np.asarray(frames[:, rows], dtype=np.float32)
        block[excluded[:, rows]] = np.nan
        if seen.any():
            values = block[:, seen]  # [T, n, 3]
            plate[rows][seen] = np.nanmedian(values, axis=0)
    return plate, observed


#: How :func:`fill_unseen` fills the plate's pixels the person always covers (``background.fill``):
#: ``shiftmap`` copies whole patches of the plate into the hole (OpenCV contrib's shift-map inpainting, He and
#: Sun 2012), so bark stays bark and grass stays grass; ``fsr_fast`` continues the surrounding structure
#: (frequency-selective reconstruction, Genser et al. 2018) but blurs it; ``telea`` (Telea 2004) smears the
#: hole's border inwards. See docs/training.md (the plate's fill) for the crop and timings on the demo.
FILLS = ("telea", "fsr_fast", "shiftmap")
#: Telea's neighbourhood radius in pixels.
TELEA_RADIUS = 5


def fill_unseen(plate: np.ndarray, unseen: np.ndarray, method: str, *, blank: np.ndarray | None = None) -> np.ndarray:
    """uint8 [H, W, 3]: ``plate`` (RGB, NaN where unseen) with the ``unseen`` pixels filled by ``method``
    (one of :data:`FILLS`) from the rest; every other pixel is the plate's own, rounded.

    ``blank``: pixels no frame saw at all (outside a moving camera's mosaic), which the caller blanks
    afterwards. Telea fills them with the rest; a patch fill then takes them as they are (never copying
    their black) and fills only ``unseen`` (its cost grows with the hole).
    """
    if method not in FILLS:
        raise EdnError(f"background fill {method!r}: unknown (choose one of {', '.join(FILLS)})")
    known = np.nan_to_num(plate, nan=0.0).round().clip(0, 255).astype(np.uint8)
    holes = unseen if blank is None else unseen | blank
    if not holes.any():
        return known
    if holes.all():
        raise EdnError("background plate: no pixel was ever seen without the person")
    smeared = cv2.inpaint(known, holes.astype(np.uint8) * 255, TELEA_RADIUS, cv2.INPAINT_TELEA)
    if method == "telea" or not unseen.any():
        return smeared
    return np.where(unseen[..., None], _patch_fill(smeared, unseen, method), smeared)


def _patch_fill(known: np.ndarray, unseen: np.ndarray, method: str) -> np.ndarray:
    """uint8 [H, W, 3]: ``known`` with ``unseen`` filled by OpenCV contrib's ``cv2.xphoto.inpaint``. Its mask
    marks the pixels to keep (non-zero); shift-map wants a lightness channel first (CIE Lab), FSR any 3
    channels alike. Both may touch the kept pixels (FSR by rounding, shift-map by its blending), so the
    caller pastes back only the unseen ones."""
    keep = (~unseen).astype(np.uint8) * 255
    if method == "shiftmap":
        lab = cv2.cvtColor(known, cv2.COLOR_RGB2Lab)
        out = np.zeros_like(lab)
        cv2.xphoto.inpaint(lab, keep, out, cv2.xphoto.INPAINT_SHIFTMAP)
        return cv2.cvtColor(out, cv2.COLOR_Lab2RGB)
    out = np.zeros_like(known)
    cv2.xphoto.inpaint(known, keep, out, cv2.xphoto.INPAINT_FSR_FAST)
    return out


def padding_pixels(frames: np.ndarray, samples: int = 16) -> np.ndarray:
    """bool [H, W]: the bars of black padding around the picture (where decoding fit the video into the
    working frame): the rows and columns at the frame's edges that are exactly black in every one of up to
    ``samples`` frames spread over the video. They are not background: they do not move with the camera."""
    chosen = frames_for_median(len(frames), samples)
    lit = np.zeros(frames.shape[1:3], bool)
    for t in chosen:
        lit |= np.asarray(frames[t]).any(axis=-1)
    rows, columns = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    padding = np.ones(lit.shape, bool)
    if rows.size:
        padding[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] = False
    return padding


def content_box_of(padding: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), x1 and y1 exclusive: the box of the pixels that :func:`padding_pixels`' bars
    (bool [H, W]) leave, the picture; None when every pixel is padding (a video black throughout)."""
    rows, columns = np.flatnonzero(~padding.all(axis=1)), np.flatnonzero(~padding.all(axis=0))
    if rows.size == 0:
        return None
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


class PersonPixels:
    """What is not background, one frame at a time: ``person[t]`` is bool [H, W], :func:`excluded_pixels`
    and the ``padding`` bars (a long video's masks are never all in memory)."""

    def __init__(self, masks: np.ndarray, labels: np.ndarray | None, grow_px: int,
                 padding: np.ndarray | None = None) -> None:
        self.masks, self.labels, self.grow_px, self.padding = masks, labels, grow_px, padding

    def __len__(self) -> int:
        return len(self.masks)

    def person(self, t: int) -> np.ndarray:
        """bool [H, W]: :func:`excluded_pixels` of frame t alone."""
        labels = None if self.labels is None else np.asarray(self.labels[t])[None]
        return excluded_pixels(np.asarray(self.masks[t])[None], labels, self.grow_px)[0]

    def __getitem__(self, t: int) -> np.ndarray:
        person = self.person(t)
        return person if self.padding is None else person | self.padding


@dataclass(frozen=True)
class Plate:
    """What :func:`build_plate` makes: the plate uint8 [H, W, 3] (the reference view), the mosaic uint8
    [Hm, Wm, 3] and its coverage (frames that saw each pixel, int32 [Hm, Wm]), the report, the
    registration, and each frame's residual before and after registration (float64 [T], NaN: not measured)."""

    plate: np.ndarray
    mosaic: np.ndarray
    coverage: np.ndarray
    report: PlateReport
    registration: Registration
    residual_before: np.ndarray
    residual_after: np.ndarray


def _with_gain(frame: np.ndarray, gain: float) -> np.ndarray:
    if gain == 1.0:
        return frame
    return np.clip(frame.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)


def _mean_difference(frame: np.ndarray, reference: np.ndarray, valid: np.ndarray) -> float:
    """Mean |frame - reference| over ``valid`` (NaN when it is under 5% of the frame's pixels)."""
    if valid.sum() < 0.05 * frame.shape[0] * frame.shape[1] or valid.size == 0:
        return float("nan")
    difference = np.abs(frame[valid].astype(np.float32) - reference[valid].astype(np.float32))
    return float(difference.mean())


def build_plate(frames: np.ndarray, masks: np.ndarray, labels: np.ndarray | None, *, subject: str,
                grow_px: int, min_observations: int, max_frames: int, max_camera_residual: float,
                reference: str = "middle", motion_model: str = "auto", fill: str = "shiftmap",
                near_grow_px: int = NEAR_GROW_PX) -> Plate:
    """The plate of a target's video, its camera registered (see the module)."""
    if len(frames) == 0:
        raise EdnError(f"background plate of {subject!r}: the video has no frames")
    if masks.shape != frames.shape[:3]:
        raise EdnError(f"background plate of {subject!r}: masks {list(masks.shape)} do not match frames "
                       f"{list(frames.shape)}")
    count, height, width = masks.shape
    padding = padding_pixels(frames)
    content_box = content_box_of(padding)
    person = PersonPixels(masks, labels, grow_px, padding)
    near = PersonPixels(masks, labels, near_grow_px, padding) if near_grow_px < grow_px else None
    registration = register_frames(frames, person, reference=reference, motion_model=motion_model)
    (mosaic_width, mosaic_height), (ox, oy) = registration.canvas()
    # The median holds its frames in memory: a mosaic larger than the frame takes fewer of them.
    scale = mosaic_width * mosaic_height / (width * height)
    chosen = [int(t) for t in frames_for_median(count, max(1, int(max_frames / scale)))
              if registration.registered[t]]
    as_filmed = registration.still and bool((registration.gains[chosen] == 1.0).all())
    if as_filmed:  # a still camera at one exposure: the frames as they are
        sample_frames = np.asarray(frames[chosen])
        chosen_masks, chosen_labels = np.asarray(masks[chosen]), None if labels is None else np.asarray(labels[chosen])
        excluded = excluded_pixels(chosen_masks, chosen_labels, grow_px)
        excluded_near = None if near is None else excluded_pixels(chosen_masks, chosen_labels, near_grow_px)
        del chosen_masks, chosen_labels
        person_fraction = float(excluded.mean())
        seen_area = np.ones((height, width), bool)
    else:
        canvas = (mosaic_width, mosaic_height)
        sample_frames = np.empty((len(chosen), mosaic_height, mosaic_width, 3), np.uint8)
        excluded = np.empty((len(chosen), mosaic_height, mosaic_width), bool)
        excluded_near = None if near is None else np.empty_like(excluded)
        shares = []
        for i, t in enumerate(chosen):
            into = translated(registration.transforms[t], (ox, oy))
            sample_frames[i] = warp_into(_with_gain(np.asarray(frames[t]), registration.gains[t]), into, canvas,
                                         interpolation=PICTURE_INTERPOLATION)
            excluded[i] = ~valid_in_view(~person[t], into, canvas)
            if near is not None:
                excluded_near[i] = ~valid_in_view(~near[t], into, canvas)
            shares.append(float(person.person(t).mean()))
        person_fraction = float(np.mean(shares))
        # Every pixel some registered frame saw (the reference view always), filled if the median has none.
        seen_area = np.zeros((mosaic_height, mosaic_width), bool)
        seen_area[oy:oy + height, ox:ox + width] = True
        for t in np.flatnonzero(registration.registered):
            seen_area |= valid_in_view(np.ones((height, width), bool), translated(registration.transforms[t], (ox, oy)),
                                       canvas)
    enough = min(min_observations, len(chosen))
    median, observed = median_plate(sample_frames, excluded)
    if excluded_near is not None and (few := seen_area & (observed < enough)).any():
        close, observed_close = median_plate(sample_frames, excluded_near, only=few)
        beside = few & (observed_close >= enough)
        median[beside], observed[beside] = close[beside], observed_close[beside]
    del sample_frames, excluded, excluded_near
    unseen = seen_area & (observed < enough)
    outside = ~seen_area
    median[unseen | outside] = np.nan
    mosaic = fill_unseen(median, unseen, fill, blank=outside)
    mosaic[outside] = 0
    plate = np.ascontiguousarray(mosaic[oy:oy + height, ox:ox + width])
    if not as_filmed:  # the padding bars, left out of the median and filled in the mosaic, black as in every frame
        plate = blank_outside(plate, content_box)
    coverage = np.where(unseen | outside, 0, observed).astype(np.int32)
    before, after = frame_residuals(frames, person, plate, mosaic, registration, (ox, oy))
    report = _report(subject, registration, before, after, frames_used=len(chosen),
                     max_camera_residual=max_camera_residual,
                     filled_fraction=float(unseen[oy:oy + height, ox:ox + width].mean()),
                     person_fraction=person_fraction, mosaic_size=(mosaic_width, mosaic_height), origin=(ox, oy),
                     content_box=content_box)
    return Plate(plate=plate, mosaic=mosaic, coverage=coverage, report=report, registration=registration,
                 residual_before=before, residual_after=after)


def frame_residuals(frames: np.ndarray, person: Sequence, plate: np.ndarray, mosaic: np.ndarray,
                    registration: Registration, origin: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's mean |frame - plate| outside the person (0-255): as filmed against the plate, and
    registered (warped into the mosaic, at the reference's exposure) against the mosaic. NaN where the
    frame was not registered or shows too little background (under 5% of its pixels)."""
    count = len(frames)
    before, after = np.full(count, np.nan), np.full(count, np.nan)
    canvas = mosaic.shape[1::-1]
    for t in range(count):
        frame, background = np.asarray(frames[t]), ~person[t]
        before[t] = _mean_difference(frame, plate, background)
        if not registration.registered[t]:
            continue
        gain = registration.gains[t]
        if registration.still and gain == 1.0:
            after[t] = before[t]
            continue
        into = translated(registration.transforms[t], origin)
        valid = valid_in_view(background, into, canvas)
        after[t] = _mean_difference(warp_into(_with_gain(frame, gain), into, canvas, interpolation=PICTURE_INTERPOLATION),
                                    mosaic, valid)
    return before, after


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return round(float(np.median(values)), 3) if values.size else float("inf")


def _report(subject: str, registration: Registration, before: np.ndarray, after: np.ndarray, *, frames_used: int,
            max_camera_residual: float, filled_fraction: float, person_fraction: float,
            mosaic_size: tuple[int, int], origin: tuple[int, int],
            content_box: tuple[int, int, int, int] | None) -> PlateReport:
    camera, registered = _median(before), _median(after)
    registered_frames = int(registration.registered.sum())
    moves = not registered <= max_camera_residual or registered_frames < len(before) / 2
    static = not moves and (registration.still or camera <= max_camera_residual)
    motion = registration.camera_motion
    return PlateReport(subject=subject, frame_size=registration.frame_size, frames_used=frames_used,
                       camera_residual=camera, max_camera_residual=max_camera_residual, static=static,
                       filled_fraction=round(filled_fraction, 5), person_fraction=round(person_fraction, 5),
                       registered_residual=registered, background_moves=moves,
                       camera_motion=round(motion, 3) if np.isfinite(motion) else 0.0,
                       motion_model=registration.model, reference_frame=registration.reference,
                       registered_frames=registered_frames, mosaic_size=mosaic_size, reference_origin=origin,
                       content_box=content_box)


def make_plate(frames: np.ndarray, masks: np.ndarray, labels: np.ndarray | None, *, subject: str,
               grow_px: int, min_observations: int, max_frames: int, max_camera_residual: float,
               reference: str = "middle", motion_model: str = "auto", fill: str = "shiftmap",
               near_grow_px: int = NEAR_GROW_PX) -> tuple[np.ndarray, np.ndarray, PlateReport]:
    """The plate uint8 [H, W, 3], the coverage (frames that saw each pixel of the mosaic, int32) and the
    report: :func:`build_plate` without the mosaic, registration and residuals."""
    made = build_plate(frames, masks, labels, subject=subject, grow_px=grow_px, min_observations=min_observations,
                       max_frames=max_frames, max_camera_residual=max_camera_residual, reference=reference,
                       motion_model=motion_model, fill=fill, near_grow_px=near_grow_px)
    return made.plate, made.coverage, made.report


def coverage_image(coverage: np.ndarray, frames_used: int) -> np.ndarray:
    """uint8 [H, W]: the share of frames that saw each pixel, 0 (filled) to 255 (always seen)."""
    return (coverage.astype(np.float64) / max(1, frames_used) * 255).round().astype(np.uint8)


#: The camera table's columns: the frame, whether it was registered, its transform to the reference view
#: (row by row), its brightness gain, how far the measured transform moves its corners, its residuals.
CAMERA_COLUMNS = ("frame", "registered", *(f"h{r}{c}" for r in range(3) for c in range(3)), "gain",
                  "displacement_px", "residual_before", "residual_after")


def camera_table(made: Plate) -> str:
    """The camera table as CSV text (``results/background/{target}.camera.csv``), one row per frame."""
    registration = made.registration
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CAMERA_COLUMNS)
    for t in range(len(registration.transforms)):
        matrix = [f"{value:.10g}" for value in registration.transforms[t].ravel()]
        writer.writerow([t, int(registration.registered[t]), *matrix, f"{registration.gains[t]:.5g}",
                         f"{registration.displacement[t]:.4f}", f"{made.residual_before[t]:.4f}",
                         f"{made.residual_after[t]:.4f}"])
    return out.getvalue()


@dataclass(frozen=True)
class CameraTable:
    """A camera table read back: ``transforms`` float64 [T, 3, 3] (frame pixel to reference pixel; add the
    report's ``reference_origin`` for the mosaic's), ``registered`` bool [T], ``gains``, ``displacement``,
    ``residual_before``, ``residual_after`` float64 [T]."""

    transforms: np.ndarray
    registered: np.ndarray
    gains: np.ndarray
    displacement: np.ndarray
    residual_before: np.ndarray
    residual_after: np.ndarray


def read_camera_table(path: str | os.PathLike) -> CameraTable:
    path = Path(path)
    if not path.is_file():
        raise EdnError(f"camera table {str(path)!r}: file not found (make the plate first)")
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        if not rows or tuple(rows[0]) != CAMERA_COLUMNS:
            raise ValueError(f"columns are not {', '.join(CAMERA_COLUMNS)}")
        column = {name: np.array([float(row[name]) for row in rows]) for name in CAMERA_COLUMNS}
    except (ValueError, TypeError, KeyError) as error:
        raise EdnError(f"camera table {str(path)!r}: not a camera table ({error})") from None
    matrices = np.stack([column[f"h{r}{c}"] for r in range(3) for c in range(3)], axis=1).reshape(-1, 3, 3)
    return CameraTable(transforms=matrices, registered=column["registered"] > 0, gains=column["gain"],
                       displacement=column["displacement_px"], residual_before=column["residual_before"],
                       residual_after=column["residual_after"])


def _registration_words(report: PlateReport) -> tuple[str, float]:
    """How the frames were put into the reference view, and the residual after it (0-255 units)."""
    if report.registered_residual is None:  # a report made before registration
        return "", report.camera_residual
    if report.motion_model == "identity":
        return "with the camera still", report.registered_residual
    return (f"after registering {report.registered_frames} frames to frame {report.reference_frame} "
            f"by a {report.motion_model}"), report.registered_residual


def fallback_message(report: PlateReport) -> str:
    """The one line that says a target falls back to the paper's whole-frame method because its background
    moves after registration: the target, the residual after registration against the limit (and before
    it), and what to do. The plate stage logs it, and so does training when it falls back."""
    registration, after = _registration_words(report)
    if report.registered_residual is not None and not (np.isfinite(after) and after > report.max_camera_residual):
        # The residual is within the limit (or none was measured): too few frames could be registered.
        measured = f"residual {after:.1f}" if np.isfinite(after) else "no residual measured"
        why = (f"only {report.registered_frames} frames could be registered to frame {report.reference_frame}: "
               f"{measured} against the limit {report.max_camera_residual:.1f}, {report.camera_residual:.1f} before")
    else:
        how = f" {registration}" if registration else ""
        why = f"residual {after:.1f} above {report.max_camera_residual:.1f}{how}, {report.camera_residual:.1f} before"
    return (f"target {report.subject}: the background moves ({why}); it is trained on the whole frame, as in the "
            "paper, not drawn over the plate: film against a background that holds still (no water, crowd or "
            "wind-blown leaves behind the person), raise background.max_camera_residual to draw over the plate "
            "anyway, or set training.method: paper to choose the whole frame on purpose")


def plate_message(report: PlateReport) -> tuple[int, str]:
    """The plate stage's one log line about its target: (logging level, message)."""
    registration, after = _registration_words(report)
    filled = f"{100 * report.filled_fraction:.2f}% of the plate filled"
    if report.background_moves:
        return logging.WARNING, fallback_message(report)
    if report.motion_model == "identity" or report.registered_residual is None:
        return logging.INFO, (f"background plate of {report.subject}: camera residual {report.camera_residual:.2f} "
                              f"(static), {filled}")
    return logging.INFO, (f"background plate of {report.subject}: the camera moves up to {report.camera_motion:.1f} "
                          f"px, residual {report.camera_residual:.2f} before and {after:.2f} {registration}; "
                          f"{filled}")


def write_plate(made: Plate, *, plate_out: str | os.PathLike, coverage_out: str | os.PathLike,
                report_out: str | os.PathLike, mosaic_out: str | os.PathLike | None = None,
                camera_out: str | os.PathLike | None = None) -> None:
    """The plate, the mosaic and its coverage as PNG images, the camera table as CSV and the report as
    JSON, each atomically; then the stage's one line about the target."""
    report = made.report
    write_png(plate_out, made.plate)
    if mosaic_out is not None:
        write_png(mosaic_out, made.mosaic)
    gray = coverage_image(made.coverage, report.frames_used)
    write_png(coverage_out, np.repeat(gray[..., None], 3, axis=-1))
    if camera_out is not None:
        write_text(camera_out, camera_table(made))
    write_json(report_out, report.to_json())
    log.log(*plate_message(report))


def read_plate(path: str | os.PathLike) -> np.ndarray:
    """uint8 [H, W, 3] RGB plate from its PNG."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EdnError(f"background plate {str(path)!r}: not readable as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
