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

from edn import atomic
from edn.atomic import atomic_path, write_json, write_text
from edn.decode import decode_video
from edn.frames import load_frames, read_meta
from edn.media import probe_video
from helpers import (DEMO, ROOT, SNAKEMAKE, Completed, ffmpeg, leftovers, make_test_video, run_edn, run_snakemake,
                     write_config)
from training_data import write_subject

# -- test media -------------------------------------------------------------------------


def _make_box_video(path: Path, size: tuple[int, int], *, rotate: int = 0, seconds: float = 1.0) -> Path:
    """A video of ``size`` (coded) on black with a red box off-centre (so a rotation or a
    shift shows), in yuv444p so that odd sizes stay odd; ``rotate`` adds display-matrix
    rotation metadata as phones write it."""
    width, height = size
    box = (f"drawbox=x={width * 15 // 100}:y={height * 20 // 100}:w={width * 20 // 100}:h={height * 15 // 100}"
           f":color=red:t=fill")
    coded = path.with_name(f"coded-{path.name}") if rotate else path
    ffmpeg("-f", "lavfi", "-i", f"color=black:size=64x64:rate=10:duration={seconds}",
           "-vf", f"scale={width}:{height},setsar=1,{box}", "-c:v", "libx264", "-pix_fmt", "yuv444p", coded)
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


def _first_bytes(source: Path, output: Path, fraction: float) -> Path:
    data = source.read_bytes()
    output.write_bytes(data[: int(len(data) * fraction)])
    return output


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Media:
    import torch

    from edn.checkpoint import Checkpoint, save_checkpoint
    from edn.models import build_face_generator, build_generator
    from edn.presets import PRESETS

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

    from edn.keypoints import write_pose_table
    from edn.subject_stats import compute_stats, write_stats
    from synthetic_poses import walking_sequence

    poses = walking_sequence(np.linspace(200, 240, 30), np.linspace(120, 150, 30))
    write_pose_table(d / "poses.parquet", poses)
    write_stats(d / "stats.json", compute_stats(poses, "walker", alpha=0.7))
    return Media(directory=d, empty=d / "empty.mp4", text=d / "notes.mp4", audio_only=d / "tone.mp4",
                 truncated_moov_at_end=d / "cut_moov_at_end.mp4", truncated_moov_at_start=d / "cut_moov_at_start.mp4",
                 nobody_frames=d / "nobody" / "frames.npy", nobody_meta=d / "nobody" / "meta.json",
                 sideways_frames=d / "sideways" / "frames.npy", sideways_meta=d / "sideways" / "meta.json",
                 checkpoint=d / "global.pt", other_preset_face=d / "face_small.pt", labels=subject["labels"],
                 index=subject["index"], poses=d / "poses.parquet", stats=d / "stats.json")


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


@pytest.fixture
def inputs(media: Media, http_server, hanging_url: str) -> Inputs:
    return Inputs(media=media, missing_url=f"{http_server.url}/gone.mp4", hanging_url=hanging_url)


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
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WORKFLOW_CASES))
def test_bad_input_through_snakemake(name: str, inputs: Inputs, tmp_path: Path) -> None:
    case = WORKFLOW_CASES[name](inputs, tmp_path)
    started = time.monotonic()
    result = run_snakemake(tmp_path, case.config, case.target, *(["--dry-run"] if case.dry_run else []))
    elapsed = time.monotonic() - started
    assert result.returncode != 0, result.output[-3000:]
    for fragment in case.says:
        assert fragment in result.output, result.output[-3000:]
    assert not (tmp_path / case.target).exists()
    results = tmp_path / "results"
    if results.exists():  # nothing but logs (and the download cache's lock files)
        assert not leftovers(results)
        assert not [p for p in results.rglob("*") if p.is_file() and "logs" not in p.parts and p.suffix != ".lock"]
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
    from edn.checkpoint import load_checkpoint
    from edn.presets import PRESETS

    data = write_subject(tmp_path / "subject")
    run_dir, output = tmp_path / "run", tmp_path / "global.pt"
    iterations, every = 30, 5
    args = ["train", "--stage", "global", "--frames", data["frames"], "--labels", data["labels"], "--index",
            data["index"], "--perceptual", perceptual_weights, "--output", output, "--run-dir", run_dir,
            "--preset", "tiny", "--iterations", iterations, "--checkpoint-every", every, "--sample-every", 10,
            "--deterministic", "--threads", 1, "--no-progress"]
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
    from edn.media import count_frames

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
