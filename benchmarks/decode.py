"""Decode speed: frames/s of ``edn decode`` on the shipped demo videos, and of ffmpeg doing the same work alone.

``edn decode`` runs ffmpeg (decode, resample to the working size, pad, RGB) and
copies its frames into ``frames.npy``. The reference is the same ffmpeg command
writing to /dev/null: what decoding costs without edn's side (probe, pipe,
copy, checks).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from benchmarks.timing import DEMO, best_seconds
from edn.ingest.decode import _filter_graph, decode_video
from edn.ingest.frames import fit_geometry
from edn.ingest.media import ffmpeg_binary, probe_video


def _videos(names: tuple[str, ...]) -> list[Path]:
    return [DEMO / f"{name}.mp4" for name in names]


def edn_frames_per_second(videos: tuple[str, ...], size: tuple[int, int], repeats: int) -> float:
    """Frames/s of ``edn decode`` over the demo ``videos`` (names without .mp4) to
    ``size`` (width, height): all frames over the fastest run of each video."""
    frames, seconds = 0, 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for video in _videos(videos):
            def decode(video: Path = video) -> None:
                decode_video(video, Path(scratch) / "frames.npy", Path(scratch) / "meta.json", working_size=size)
            seconds += best_seconds(decode, repeats)
            frames += probe_video(video).frame_count
    return frames / seconds


def ffmpeg_frames_per_second(videos: tuple[str, ...], size: tuple[int, int], repeats: int) -> float:
    """Frames/s of ffmpeg alone running ``edn decode``'s filter graph into /dev/null."""
    frames, seconds = 0, 0.0
    for video in _videos(videos):
        info = probe_video(video)
        command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(video),
                   "-map", "0:v:0", "-an", "-sn", "-vf", _filter_graph(fit_geometry(info.size, size, "pad"), info.fps),
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", "/dev/null"]
        seconds += best_seconds(lambda command=command: subprocess.run(command, check=True), repeats)
        frames += info.frame_count
    return frames / seconds
