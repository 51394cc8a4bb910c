"""edn fetch: local files and downloads from a real loopback HTTP server, trimming, caching, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edn.media import count_frames, probe_video
from helpers import ffmpeg, leftovers, make_test_video, run_edn


def test_local_video_is_copied_whole(demo_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "videos" / "dancer.mp4"
    result = run_edn("fetch", "--source", demo_dir / "source_dancer.mp4", "--output", output)
    assert result.returncode == 0, result.stderr
    assert count_frames(output) == count_frames(demo_dir / "source_dancer.mp4") == 102
    assert probe_video(output).size == (600, 600)


def test_local_video_is_trimmed_to_the_span(tmp_path: Path) -> None:
    source = make_test_video(tmp_path / "in.mp4", fps=25, seconds=4.0, audio=True)
    output = tmp_path / "out.mp4"
    result = run_edn("fetch", "--source", source, "--output", output, "--start", "1", "--end", "2.5")
    assert result.returncode == 0, result.stderr
    info = probe_video(output)
    assert count_frames(output) == 38  # 1.5 s at 25 fps, rounded up by the encoder's last frame
    assert info.has_audio
    assert info.audio_duration_s == pytest.approx(1.5, abs=0.05)


def test_download_with_trim_from_loopback_server(http_server, demo_dir: Path, tmp_path: Path) -> None:
    shutil.copy(demo_dir / "source_dancer.mp4", http_server.directory / "dancer.mp4")
    url = f"{http_server.url}/dancer.mp4"
    output = tmp_path / "results" / "videos" / "dancer.mp4"
    cache = tmp_path / "cache"
    result = run_edn("fetch", "--source", url, "--output", output, "--start", "1", "--end", "3",
                     "--cache-dir", cache)
    assert result.returncode == 0, result.stderr
    assert count_frames(output) == 40  # 2 s at 20 fps
    assert any(path.endswith("/dancer.mp4") for path in http_server.requests)


def test_download_is_cached_and_not_repeated(http_server, demo_dir: Path, tmp_path: Path) -> None:
    shutil.copy(demo_dir / "source_dancer.mp4", http_server.directory / "dancer.mp4")
    url = f"{http_server.url}/dancer.mp4"
    cache = tmp_path / "cache"
    first = run_edn("fetch", "--source", url, "--output", tmp_path / "a.mp4", "--cache-dir", cache)
    assert first.returncode == 0, first.stderr
    served = len(http_server.requests)
    assert served >= 1
    # A different trim of the same URL is cut from the cached download.
    second = run_edn("fetch", "--source", url, "--output", tmp_path / "b.mp4", "--cache-dir", cache,
                     "--end", "1")
    assert second.returncode == 0, second.stderr
    assert len(http_server.requests) == served
    assert count_frames(tmp_path / "b.mp4") == 20


def _assert_clean_failure(result, output: Path, *expected: str) -> None:
    assert result.returncode != 0
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    for word in expected:
        assert word in line, line
    assert not output.exists()
    assert not leftovers(output.parent) if output.parent.exists() else True


def test_missing_file(tmp_path: Path) -> None:
    output = tmp_path / "out" / "x.mp4"
    result = run_edn("fetch", "--source", tmp_path / "nope.mp4", "--output", output)
    _assert_clean_failure(result, output, "nope.mp4", "not found")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    output = tmp_path / "out" / "x.mp4"
    result = run_edn("fetch", "--source", tmp_path / "empty.mp4", "--output", output)
    _assert_clean_failure(result, output, "empty.mp4", "empty")


def test_text_file_named_mp4(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("this is not a video\n")
    output = tmp_path / "out" / "x.mp4"
    result = run_edn("fetch", "--source", tmp_path / "notes.mp4", "--output", output)
    _assert_clean_failure(result, output, "notes.mp4", "not a readable video")


def test_file_without_video_stream(tmp_path: Path) -> None:
    audio_only = tmp_path / "tone.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", audio_only)
    output = tmp_path / "out" / "x.mp4"
    result = run_edn("fetch", "--source", audio_only, "--output", output)
    _assert_clean_failure(result, output, "tone.mp4", "no video stream")


def test_url_that_returns_404(http_server, tmp_path: Path) -> None:
    output = tmp_path / "out" / "x.mp4"
    result = run_edn("fetch", "--source", f"{http_server.url}/missing.mp4", "--output", output,
                     "--cache-dir", tmp_path / "cache")
    _assert_clean_failure(result, output, "missing.mp4", "404")
    assert not any((tmp_path / "cache").rglob("*.mp4"))


def test_span_past_the_end(demo_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "x.mp4"
    result = run_edn("fetch", "--source", demo_dir / "source_dancer.mp4", "--output", output,
                     "--start", "60")
    _assert_clean_failure(result, output, "source_dancer.mp4", "past its end")
