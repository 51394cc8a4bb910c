"""Camera registration against a known camera path: the mean corner error per frame and over the video.

    # the camera table the pipeline wrote (its report beside it gives the reference frame and size):
    .venv/bin/python benchmarks/registration_accuracy.py --truth DIR/juggler_pan.truth.csv \\
        --camera results/background/juggler_pan.camera.csv
    # the static demo: the known path is the identity
    .venv/bin/python benchmarks/registration_accuracy.py --truth identity --camera results/background/juggler.camera.csv
    # without the pipeline: decode, segment the person (MediaPipe), register
    .venv/bin/python benchmarks/registration_accuracy.py --truth DIR/juggler_pan.truth.csv --video DIR/juggler_pan.mp4
    # also: the moving camera's plate against the static demo's, where both saw the ground
    ... --plate results/background/juggler_pan.png --static-plate results/background/juggler.png

``edn.background.registration`` gives each frame t a transform ``H_t`` from its
pixels to the reference frame r's (the middle frame by default). The known path
``S_t`` (``benchmarks/synthetic_camera.py``) takes synthetic frame t's working
pixels to the original, still video's, so the true ``H_t`` is ``inv(S_r) @ S_t``.
A frame's error is the mean distance between where the estimated and the true
transform put the four corner pixels of the working frame, in the reference
view's pixels (``registration.corner_error``); the frame's true motion is the
same for the identity. A frame the registration left out is counted apart.
Against ``--truth identity`` (a still camera) the error is how far the measured
transform moves the corners: the camera table's ``displacement_px`` (a still
camera's table holds the identity itself), or the measured transforms of the
``--video`` route. With ``--plate`` and ``--static-plate`` the moving camera's
plate (the reference view) is warped by the known ``S_r`` into the still
camera's view and compared with its plate where both saw the ground (coverage
above 0, no padding), beside the same comparison placed 1 px off.

The ``--video`` route leaves the person out by MediaPipe's segmentation mask
only (the pipeline adds the stick figure, grown), with the background options'
defaults, and takes the working size, fit and orientation from the truth's
``.truth.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: benchmarks and edn importable without installing
    sys.path.insert(0, str(ROOT))

from benchmarks.synthetic_camera import _size, read_truth  # noqa: E402
from edn.background.registration import corner_displacement, corner_error, warp_into  # noqa: E402
from edn.core.errors import EdnError  # noqa: E402


def true_to_reference(truth: np.ndarray, reference: int) -> np.ndarray:
    """float64 [T, 3, 3]: each synthetic frame's pixel to the reference frame's, ``inv(S_r) @ S_t``."""
    back = np.linalg.inv(truth[reference])
    result = back[None] @ truth
    return result / result[:, 2:, 2:]


def corner_errors(estimated: np.ndarray, registered: np.ndarray, true: np.ndarray,
                  size: tuple[int, int]) -> np.ndarray:
    """float64 [T]: each registered frame's mean corner error (pixels), NaN where it was not registered."""
    return np.array([corner_error(h, g, size) if ok else np.nan for h, g, ok in zip(estimated, true, registered)])


def _report_beside(camera: Path) -> Path:
    name = camera.name
    return camera.with_name(name[:-len(".camera.csv")] + ".json") if name.endswith(".camera.csv") else camera


def from_camera_table(camera: Path, report: Path | None) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int], dict,
                                                                  np.ndarray]:
    """The transforms, registered flags, reference frame, frame size, a summary of the report and each frame's
    measured corner displacement that the pipeline's plate stage wrote."""
    from edn.background.plate import read_camera_table

    table = read_camera_table(camera)
    report = report or _report_beside(camera)
    if not report.is_file():
        raise EdnError(f"plate report {str(report)!r}: file not found (give --report: it names the reference frame)")
    made = json.loads(report.read_text())
    summary = {key: made.get(key) for key in ("motion_model", "camera_motion", "camera_residual",
                                              "registered_residual", "static", "background_moves")}
    return table.transforms, table.registered, int(made["reference_frame"]), tuple(made["frame_size"]), summary, \
        table.displacement


def from_video(video: Path, decoding: dict, scratch: Path, workers: int) -> tuple[np.ndarray, np.ndarray, int,
                                                                                tuple[int, int], dict]:
    """Decode ``video`` as the pipeline would (``decoding``: working_size, fit, orientation and, from a known
    path, the size expected), segment the person, register (see the module). The transforms as measured: a
    still camera's are not set to the identity."""
    from edn.background.plate import PersonPixels, padding_pixels
    from edn.background.registration import register_frames
    from edn.core.options import BackgroundOptions
    from edn.ingest.decode import decode_video
    from edn.ingest.frames import load_frames, load_masks
    from edn.pose.mediapipe_holistic import segment_mediapipe

    frames_path, masks_path = scratch / "frames.npy", scratch / "masks.npy"
    meta = decode_video(video, frames_path, scratch / "meta.json", working_size=tuple(decoding["working_size"]),
                        fit=decoding["fit"], orientation=decoding["orientation"])
    expected = decoding.get("expected_size")
    if expected is not None and list(meta.working_size) != list(expected):
        raise EdnError(f"video {str(video)!r}: decoded at {meta.working_size}, the known path is at {expected}")
    segment_mediapipe(frames_path, masks_path, workers=workers, show_progress=False)
    frames, masks = load_frames(frames_path), load_masks(masks_path)
    options = BackgroundOptions()
    person = PersonPixels(masks, None, options.grow_px, padding_pixels(frames))
    registration = register_frames(frames, person, reference=options.reference, motion_model=options.motion_model)
    summary = {"motion_model": registration.model, "camera_motion": round(registration.camera_motion, 3)}
    measured = registration.measured
    return measured, np.isfinite(measured).all(axis=(1, 2)), registration.reference, registration.frame_size, summary


def _plate_region(coverage_png: Path, plate_shape: tuple[int, int], report: Path | None) -> np.ndarray:
    """bool [H, W]: the plate's pixels some frame saw without the person (the coverage cut to the plate)."""
    coverage = cv2.imread(str(coverage_png), cv2.IMREAD_GRAYSCALE)
    if coverage is None:
        raise EdnError(f"coverage {str(coverage_png)!r}: not a readable image")
    height, width = plate_shape
    x, y = 0, 0
    if coverage.shape != plate_shape:
        if report is None or not report.is_file():
            raise EdnError(f"coverage {str(coverage_png)!r}: a mosaic's; its report (reference_origin) is needed")
        x, y = json.loads(report.read_text())["reference_origin"]
    return coverage[y:y + height, x:x + width] > 0


def compare_plates(plate: Path, static_plate: Path, into_static: np.ndarray) -> tuple[float, float]:
    """Mean |moving camera's plate, warped into the static view, - static plate| (0-255) over the pixels both
    saw (coverage above 0 beside each plate), and the share of the frame compared."""
    images = {}
    for path in (plate, static_plate):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EdnError(f"plate {str(path)!r}: not a readable image")
        stem = path.name[:-len(".png")]
        seen = _plate_region(path.with_name(f"{stem}.coverage.png"), image.shape[:2], path.with_name(f"{stem}.json"))
        images[path] = (cv2.cvtColor(image, cv2.COLOR_BGR2RGB), seen)
    moving, moving_seen = images[plate]
    still, still_seen = images[static_plate]
    size = still.shape[1::-1]
    warped = warp_into(moving, into_static, size).astype(np.float32)
    seen = warp_into(np.where(moving_seen, 255, 0).astype(np.uint8), into_static, size) == 255
    both = seen & still_seen & still.any(axis=-1)
    if not both.any():
        raise EdnError(f"plates {str(plate)!r} and {str(static_plate)!r}: no pixel both saw")
    return float(np.abs(warped[both] - still[both].astype(np.float32)).mean()), float(both.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", required=True,
                        help="the known path's .truth.csv (benchmarks/synthetic_camera.py pan), or 'identity'")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", type=Path, help="results/background/{target}.camera.csv")
    source.add_argument("--video", type=Path, help="the moving-camera video: decode, segment and register here")
    parser.add_argument("--report", type=Path, help="the plate report (default: the .json beside --camera)")
    parser.add_argument("--scratch", type=Path, help="folder for the --video route's frames and masks (default: a "
                                                     "temporary one)")
    parser.add_argument("--workers", type=int, default=2, help="MediaPipe processes (--video)")
    parser.add_argument("--working-size", type=_size, default=(512, 256),
                        help="--video with --truth identity: frames.width x frames.height (default 512x256)")
    parser.add_argument("--fit", default="pad", help="--video with --truth identity: frames.fit")
    parser.add_argument("--orientation", default="auto", help="--video with --truth identity: frames.orientation")
    parser.add_argument("--plate", type=Path, help="the moving camera's plate .png (its .coverage.png beside it)")
    parser.add_argument("--static-plate", type=Path, help="the still camera's plate .png to compare it with")
    parser.add_argument("--quiet", action="store_true", help="the summary only, not a line per frame")
    args = parser.parse_args(argv)
    try:
        if (args.plate is None) != (args.static_plate is None):
            raise EdnError("--plate and --static-plate go together")
        truth = None if args.truth == "identity" else read_truth(args.truth)
        displacement = None
        if args.camera is not None:
            estimated, registered, reference, size, summary, displacement = from_camera_table(args.camera,
                                                                                             args.report)
        else:
            if truth is None:
                decoding = {"working_size": args.working_size, "fit": args.fit, "orientation": args.orientation}
            else:
                known = json.loads(Path(args.truth).with_suffix(".json").read_text())
                decoding = {key: known[key] for key in ("working_size", "fit", "orientation")}
                decoding["expected_size"] = known["synthetic_working"]["size"]
            if args.scratch is not None:
                args.scratch.mkdir(parents=True, exist_ok=True)
                estimated, registered, reference, size, summary = from_video(args.video, decoding, args.scratch,
                                                                             args.workers)
            else:
                with tempfile.TemporaryDirectory() as scratch:
                    estimated, registered, reference, size, summary = from_video(args.video, decoding,
                                                                                 Path(scratch), args.workers)
        count = len(estimated)
        if truth is None:
            truth = np.repeat(np.eye(3)[None], count, axis=0)
        if len(truth) != count:
            raise EdnError(f"known path {args.truth!r}: {len(truth)} frames, the registration {count}")
        true = true_to_reference(truth, reference)
        errors = corner_errors(estimated, registered, true, size)
        if displacement is not None and args.truth == "identity":
            # A still camera's table holds the identity; its displacement column keeps how far the measured
            # transforms moved the corners, which is their error against a still path.
            errors = np.where(registered, displacement, np.nan)
        motion = np.array([corner_displacement(g, size) for g in true])
        if not args.quiet:
            print("frame  registered  true motion px  corner error px")
            for t in range(count):
                print(f"{t:5d}  {int(registered[t]):10d}  {motion[t]:14.3f}  {errors[t]:15.3f}")
        done = errors[registered]
        print(f"frames {count}, registered {int(registered.sum())}, reference frame {reference}, "
              f"working size {size[0]}x{size[1]}, {', '.join(f'{k} {v}' for k, v in summary.items())}")
        print(f"true motion: mean {motion.mean():.3f} px, max {motion.max():.3f} px")
        if done.size:
            print(f"corner error: mean {done.mean():.3f} px, median {np.median(done):.3f} px, "
                  f"max {done.max():.3f} px (frame {int(np.flatnonzero(registered)[np.argmax(done)])})")
        if args.plate is not None:
            into_static = truth[reference]
            difference, share = compare_plates(args.plate, args.static_plate, into_static)
            nudged = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]], np.float64) @ into_static
            off, _ = compare_plates(args.plate, args.static_plate, nudged)
            print(f"plate against {args.static_plate}: mean |difference| {difference:.2f} (0-255) over "
                  f"{100 * share:.1f}% of the frame both saw (placed 1 px to the right instead: {off:.2f})")
    except (EdnError, OSError, ValueError, KeyError) as error:
        print(f"edn: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
