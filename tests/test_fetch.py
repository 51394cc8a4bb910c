"""edn fetch: local files and downloads from a real loopback HTTP server, trimming, caching, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from edn.ingest.media import count_frames, probe_video
from helpers import DEMO, ffmpeg, leftovers, make_test_video, run_edn


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


# -- the download cache: nothing broken is reused ------------------------------------------


def _cut(source: Path, output: Path, fraction: float) -> Path:
    data = source.read_bytes()
    output.write_bytes(data[: int(len(data) * fraction)])
    return output


@pytest.fixture(scope="module")
def faststart_dancer(tmp_path_factory) -> Path:
    """The demo dancer with its index (moov) at the front, as served for streaming: a copy
    cut short still opens and promises the whole 5.1 s."""
    path = tmp_path_factory.mktemp("faststart") / "dancer.mp4"
    ffmpeg("-i", DEMO / "source_dancer.mp4", "-c", "copy", "-movflags", "+faststart", path)
    return path


def _cache_entries(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir() if p.is_dir()] if cache.exists() else []


@pytest.mark.parametrize("index", ["at the end", "at the start"])
def test_a_truncated_download_fails_naming_the_url_and_the_fixed_server_is_fetched_again(
        index: str, http_server, faststart_dancer: Path, tmp_path: Path) -> None:
    """The server's copy is incomplete (its Content-Length is right): the download
    "succeeds", but it is no whole video. Nothing of it may stay in the cache, so that
    once the server's copy is fixed the next fetch succeeds with no cleaning by hand."""
    whole = DEMO / "source_dancer.mp4" if index == "at the end" else faststart_dancer
    served = http_server.directory / "dancer.mp4"
    _cut(whole, served, 0.4)
    url = f"{http_server.url}/dancer.mp4"
    output, cache = tmp_path / "videos" / "dancer.mp4", tmp_path / "cache"
    failed = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", cache)
    _assert_clean_failure(failed, output, f"video URL '{url}'", "the download is not a whole video",
                          "moov atom not found" if index == "at the end" else "truncated or damaged",
                          "it was deleted, so the next run downloads it again")
    assert "cache" not in failed.error_lines[0]  # the URL is named, not the file it was downloaded to
    assert _cache_entries(cache) == []
    asked = len(http_server.requests)

    shutil.copy(whole, served)
    fixed = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", cache)
    assert fixed.returncode == 0, fixed.stderr
    assert len(http_server.requests) > asked  # downloaded again, not taken from the cache
    assert count_frames(output) == 102
    (entry,) = _cache_entries(cache)
    marker = json.loads((entry / "complete").read_text())
    assert marker["url"] == url and marker["bytes"] == whole.stat().st_size
    assert marker["sha256"] == hashlib.sha256(whole.read_bytes()).hexdigest()


def test_a_broken_download_an_older_edn_marked_complete_is_downloaded_again(http_server, tmp_path: Path) -> None:
    """The state the issue found: an older edn marked a truncated download complete (its
    marker holds only the file name). The file is checked as a new download would be."""
    from edn.ingest.fetch import cache_folder

    shutil.copy(DEMO / "source_dancer.mp4", http_server.directory / "dancer.mp4")
    url, cache = f"{http_server.url}/dancer.mp4", tmp_path / "cache"
    entry = cache_folder(url, cache)
    entry.mkdir(parents=True)
    _cut(DEMO / "source_dancer.mp4", entry / "video.mp4", 0.4)
    (entry / "complete").write_text("video.mp4")
    result = run_edn("fetch", "--source", url, "--output", tmp_path / "a.mp4", "--cache-dir", cache)
    assert result.returncode == 0, result.stderr
    assert "the cached download in" in result.stderr and "moov atom not found" in result.stderr
    assert http_server.requests and count_frames(tmp_path / "a.mp4") == 102
    assert json.loads((entry / "complete").read_text())["bytes"] == (DEMO / "source_dancer.mp4").stat().st_size


def test_a_whole_download_an_older_edn_cached_is_checked_and_kept(http_server, tmp_path: Path) -> None:
    from edn.ingest.fetch import cache_folder

    url, cache = f"{http_server.url}/dancer.mp4", tmp_path / "cache"  # the server has no such file
    entry = cache_folder(url, cache)
    entry.mkdir(parents=True)
    shutil.copy(DEMO / "source_dancer.mp4", entry / "video.mp4")
    (entry / "complete").write_text("video.mp4")
    result = run_edn("fetch", "--source", url, "--output", tmp_path / "a.mp4", "--cache-dir", cache, "--end", "1")
    assert result.returncode == 0, result.stderr
    assert http_server.requests == [] and count_frames(tmp_path / "a.mp4") == 20
    assert json.loads((entry / "complete").read_text())["file"] == "video.mp4"


@pytest.mark.parametrize("damage", ["cut short", "same size, other bytes", "file removed"])
def test_a_cached_download_that_changed_since_it_was_checked_is_downloaded_again(
        damage: str, http_server, tmp_path: Path) -> None:
    shutil.copy(DEMO / "source_dancer.mp4", http_server.directory / "dancer.mp4")
    url, cache = f"{http_server.url}/dancer.mp4", tmp_path / "cache"
    first = run_edn("fetch", "--source", url, "--output", tmp_path / "a.mp4", "--cache-dir", cache)
    assert first.returncode == 0, first.stderr
    asked = len(http_server.requests)
    (entry,) = _cache_entries(cache)
    cached = entry / "video.mp4"
    if damage == "cut short":
        _cut(DEMO / "source_dancer.mp4", cached, 0.9)
    elif damage == "same size, other bytes":
        data = bytearray(cached.read_bytes())
        data[len(data) // 2: len(data) // 2 + 4096] = bytes(4096)
        cached.write_bytes(bytes(data))
    else:
        cached.unlink()
    second = run_edn("fetch", "--source", url, "--output", tmp_path / "b.mp4", "--cache-dir", cache)
    assert second.returncode == 0, second.stderr
    assert "is not usable" in second.stderr and "downloading it again" in second.stderr
    assert len(http_server.requests) > asked
    assert (entry / "video.mp4").read_bytes() == (DEMO / "source_dancer.mp4").read_bytes()
    assert count_frames(tmp_path / "b.mp4") == 102


def test_an_unfinished_download_is_never_reused(http_server, tmp_path: Path) -> None:
    """A download killed before it was checked leaves a folder without a marker."""
    from edn.ingest.fetch import cache_folder

    shutil.copy(DEMO / "source_dancer.mp4", http_server.directory / "dancer.mp4")
    url, cache = f"{http_server.url}/dancer.mp4", tmp_path / "cache"
    entry = cache_folder(url, cache)
    entry.mkdir(parents=True)
    _cut(DEMO / "source_dancer.mp4", entry / "video.mp4.part", 0.3)
    result = run_edn("fetch", "--source", url, "--output", tmp_path / "a.mp4", "--cache-dir", cache)
    assert result.returncode == 0, result.stderr
    assert http_server.requests and sorted(p.name for p in entry.iterdir()) == ["complete", "video.mp4"]


def test_an_error_after_a_download_names_the_url_and_keeps_the_checked_download(http_server, tmp_path: Path) -> None:
    shutil.copy(DEMO / "source_dancer.mp4", http_server.directory / "dancer.mp4")
    url, cache = f"{http_server.url}/dancer.mp4", tmp_path / "cache"
    output = tmp_path / "out" / "a.mp4"
    result = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", cache, "--start", "60")
    _assert_clean_failure(result, output, f"video URL '{url}'", "start 60.0 s is past its end (5.10 s)")
    asked = len(http_server.requests)
    again = run_edn("fetch", "--source", url, "--output", output, "--cache-dir", cache, "--start", "1")
    assert again.returncode == 0, again.stderr
    assert len(http_server.requests) == asked  # the download was whole: kept and reused


def test_a_failure_after_the_download_checks_it_again_and_says_what_to_remove(tmp_path: Path) -> None:
    """What a fetch that fails on a cached download adds to its error: a download that no
    longer passes the check is removed; one that does is named, for the user to judge."""
    from edn.ingest.fetch import Download, _cache_advice
    from edn.ingest.media import verify_video

    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for folder in (whole, broken):
        folder.mkdir()
    shutil.copy(DEMO / "source_dancer.mp4", whole / "video.mp4")
    info = verify_video(whole / "video.mp4")
    _cut(DEMO / "source_dancer.mp4", broken / "video.mp4", 0.5)
    advice = _cache_advice(Download("http://x/a.mp4", whole / "video.mp4", whole, info))
    assert advice == f"; if the download itself is damaged, remove '{whole}' to download it again"
    assert (whole / "video.mp4").exists()
    advice = _cache_advice(Download("http://x/a.mp4", broken / "video.mp4", broken, info))
    assert advice.startswith(f"; its cached download in '{broken}' was damaged (not a readable video (moov atom")
    assert advice.endswith("and has been removed: rerun to download it again") and not broken.exists()
