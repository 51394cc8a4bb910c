"""benchmarks/colour_error.py: the held-out person's colour error, on frames made here."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks.colour_error import main, person_chroma_error  # noqa: E402


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three 32x64 frames of a white shirt over foliage-green noise, and the shirt's mask."""
    rng = np.random.default_rng(seed)
    frames = np.empty((3, 32, 64, 3), np.uint8)
    frames[:] = rng.integers(0, 40, (3, 32, 64, 3)) + np.array([60, 110, 40])
    masks = np.zeros((3, 32, 64), np.uint8)
    masks[:, 8:24, 16:40] = 255
    frames[:, 8:24, 16:40] = rng.integers(225, 245, (3, 16, 24, 3))
    return frames, masks


def test_a_yellow_shirt_is_far_in_colour_and_its_texture_or_brightness_is_not() -> None:
    real, masks = _scene()
    assert person_chroma_error(real, real, masks, 4) == 0
    yellow = real.copy()
    yellow[:, 8:24, 16:40, 2] -= 60  # less blue on the shirt only
    shuffled = real.copy()
    shuffled[:, 8:24, 16:40] = np.flip(real[:, 8:24, 16:40], axis=2)  # its texture, mirrored
    darker = real.copy()
    darker[:, 8:24, 16:40] -= 40  # a grey shadow: brightness only
    lab = lambda rgb: cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2LAB)[0, 0, 1:].astype(float)  # noqa: E731
    shift = np.linalg.norm(lab([235, 235, 175]) - lab([235, 235, 235]))
    assert person_chroma_error(real, yellow, masks, 4) == pytest.approx(shift, rel=0.15)
    assert person_chroma_error(real, shuffled, masks, 4) < 0.1 * shift
    assert person_chroma_error(real, darker, masks, 4) < 0.1 * shift
    # Off the person nothing counts: the foliage painted yellow changes nothing.
    background = real.copy()
    background[:, :8] = [200, 200, 0]
    assert person_chroma_error(real, background, masks, 4) == 0


def test_the_script_reads_a_targets_results_and_prints_one_line_per_method(tmp_path, capsys) -> None:
    frames, masks = _scene()
    (tmp_path / "frames" / "t").mkdir(parents=True)
    (tmp_path / "background").mkdir()
    np.save(tmp_path / "frames" / "t" / "frames.npy", frames)
    np.save(tmp_path / "background" / "t.masks.npy", masks)
    np.save(tmp_path / "same.npy", frames[1:])  # the last two frames, held out
    yellow = frames[1:].copy()
    yellow[..., 2] = yellow[..., 2] // 2
    np.save(tmp_path / "yellow.npy", yellow)
    assert main(["--target", "t", "--results", str(tmp_path), str(tmp_path / "same.npy"),
                 str(tmp_path / "yellow.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("same.npy: chroma error over the person 0.00 (2 held-out frames)")
    assert "yellow.npy" in lines[1] and float(lines[1].split()[-4]) > 10
