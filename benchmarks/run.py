"""Every stage's benchmark in one run, printed as tables.

    make bench          (or: .venv/bin/python benchmarks/run.py)

Figures are wall-clock on this machine; compare only figures from the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import decode  # noqa: E402
import pose  # noqa: E402
import render  # noqa: E402
import train  # noqa: E402


def main() -> None:
    print("# decode (edn decode, demo videos -> 256x128 working frames)")
    decode.print_table(decode.measure())
    print("\n# pose (MediaPipe Holistic on the demo juggler, 256x128 working frames)")
    pose.print_table(pose.measure())
    print("\n# render and normalise (one core)")
    render.print_table(render.measure())
    print("\n# training (CPU: small preset at 256x128, paper preset at 512x256; fp32 eager vs bf16 + channels_last)")
    train.print_table(train.measure())


if __name__ == "__main__":
    main()
