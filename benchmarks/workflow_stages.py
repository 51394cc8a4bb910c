"""A workflow run's time per stage, from the files Snakemake's ``benchmark:`` directives write.

    .venv/bin/python benchmarks/workflow_stages.py [results/benchmarks]
    .venv/bin/python benchmarks/run.py --workflow-benchmarks results/benchmarks   (rows added to the table)

Each heavy rule writes ``results/benchmarks/{rule}/{wildcards}.tsv`` (columns
``s``, ``max_rss`` in MiB, ``cpu_time`` in s, ...). One row per job, in the
order of the pipeline, then the total: after ``make demo`` this is the demo's
time per stage.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

#: The pipeline's order; rules not listed come after these, by name.
STAGE_ORDER = ("fetch_video", "decode_frames", "detect_poses", "filter_poses", "preview_poses", "subject_stats",
               "normalize_transfer", "render_subject_labels", "render_transfer_labels", "background_plate",
               "perceptual_weights", "train_global", "train_global_fbf", "train_local", "train_face",
               "train_global_paper", "train_face_paper", "synthesize", "encode_transfer", "compare_transfer",
               "evaluate_method", "train_detector", "evaluate_detector")


@dataclass(frozen=True)
class StageTime:
    rule: str
    job: str  # the wildcards' values, as the file is named
    wall_s: float
    cpu_s: float | None
    max_rss_mib: float | None


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):  # "NA" when the job was too short to sample
        return None


def read_stage_times(directory: str | Path) -> list[StageTime]:
    """Every job's first benchmark row under ``directory``, in pipeline order."""
    times = []
    for path in Path(directory).rglob("*.tsv"):
        with open(path, newline="") as file:
            first = next(csv.DictReader(file, delimiter="\t"), None)
        if first is None:
            continue
        rule = path.relative_to(directory).parts[0]
        job = path.relative_to(directory / Path(rule)).with_suffix("").as_posix()
        times.append(StageTime(rule, job, float(first["s"]), _number(first.get("cpu_time")),
                               _number(first.get("max_rss"))))
    rank = {rule: i for i, rule in enumerate(STAGE_ORDER)}
    return sorted(times, key=lambda t: (rank.get(t.rule, len(rank)), t.rule, t.job))


def table_rows(times: list[StageTime]) -> list[str]:
    """Markdown lines in benchmarks/run.py's ten columns: stage "workflow", the rule and job,
    wall seconds as the figure, CPU seconds as the reference, peak RSS; then the total."""
    lines = []
    for t in times:
        cpu = f"CPU time: {t.cpu_s:.0f} s" if t.cpu_s is not None else ""
        rss = f"{t.max_rss_mib:.0f} MiB" if t.max_rss_mib is not None else ""
        lines.append(f"| workflow | {t.rule} ({t.job}) |  |  | {t.wall_s:.1f} s | {cpu} |  | {rss} |  |  |")
    if times:
        lines.append(f"| workflow | all jobs above, one after another |  |  | {sum(t.wall_s for t in times):.0f} s "
                     f"|  |  |  |  |  |")
    return lines


def main() -> int:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "results/benchmarks")
    times = read_stage_times(directory)
    if not times:
        print(f"{directory}: no Snakemake benchmark files (run the workflow first, e.g. make demo)", file=sys.stderr)
        return 1
    print("| stage | measurement | size | mode | figure | reference | ratio | peak RSS | others' CPU | target |")
    print("|---|---|---|---|---:|---|---:|---|---:|---|")
    print("\n".join(table_rows(times)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
