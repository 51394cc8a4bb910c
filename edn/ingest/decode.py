"""Decode a video into working frames at a constant frame rate.

ffmpeg resamples time (the ``fps`` filter: frame i shows the video at time
i / fps, so every later artifact stays in sync with the audio), resizes with the
aspect ratio kept, and pads or crops to the working size; Python only streams the
raw RGB bytes into ``frames.npy`` (see :mod:`edn.ingest.frames`).
"""

from __future__ import annotations

import logging
import os
import subprocess
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from edn.core.atomic import atomic_path, write_json
from edn.core.errors import EdnError
from edn.ingest.frames import (NPY_HEADER_BYTES, FrameGeometry, FrameMeta, fit_geometry, npy_header,
                               oriented_size)
from edn.ingest.media import VIDEO_THREADS, ffmpeg_binary, probe_video, require_complete
from edn.core.options import FrameOptions

log = logging.getLogger(__name__)


def parse_fps(text: str | None) -> Fraction | None:
    """``None`` or "native" keep the video's rate; otherwise a positive number or ratio."""
    if text is None or str(text).lower() in ("native", "none", ""):
        return None
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        raise EdnError(f"fps {text!r}: not a number or ratio such as 24 or 30000/1001") from None
    if value <= 0:
        raise EdnError(f"fps {text!r}: must be positive")
    return value


def _filter_graph(geometry: FrameGeometry, fps: Fraction) -> str:
    (w, h), (sw, sh), (W, H) = geometry.source_size, geometry.scaled_size, geometry.working_size
    # Area averaging for shrinking avoids aliasing; bicubic for enlarging.
    flags = "area" if sw * sh <= w * h else "bicubic"
    ox, oy = geometry.offset
    steps = [f"fps={fps.numerator}/{fps.denominator}",
             f"scale={sw}:{sh}:flags={flags}+accurate_rnd+full_chroma_int",
             "setsar=1", "format=rgb24"]
    if geometry.fit == "pad":
        steps.append(f"pad={W}:{H}:{ox}:{oy}:color=black")
    else:
        steps.append(f"crop={W}:{H}:{-ox}:{-oy}")
    return ",".join(steps)


def decode_video(
    video: str | os.PathLike,
    frames_out: str | os.PathLike,
    meta_out: str | os.PathLike,
    *,
    working_size: tuple[int, int],
    fps: Fraction | None = None,
    fit: str = FrameOptions.fit,
    orientation: str | None = None,
) -> FrameMeta:
    """Decode ``video`` into ``frames_out`` (.npy) and ``meta_out`` (meta.json).

    ``working_size`` is (width, height) in pixels, turned by ``orientation``
    (:func:`~edn.ingest.frames.oriented_size`; ``auto``: the video's own, so a
    phone video held upright is decoded portrait at the same pixel count; None,
    the default: exactly as given). The meta records the size used. ``fps`` None
    keeps the video's average frame rate. Both outputs are written atomically. A video that yields
    clearly fewer frames than its duration promises (a truncated file) is an
    EdnError, not a shorter frame store.
    """
    info = probe_video(video)
    width, height = working_size
    if width <= 0 or height <= 0:
        raise EdnError(f"working size {width}x{height}: must be positive")
    if orientation is not None:
        width, height = oriented_size((width, height), info.size, orientation)
    rate = fps or info.fps
    geometry = fit_geometry(info.size, (width, height), fit)
    frame_bytes = width * height * 3
    expected = round(info.duration_s * rate) if info.duration_s else None
    command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", str(VIDEO_THREADS),
               "-i", str(video),
               "-map", "0:v:0", "-an", "-sn", "-vf", _filter_graph(geometry, rate),
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    log.info("decoding %s (%dx%d, %s fps) to %dx%d at %s fps, %s", video, *info.size, info.fps,
             width, height, rate, fit)

    with atomic_path(frames_out) as temporary:
        count = 0
        with open(temporary, "wb") as sink, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=frame_bytes
        ) as process, tqdm(total=expected, unit="frame", desc=f"decode {Path(video).name}",
                           leave=False, disable=None) as progress:
            sink.write(b"\0" * NPY_HEADER_BYTES)
            buffer = bytearray(frame_bytes)
            view = memoryview(buffer)
            try:
                while True:
                    filled = 0
                    while filled < frame_bytes:
                        n = process.stdout.readinto(view[filled:])
                        if not n:
                            break
                        filled += n
                    if filled < frame_bytes:
                        break
                    sink.write(view)
                    count += 1
                    progress.update(1)
            except BaseException:
                process.kill()
                raise
            stderr = process.stderr.read().decode("utf-8", "replace").strip()
            returncode = process.wait()
            if returncode != 0:
                reason = stderr.splitlines()[-1] if stderr else f"exit {returncode}"
                raise EdnError(f"video {str(video)!r}: decoding failed ({reason})")
            if count == 0:
                raise EdnError(f"video {str(video)!r}: no frames could be decoded")
            # A truncated file decodes "successfully" to fewer frames than its header
            # promises: an artifact that looks complete but is not.
            require_complete(f"video {str(video)!r}", got_s=float(count / rate), promised_s=info.duration_s,
                             frame_s=float(1 / rate), ffmpeg_messages=stderr)
            sink.seek(0)
            sink.write(npy_header((count, height, width, 3)))

    meta = FrameMeta(
        video=str(video), fps=str(rate), frame_count=count, source_size=info.size,
        working_size=(width, height), fit=fit, scaled_size=geometry.scaled_size, offset=geometry.offset,
    )
    write_json(meta_out, meta.to_json())
    log.info("decoded %d frames of %s", count, video)
    return meta
