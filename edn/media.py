"""ffmpeg and ffprobe: finding the binaries, probing videos, running commands.

Binaries are looked up in this order: the ``EDN_FFMPEG`` / ``EDN_FFPROBE``
environment variables, then ``PATH`` (Debian's or conda's ffmpeg), then, for
ffmpeg only, the static binary inside the ``imageio-ffmpeg`` wheel. ffprobe has no
wheel; ``make`` installs Debian's ffmpeg package, which brings both.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from edn.atomic import atomic_path
from edn.errors import EdnError


@functools.cache
def ffmpeg_binary() -> str:
    """Path of the ffmpeg executable."""
    explicit = os.environ.get("EDN_FFMPEG")
    if explicit:
        return explicit
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - imageio-ffmpeg is a dependency
        raise EdnError("ffmpeg: not found on PATH and imageio-ffmpeg is not installed") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffprobe_binary() -> str:
    """Path of the ffprobe executable."""
    explicit = os.environ.get("EDN_FFPROBE")
    if explicit:
        return explicit
    on_path = shutil.which("ffprobe")
    if on_path:
        return on_path
    raise EdnError("ffprobe: not found on PATH; install ffmpeg (Debian: apt-get install ffmpeg)")


@dataclass(frozen=True)
class VideoInfo:
    """What a pipeline stage needs to know about a video file.

    ``width`` and ``height`` are the displayed size in pixels: rotation metadata
    (phone videos) is applied, as ffmpeg applies it when decoding.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    duration_s: float
    frame_count: int | None
    has_audio: bool
    audio_duration_s: float | None

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def _fraction(text: str | None) -> Fraction | None:
    if not text or text in ("0/0", "N/A"):
        return None
    value = Fraction(text)
    return value if value > 0 else None


def _rotation_degrees(stream: dict) -> int:
    for side_data in stream.get("side_data_list", []):
        if "rotation" in side_data:
            return int(side_data["rotation"]) % 360
    rotate = stream.get("tags", {}).get("rotate")
    return int(rotate) % 360 if rotate else 0


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's geometry, frame rate and streams with ffprobe.

    Raises EdnError naming the file when it is missing, empty, not a media file,
    or has no video stream.
    """
    path = Path(path)
    if not path.exists():
        raise EdnError(f"video {str(path)!r}: file not found")
    if path.is_dir():
        raise EdnError(f"video {str(path)!r}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise EdnError(f"video {str(path)!r}: file is empty")
    try:
        probe = ffmpeg.probe(str(path), cmd=ffprobe_binary())
    except ffmpeg.Error as error:
        reason = _telling_line(error.stderr) or "ffprobe failed"
        raise EdnError(f"video {str(path)!r}: not a readable video ({reason})") from None
    streams = probe.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        raise EdnError(f"video {str(path)!r}: has no video stream")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    width, height = int(video["width"]), int(video["height"])
    if _rotation_degrees(video) in (90, 270):
        width, height = height, width
    fps = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate"))
    if fps is None:
        raise EdnError(f"video {str(path)!r}: frame rate unknown")
    # The video stream's own duration: Matroska keeps it in a tag; the container's
    # can include a longer soundtrack.
    duration = (video.get("duration") or _tag_seconds(video.get("tags", {}).get("DURATION"))
                or probe.get("format", {}).get("duration"))
    nb_frames = video.get("nb_frames")
    audio_duration = None
    if audio is not None:
        audio_duration = float(audio.get("duration") or duration or 0.0)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        duration_s=float(duration) if duration else 0.0,
        frame_count=int(nb_frames) if nb_frames and nb_frames.isdigit() else None,
        has_audio=audio is not None,
        audio_duration_s=audio_duration,
    )


def _tag_seconds(text: str | None) -> float | None:
    """A duration tag such as "00:00:05.100000000" in seconds (None if absent or unreadable)."""
    try:
        hours, minutes, seconds = (text or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def require_complete(what: str, *, got_s: float, promised_s: float, frame_s: float,
                     ffmpeg_messages: str | bytes | None = None) -> None:
    """Raise EdnError when a result is clearly shorter than its input promised.

    A truncated video (a copy or download cut short) often still opens: its header
    promises the whole duration, ffmpeg reads what is there, complains on stderr
    and exits 0, and the result would look complete. ``got_s``: seconds obtained;
    ``promised_s``: seconds the input's header announces (0: unknown, no check);
    ``frame_s``: one frame's duration. A shortfall of up to two frames or 1 % is
    allowed (rounding of the last frame, containers' duration conventions).
    """
    shortfall = promised_s - got_s
    if promised_s <= 0 or shortfall <= max(2 * frame_s, 0.01 * promised_s):
        return
    telling = _telling_line(ffmpeg_messages)
    raise EdnError(f"{what}: only {got_s:.2f} s of the {promised_s:.2f} s its header promises could be read; "
                   f"the file is truncated or damaged" + (f" (ffmpeg: {telling})" if telling else ""))


def _telling_line(stderr: bytes | str | None) -> str:
    """ffmpeg's most telling complaint: a line about a partial or damaged file, else its last line."""
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\] ", "", line.strip()) for line in text.splitlines() if line.strip()]
    for word in ("moov atom not found", "partial file", "truncat", "end of file", "invalid data"):
        for line in lines:
            if word in line.lower():
                return line
    return lines[-1] if lines else ""


def count_frames(path: str | os.PathLike) -> int:
    """Count the frames of the first video stream by decoding it (ffprobe -count_frames)."""
    try:
        probe = ffmpeg.probe(str(path), cmd=ffprobe_binary(), select_streams="v:0",
                             count_frames=None, show_entries="stream=nb_read_frames")
    except ffmpeg.Error as error:
        raise EdnError(f"video {str(path)!r}: cannot count frames ({_last_line(error.stderr)})") from None
    return int(probe["streams"][0]["nb_read_frames"])


def _last_line(stderr: bytes | str | None) -> str:
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_ffmpeg(stream: ffmpeg.nodes.OutputStream | list[str], *, what: str) -> str:
    """Run an ffmpeg command quietly; on failure raise EdnError with ffmpeg's last line.

    ``what`` names the input the command works on, for the error message. Returns
    ffmpeg's error messages of a run that succeeded anyway (a damaged input is
    often read to its end with complaints and exit status 0), else "".
    """
    if isinstance(stream, list):
        args = [ffmpeg_binary(), *stream]
    else:
        args = stream.compile(cmd=ffmpeg_binary())
    args = [args[0], "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args[1:]]
    result = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        raise EdnError(f"{what}: ffmpeg failed ({_last_line(result.stderr) or f'exit {result.returncode}'})")
    return result.stderr.decode("utf-8", "replace").strip()


def h264_options(crf: int) -> list[str]:
    """ffmpeg's output options for every video edn writes: H.264 at ``crf``, yuv420p
    (which every player opens), the index at the front for streaming."""
    return ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart"]


def encode_video(
    frames: Iterable[np.ndarray],
    output: str | os.PathLike,
    *,
    fps: Fraction | str,
    size: tuple[int, int],
    audio_from: str | os.PathLike | None = None,
    crf: int = 18,
    frame_count: int | None = None,
    what: str | None = None,
) -> Path:
    """Encode RGB uint8 frames [H, W, 3] of ``size`` (width, height) as H.264 mp4.

    yuv420p at a constant ``fps`` so that every player opens it; with
    ``audio_from``, that file's first audio stream (if it has one) is muxed in as
    AAC, cut to the video's length. Written atomically; ``frame_count`` only
    feeds the progress bar. Raises EdnError when ffmpeg fails.
    """
    from tqdm import tqdm

    width, height = size
    if width % 2 or height % 2:
        raise EdnError(f"video {str(output)!r}: H.264 in yuv420p needs an even size, got {width}x{height}")
    rate = Fraction(str(fps))
    command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-r", f"{rate.numerator}/{rate.denominator}", "-i", "-"]
    if audio_from is not None:
        command += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0?", "-c:a", "aac", "-b:a", "192k",
                    "-shortest"]
    command += h264_options(crf)
    output = Path(output)
    label = what or f"video {str(output)!r}"
    with atomic_path(output) as temporary:
        process = subprocess.Popen([*command, "-f", "mp4", str(temporary)], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for frame in tqdm(frames, total=frame_count, unit="frame", desc=f"encode {output.name}",
                              leave=False, disable=None):
                if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                    raise ValueError(f"frame {frame.dtype} {list(frame.shape)} is not uint8 [{height}, {width}, 3]")
                process.stdin.write(np.ascontiguousarray(frame).tobytes())
            process.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg stopped early; its error is read below
        except BaseException:
            process.kill()
            process.wait()
            raise
        stderr = process.stderr.read()
        if process.wait() != 0:
            raise EdnError(f"{label}: ffmpeg failed ({_last_line(stderr) or 'no message'})")
    return output
