"""Helpers shared by the tests: the real CLI, real ffmpeg, Snakemake runs in
temporary working directories."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from edn.ingest.decode import decode_video
from edn.ingest.frames import FrameMeta
from edn.pose.keypoints import PoseSequence
from edn.pose.detect import detect

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together (Snakemake reports errors on stdout)."""
        return self.stdout + self.stderr

    @property
    def error_lines(self) -> list[str]:
        """stderr lines that are edn error messages."""
        return [line for line in self.stderr.splitlines() if ": error: " in line]


def run_edn(*args: str | os.PathLike, cwd: Path | None = None, timeout: float = 300) -> Completed:
    """Run the real ``edn`` CLI in a subprocess."""
    result = subprocess.run([sys.executable, "-m", "edn", *map(str, args)], cwd=cwd or ROOT,
                            capture_output=True, text=True, timeout=timeout)
    return Completed(result.returncode, result.stdout, result.stderr)


def ffmpeg(*args: str | os.PathLike) -> None:
    """Run Debian's ffmpeg (as the project's Makefile installs it) to make test media."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def make_test_video(path: Path, *, size=(320, 240), fps=25, seconds=2.0, audio=False) -> Path:
    """A synthetic H.264 video (ffmpeg's testsrc2), with a sine soundtrack if asked."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={fps}:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    ffmpeg(*inputs, "-c:v", "libx264", "-pix_fmt", "yuv420p", *(["-c:a", "aac"] if audio else []),
           "-shortest", path)
    return path


def live_processes() -> Iterator[tuple[int, list[str]]]:
    """Each live (not zombie) process as its pid and the fields of its /proc stat after the command name
    (fields[0] the state, fields[3] the session id); one that ends while it is read is passed over."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] != "Z":
            yield int(entry.name), fields


def send_head(handler: http.server.BaseHTTPRequestHandler, status: int, length: int | None,
              content_type: str = "video/mp4", **headers: str) -> None:
    """A test server's status line and headers, the connection closed after the body (a handler's
    ``_head = send_head``); no Content-Length when ``length`` is None (a body that ends when the
    server stops)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.send_header("Connection", "close")
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.close_connection = True


def leftovers(directory: Path) -> list[Path]:
    """Partial files an interrupted or failed stage could have left behind."""
    return [p for p in directory.rglob("*") if ".partial" in p.name]


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(workdir: Path, config: dict, *args: str, timeout: float = 600) -> Completed:
    """Run the project's workflow in ``workdir`` with ``config`` (written there)."""
    config_path = write_config(workdir, config)
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(config_path), "--cores", "2", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir,
    )
    return Completed(result.returncode, result.stdout, result.stderr)


def tiny_pipeline_config(workdir: Path) -> dict:
    """The whole pipeline in a minute or two: short spans of the demo videos, two
    pairs onto one target (a source with a soundtrack, one without), the tiny
    preset and a few iterations per stage."""
    dancer = workdir / "dancer_with_tone.mp4"
    ffmpeg("-i", DEMO / "source_dancer.mp4", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=6",
           "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest", dancer)
    return {
        "subjects": {
            "dancer": {"video": str(dancer), "start": 1.0, "end": 2.5},
            "aerobics": {"video": str(DEMO / "source_aerobics.mp4"), "end": 1.0},
            "juggler": {"video": str(DEMO / "target_juggler.mp4"), "end": 3.0},
        },
        "pairs": [{"source": "dancer", "target": "juggler"}, {"source": "aerobics", "target": "juggler"}],
        # The demo's generator: it corrects the target's own frames warped to each pose (config.yaml).
        # One thread a job: a tiny job is mostly starting Python and torch, so two at once fill two cores.
        # With the face stage (off by default), so that the pipeline's tests cover every stage a pair can have.
        "training": {"preset": "tiny", "iterations": {"global": 3, "local": 3, "face": 3}, "exemplar": "residual",
                     "use_face_gan": True, "checkpoint_every": 2, "sample_every": 2, "holdout_fraction": 0.2,
                     "threads": 1},
        "synthesis": {"threads": 1},
    }


WORKING_SIZE = (256, 128)  # the demo's


@dataclass
class Detected:
    poses: PoseSequence
    meta: FrameMeta
    frames: Path
    meta_path: Path
    video: Path


def decode_and_detect(directory: Path, video: Path, *, scale: float) -> Detected:
    directory.mkdir(parents=True, exist_ok=True)
    frames, meta_path = directory / "frames.npy", directory / "meta.json"
    meta = decode_video(video, frames, meta_path, working_size=WORKING_SIZE)
    poses = detect("mediapipe", frames_path=frames, meta_path=meta_path, video=video, detection_scale=scale,
                   workers=2, scratch_dir=directory, show_progress=False)
    return Detected(poses, meta, frames, meta_path, video)
