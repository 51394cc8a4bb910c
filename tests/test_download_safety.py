"""Downloads from a hostile or careless server, through the real CLI and a real loopback server:
playlists and other files that name further files are refused by the format ffprobe finds, a
download larger than ``download.max_download_mb`` is stopped while it arrives, and a redirect
to a ``file://`` or ``ftp://`` address is one error line, never a traceback."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edn.ingest.media import count_frames
from helpers import DEMO, ffmpeg, run_edn, send_head
from test_fetch import _assert_clean_failure

#: What the endless and the huge bodies send at most before the server gives up by itself.
BODY_LIMIT = 48 * 1024 * 1024


@dataclass
class Served:
    """What the server sends, per path, and what it saw."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (body, content type)
    requests: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # bytes of a streamed body written, per path


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served: Served

    def log_message(self, format: str, *args: object) -> None:
        pass

    _head = send_head

    def do_HEAD(self) -> None:
        self.do_GET(body=False)

    def _stream(self, path: str) -> None:
        """Zeros until the client hangs up or BODY_LIMIT is reached; counts what was written."""
        block = bytes(64 * 1024)
        self.served.sent[path] = 0
        try:
            while self.served.sent[path] < BODY_LIMIT:
                self.wfile.write(block)
                self.served.sent[path] += len(block)
        except OSError:
            pass

    def do_GET(self, body: bool = True) -> None:
        path = self.path.split("?")[0]
        self.served.requests.append(path)
        if path in self.served.files:
            data, content_type = self.served.files[path]
            self._head(200, len(data), content_type)
            if body:
                self.wfile.write(data)
        elif path == "/endless.mp4":  # no Content-Length: the body ends when the connection does
            self._head(200, None)
            if body:
                self._stream(path)
        elif path == "/huge.mp4":  # announces 10 GB
            self._head(200, 10 * 1000**3)
            if body:
                self._stream(path)
        elif path == "/to-file.mp4":
            self._head(302, 0, "text/plain", Location="file:///etc/passwd")
        elif path == "/to-ftp.mp4":
            self._head(302, 0, "text/plain", Location="ftp://127.0.0.1:9/dance.mp4")
        else:
            self._head(404, 0, "text/plain")


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass


@dataclass
class Server:
    url: str
    served: Served


@pytest.fixture
def server() -> Iterator[Server]:
    served = Served()
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", served)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def private_video(tmp_path_factory) -> Path:
    """A local video of the user's that a download must never read: 3 s at 25 fps, a keyframe
    every 12 frames, its index at the front (so that read through a playlist it decodes from
    any point, and the check of the last second cannot reject the playlist by luck)."""
    path = tmp_path_factory.mktemp("private") / "private.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3", "-c:v", "libx264", "-g", "12",
           "-pix_fmt", "yuv420p", "-movflags", "+faststart", path)
    return path


def _playlist(entry: str, seconds: float = 3.0) -> bytes:
    """A one-entry HLS playlist whose #EXTINF is the entry's whole duration."""
    return (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{int(seconds)}\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:{seconds:.6f},\n{entry}\n#EXT-X-ENDLIST\n").encode()


def _cached_files(cache: Path) -> list[Path]:
    """Files kept in the download cache (the empty per-URL lock files aside)."""
    return [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"] if cache.exists() else []


def _assert_refused(result, output: Path, cache: Path, *expected: str) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    _assert_clean_failure(result, output, *expected)
    assert _cached_files(cache) == []
    return result.error_lines[0]


@pytest.mark.parametrize("entry", ["absolute path", "path out of the cache folder", "address on the server"])
def test_a_playlist_served_as_a_video_is_refused_and_nothing_is_cached(
        entry: str, server: Server, private_video: Path, tmp_path: Path) -> None:
    """The server answers a .mp4 address with an HLS playlist (as video/mp4) whose entry is one of
    the user's files, or another address. Before, ffprobe and ffmpeg followed the entry and the
    "download" was the user's file; now the playlist is refused by its format and no entry is
    opened (the server never sees a request for it)."""
    cache = tmp_path / "cache"
    shutil.copy(private_video, tmp_path / "private.mp4")
    server.served.files["/private.mp4"] = (private_video.read_bytes(), "video/mp4")
    target = {"absolute path": str(private_video),
              "path out of the cache folder": "../../private.mp4",  # from cache/<hash of the URL>/
              "address on the server": f"{server.url}/private.mp4"}[entry]
    server.served.files["/dance.mp4"] = (_playlist(target), "video/mp4")
    url = f"{server.url}/dance.mp4"
    output = tmp_path / "videos" / "dance.mp4"
    result = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", cache)
    line = _assert_refused(result, output, cache, f"video URL '{url}'", "HLS playlist", "'hls'", "nothing was kept")
    assert "private" not in line
    assert "/private.mp4" not in server.served.requests


@pytest.mark.parametrize("kind", ["concat list", "SDP session description"])
def test_other_files_that_name_further_files_are_refused(kind: str, server: Server, private_video: Path,
                                                          tmp_path: Path) -> None:
    body = {"concat list": f"ffconcat version 1.0\nfile '{private_video}'\n",
            "SDP session description": "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=dance\nc=IN IP4 127.0.0.1\nt=0 0\n"
                                       "m=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n"}[kind]
    server.served.files["/dance.mp4"] = (body.encode(), "video/mp4")
    url, cache = f"{server.url}/dance.mp4", tmp_path / "cache"
    output = tmp_path / "videos" / "dance.mp4"
    result = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", cache, timeout=120)
    _assert_refused(result, output, cache, f"video URL '{url}'", kind, "nothing was kept")


def test_a_playlist_an_older_edn_cached_is_downloaded_again(server: Server, private_video: Path,
                                                            tmp_path: Path) -> None:
    """An older edn cached the playlist and marked it complete with the playlist's own size and
    SHA-256: its marker did not cover what was decoded. Now the cached file is read only as a
    container, so it is not reused: the URL is downloaded again."""
    import hashlib

    from edn.ingest.fetch import cache_folder

    url, cache = f"{server.url}/dance.mp4", tmp_path / "cache"
    entry = cache_folder(url, cache)
    entry.mkdir(parents=True)
    playlist = _playlist(str(private_video))
    (entry / "video.mp4").write_bytes(playlist)
    (entry / "complete").write_text(json.dumps({
        "url": url, "file": "video.mp4", "bytes": len(playlist), "sha256": hashlib.sha256(playlist).hexdigest(),
        "duration_s": 3.0, "size": [320, 240], "fps": "25"}))
    server.served.files["/dance.mp4"] = ((DEMO / "source_dancer.mp4").read_bytes(), "video/mp4")
    output = tmp_path / "videos" / "dance.mp4"
    result = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", cache)
    assert result.returncode == 0, result.stderr
    assert "is not usable" in result.stderr and "HLS playlist" in result.stderr
    assert "/dance.mp4" in server.served.requests
    assert count_frames(output) == 102  # the dancer, not the user's 75-frame video
    assert (entry / "video.mp4").read_bytes() == (DEMO / "source_dancer.mp4").read_bytes()


@pytest.mark.parametrize("path", ["/endless.mp4", "/huge.mp4"], ids=["endless body", "announces 10 GB"])
def test_a_download_over_the_size_cap_is_stopped_while_it_arrives(path: str, server: Server,
                                                                  tmp_path: Path) -> None:
    url, cache = f"{server.url}{path}", tmp_path / "cache"
    output = tmp_path / "videos" / "dance.mp4"
    result = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", cache,
                     "--max-download-mb", "2", timeout=120)
    _assert_refused(result, output, cache, f"video URL '{url}'", "larger than 2 MB", "max_download_mb",
                    "nothing was kept")
    # Stopped at the cap, not at the end of the body: the server could not write all it had.
    assert server.served.sent.get(path, 0) < BODY_LIMIT


def test_a_download_under_the_size_cap_is_kept(server: Server, tmp_path: Path) -> None:
    server.served.files["/dance.mp4"] = ((DEMO / "source_dancer.mp4").read_bytes(), "video/mp4")
    url = f"{server.url}/dance.mp4"
    output = tmp_path / "videos" / "dance.mp4"
    result = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", tmp_path / "cache",
                     "--max-download-mb", "2")  # the dancer is 0.6 MB
    assert result.returncode == 0, result.stderr
    assert count_frames(output) == 102


@pytest.mark.parametrize("value, problem", [("0", "must be at least 1"), ("-5", "must be at least 1"),
                                            ("10000000000", "must be at most")])
def test_a_size_cap_out_of_range_is_refused_before_anything_is_downloaded(value: str, problem: str, server: Server,
                                                                          tmp_path: Path) -> None:
    result = run_edn("fetch", "--source", f"{server.url}/dance.mp4", "--output", tmp_path / "a.mp4",
                     "--cache-dir", tmp_path / "cache", "--max-download-mb", value)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    assert result.error_lines[0].startswith(f"edn fetch: error: option max_download_mb {value}: {problem}")
    assert server.served.requests == []


@pytest.mark.parametrize("path, scheme", [("/to-file.mp4", "file://"), ("/to-ftp.mp4", "ftp://")])
def test_a_redirect_to_another_scheme_is_one_line_in_the_log(path: str, scheme: str, server: Server,
                                                             tmp_path: Path) -> None:
    url, cache = f"{server.url}{path}", tmp_path / "cache"
    output, log = tmp_path / "videos" / "dance.mp4", tmp_path / "logs" / "fetch.log"
    result = run_edn("--log", log, "fetch", "--source", url, "--output", output, "--cache-dir", cache)
    line = _assert_refused(result, output, cache, f"video URL '{url}'", scheme, "download failed")
    text = log.read_text()
    assert "Traceback" not in text
    assert [row for row in text.splitlines() if ": error: " in row] == [line]
