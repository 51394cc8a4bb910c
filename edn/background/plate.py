"""The target's background plate: its video with the person left out.

The paper films its target with a fixed camera, so the background never
changes; a generator should not spend its capacity redrawing it. The plate is
made once per target:

1. **The person, left out.** A pixel of frame t is excluded where the person's
   segmentation mask (MediaPipe Holistic's, :func:`edn.pose.mediapipe_holistic.segment_mediapipe`)
   or the frame's stick figure, grown by ``grow_px``, covers it. Growing the
   stick figure catches what the mask misses (a hand in motion blur, a frame
   where segmentation found nobody).
2. **A per-pixel temporal median** of what is left, over at most
   ``max_frames`` frames spread evenly over the video.
3. **Pixels the person always covers** (seen in fewer than ``min_observations``
   frames) are filled by OpenCV's inpainting (Telea). ``coverage`` records how
   many frames saw each pixel; the filled ones are 0 in the coverage image.
4. **Is the camera static?** The mean absolute difference between each frame and
   the plate, outside the excluded pixels, in 0-255 units; its median over the
   frames is the camera residual. A residual above ``max_camera_residual``
   means the camera moves (or the light changes): such a target is trained on
   the whole frame, as in the paper.

Arrays: frames uint8 [T, H, W, 3]; masks uint8 [T, H, W] (0-255, 255: person).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from edn.core.atomic import write_json
from edn.core.errors import EdnError
from edn.labels.preview import write_png

log = logging.getLogger(__name__)

#: Rows of the frame processed at once by the median (bounds memory for long videos).
ROWS_PER_BLOCK = 32
#: A mask value at or above this is the person (0-255).
MASK_THRESHOLD = 128


@dataclass(frozen=True)
class PlateReport:
    """What the plate stage measured (``results/background/{target}.json``).

    ``camera_residual``: median over frames of the mean |frame - plate| outside
    the person, 0-255 units. ``static``: at most ``max_camera_residual``.
    ``filled_fraction``: share of the plate's pixels never seen without the person.
    """

    subject: str
    frame_size: tuple[int, int]
    frames_used: int
    camera_residual: float
    max_camera_residual: float
    static: bool
    filled_fraction: float
    person_fraction: float

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PlateReport:
        return cls(**{**data, "frame_size": tuple(data["frame_size"])})


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


def median_plate(frames: np.ndarray, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-pixel median of the pixels not excluded: (plate float32 [H, W, 3] with NaN
    where no frame saw the pixel, observations int32 [H, W])."""
    count, height, width = excluded.shape
    plate = np.full((height, width, 3), np.nan, np.float32)
    observed = (~excluded).sum(axis=0).astype(np.int32)
    for top in range(0, height, ROWS_PER_BLOCK):
        rows = slice(top, min(height, top + ROWS_PER_BLOCK))
        block = np.asarray(frames[:, rows], dtype=np.float32)
        block[excluded[:, rows]] = np.nan
        seen = observed[rows] > 0
        if seen.any():
            values = block[:, seen]  # [T, n, 3]
            plate[rows][seen] = np.nanmedian(values, axis=0)
    return plate, observed


def fill_unseen(plate: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]: ``plate`` with the ``unseen`` pixels inpainted from their surroundings (Telea)."""
    known = np.nan_to_num(plate, nan=0.0).round().clip(0, 255).astype(np.uint8)
    if not unseen.any():
        return known
    if unseen.all():
        raise EdnError("background plate: no pixel was ever seen without the person")
    return cv2.inpaint(known, unseen.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)


def camera_residual(frames: np.ndarray, excluded: np.ndarray, plate: np.ndarray) -> float:
    """Median over frames of the mean |frame - plate| where the person is not (0-255 units)."""
    reference = plate.astype(np.float32)
    residuals = []
    for frame, person in zip(frames, excluded):
        outside = ~person
        if outside.sum() < 0.05 * outside.size:
            continue  # nothing to compare: the person fills the frame
        difference = np.abs(np.asarray(frame, np.float32) - reference).mean(axis=-1)
        residuals.append(float(difference[outside].mean()))
    return float(np.median(residuals)) if residuals else float("inf")


def make_plate(frames: np.ndarray, masks: np.ndarray, labels: np.ndarray | None, *, subject: str,
               grow_px: int, min_observations: int, max_frames: int,
               max_camera_residual: float) -> tuple[np.ndarray, np.ndarray, PlateReport]:
    """The plate uint8 [H, W, 3], the coverage (frames that saw each pixel, int32 [H, W]) and the report."""
    if len(frames) == 0:
        raise EdnError(f"background plate of {subject!r}: the video has no frames")
    if masks.shape != frames.shape[:3]:
        raise EdnError(f"background plate of {subject!r}: masks {list(masks.shape)} do not match frames "
                       f"{list(frames.shape)}")
    chosen = frames_for_median(len(frames), max_frames)
    sample_frames = np.asarray(frames[chosen])
    sample_labels = None if labels is None else np.asarray(labels[chosen])
    excluded = excluded_pixels(np.asarray(masks[chosen]), sample_labels, grow_px)
    median, observed = median_plate(sample_frames, excluded)
    unseen = observed < min(min_observations, len(chosen))
    median[unseen] = np.nan
    plate = fill_unseen(median, unseen)
    residual = camera_residual(sample_frames, excluded, plate)
    height, width = plate.shape[:2]
    report = PlateReport(subject=subject, frame_size=(width, height), frames_used=len(chosen),
                         camera_residual=round(residual, 3), max_camera_residual=max_camera_residual,
                         static=residual <= max_camera_residual, filled_fraction=round(float(unseen.mean()), 5),
                         person_fraction=round(float(excluded.mean()), 5))
    coverage = np.where(unseen, 0, observed).astype(np.int32)
    return plate, coverage, report


def coverage_image(coverage: np.ndarray, frames_used: int) -> np.ndarray:
    """uint8 [H, W]: the share of frames that saw each pixel, 0 (filled) to 255 (always seen)."""
    return (coverage.astype(np.float64) / max(1, frames_used) * 255).round().astype(np.uint8)


def write_plate(plate: np.ndarray, coverage: np.ndarray, report: PlateReport, *, plate_out: str | os.PathLike,
                coverage_out: str | os.PathLike, report_out: str | os.PathLike) -> None:
    """The plate and coverage as PNG images and the report as JSON, each atomically."""
    write_png(plate_out, plate)
    gray = coverage_image(coverage, report.frames_used)
    write_png(coverage_out, np.repeat(gray[..., None], 3, axis=-1))
    write_json(report_out, report.to_json())
    if report.static:
        log.info("background plate of %s: camera residual %.2f (static), %.2f%% of the plate filled",
                 report.subject, report.camera_residual, 100 * report.filled_fraction)
    else:
        log.warning("target %s: the camera moves (residual %.1f above %.1f between its frames and the plate "
                    "outside the person); it is trained on the whole frame, as in the paper",
                    report.subject, report.camera_residual, report.max_camera_residual)


def read_plate(path: str | os.PathLike) -> np.ndarray:
    """uint8 [H, W, 3] RGB plate from its PNG."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EdnError(f"background plate {str(path)!r}: not readable as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
