"""edn decode: frame counts against ffprobe, the recorded pixel transform, the frame store."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from edn.ingest.decode import decode_video
from edn.ingest.frames import fit_geometry, load_frames, npy_header, read_meta
from edn.ingest.media import count_frames
from helpers import ffmpeg, leftovers, run_edn

DEMO_VIDEOS = ["source_dancer", "target_juggler", "source_aerobics", "people_one_by_one"]


def ffprobe_count_at(video: Path, fps: Fraction) -> int:
    """Frames of ``video`` resampled to ``fps``: one per 1/fps of ffprobe's stream duration."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=duration", "-of", "csv=p=0", str(video)],
                         capture_output=True, text=True, check=True).stdout
    return round(Fraction(out.strip()) * fps)


@pytest.mark.parametrize("name", DEMO_VIDEOS)
def test_frame_count_equals_ffprobe_at_native_rate(demo_dir: Path, tmp_path: Path, name: str) -> None:
    video = demo_dir / f"{name}.mp4"
    meta = decode_video(video, tmp_path / "frames.npy", tmp_path / "meta.json", working_size=(256, 128))
    frames = load_frames(tmp_path / "frames.npy")
    assert meta.frame_count == frames.shape[0] == count_frames(video)
    assert frames.shape[1:] == (128, 256, 3)


@pytest.mark.parametrize("name,fps", [("target_juggler", Fraction(10)), ("source_dancer", Fraction(30000, 1001))])
def test_frame_count_equals_ffprobe_at_configured_rate(demo_dir: Path, tmp_path: Path, name: str,
                                                       fps: Fraction) -> None:
    video = demo_dir / f"{name}.mp4"
    result = run_edn("decode", "--video", video, "--frames", tmp_path / "f.npy", "--meta", tmp_path / "m.json",
                     "--width", 256, "--height", 128, "--fps", f"{fps.numerator}/{fps.denominator}")
    assert result.returncode == 0, result.stderr
    meta = read_meta(tmp_path / "m.json")
    assert meta.frame_count == load_frames(tmp_path / "f.npy").shape[0] == ffprobe_count_at(video, fps)
    assert meta.fps_value == fps


def _video_with_boxes(path: Path, size: tuple[int, int], boxes: dict[str, tuple[int, int, int]]) -> Path:
    """A 5-frame video on black with a filled square of each colour at (x, y) of side s."""
    draws = ",".join(f"drawbox=x={x}:y={y}:w={s}:h={s}:color={colour}:t=fill"
                     for colour, (x, y, s) in boxes.items())
    ffmpeg("-f", "lavfi", "-i", f"color=black:size={size[0]}x{size[1]}:rate=10:duration=0.5",
           "-vf", draws, "-c:v", "libx264", "-pix_fmt", "yuv444p", "-crf", "0", path)
    return path


def _centroid(frame: np.ndarray, colour: str) -> tuple[float, float]:
    channel = {"red": 0, "lime": 1, "blue": 2}[colour]
    mask = (frame[..., channel] > 150) & (np.delete(frame, channel, axis=-1).max(axis=-1) < 100)
    ys, xs = np.nonzero(mask)
    assert len(xs) > 4, f"{colour} box not found"
    return xs.mean() + 0.5, ys.mean() + 0.5  # pixel centres in continuous coordinates


@pytest.mark.parametrize("fit", ["pad", "crop"])
def test_transform_maps_source_pixels_to_working_pixels(tmp_path: Path, fit: str) -> None:
    size = (640, 480)
    boxes = {"red": (40, 60, 48), "lime": (520, 380, 48), "blue": (300, 200, 48)}
    video = _video_with_boxes(tmp_path / "boxes.mp4", size, boxes)
    meta = decode_video(video, tmp_path / "frames.npy", tmp_path / "meta.json", working_size=(256, 128), fit=fit)
    frame = np.asarray(load_frames(tmp_path / "frames.npy")[2])
    transform = read_meta(tmp_path / "meta.json").transform
    assert transform == meta.transform
    for colour, (x, y, s) in boxes.items():
        source_centre = (x + s / 2, y + s / 2)
        expected = transform.to_working(*source_centre)
        top_left, bottom_right = transform.to_working(x, y), transform.to_working(x + s, y + s)
        if min(top_left) < 0 or bottom_right[0] > 256 or bottom_right[1] > 128:
            assert fit == "crop"
            continue  # partly cropped away: its centroid moves
        found = _centroid(frame, colour)
        assert found == pytest.approx(expected, abs=0.6), (colour, found, expected)
        assert transform.to_source(*found) == pytest.approx(source_centre, abs=1.5)
    if fit == "pad":  # the padding is black, the content box is not
        x0, y0, x1, y1 = meta.geometry.content_box
        assert (x0, x1) == (42, 213)  # 640x480 shrunk to 171x128, centred
        assert frame[:, : x0 - 1].max() == 0 and frame[:, x1 + 1:].max() == 0


def test_fit_geometry_pad_and_crop() -> None:
    pad = fit_geometry((1280, 720), (256, 128), "pad")
    assert pad.scaled_size == (228, 128) and pad.offset == (14, 0)
    assert pad.content_box == (14, 0, 242, 128)
    crop = fit_geometry((1280, 720), (256, 128), "crop")
    assert crop.scaled_size == (256, 144) and crop.offset == (0, -8)
    assert crop.transform.to_working(640.0, 360.0) == (128.0, 64.0)
    square = fit_geometry((600, 600), (256, 128), "pad")
    assert square.scaled_size == (128, 128) and square.offset == (64, 0)


def test_meta_json_records_the_geometry(demo_dir: Path, tmp_path: Path) -> None:
    decode_video(demo_dir / "target_juggler.mp4", tmp_path / "f.npy", tmp_path / "m.json", working_size=(256, 128))
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["fps"] == "24" and data["frame_count"] == 247
    assert data["source_size"] == [1280, 720] and data["working_size"] == [256, 128]
    assert data["transform"] == {"scale_x": 228 / 1280, "scale_y": 128 / 720, "offset_x": 14.0, "offset_y": 0.0}


def test_npy_header_is_standard(tmp_path: Path) -> None:
    shape = (12345, 512, 1024, 3)
    header = npy_header(shape)
    path = tmp_path / "x.npy"
    path.write_bytes(header)
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_shape, fortran, dtype = np.lib.format._read_array_header(f, version)
    assert (read_shape, fortran, dtype) == (shape, False, np.uint8)


def test_decode_errors_are_one_line_and_leave_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = run_edn("decode", "--video", tmp_path / "missing.mp4", "--frames", out / "f.npy",
                      "--meta", out / "m.json", "--width", 256, "--height", 128)
    assert missing.returncode != 0 and len(missing.error_lines) == 1
    assert "missing.mp4" in missing.error_lines[0]
    bad_fps = run_edn("decode", "--video", tmp_path / "missing.mp4", "--frames", out / "f.npy",
                      "--meta", out / "m.json", "--width", 256, "--height", 128, "--fps", "fast")
    assert bad_fps.returncode != 0 and "fps 'fast'" in bad_fps.error_lines[0]
    assert not (out / "f.npy").exists() and not (out / "m.json").exists()
    assert not out.exists() or not leftovers(out)
