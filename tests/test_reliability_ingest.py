"""Reliability of the ingest stage (fetch, decode): odd but valid videos (odd sizes,
rotation metadata, 10-bit, 4:4:4, grayscale, variable frame rate, a 4K source in bounded
memory, names with spaces and non-ASCII characters) through the CLI and through Snakemake,
slow and broken servers, two fetches of one URL at once, and a decode killed and rerun.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from edn.ingest.frames import load_frames, read_meta
from edn.ingest.media import probe_video
from helpers import DEMO, ROOT, Completed, leftovers, run_edn, run_snakemake
from reliability_support import (KILLS, Media, ffmpeg_first_frame, frames_of, make_box_video, make_vfr_video,
                                 one_subject, same_bytes, stage_kill_test, video_stream_duration)

# -- odd videos that must work -----------------------------------------------------------


def _red_centroid(frame: np.ndarray) -> tuple[float, float]:
    mask = (frame[..., 0] > 150) & (frame[..., 1] < 100) & (frame[..., 2] < 100)
    ys, xs = np.nonzero(mask)
    assert len(xs) > 4, "red box not found"
    return xs.mean() + 0.5, ys.mean() + 0.5


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
    source = make_box_video(tmp_path / "in.mp4", coded, rotate=rotate, seconds=2.0 if trim else 1.0)
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
    # frames.orientation auto: a video displayed taller than wide is decoded at 256x128 turned upright.
    width, height = (128, 256) if displayed[1] > displayed[0] else (256, 128)
    assert tuple(meta.working_size) == (width, height)
    assert store.shape == (meta.frame_count, height, width, 3)
    assert meta.frame_count == round(video_stream_duration(fetched) * meta.fps_value) == 10
    # The box lands where the recorded transform says, from ffmpeg's own view of the
    # source (rotation applied): a wrong orientation or an odd-size shift would miss.
    expected = meta.transform.to_working(*_red_centroid(ffmpeg_first_frame(fetched)))
    assert _red_centroid(np.asarray(store[5])) == pytest.approx(expected, abs=0.75)
    x0, y0, x1, y1 = meta.geometry.content_box
    assert store[5][:, :max(x0 - 1, 0)].max(initial=0) == 0 and store[5][:, x1 + 1:].max(initial=0) == 0


def test_variable_frame_rate_is_decoded_on_a_constant_clock(tmp_path: Path) -> None:
    video = make_vfr_video(tmp_path / "vfr.mp4")
    info = probe_video(video)
    assert info.fps != Fraction(30) and info.fps != Fraction(10)  # really variable: the average is neither
    fetched = tmp_path / "videos" / "a.mp4"
    assert run_edn("fetch", "--source", video, "--output", fetched).returncode == 0
    duration = video_stream_duration(fetched)
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


@pytest.mark.slow  # waits out a 2 s trickle on purpose
def test_a_slow_server_within_the_timeout_is_waited_for(misbehaving_server: str, tmp_path: Path) -> None:
    """The network timeout bounds a silence, not the download: ten pieces 0.2 s apart
    take 2 s in all, twice the 1 s timeout."""
    output = tmp_path / "video.mp4"
    started = time.monotonic()
    result = run_edn("fetch", "--source", f"{misbehaving_server}/trickle.mp4", "--output", output,
                     "--cache-dir", tmp_path / "cache", "--timeout", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started > 2
    assert output.read_bytes() != b"" and frames_of(output) == 102


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
        assert meta.frame_count == round(video_stream_duration(fetched) * meta.fps_value) == 10
        mask = _bright if grey else _red
        expected = meta.transform.to_working(*_mask_centroid(mask(ffmpeg_first_frame(fetched))))
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
    duration, rate = video_stream_duration(fetched), meta.fps_value
    assert rate == Fraction(75, 4)  # the average rate, 18.75 fps: neither 10 nor 30
    assert abs(meta.frame_count - duration * rate) < 1 and len(store) == meta.frame_count
    width, height = meta.working_size
    red = store[:, height // 2, width // 2, 0] > 128
    switch = int(np.argmin(red))
    assert red[:switch].all() and not red[switch:].any() and abs(switch - rate) <= 1


#: name -> (maker(path) of the video, the file's suffix, check(fetched video, frames, meta))
PROPERTY_VIDEOS: dict[str, tuple[Callable[[Path], Path], str, Callable[[Path, Path, Path], None]]] = {
    "rotation metadata": (lambda p: make_box_video(p, (320, 240), rotate=90), ".mp4",
                          _check_box_picture((240, 320), grey=False)),
    "10-bit colour": (lambda p: make_box_video(p, (320, 240), pix_fmt="yuv420p10le"), ".mp4",
                      _check_box_picture((320, 240), grey=False)),
    "4:4:4 colour": (lambda p: make_box_video(p, (320, 240), pix_fmt="yuv444p"), ".mp4",
                     _check_box_picture((320, 240), grey=False)),
    "10-bit 4:4:4 colour": (lambda p: make_box_video(p, (320, 240), pix_fmt="yuv444p10le"), ".mp4",
                            _check_box_picture((320, 240), grey=False)),
    # A truly grey stream (FFV1 in Matroska, pixel format gray): it cannot be copied into mp4.
    "grayscale": (lambda p: make_box_video(p, (320, 240), pix_fmt="gray", colour="white", codec="ffv1"), ".mkv",
                  _check_box_picture((320, 240), grey=True)),
    "variable frame rate": (make_vfr_video, ".mp4", _check_vfr),
}


@pytest.mark.slow  # the catalogue of odd videos: an ffmpeg encode and two CLI runs each
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


@pytest.mark.slow  # the catalogue of odd names: a fetch and a decode each
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
    video = make_box_video(http_server.directory / "uhd.mp4", UHD, seconds=4.0, pix_fmt="yuv420p", rate=25)
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
    assert probe_video(trimmed).size == UHD and frames_of(trimmed) == 50
    store, info = load_frames(frames), read_meta(meta)
    assert len(store) == info.frame_count == 100 and tuple(info.source_size) == UHD
    expected = info.transform.to_working(*_mask_centroid(_red(ffmpeg_first_frame(downloaded))))
    assert _mask_centroid(_red(np.asarray(store[50]))) == pytest.approx(expected, abs=0.75)


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
    config = one_subject(url, end=2.0)
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


# -- a decode killed and rerun; two fetches of one URL at once -------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kill", list(KILLS))
def test_killed_decode_reruns_to_the_same_frames(clip, kill_references, tmp_path: Path, kill: str) -> None:
    def make_args(out: Path) -> tuple[list, list[Path]]:
        return (["decode", "--video", clip["video"], "--frames", out / "frames.npy", "--meta", out / "meta.json",
                 "--width", 512, "--height", 256], [out / "frames.npy", out / "meta.json"])

    stage_kill_test(tmp_path, "decode", kill, make_args, same_bytes("frames.npy", "meta.json"), points=1,
                    references=kill_references)


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
