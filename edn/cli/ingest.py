"""``edn fetch`` and ``edn decode``: from a video reference to working frames."""

from __future__ import annotations

import argparse

from edn.core.errors import EdnError
from edn.core.options import DownloadOptions, FrameOptions, add_arguments, from_arguments

#: Latest span start or end, in seconds (the config schema's maximum for subjects' start and end).
MAX_SPAN_S = 1_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    fetch = subparsers.add_parser(
        "fetch", help="copy or download a subject's video, trimmed to the requested span",
        description="Materialise a local video file, an http(s) link or a video-site URL as one mp4, "
                    "optionally trimmed. Downloads are cached and never repeated.")
    fetch.add_argument("--source", required=True, help="local path, http(s) link or video-site URL")
    fetch.add_argument("--output", required=True, help="mp4 to write")
    fetch.add_argument("--start", type=float, default=None, metavar="SECONDS", help="start of the span")
    fetch.add_argument("--end", type=float, default=None, metavar="SECONDS", help="end of the span")
    fetch.add_argument("--cache-dir", default="results/cache/downloads", help="where downloads are kept")
    add_arguments(fetch, DownloadOptions)
    fetch.set_defaults(handler=_fetch)

    decode = subparsers.add_parser(
        "decode", help="decode a video into working frames (frames.npy + meta.json)",
        description="Decode a video at a constant frame rate into uint8 RGB frames of the working size, "
                    "keeping the aspect ratio by padding or cropping, and record the pixel transform.")
    decode.add_argument("--video", required=True, help="video file to decode")
    decode.add_argument("--frames", required=True, help="frames .npy to write")
    decode.add_argument("--meta", required=True, help="meta.json to write")
    add_arguments(decode, FrameOptions)
    decode.set_defaults(handler=_decode)


def _fetch(args: argparse.Namespace) -> None:
    from edn.ingest.fetch import fetch_video

    options = from_arguments(DownloadOptions, args)
    for name in ("start", "end"):  # nan passes every comparison ffmpeg's caller makes
        value = getattr(args, name)
        if value is not None and not 0 <= value <= MAX_SPAN_S:
            raise EdnError(f"option {name} {value!r}: must be from 0 to {MAX_SPAN_S} seconds")
    fetch_video(args.source, args.output, start_s=args.start, end_s=args.end, cache_dir=args.cache_dir,
                timeout_s=options.timeout_s, max_download_mb=options.max_download_mb)


def _decode(args: argparse.Namespace) -> None:
    from edn.ingest.decode import decode_video, parse_fps

    options = from_arguments(FrameOptions, args)
    decode_video(args.video, args.frames, args.meta, working_size=(options.width, options.height),
                 fps=parse_fps(options.fps), fit=options.fit,
                 orientation=options.orientation)
