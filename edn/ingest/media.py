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

from edn.core.atomic import atomic_path
from edn.core.errors import EdnError


#: Codec threads of every ffmpeg and ffprobe that reads or re-encodes a subject's video.
#: ffmpeg's default, one per core (x264: 1.5 per core), makes memory grow with the
#: machine: at 4K an H.264 decoder thread holds some 25 MiB and an x264 thread some
#: 60 MiB, so a 64-core node would need gigabytes to cut one clip. Four keep a 4K
#: source within about 0.3 GiB to decode and 1.1 GiB to re-encode
#: (tests/test_reliability_ingest.py measures both), on any machine.
VIDEO_THREADS = 4

#: The demuxers (ffprobe's ``format_name``) a file from a stranger, a download, may be read
#: with: media containers that hold their streams themselves. Formats that name further
#: files or addresses for ffmpeg to open (HLS and DASH playlists, concat lists, SDP, image
#: sequences...) are not among them: a server could otherwise make a "download" of any
#: local file (FFmpeg's own advice: restrict ``protocol_whitelist`` and ``format_whitelist``
#: for untrusted input). The mov demuxer leaves MP4 data references closed by default.
CONTAINER_FORMATS = ("mov", "matroska", "avi", "flv", "mpegts", "mpeg", "ogg", "asf", "nut")

#: Reference formats ffmpeg reads, in words, for the error that refuses one.
_REFERENCE_FORMATS = {"hls": "an HLS playlist", "dash": "a DASH manifest", "webm_dash_manifest": "a DASH manifest",
                      "concat": "a concat list", "sdp": "an SDP session description", "rtsp": "an RTSP stream",
                      "image2": "an image sequence", "ffmetadata": "an ffmpeg metadata file"}


def untrusted_input_options() -> dict[str, str]:
    """ffmpeg and ffprobe input options for a file from a stranger: it may open nothing but
    itself (no other file, no network address) and is read only as a :data:`CONTAINER_FORMATS`
    container. Give the file as ``file:<path>`` (:func:`untrusted_input`)."""
    return {"protocol_whitelist": "file", "format_whitelist": ",".join(CONTAINER_FORMATS)}


def untrusted_input(path: str | os.PathLike) -> str:
    """``path`` as ffmpeg's input name for a file from a stranger: ``file:`` first, so that a
    name with a colon is never taken for another protocol."""
    return f"file:{Path(path).absolute()}"


def _refused_format(path: Path) -> NotAContainer:
    """The error for a file ffprobe would read with a demuxer off :data:`CONTAINER_FORMATS`,
    naming the format it found (asked with the same whitelists: no entry is opened)."""
    command = [ffprobe_binary(), "-hide_banner", "-v", "debug", *_as_flags(untrusted_input_options()),
               "-i", untrusted_input(path)]
    result = subprocess.run(command, capture_output=True, check=False)
    found = re.search(r"Format (\S+) probed with", result.stderr.decode("utf-8", "replace"))
    return _not_a_container(path, found[1] if found else "")


def _not_a_container(path: Path, name: str) -> NotAContainer:
    what = _REFERENCE_FORMATS.get(name, f"a file in the '{name}' format" if name else "a file of unknown format")
    return NotAContainer(path, f"it is {what} (ffmpeg format '{name or '?'}'), not a video container: a download "
                               f"is read only as a container that holds its own streams, never as a file that "
                               f"names other files")


def _as_flags(options: dict[str, str]) -> list[str]:
    return [item for key, value in options.items() for item in (f"-{key}", value)]


def _given_or_on_path(name: str) -> str | None:
    """``EDN_<NAME>`` when set, else ``name`` on PATH, else None."""
    return os.environ.get(f"EDN_{name.upper()}") or shutil.which(name)


@functools.cache
def ffmpeg_binary() -> str:
    """Path of the ffmpeg executable."""
    found = _given_or_on_path("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - imageio-ffmpeg is a dependency
        raise EdnError("ffmpeg: not found on PATH and imageio-ffmpeg is not installed") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffprobe_binary() -> str:
    """Path of the ffprobe executable."""
    found = _given_or_on_path("ffprobe")
    if found:
        return found
    raise EdnError("ffprobe: not found on PATH; install ffmpeg (Debian: apt-get install ffmpeg)")


class VideoProblem(EdnError):
    """What is wrong with a video file.

    The message names the file; ``reason`` says the problem without it, for a
    caller that names the user's input instead (a URL rather than the file it
    was downloaded to).
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"video {str(path)!r}: {reason}")
        self.reason = reason


class NotAContainer(VideoProblem):
    """A file from a stranger that is no media container (a playlist, a concat list...):
    refused as it is, so downloading it again would not help."""


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


def probe_video(path: str | os.PathLike, *, untrusted: bool = False) -> VideoInfo:
    """Read a video's geometry, frame rate and streams with ffprobe.

    Raises EdnError naming the file when it is missing, empty, not a media file,
    or has no video stream. ``untrusted``: a file from a stranger (a download), read
    only as a media container that opens nothing but itself
    (:func:`untrusted_input_options`); anything else is a :class:`NotAContainer`.
    """
    path = Path(path)
    if not path.exists():
        raise VideoProblem(path, "file not found")
    if path.is_dir():
        raise VideoProblem(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoProblem(path, "file is empty")
    try:
        if untrusted:
            probe = ffmpeg.probe(untrusted_input(path), cmd=ffprobe_binary(), **untrusted_input_options())
        else:
            probe = ffmpeg.probe(str(path), cmd=ffprobe_binary())
    except ffmpeg.Error as error:
        if untrusted and b"Format not on whitelist" in (error.stderr or b""):
            raise _refused_format(path) from None
        reason = _telling_line(error.stderr) or "ffprobe failed"
        raise VideoProblem(path, f"not a readable video ({reason})") from None
    format_names = probe.get("format", {}).get("format_name", "").split(",")
    if untrusted and not set(format_names) & set(CONTAINER_FORMATS):  # the whitelist's own check, repeated
        raise _not_a_container(path, format_names[0])
    streams = probe.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        raise VideoProblem(path, "has no video stream")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    width, height = int(video["width"]), int(video["height"])
    if _rotation_degrees(video) in (90, 270):
        width, height = height, width
    fps = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate"))
    if fps is None:
        raise VideoProblem(path, "frame rate unknown")
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
    reason = _shortfall(got_s=got_s, promised_s=promised_s, frame_s=frame_s, ffmpeg_messages=ffmpeg_messages)
    if reason:
        raise EdnError(f"{what}: {reason}")


def _shortfall(*, got_s: float, promised_s: float, frame_s: float,
               ffmpeg_messages: str | bytes | None = None) -> str | None:
    """The reason :func:`require_complete` gives, or None when nothing is missing."""
    shortfall = promised_s - got_s
    if promised_s <= 0 or shortfall <= max(2 * frame_s, 0.01 * promised_s):
        return None
    telling = _telling_line(ffmpeg_messages)
    return (f"only {got_s:.2f} s of the {promised_s:.2f} s its header promises could be read; "
            f"the file is truncated or damaged" + (f" (ffmpeg: {telling})" if telling else ""))


#: Seconds before the end from which :func:`verify_video` decodes to find the last frame.
TAIL_S = 1.0


def verify_video(path: str | os.PathLike, *, untrusted: bool = False) -> VideoInfo:
    """Check that ``path`` is a whole video before it is trusted (a download, say).

    ffprobe must find a video stream with a frame rate and a duration, its first
    frame must decode, and so must its last: the frames decoded from about
    :data:`TAIL_S` before the end must reach the duration the header promises
    (within :func:`require_complete`'s tolerance). Only frame timestamps come
    back from ffprobe, never pixels, so a 4K video costs no more memory than a
    small one. ``untrusted``: see :func:`probe_video`. Raises :class:`VideoProblem`;
    returns the probe's result.
    """
    info = probe_video(path, untrusted=untrusted)
    if info.duration_s <= 0:
        raise VideoProblem(path, "ffprobe finds no duration for its video stream")
    frame_s = float(1 / info.fps)
    first, messages = _decoded_frames(path, "%+#1", frame_s, untrusted=untrusted)
    if not first:
        telling = _telling_line(messages)
        raise VideoProblem(path, "its first frame does not decode" + (f" (ffmpeg: {telling})" if telling else ""))
    start = first[0][0]
    tail, messages = _decoded_frames(path, f"{start + max(0.0, info.duration_s - TAIL_S):.6f}%", frame_s,
                                     untrusted=untrusted)
    got = max((t + d for t, d in tail), default=start) - start
    if not tail:
        telling = _telling_line(messages)
        raise VideoProblem(path, f"no frame of its last {TAIL_S:g} s decodes; the file is truncated or damaged"
                                 + (f" (ffmpeg: {telling})" if telling else ""))
    reason = _shortfall(got_s=got, promised_s=info.duration_s, frame_s=frame_s, ffmpeg_messages=messages)
    if reason:
        raise VideoProblem(path, f"its last frame does not decode: {reason}")
    return info


def _decoded_frames(path: str | os.PathLike, interval: str, frame_s: float, *,
                    untrusted: bool = False) -> tuple[list[tuple[float, float]], str]:
    """(start, duration) in seconds of each frame of the first video stream that
    decodes within ffprobe's read interval ``interval``, and ffprobe's complaints."""
    import json

    source = [*_as_flags(untrusted_input_options()), untrusted_input(path)] if untrusted else [str(path)]
    command = [ffprobe_binary(), "-v", "error", "-threads", str(VIDEO_THREADS), "-select_streams", "v:0",
               "-read_intervals", interval,
               # pkt_duration_time until FFmpeg 6, duration_time after
               "-show_entries", "frame=best_effort_timestamp_time,pkt_duration_time,duration_time",
               "-of", "json", *source]
    result = subprocess.run(command, capture_output=True, check=False)
    messages = result.stderr.decode("utf-8", "replace").strip()
    try:
        entries = json.loads(result.stdout or b"{}").get("frames", [])
    except ValueError:
        return [], messages
    frames = []
    for entry in entries:
        start = _seconds(entry.get("best_effort_timestamp_time"))
        if start is not None:
            duration = _seconds(entry.get("duration_time")) or _seconds(entry.get("pkt_duration_time")) or frame_s
            frames.append((start, duration))
    return frames, messages


def _seconds(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


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
