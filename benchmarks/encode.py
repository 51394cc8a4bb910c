"""Encode speed: frames/s of ``edn encode`` (H.264, the transfer video), and of ffmpeg doing the same work alone.

The frames are a demo video's decoded working frames standing in for
synthesized ones (the encoder's speed depends on the picture, not on where it
came from). ``edn encode`` memory-maps them and pipes them to ffmpeg; the
reference is ffmpeg reading the same frames from a raw file itself, with the
same codec settings (:func:`edn.ingest.media.h264_options`, CRF 18 as ``edn encode``).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.timing import DEMO, best_seconds
from edn.ingest.decode import decode_video
from edn.transfer.encode import encode_transfer
from edn.ingest.frames import FrameMeta
from edn.ingest.media import ffmpeg_binary, h264_options


def _decoded(video: str, size: tuple[int, int], scratch: str) -> tuple[Path, FrameMeta]:
    frames = Path(scratch) / "frames.npy"
    return frames, decode_video(DEMO / f"{video}.mp4", frames, Path(scratch) / "meta.json", working_size=size)


def edn_frames_per_second(video: str, size: tuple[int, int], repeats: int) -> float:
    """Frames/s of ``edn encode`` of the demo ``video``'s frames decoded to ``size`` (width, height)."""
    with tempfile.TemporaryDirectory() as scratch:
        frames, meta = _decoded(video, size, scratch)
        seconds = best_seconds(lambda: encode_transfer(frames, meta, Path(scratch) / "out.mp4",
                                                       audio_from=DEMO / f"{video}.mp4"), repeats)
    return meta.frame_count / seconds


def ffmpeg_frames_per_second(video: str, size: tuple[int, int], repeats: int) -> float:
    """Frames/s of ffmpeg alone encoding the same frames from a raw RGB file."""
    with tempfile.TemporaryDirectory() as scratch:
        frames, meta = _decoded(video, size, scratch)
        raw = Path(scratch) / "frames.rgb"
        np.load(frames, mmap_mode="r").tofile(raw)
        width, height = size
        command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", meta.fps, "-i", str(raw),
                   *h264_options(crf=18), "-f", "mp4", str(Path(scratch) / "out.mp4")]
        seconds = best_seconds(lambda: subprocess.run(command, check=True), repeats)
    return meta.frame_count / seconds
