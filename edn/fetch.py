"""Fetch a subject's video: a local file, an http(s) link or a video-site URL.

The result is one mp4 holding exactly the span the user asked for (start/end
trimming applied, audio kept), which every later stage reads: decoding for the
frames, encoding for the soundtrack. Downloads land in a cache directory that is
not a Snakemake output, so changing the trim never downloads again.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import ffmpeg

from edn.atomic import atomic_path, write_text
from edn.errors import EdnError
from edn.media import probe_video, require_complete, run_ffmpeg
from edn.options import DownloadOptions

log = logging.getLogger(__name__)

#: Quality of re-encoded video when a trim or container change forces it.
TRANSCODE_CRF = 17


def is_url(source: str) -> bool:
    """True for http(s) links and anything else yt-dlp would be asked to fetch."""
    return urlparse(source).scheme in ("http", "https")


def download(url: str, cache_dir: Path, *, timeout_s: float = 60.0) -> Path:
    """Download ``url`` with yt-dlp into ``cache_dir`` unless it is already there.

    Direct links to video files and pages of sites yt-dlp supports both work. The
    cache key is the URL, so a second call with the same URL returns at once. Two
    subjects cut from one video are fetched by parallel jobs: a call that finds
    the URL being downloaded waits for that download and reuses it.
    """
    entry = cache_dir / hashlib.sha256(url.encode()).hexdigest()[:20]
    done = entry / "complete"
    if done.exists():
        return entry / done.read_text().strip()
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The lock goes with the process: a killed download never leaves it held.
    with open(cache_dir / f"{entry.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return entry / done.read_text().strip()
        return _download_into(url, entry, timeout_s=timeout_s)


def _download_into(url: str, entry: Path, *, timeout_s: float) -> Path:
    """Download ``url`` into the empty directory ``entry``; mark it complete at the end."""
    import yt_dlp  # heavy import, only when something is downloaded

    done = entry / "complete"
    shutil.rmtree(entry, ignore_errors=True)
    entry.mkdir(parents=True)
    options = {
        "outtmpl": str(entry / "video.%(ext)s"),
        "format": "bestvideo[ext=mp4]+bestaudio[ext=m4a]/best[ext=mp4]/best",
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": timeout_s,
        "retries": 1,
        "fragment_retries": 1,
        "extractor_retries": 0,
        "logger": _YtDlpLogger(),
    }
    log.info("downloading %s", url)
    try:
        with yt_dlp.YoutubeDL(options) as downloader:
            downloader.download([url])
    except yt_dlp.utils.DownloadError as error:
        shutil.rmtree(entry, ignore_errors=True)
        reason = str(error).replace("ERROR: ", "").splitlines()[0]
        raise EdnError(f"video URL {url!r}: download failed ({reason})") from None
    except BaseException:
        shutil.rmtree(entry, ignore_errors=True)
        raise
    files = [p for p in entry.iterdir() if p.name.startswith("video.") and not p.name.endswith(".part")]
    if len(files) != 1:
        shutil.rmtree(entry, ignore_errors=True)
        raise EdnError(f"video URL {url!r}: download produced no single video file")
    write_text(done, files[0].name)  # the marker of a complete download: never half-written
    return files[0]


class _YtDlpLogger:
    """Route yt-dlp's chatter to logging; errors come back as DownloadError."""

    def debug(self, message: str) -> None:
        log.debug(message)

    def info(self, message: str) -> None:
        log.debug(message)

    def warning(self, message: str) -> None:
        log.warning(message)

    def error(self, message: str) -> None:
        log.debug(message)


def fetch_video(
    source: str,
    output: str | os.PathLike,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    cache_dir: str | os.PathLike = "results/cache/downloads",
    timeout_s: float = DownloadOptions.timeout_s,
) -> Path:
    """Materialise ``source`` as ``output`` (an mp4), trimmed to [start_s, end_s).

    Without trimming the streams are copied; with trimming, or when the streams
    cannot go into mp4 as they are, the video is re-encoded (H.264, CRF 17, AAC)
    so that the cut is frame-accurate. The output is written atomically.
    """
    output = Path(output)
    if is_url(source):
        local = download(source, Path(cache_dir), timeout_s=timeout_s)
    else:
        local = Path(source)
    info = probe_video(local)
    start = start_s or 0.0
    if start < 0:
        raise EdnError(f"video {source!r}: start {start} s is negative")
    if end_s is not None and end_s <= start:
        raise EdnError(f"video {source!r}: end {end_s} s is not after start {start} s")
    if info.duration_s and start >= info.duration_s:
        raise EdnError(f"video {source!r}: start {start} s is past its end ({info.duration_s:.2f} s)")
    trimmed = start > 0 or end_s is not None

    with atomic_path(output) as temporary:
        if trimmed:
            messages = _transcode(local, temporary, start_s=start, end_s=end_s, what=f"video {source!r}")
        else:
            try:
                messages = _copy_streams(local, temporary, what=f"video {source!r}")
            except EdnError:
                log.info("stream copy into mp4 failed; re-encoding %s", local)
                messages = _transcode(local, temporary, start_s=0.0, end_s=None, what=f"video {source!r}")
        result = probe_video(temporary)
        if result.duration_s <= 0:
            raise EdnError(f"video {source!r}: the requested span holds no frames")
        # A truncated source copies "successfully" into a shorter video.
        span_end = info.duration_s if end_s is None else min(end_s, info.duration_s)
        require_complete(f"video {source!r}", got_s=result.duration_s,
                         promised_s=span_end - start if info.duration_s else 0.0,
                         frame_s=float(1 / info.fps), ffmpeg_messages=messages)
    log.info("fetched %s -> %s (%dx%d, %s fps, %.2f s, audio: %s)", source, output,
             result.width, result.height, result.fps, result.duration_s, result.has_audio)
    return output


def _first_video_and_audio(video: ffmpeg.nodes.InputNode) -> tuple:
    """The first video stream and, when there is one, the first audio stream."""
    return video["v:0"], video["a:0?"]


def _copy_streams(source: Path, output: Path, *, what: str) -> str:
    """Copy the streams into mp4; returns ffmpeg's complaints (see run_ffmpeg)."""
    video = ffmpeg.input(str(source))
    stream = ffmpeg.output(*_first_video_and_audio(video), str(output),
                           c="copy", movflags="+faststart", f="mp4")
    return run_ffmpeg(stream, what=what)


def _transcode(source: Path, output: Path, *, start_s: float, end_s: float | None, what: str) -> str:
    """Re-encode [start_s, end_s) as H.264/AAC mp4; returns ffmpeg's complaints (see run_ffmpeg)."""
    input_options = {"ss": f"{start_s:.6f}"} if start_s > 0 else {}
    output_options = {"t": f"{end_s - start_s:.6f}"} if end_s is not None else {}
    video = ffmpeg.input(str(source), **input_options)
    stream = ffmpeg.output(
        *_first_video_and_audio(video), str(output),
        # yuv420p needs even sizes: pad an odd row or column rather than resample.
        vf="pad=ceil(iw/2)*2:ceil(ih/2)*2",
        vcodec="libx264", crf=TRANSCODE_CRF, preset="veryfast",
        pix_fmt="yuv420p", acodec="aac", audio_bitrate="192k", movflags="+faststart", f="mp4",
        **output_options,
    )
    return run_ffmpeg(stream, what=what)
