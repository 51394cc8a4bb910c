"""Reliability of the transfer stage: a source and a target decoded at different frame
rates (the transfer keeps the source's rate, span and sound), and synthesis and encoding
killed at seeded points, then rerun to the same frames and video.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from edn.ingest.frames import read_meta
from edn.ingest.media import probe_video
from helpers import DEMO, ffmpeg, run_edn
from reliability_support import (KILLS, Media, frames_of, pose_chain, same_bytes,
                                 stage_kill_test, train_args, video_stream_duration)
from training_data import write_subject


@pytest.mark.slow
def test_a_source_and_a_target_decoded_at_different_frame_rates(tmp_path: Path, perceptual_weights: Path) -> None:
    """The dancer (20 fps, with a soundtrack) onto the juggler (24 fps): the transfer has
    one frame per source frame, at the source's rate, as long as the source's span and its
    sound; the target's rate only shapes its training."""
    source_video = tmp_path / "dancer_with_tone.mp4"
    ffmpeg("-i", DEMO / "source_dancer.mp4", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=6",
           "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest", source_video)
    source = pose_chain(source_video, tmp_path / "source", "--end", "1.5")
    target = pose_chain(DEMO / "target_juggler.mp4", tmp_path / "target", "--end", "1")
    assert (read_meta(source["meta"]).fps_value, read_meta(target["meta"]).fps_value) == (20, 24)
    model, transfer = tmp_path / "model", tmp_path / "transfer"
    for args in (train_args(target, model, perceptual_weights, iterations=2),
                 ("normalize", "--source-poses", source["poses"], "--source-stats", source["stats"],
                  "--target-stats", target["stats"], "--output", transfer / "poses.parquet"),
                 ("render", "--poses", transfer / "poses.parquet", "--labels", transfer / "labels.npy",
                  "--index", transfer / "index.csv"),
                 ("synthesize", "--labels", transfer / "labels.npy", "--index", transfer / "index.csv",
                  "--generator", model / "global.pt", "--output", transfer / "frames.npy", "--threads", 1),
                 ("encode", "--frames", transfer / "frames.npy", "--source-meta", source["meta"], "--source-video",
                  source["video"], "--output", tmp_path / "transfer.mp4"),
                 ("compare", "--source-frames", source["frames"], "--labels", transfer / "labels.npy", "--frames",
                  transfer / "frames.npy", "--source-meta", source["meta"], "--source-video", source["video"],
                  "--output", tmp_path / "compare.mp4")):
        result = run_edn(*args)
        assert result.returncode == 0, result.stderr[-3000:]
    for video in (tmp_path / "transfer.mp4", tmp_path / "compare.mp4"):
        info = probe_video(video)
        assert info.fps == 20 and frames_of(video) == 30, video
        assert video_stream_duration(video) == Fraction(3, 2)
        assert info.has_audio and info.audio_duration_s == pytest.approx(1.5, abs=0.05)


# -- synthesis and encoding killed and rerun ---------------------------------------------------


@pytest.fixture(scope="module")
def long_labels(tmp_path_factory) -> dict[str, Path]:
    """240 frames of synthetic labels, long enough to kill their synthesis halfway."""
    return write_subject(tmp_path_factory.mktemp("long_labels"), frames=240, size=(128, 64))


@pytest.mark.slow
@pytest.mark.parametrize("kill", list(KILLS))
def test_killed_synthesis_reruns_to_the_same_frames(media: Media, long_labels: dict[str, Path], kill_references,
                                                    tmp_path: Path, kill: str) -> None:
    labels = long_labels

    def make_args(out: Path) -> tuple[list, list[Path]]:
        return (["synthesize", "--labels", labels["labels"], "--index", labels["index"], "--generator",
                 media.checkpoint, "--output", out / "frames.npy", "--precision", "fp32", "--threads", 1],
                [out / "frames.npy"])

    stage_kill_test(tmp_path, "synthesize", kill, make_args, same_bytes("frames.npy"), points=1,
                    references=kill_references)


def _decoded(video: Path) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, check=True).stdout


@pytest.mark.slow
@pytest.mark.parametrize("kill", list(KILLS))
def test_killed_encoding_reruns_to_the_same_video(clip, kill_references, tmp_path: Path, kill: str) -> None:
    def make_args(out: Path) -> tuple[list, list[Path]]:
        return (["encode", "--frames", clip["frames"], "--source-meta", clip["meta"], "--source-video",
                 clip["video"], "--output", out / "transfer.mp4"], [out / "transfer.mp4"])

    def same(reference: Path, run: Path) -> None:
        assert _decoded(run / "transfer.mp4") == _decoded(reference / "transfer.mp4")
        assert probe_video(run / "transfer.mp4").has_audio

    stage_kill_test(tmp_path, "encode", kill, make_args, same, points=2, references=kill_references)
