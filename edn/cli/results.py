"""``edn results``: list what a run produced."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    results = subparsers.add_parser("results", help="list the final artifacts under a results directory")
    results.add_argument("results_dir", nargs="?", default="results", help="results directory (default: results)")
    results.set_defaults(handler=_results)


def _results(args: argparse.Namespace) -> None:
    from edn.core.errors import EdnError
    from edn.core.summary import list_results

    found = list_results(args.results_dir)
    if not found:
        raise EdnError(f"results directory {args.results_dir!r}: no artifacts yet")
    width = max(len(kind) for kind, _ in found)
    for kind, path in found:
        print(f"  {kind:<{width}}  {path.resolve()}")
