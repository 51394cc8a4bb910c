"""Decode speed: frames/s of `edn decode` on the shipped demo videos at the demo working size.

    .venv/bin/python benchmarks/decode.py [--width 256 --height 128 --repeats 3]
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

VIDEOS = ("source_dancer", "target_juggler", "source_aerobics", "people_one_by_one")


def measure(width: int = 256, height: int = 128, repeats: int = 3) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in VIDEOS:
            video = ROOT / "resources" / "demo" / f"{name}.mp4"
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                meta = decode_video(video, Path(scratch) / "f.npy", Path(scratch) / "m.json",
                                    working_size=(width, height))
                best = min(best, time.perf_counter() - start)
            rows.append({"stage": "decode", "input": name,
                         "source": f"{meta.source_size[0]}x{meta.source_size[1]}",
                         "working": f"{width}x{height}", "frames": meta.frame_count,
                         "seconds": best, "frames_per_s": meta.frame_count / best})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'stage':<8} {'input':<20} {'source':>10} {'working':>9} {'frames':>7} {'s':>7} {'frames/s':>9}")
    for r in rows:
        print(f"{r['stage']:<8} {r['input']:<20} {r['source']:>10} {r['working']:>9} {r['frames']:>7} "
              f"{r['seconds']:>7.2f} {r['frames_per_s']:>9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_table(measure(args.width, args.height, args.repeats))


if __name__ == "__main__":
    main()
