"""Footage for issue 25's checks, made from the shipped demo videos: a camera with a known path, a portrait
target, a long source.

    .venv/bin/python benchmarks/synthetic_camera.py pan --output DIR       # DIR/juggler_pan.mp4 + its known path
    .venv/bin/python benchmarks/synthetic_camera.py portrait --output DIR  # DIR/juggler_portrait.mp4
    .venv/bin/python benchmarks/synthetic_camera.py loop --output DIR      # DIR/dancer_x10.mp4

``pan`` crops a window of ``--window`` (0.9) of the juggler's frame that pans
``--pan-px`` (40) pixels of the original video to the right and zooms in by
``--zoom`` (5%) from the first frame to the last, both linear in time, and
encodes it at the first window's size (1152x648: the first frame is an exact
crop, the later ones are resampled bicubically) with H.264 at ``--crf`` (16).
Beside it:

- ``juggler_pan.truth.csv``: each frame's 3x3 transform (``h00`` .. ``h22``, row
  by row) from the synthetic frame's pixels to the original frame's pixels, at the
  working size the pipeline decodes both videos to (``--working-size``, turned to
  each video's orientation and fitted as ``edn decode`` does), pixel centres at
  whole numbers as OpenCV warps them;
- ``juggler_pan.windows.csv``: the window in the original video's pixels (left,
  top, width, height; edges, not centres);
- ``juggler_pan.truth.json``: the parameters and both videos' working geometry.

The original camera is still, so the true transform from synthetic frame t to the
synthetic reference frame r, the direction of ``results/background/{target}.camera.csv``,
is ``inv(S_r) @ S_t``; ``benchmarks/registration_accuracy.py`` scores a
registration against it.

``portrait`` crops a still 9:16 window (404x720) around the person: the middle of
where the juggler's frames change over time (the person and the ball; the camera
is still), or ``--centre-x``; the crop is re-encoded at ``--crf`` without
resampling. ``loop`` joins ``--times`` (10) copies of the dancer with ffmpeg's
concat demuxer, streams copied (no re-encoding).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: edn importable without installing
    sys.path.insert(0, str(ROOT))

from edn.core.errors import EdnError  # noqa: E402
from edn.ingest.frames import FrameGeometry, fit_geometry, oriented_size  # noqa: E402
from edn.ingest.media import count_frames, encode_video, ffmpeg_binary, h264_options, probe_video  # noqa: E402

DEMO = ROOT / "resources" / "demo"
MATRIX_COLUMNS = tuple(f"h{r}{c}" for r in range(3) for c in range(3))


@dataclass(frozen=True)
class Window:
    """The crop of one frame in the original video's pixels: left and top edges, width and height."""

    left: float
    top: float
    width: float
    height: float


def pan_windows(count: int, source_size: tuple[int, int], *, window: float, pan_px: float, pan_y_px: float,
                zoom: float) -> list[Window]:
    """Each frame's window: ``window`` of the frame at the first frame, ``1 + zoom`` times smaller at the last,
    its centre moving linearly by (``pan_px``, ``pan_y_px``) about the frame's centre."""
    width, height = source_size
    windows = []
    for t in range(count):
        f = t / (count - 1) if count > 1 else 0.0
        w, h = window * width / (1 + zoom * f), window * height / (1 + zoom * f)
        cx, cy = width / 2 + pan_px * (f - 0.5), height / 2 + pan_y_px * (f - 0.5)
        box = Window(cx - w / 2, cy - h / 2, w, h)
        if box.left < 0 or box.top < 0 or box.left + box.width > width or box.top + box.height > height:
            raise EdnError(f"synthetic camera: frame {t}'s window {box} leaves the {width}x{height} frame "
                           "(a smaller --window, --pan-px or --zoom)")
        windows.append(box)
    return windows


def crop_transform(box: Window, output_size: tuple[int, int]) -> np.ndarray:
    """3x3: a pixel of the crop resampled to ``output_size`` (width, height) to the original's pixel.

    Pixel centres at whole numbers: the crop's pixel u covers [u, u + 1) of its width in steps of
    ``box.width / output width``, starting at the window's left edge ``box.left`` (the original's pixel x
    covering [x - 0.5, x + 0.5))."""
    sx, sy = box.width / output_size[0], box.height / output_size[1]
    return np.array([[sx, 0, box.left + 0.5 * sx - 0.5], [0, sy, box.top + 0.5 * sy - 0.5], [0, 0, 1]])


def working_transform(geometry: FrameGeometry) -> np.ndarray:
    """3x3: a pixel of the video as filmed to its pixel in the working frame (``edn decode``'s resampling,
    centre-aligned, then its padding or crop offset)."""
    (w, h), (sw, sh), (ox, oy) = geometry.source_size, geometry.scaled_size, geometry.offset
    ax, ay = sw / w, sh / h
    return np.array([[ax, 0, 0.5 * ax - 0.5 + ox], [0, ay, 0.5 * ay - 0.5 + oy], [0, 0, 1]])


def decoding_geometry(source_size: tuple[int, int], working_size: tuple[int, int], fit: str,
                      orientation: str) -> FrameGeometry:
    """How the pipeline fits a video of ``source_size`` into its working frame (no rotation metadata)."""
    return fit_geometry(source_size, oriented_size(working_size, source_size, orientation), fit)


def crop_size(first: Window) -> tuple[int, int]:
    """The synthetic video's size: the first window's, rounded to even numbers (H.264 in yuv420p)."""
    return 2 * round(first.width / 2), 2 * round(first.height / 2)


def known_path(windows: list[Window], output_size: tuple[int, int], original: FrameGeometry,
               synthetic: FrameGeometry) -> list[np.ndarray]:
    """Each frame's 3x3 from the synthetic video's working pixels to the original video's working pixels."""
    into_original = working_transform(original)
    from_synthetic = np.linalg.inv(working_transform(synthetic))
    return [into_original @ crop_transform(box, output_size) @ from_synthetic for box in windows]


def crop_frame(frame: np.ndarray, box: Window, output_size: tuple[int, int]) -> np.ndarray:
    """The window of ``frame`` (uint8 [H, W, 3]) resampled to ``output_size``; an exact copy when the window is
    whole pixels of ``output_size``."""
    transform = crop_transform(box, output_size)
    if transform[0, 0] == 1 and transform[1, 1] == 1 and float(box.left).is_integer() \
            and float(box.top).is_integer():
        x, y = int(box.left), int(box.top)
        return np.ascontiguousarray(frame[y:y + output_size[1], x:x + output_size[0]])
    return cv2.warpAffine(frame, transform[:2], output_size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def read_frames(video: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The video's frames as filmed, RGB uint8 [H, W, 3], one at a time from an ffmpeg pipe."""
    width, height = size
    command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(video),
               "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while True:
            data = process.stdout.read(width * height * 3)
            if len(data) < width * height * 3:
                break
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
    finally:
        process.stdout.close()
        stderr = process.stderr.read().decode(errors="replace").strip()
        if process.wait() != 0:
            last = stderr.splitlines()[-1] if stderr else "no message"
            raise EdnError(f"video {str(video)!r}: ffmpeg failed ({last})")


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def read_truth(path: str | Path) -> np.ndarray:
    """float64 [T, 3, 3] from a ``.truth.csv``: synthetic working pixel to original working pixel."""
    with Path(path).open() as table:
        rows = list(csv.DictReader(table))
    if not rows or tuple(rows[0]) != ("frame", *MATRIX_COLUMNS):
        raise EdnError(f"known path {str(path)!r}: not a truth table (columns frame, {', '.join(MATRIX_COLUMNS)})")
    return np.array([[float(row[name]) for name in MATRIX_COLUMNS] for row in rows]).reshape(-1, 3, 3)


def make_pan(video: Path, output: Path, *, name: str, window: float, pan_px: float, pan_y_px: float, zoom: float,
             working_size: tuple[int, int], fit: str, orientation: str, crf: int) -> Path:
    """The synthetic moving camera and its known path (see the module); returns the video's path."""
    info = probe_video(video)
    source_size = info.size
    count = info.frame_count or count_frames(video)
    windows = pan_windows(count, source_size, window=window, pan_px=pan_px, pan_y_px=pan_y_px, zoom=zoom)
    output_size = crop_size(windows[0])
    original_geometry = decoding_geometry(source_size, working_size, fit, orientation)
    synthetic_geometry = decoding_geometry(output_size, working_size, fit, orientation)
    truths = known_path(windows, output_size, original_geometry, synthetic_geometry)
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"{name}.mp4"
    made = encode_video((crop_frame(frame, box, output_size) for frame, box in zip(read_frames(video, source_size),
                                                                                    windows)),
                        target, fps=info.fps, size=output_size, crf=crf, frame_count=count)
    written = count_frames(made)
    if written != count:
        raise EdnError(f"video {str(made)!r}: {written} frames written for the {count} of {str(video)!r}")
    _write_csv(output / f"{name}.truth.csv", ("frame", *MATRIX_COLUMNS),
               [[t, *(f"{value:.12g}" for value in matrix.ravel())] for t, matrix in enumerate(truths)])
    _write_csv(output / f"{name}.windows.csv", ("frame", "left", "top", "width", "height"),
               [[t, f"{b.left:.6f}", f"{b.top:.6f}", f"{b.width:.6f}", f"{b.height:.6f}"]
                for t, b in enumerate(windows)])
    fps = Fraction(str(info.fps))
    (output / f"{name}.truth.json").write_text(json.dumps({
        "video": str(made), "from": str(video), "frames": count, "fps": f"{fps.numerator}/{fps.denominator}",
        "window": window, "pan_px": pan_px, "pan_y_px": pan_y_px, "zoom": zoom, "crf": crf,
        "source_size": list(source_size), "output_size": list(output_size),
        "working_size": list(working_size), "fit": fit, "orientation": orientation,
        "original_working": {"size": list(original_geometry.working_size),
                             "scaled": list(original_geometry.scaled_size), "offset": list(original_geometry.offset)},
        "synthetic_working": {"size": list(synthetic_geometry.working_size),
                              "scaled": list(synthetic_geometry.scaled_size),
                              "offset": list(synthetic_geometry.offset)},
        "transforms": "truth.csv: synthetic working pixel -> original working pixel (pixel centres at integers)",
    }, indent=2) + "\n")
    return made


def person_centre_x(video: Path, size: tuple[int, int], samples: int = 48) -> float:
    """Where a still camera's moving content is, horizontally (pixels): the median of the columns' change
    against the per-pixel median over up to ``samples`` frames spread over the video."""
    count = count_frames(video)
    keep = set(np.linspace(0, count - 1, min(samples, count)).round().astype(int).tolist())
    gray = np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for t, frame in enumerate(read_frames(video, size))
                     if t in keep]).astype(np.int16)
    change = np.abs(gray - np.median(gray, axis=0)).sum(axis=(0, 1)).astype(np.float64)
    cumulative = np.cumsum(change)
    return float(np.searchsorted(cumulative, cumulative[-1] / 2))


def make_portrait(video: Path, output: Path, *, name: str, centre_x: float | None, crf: int) -> Path:
    """A still 9:16 crop of ``video`` around the person, full height, not resampled."""
    info = probe_video(video)
    width, height = info.size
    crop_width = 2 * int(height * 9 / 16 / 2)  # even, for yuv420p: 404x720 from 1280x720
    if crop_width > width:
        raise EdnError(f"video {str(video)!r}: {width}x{height} is too narrow for a 9:16 crop of its height")
    centre = person_centre_x(video, info.size) if centre_x is None else centre_x
    left = int(np.clip(round(centre - crop_width / 2), 0, width - crop_width))
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"{name}.mp4"
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(video),
                    "-map", "0:v:0", "-an", "-vf", f"crop={crop_width}:{height}:{left}:0", *h264_options(crf),
                    str(target)], check=True)
    (output / f"{name}.json").write_text(json.dumps({
        "video": str(target), "from": str(video), "crop": {"left": left, "top": 0, "width": crop_width,
                                                           "height": height},
        "person_centre_x": centre, "crf": crf}, indent=2) + "\n")
    return target


def make_loop(video: Path, output: Path, *, name: str, times: int) -> Path:
    """``times`` copies of ``video`` one after another (concat demuxer, streams copied)."""
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"{name}.mp4"
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "list.txt"
        quoted = str(video.resolve()).replace("'", "'\\''")
        listing.write_text("".join(f"file '{quoted}'\n" for _ in range(times)))
        subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "concat",
                        "-safe", "0", "-i", str(listing), "-map", "0:v:0", "-c", "copy", str(target)], check=True)
    return target


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not WIDTHxHEIGHT") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    pan = modes.add_parser("pan", help="a panning, zooming crop of the juggler and its known path")
    pan.add_argument("--video", type=Path, default=DEMO / "target_juggler.mp4")
    pan.add_argument("--name", default="juggler_pan")
    pan.add_argument("--window", type=float, default=0.9, help="the first frame's window, share of the frame")
    pan.add_argument("--pan-px", type=float, default=40.0, help="horizontal pan over the clip, original pixels")
    pan.add_argument("--pan-y-px", type=float, default=0.0, help="vertical pan over the clip, original pixels")
    pan.add_argument("--zoom", type=float, default=0.05, help="zoom in over the clip (0.05: 5%%)")
    pan.add_argument("--working-size", type=_size, default=(512, 256), help="frames.width x frames.height")
    pan.add_argument("--fit", default="pad", help="frames.fit")
    pan.add_argument("--orientation", default="auto", help="frames.orientation")
    portrait = modes.add_parser("portrait", help="a still 9:16 crop of the juggler around the person")
    portrait.add_argument("--video", type=Path, default=DEMO / "target_juggler.mp4")
    portrait.add_argument("--name", default="juggler_portrait")
    portrait.add_argument("--centre-x", type=float, help="the crop's centre, pixels (default: where the frames change)")
    loop = modes.add_parser("loop", help="the dancer looped with ffmpeg's concat demuxer, streams copied")
    loop.add_argument("--video", type=Path, default=DEMO / "source_dancer.mp4")
    loop.add_argument("--name", default="dancer_x10")
    loop.add_argument("--times", type=int, default=10)
    for mode in (pan, portrait, loop):
        mode.add_argument("--output", type=Path, required=True, help="folder to write into")
    for mode in (pan, portrait):
        mode.add_argument("--crf", type=int, default=16, help="H.264 quality (lower: better)")
    args = parser.parse_args(argv)
    try:
        if not args.video.is_file():
            raise EdnError(f"video {str(args.video)!r}: file not found")
        if args.mode == "pan":
            made = make_pan(args.video, args.output, name=args.name, window=args.window, pan_px=args.pan_px,
                            pan_y_px=args.pan_y_px, zoom=args.zoom, working_size=args.working_size, fit=args.fit,
                            orientation=args.orientation, crf=args.crf)
        elif args.mode == "portrait":
            made = make_portrait(args.video, args.output, name=args.name, centre_x=args.centre_x, crf=args.crf)
        else:
            made = make_loop(args.video, args.output, name=args.name, times=args.times)
    except (EdnError, subprocess.CalledProcessError) as error:
        print(f"edn: {error}", file=sys.stderr)
        return 1
    info = probe_video(made)
    print(f"{made}: {info.size[0]}x{info.size[1]}, {count_frames(made)} frames at {info.fps} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
