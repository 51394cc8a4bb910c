"""Pose detection speed: frames/s of MediaPipe Holistic on the demo juggler at the demo working size.

    .venv/bin/python benchmarks/pose.py [--video target_juggler --repeats 1]

Each row times a whole `edn pose` detection (worker start-up and model loading
included, as a pipeline run pays them), for 1 and 2 worker processes, on the
256x128 working frames and at the demo config's detection scale 2 (the video
decoded again at 512x256, the decode included). Smoothing is timed on the result.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edn.decode import decode_video  # noqa: E402
from edn.pose.detect import detect  # noqa: E402
from edn.smoothing import smooth_poses  # noqa: E402

SETTINGS = ((1, 1.0), (2, 1.0), (2, 2.0))  # (workers, detection scale)


def measure(video_name: str = "target_juggler", width: int = 256, height: int = 128, repeats: int = 1) -> list[dict]:
    video = ROOT / "resources" / "demo" / f"{video_name}.mp4"
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        frames, meta_path = Path(scratch) / "frames.npy", Path(scratch) / "meta.json"
        meta = decode_video(video, frames, meta_path, working_size=(width, height))
        for workers, scale in SETTINGS:
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                poses = detect("mediapipe", frames_path=frames, meta_path=meta_path, video=video,
                               detection_scale=scale, workers=workers, scratch_dir=scratch, show_progress=False)
                best = min(best, time.perf_counter() - start)
            rows.append({"step": "detect", "input": video_name, "working": f"{width}x{height}",
                         "detected_at": f"{round(width * scale)}x{round(height * scale)}", "workers": workers,
                         "frames": meta.frame_count, "seconds": best, "frames_per_s": meta.frame_count / best})
        start = time.perf_counter()
        smooth_poses(poses)
        seconds = time.perf_counter() - start
        rows.append({"step": "smooth", "input": video_name, "working": f"{width}x{height}", "detected_at": "-",
                     "workers": 1, "frames": meta.frame_count, "seconds": seconds,
                     "frames_per_s": meta.frame_count / seconds})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'step':<7} {'input':<16} {'working':>8} {'detected at':>11} {'workers':>7} {'frames':>6} "
          f"{'s':>6} {'frames/s':>8}")
    for r in rows:
        print(f"{r['step']:<7} {r['input']:<16} {r['working']:>8} {r['detected_at']:>11} {r['workers']:>7} "
              f"{r['frames']:>6} {r['seconds']:>6.2f} {r['frames_per_s']:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="target_juggler", help="a video in resources/demo (no .mp4)")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print_table(measure(args.video, args.width, args.height, args.repeats))


if __name__ == "__main__":
    main()
