"""A report as a list of blocks (headings, paragraphs, bullets, tables, images), and its two renderings:
Markdown and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    path: Path
    caption: str


Block = Heading | Paragraph | Bullets | Table | Image


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def to_markdown(blocks: list[Block], out: Path) -> str:
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            lines += [b.text, ""]
        elif isinstance(b, Bullets):
            lines += [f"- {_md_cell(item)}" for item in b.items] + [""]
        elif isinstance(b, Table):
            lines.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            lines.append("|" + "---|" * len(b.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        elif isinstance(b, Image):
            rel = os.path.relpath(b.path, out)
            lines += [f"![{b.caption}]({rel})", "", f"*{b.caption}*", ""]
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0 2em; }
img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-style: italic; color: #555; }
"""
# Marks <body data-images-loaded="k/n"> once the page has loaded: k of the n figures decoded.
# A reader sees nothing; a headless browser's --dump-dom shows whether every image rendered.
SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
});
"""


def to_html(blocks: list[Block]) -> str:
    """One self-contained page: inline CSS, figures as base64 PNG data, no external resource."""
    e = html.escape
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            parts.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Image):
            data = base64.b64encode(b.path.read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{e(b.caption)}" '
                f'data-file="{e(b.path.name)}"><figcaption>{e(b.caption)}</figcaption></figure>'
            )
    title = next((b.text for b in blocks if isinstance(b, Heading)), "report")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
