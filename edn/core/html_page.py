"""Self-contained HTML pages: videos, images and tables embedded as data, for
browsers and for Snakemake's report (which shows an HTML result in a frame, but
offers mp4 and CSV files only as downloads)."""

from __future__ import annotations

import base64
import html
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from edn.core.atomic import write_text
from edn.core.errors import EdnError

KINDS = ("video", "image", "table", "text")


@dataclass(frozen=True)
class Item:
    """One thing on the page: ``kind`` (video, image, table, text) and the file it comes from."""

    kind: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> Item:
        """``kind=path``, e.g. ``video=results/transfer/dancer_to_juggler.mp4``."""
        kind, _, path = text.partition("=")
        if kind not in KINDS or not path:
            raise EdnError(f"page item {text!r}: expected KIND=PATH with KIND one of {', '.join(KINDS)}")
        return cls(kind, Path(path))


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _table_html(path: Path) -> str:
    """A CSV file, or the pipe tables and bullet notes of a Markdown file, as HTML."""
    if path.suffix == ".csv":
        import pandas as pd

        table = pd.read_csv(path, keep_default_na=False)
        return table.to_html(index=False, border=0, classes="metrics", float_format=lambda v: f"{v:.4g}")
    rows, notes = [], []
    for line in path.read_text().splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([html.escape(cell.strip()) for cell in line.strip().strip("|").split("|")])
        elif line.startswith("- "):
            notes.append(html.escape(line[2:]))
    if not rows:
        raise EdnError(f"table {str(path)!r}: no table found")
    head = "".join(f"<th>{cell}</th>" for cell in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows[1:])
    listed = "<ul>" + "".join(f"<li>{note}</li>" for note in notes) + "</ul>" if notes else ""
    return f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{listed}'


def _item_html(item: Item) -> str:
    if not item.path.is_file():
        raise EdnError(f"page item {str(item.path)!r}: file not found")
    title = f"<h2>{html.escape(item.path.name)}</h2>"
    if item.kind == "video":
        body = f'<video controls autoplay loop muted playsinline preload="auto" src="{_data_uri(item.path)}"></video>'
    elif item.kind == "image":
        body = f'<img alt="{html.escape(item.path.name)}" src="{_data_uri(item.path)}">'
    elif item.kind == "table":
        body = _table_html(item.path)
    else:
        body = f"<pre>{html.escape(item.path.read_text())}</pre>"
    return f"<section>{title}{body}</section>"


STYLE = """
body { font-family: sans-serif; margin: 1em 2em; color: #222; }
section { margin-bottom: 2em; }
h2 { font-size: 1.05em; font-weight: 600; }
video, img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
table.metrics { border-collapse: collapse; font-size: 0.9em; }
table.metrics th, table.metrics td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
"""


def write_page(output: str | os.PathLike, title: str, items: list[Item], *, description: str = "") -> None:
    """Write one HTML page showing ``items`` in order, with everything embedded."""
    sections = "\n".join(_item_html(item) for item in items)
    intro = f"<p>{html.escape(description)}</p>" if description else ""
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>{intro}\n{sections}\n</body></html>\n")
    write_text(output, page)
