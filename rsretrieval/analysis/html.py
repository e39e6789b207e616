"""Small helpers for self-contained HTML: data-URI images, Markdown tables, CSV frames."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from typing import Any

import pandas as pd

esc = html.escape


def thumbnail_uri(uri: str, size: int, quality: int = 80) -> str:
    """A JPEG thumbnail (longest side ``size``) of an image file as a data URI."""
    from PIL import Image

    with Image.open(uri) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def figure_uri(fig: Any) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def file_uri(path: Any, mime: str = "image/png") -> str:
    with open(path, "rb") as f:
        return f"data:{mime};base64," + base64.b64encode(f.read()).decode()


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"
    return esc(str(v))


def frame_html(df: pd.DataFrame, cols: list[str] | None = None) -> str:
    """A DataFrame as an HTML table (floats with two decimals)."""
    cols = cols or list(df.columns)
    head = "".join(f"<th>{esc(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r[c])}</td>" for c in cols) + "</tr>" for _, r in df.iterrows())
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _row_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_html(text: str, shift: int = 1) -> str:
    """The Markdown our writers produce (headings, pipe tables, '- ' lists, paragraphs) as HTML;
    headings move down ``shift`` levels so a file's '#' sits under the report's own title."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"^(#{1,5})\s+(.*)", line):
            level = min(6, len(m.group(1)) + shift)
            out.append(f"<h{level}>{esc(m.group(2))}</h{level}>")
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|(\s*-+\s*\|)+\s*$", lines[i + 1]):
            head = _row_cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_row_cells(lines[i]))
                i += 1
            out.append('<div class="scroll"><table><thead><tr>' + "".join(f"<th>{esc(c)}</th>" for c in head)
                       + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
                                                           for r in rows) + "</tbody></table></div>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{esc(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{esc(line)}</p>")
        i += 1
    return "\n".join(out)
