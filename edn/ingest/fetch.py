"""Fetch a subject's video: a local file, an http(s) link or a video-site URL.

The result is one mp4 holding exactly the span the user asked for (start/end
trimming applied, audio kept), which every later stage reads: decoding for the
frames, encoding for the soundtrack. Downloads land in a cache directory that is
not a Snakemake output, so changing the trim never downloads again.

The cache holds one folder per URL, ``<cache>/<hash of the URL>/``: the
downloaded ``video.<ext>`` and, once the download has been checked, a
``complete`` marker recording its size and SHA-256. Nothing broken is reused:

- a download counts only once :func:`edn.ingest.media.verify_video` accepts it (ffprobe
  finds a video stream with a duration, its first and last frames decode);
  otherwise its folder is deleted and the error names the URL and the problem,
  so the next run downloads it again, with no cleaning by hand;
- a cached download is reused only while its size and SHA-256 are those
  recorded; a folder without a marker (a killed download), a marker of an older
  edn that recorded neither (its file is checked again, as a new download) and
  a file that changed are downloaded again.

A download comes from a stranger. ffprobe and ffmpeg read it only as a media
container that holds its own streams and may open no file or address but itself
(:func:`edn.ingest.media.untrusted_input_options`): a playlist, a concat list or an SDP
file served under a video's address, which would make ffmpeg read whatever local
file or address it names, is refused by its format, and the marker's size and
SHA-256 cover every byte that is decoded. A download larger than
``download.max_download_mb`` is stopped while it arrives (an announced size over
the cap before a byte is kept). yt-dlp's and the network's errors are one line
naming the URL.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import ffmpeg

from edn.core.atomic import atomic_path, write_json
from edn.core.checksum import sha256_file
from edn.core.errors import EdnError
from edn.ingest.media import (VIDEO_THREADS, NotAContainer, VideoInfo, VideoProblem, probe_video, require_complete,
                              run_ffmpeg, untrusted_input, untrusted_input_options, verify_video)
from edn.core.options import DownloadOptions

log = logging.getLogger(__name__)

#: Quality of re-encoded video when a trim or container change forces it.
TRANSCODE_CRF = 17
#: The name of the marker of a checked download in its cache folder.
MARKER = "complete"
#: Bytes in a megabyte of ``download.max_download_mb``.
MB = 1000 ** 2


def is_url(source: str) -> bool:
    """True for http(s) links and anything else yt-dlp would be asked to fetch.

    The scheme in any case (``HTTP://`` too: urlparse lowers it); the workflow's
    ``is_url`` (workflow/rules/common.smk) asks the same, so that a subject fetched
    here is never looked for as a local file there.
    """
    return urlparse(source).scheme in ("http", "https")


@dataclass(frozen=True)
class Download:
    """A checked download in the cache: its file, its folder and what ffprobe found."""

    url: str
    file: Path
    folder: Path
    info: VideoInfo


def cache_folder(url: str, cache_dir: str | os.PathLike) -> Path:
    """The folder of ``url``'s download in ``cache_dir``."""
    return Path(cache_dir) / hashlib.sha256(url.encode()).hexdigest()[:20]


def download(url: str, cache_dir: Path, *, timeout_s: float = DownloadOptions.timeout_s,
             max_download_mb: int = DownloadOptions.max_download_mb) -> Download:
    """Download ``url`` with yt-dlp into ``cache_dir`` unless a checked copy is there.

    Direct links to video files and pages of sites yt-dlp supports both work. The
    cache key is the URL, so a second call with the same URL returns at once. Two
    subjects cut from one video are fetched by parallel jobs: a call that finds
    the URL being downloaded waits for that download and reuses it. A download
    over ``max_download_mb`` megabytes (10^6 bytes) is stopped and nothing kept.
    """
    entry = cache_folder(url, cache_dir)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    # The lock goes with the process: a killed download never leaves it held.
    with open(Path(cache_dir) / f"{entry.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _reusable(url, entry)
        if cached is not None:
            return cached
        return _download_into(url, entry, timeout_s=timeout_s, max_download_mb=max_download_mb)


def _reusable(url: str, entry: Path) -> Download | None:
    """The cached download of ``url`` if it is the file that was checked; else None,
    with the folder removed (and why, logged)."""
    marker = entry / MARKER
    if not marker.is_file():
        if entry.exists():  # a download killed before it was checked
            log.info("video URL %r: removing the unfinished download in %s", url, entry)
            shutil.rmtree(entry, ignore_errors=True)
        return None
    text = marker.read_text(errors="replace")
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if isinstance(record, dict):
        problem = _changed(entry, record)
        if problem is None:
            file = entry / record["file"]
            try:
                return Download(url=url, file=file, folder=entry, info=probe_video(file, untrusted=True))
            except VideoProblem as unreadable:  # the same bytes, but this ffprobe disagrees, or a playlist an
                # older edn took for a video
                problem = unreadable.reason
    else:  # an older edn's marker: only the file's name, nothing checked
        checked = _recheck_legacy(url, entry, text.strip())
        if isinstance(checked, Download):
            return checked
        problem = checked
    log.warning("video URL %r: the cached download in %s is not usable (%s); downloading it again", url, entry,
                problem)
    shutil.rmtree(entry, ignore_errors=True)
    return None


def _changed(entry: Path, record: dict) -> str | None:
    """Why the file a marker describes is no longer the one that was checked, or None."""
    name = record.get("file")
    if not isinstance(name, str) or Path(name).name != name or not name:
        return "its marker names no file"
    file = entry / name
    if file.is_symlink() or not file.is_file():
        return f"{name} is missing"
    size = file.stat().st_size
    if size != record.get("bytes"):
        return f"{name} has {size} bytes, not the {record.get('bytes')} that were checked"
    if sha256_file(file) != record.get("sha256"):
        return f"the contents of {name} changed since it was checked"
    return None


def _recheck_legacy(url: str, entry: Path, name: str) -> Download | str:
    """Check the file an older edn's marker names as if just downloaded: on success write
    today's marker and return the download, else return the problem."""
    file = entry / name
    if not name or Path(name).name != name or file.is_symlink() or not file.is_file():
        return f"its marker names no file it holds ({name!r})"
    try:
        info = verify_video(file, untrusted=True)
    except VideoProblem as problem:
        return _describe(file, problem)
    _mark_complete(url, entry, file, info)
    log.info("video URL %r: the download an older edn cached in %s checks out", url, entry)
    return Download(url=url, file=file, folder=entry, info=info)


def _mark_complete(url: str, entry: Path, file: Path, info: VideoInfo) -> None:
    write_json(entry / MARKER, {"url": url, "file": file.name, "bytes": file.stat().st_size,
                                "sha256": sha256_file(file), "duration_s": info.duration_s,
                                "size": [info.width, info.height], "fps": str(info.fps)})


def _describe(file: Path, problem: VideoProblem) -> str:
    """What is wrong with a downloaded file, in words: a web page where a video was expected says so."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    except OSError:
        head = b""
    if head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<") and b"<head" in head):
        return "the server sent a web page (HTML), not a video"
    return problem.reason


def _download_into(url: str, entry: Path, *, timeout_s: float, max_download_mb: int) -> Download:
    """Download ``url`` into the empty directory ``entry``, check it, then mark it complete."""
    import yt_dlp  # heavy import, only when something is downloaded

    shutil.rmtree(entry, ignore_errors=True)
    entry.mkdir(parents=True)
    logger = _YtDlpLogger()
    limit = max_download_mb * MB
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
        "max_filesize": limit,  # yt-dlp refuses an announced size over it; the hook counts what arrives
        "progress_hooks": [_SizeGuard(limit)],
        "logger": logger,
    }
    log.info("downloading %s", url)
    failed = None
    try:
        with yt_dlp.YoutubeDL(options) as downloader:
            downloader.download([url])
    except _TooLarge as error:
        failed = _too_large(error.bytes, max_download_mb, announced=error.announced)
    except (yt_dlp.utils.YoutubeDLError, OSError, http.client.HTTPException) as error:
        # DownloadError, and what yt-dlp lets through unwrapped: RequestError (a redirect to
        # file:// or ftp://), a connection reset, a disk that is full...
        failed = f"download failed ({_download_reason(error, timeout_s)})"
    except BaseException:
        shutil.rmtree(entry, ignore_errors=True)
        raise
    if failed is None and logger.over_size is not None:  # refused by yt-dlp on the announced size
        failed = _too_large(logger.over_size, max_download_mb, announced=True)
    if failed is not None:
        shutil.rmtree(entry, ignore_errors=True)
        raise EdnError(f"video URL {url!r}: {failed}; nothing was kept")
    files = [p for p in entry.iterdir()
             if p.name.startswith("video.") and p.suffix not in (".part", ".ytdl", ".temp")]
    # Only a plain file inside the entry: nothing can point out of the cache folder.
    if len(files) != 1 or files[0].is_symlink() or not files[0].is_file():
        shutil.rmtree(entry, ignore_errors=True)
        raise EdnError(f"video URL {url!r}: download produced no single video file; nothing was kept")
    if files[0].stat().st_size > limit:  # a merge of separate video and audio downloads can exceed it
        shutil.rmtree(entry, ignore_errors=True)
        raise EdnError(f"video URL {url!r}: {_too_large(files[0].stat().st_size, max_download_mb)}; "
                       f"nothing was kept")
    try:
        info = verify_video(files[0], untrusted=True)
    except NotAContainer as problem:
        shutil.rmtree(entry, ignore_errors=True)
        raise EdnError(f"video URL {url!r}: the server sent no video: {_describe(files[0], problem)}; "
                       f"nothing was kept") from None
    except VideoProblem as problem:
        reason = _describe(files[0], problem)
        shutil.rmtree(entry, ignore_errors=True)
        raise EdnError(f"video URL {url!r}: the download is not a whole video: {reason}; it was deleted, "
                       f"so the next run downloads it again") from None
    _mark_complete(url, entry, files[0], info)  # the marker of a checked download: never half-written
    return Download(url=url, file=files[0], folder=entry, info=info)


class _TooLarge(Exception):
    """Raised by :class:`_SizeGuard` inside yt-dlp to stop a download at the cap."""

    def __init__(self, size: int, announced: bool) -> None:
        super().__init__(size)
        self.bytes, self.announced = size, announced


class _SizeGuard:
    """yt-dlp progress hook: stop once the bytes received (over all of a download's files, e.g.
    separate video and audio) or a size the server announces pass ``limit``. A body without a
    Content-Length is cut off here, not after it has filled the disk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received: dict[str, int] = {}

    def __call__(self, status: dict) -> None:
        self.received[str(status.get("filename"))] = int(status.get("downloaded_bytes") or 0)
        total = sum(self.received.values())
        if total > self.limit:
            raise _TooLarge(total, announced=False)
        announced = status.get("total_bytes")
        if announced and int(announced) > self.limit:
            raise _TooLarge(int(announced), announced=True)


def _too_large(size: int, max_download_mb: int, *, announced: bool = False) -> str:
    amount = f"the server announces {size / MB:,.0f} MB" if announced else f"more than {max_download_mb} MB arrived"
    return (f"the download is larger than {max_download_mb} MB ({amount}; the cap: config download.max_download_mb, "
            f"edn fetch --max-download-mb)")


def _download_reason(error: Exception, timeout_s: float) -> str:
    """yt-dlp's error message, in one line, without its prefixes and chained causes."""
    text = " ".join(str(error).replace("\r", " ").split())
    text = re.sub(r"^ERROR:\s*", "", text)
    text = re.sub(r"\s*\(caused by .*\)$", "", text)
    text = re.sub(r"^\[[^\]]+\]\s*(Got error:\s*)?", "", text)  # "[download] Got error:", "[generic]"
    text = re.sub(r"^[^\s:]+: (?=Unable to download)", "", text)  # the extractor's id of the URL
    text = re.sub(r"^Unable to download webpage: ", "", text)
    if "timed out" in text.lower():
        return (f"timed out: the server sent nothing for {timeout_s:g} s (the network timeout: config "
                f"download.timeout_s, edn fetch --timeout-s)")
    elsewhere = re.search(r"(?:No connection adapters were found for|Unsupported url scheme:?)\s*['\"]?([^'\"\s]+)",
                          text, re.IGNORECASE)
    if elsewhere:  # a redirect to file://, ftp://...: only http(s) is followed
        return f"it leads to {elsewhere[1]!r}, and only http and https addresses are followed"
    if text.startswith("Unsupported URL"):
        return "the address serves a web page in which yt-dlp finds no video (Unsupported URL)"
    if re.search(r"bytes read, \d+ more expected", text):
        return f"the server closed the connection early: {text}"
    return text or type(error).__name__


class _YtDlpLogger:
    """Route yt-dlp's chatter to logging; errors come back as DownloadError. Notes the size
    yt-dlp refused a download for (``max_filesize``: it says so, and gives up without an error)."""

    def __init__(self) -> None:
        self.over_size: int | None = None

    def debug(self, message: str) -> None:
        refused = re.search(r"larger than max-filesize \((\d+) bytes", message)
        if refused:
            self.over_size = int(refused[1])
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
    max_download_mb: int = DownloadOptions.max_download_mb,
) -> Path:
    """Materialise ``source`` as ``output`` (an mp4), trimmed to [start_s, end_s).

    Without trimming the streams are copied; with trimming, or when the streams
    cannot go into mp4 as they are, the video is re-encoded (H.264, CRF 17, AAC)
    so that the cut is frame-accurate. The output is written atomically. A
    download is read only as the container it is (see the module docstring).
    """
    output = Path(output)
    cached = (download(source, Path(cache_dir), timeout_s=timeout_s, max_download_mb=max_download_mb)
              if is_url(source) else None)
    what = f"video URL {source!r}" if cached else f"video {source!r}"
    local = cached.file if cached else Path(source)
    info = cached.info if cached else probe_video(local)
    start = start_s or 0.0
    if start < 0:
        raise EdnError(f"{what}: start {start} s is negative")
    if end_s is not None and end_s <= start:
        raise EdnError(f"{what}: end {end_s} s is not after start {start} s")
    if info.duration_s and start >= info.duration_s:
        raise EdnError(f"{what}: start {start} s is past its end ({info.duration_s:.2f} s)")
    trimmed = start > 0 or end_s is not None

    with atomic_path(output) as temporary:
        try:
            if trimmed:
                messages = _transcode(local, temporary, start_s=start, end_s=end_s, what=what, untrusted=bool(cached))
            else:
                try:
                    messages = _copy_streams(local, temporary, what=what, untrusted=bool(cached))
                except EdnError:
                    log.info("stream copy into mp4 failed; re-encoding %s", local)
                    messages = _transcode(local, temporary, start_s=0.0, end_s=None, what=what,
                                          untrusted=bool(cached))
            try:
                result = probe_video(temporary)
            except VideoProblem as problem:  # named after the input, not the temporary
                raise EdnError(f"{what}: its copy cannot be read ({problem.reason})") from None
            if result.duration_s <= 0:
                raise EdnError(f"{what}: the requested span holds no frames")
            # A truncated source copies "successfully" into a shorter video.
            span_end = info.duration_s if end_s is None else min(end_s, info.duration_s)
            require_complete(what, got_s=result.duration_s,
                             promised_s=span_end - start if info.duration_s else 0.0,
                             frame_s=float(1 / info.fps), ffmpeg_messages=messages)
        except EdnError as error:
            if cached is None:
                raise
            raise EdnError(f"{error}{_cache_advice(cached)}") from None
    log.info("fetched %s -> %s (%dx%d, %s fps, %.2f s, audio: %s)", source, output,
             result.width, result.height, result.fps, result.duration_s, result.has_audio)
    return output


def _cache_advice(cached: Download) -> str:
    """What to do about the cached download a failed fetch read: checked again, it is
    removed if it no longer passes; otherwise the user is told which folder to remove."""
    try:
        verify_video(cached.file, untrusted=True)
    except VideoProblem as problem:
        shutil.rmtree(cached.folder, ignore_errors=True)
        return (f"; its cached download in {str(cached.folder)!r} was damaged ({problem.reason}) and has been "
                f"removed: rerun to download it again")
    return f"; if the download itself is damaged, remove {str(cached.folder)!r} to download it again"


def _first_video_and_audio(video: ffmpeg.nodes.InputNode) -> tuple:
    """The first video stream and, when there is one, the first audio stream."""
    return video["v:0"], video["a:0?"]


def _input(source: Path, untrusted: bool, **options) -> ffmpeg.nodes.InputNode:
    """ffmpeg's input: a download opens nothing but itself, read only as a container."""
    if untrusted:
        return ffmpeg.input(untrusted_input(source), **untrusted_input_options(), **options)
    return ffmpeg.input(str(source), **options)


def _copy_streams(source: Path, output: Path, *, what: str, untrusted: bool = False) -> str:
    """Copy the streams into mp4; returns ffmpeg's complaints (see run_ffmpeg)."""
    video = _input(source, untrusted)
    stream = ffmpeg.output(*_first_video_and_audio(video), str(output),
                           c="copy", movflags="+faststart", f="mp4")
    return run_ffmpeg(stream, what=what)


def _transcode(source: Path, output: Path, *, start_s: float, end_s: float | None, what: str,
               untrusted: bool = False) -> str:
    """Re-encode [start_s, end_s) as H.264/AAC mp4; returns ffmpeg's complaints (see run_ffmpeg)."""
    input_options = {"threads": VIDEO_THREADS, **({"ss": f"{start_s:.6f}"} if start_s > 0 else {})}
    output_options = {"t": f"{end_s - start_s:.6f}"} if end_s is not None else {}
    video = _input(source, untrusted, **input_options)
    stream = ffmpeg.output(
        *_first_video_and_audio(video), str(output),
        # yuv420p needs even sizes: pad an odd row or column rather than resample.
        vf="pad=ceil(iw/2)*2:ceil(ih/2)*2",
        vcodec="libx264", crf=TRANSCODE_CRF, preset="veryfast",
        pix_fmt="yuv420p", acodec="aac", audio_bitrate="192k", movflags="+faststart", f="mp4", threads=VIDEO_THREADS,
        **output_options,
    )
    return run_ffmpeg(stream, what=what)
