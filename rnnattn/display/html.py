"""HTML fragments shared by the report and by notebook display (``_repr_html_``).

One jinja2 environment with autoescape always on renders every piece of HTML rnnattn writes: the whole report
(:mod:`rnnattn.report.html`) and the fragments below, which result objects can return from ``_repr_html_``.
Values
are escaped by the environment, so names and metadata read from a checkpoint cannot inject markup or script;
figures
are inline ``data:`` PNGs, so nothing is fetched from the network.

Example:
    >>> import pandas as pd
    >>> from rnnattn.report.fragments import table_html
    >>> "<script>" in table_html(pd.DataFrame({"name": ["<script>alert(1)</script>"]}))
    False
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

import pandas as pd

from rnnattn.report.document import Block, Figure, KeyValues, Section, Table, Text, format_value

TEMPLATES = Path(__file__).with_name("templates")
_STATUS_CLASSES = {"pass": "pass", "fail": "fail", "n/a": "na", "not applicable": "na"}


@functools.cache
def environment():
    """The jinja2 environment of rnnattn's templates (autoescape on for every template, undefined is an
    error)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # always, whatever the template's extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table_rows(t: Table) -> tuple[list[str], list[list[tuple[str, str]]], int]:
    """``(columns, rows of (text, css class), rows cut)`` of a table; floats are shown to 3 significant
    digits."""
    df = t.df.reset_index() if t.index else t.df
    columns = [str(c) for c in df.columns]
    shown = df.head(t.max_rows) if t.max_rows and len(df) > t.max_rows else df
    rows = []
    for rec in shown.itertuples(index=False, name=None):
        row = []
        for v in rec:
            s = format_value(v)
            row.append((s, _STATUS_CLASSES.get(s.lower(), "")))
        rows.append(row)
    return columns, rows, len(df) - len(shown)


def block_context(b: Block) -> dict[str, Any]:
    """The template context of one block (``type`` selects the macro)."""
    if isinstance(b, Text):
        return {"type": "text", "text": b.text, "kind": b.kind}
    if isinstance(b, KeyValues):
        return {"type": "keyvalues", "title": b.title, "pairs": [(str(k), str(v)) for k, v in b.items]}
    if isinstance(b, Table):
        columns, rows, cut = table_rows(b)
        return {
            "type": "table",
            "title": b.title,
            "caption": b.caption,
            "columns": columns,
            "rows": rows,
            "cut": cut,
        }
    if isinstance(b, Figure):
        w, h = b.size_px
        return {
            "type": "figure",
            "title": b.title,
            "caption": b.caption,
            "alt": b.alt or b.title or "figure",
            "src": png_data_uri(b.png),
            "width": w,
            "height": h,
        }
    raise TypeError(f"unknown report block {type(b).__name__}")


def section_context(s: Section) -> dict[str, Any]:
    return {
        "key": s.key,
        "title": s.title,
        "reading": s.reading,
        "status": s.status,
        "blocks": [block_context(b) for b in s.blocks],
    }


def render_fragment(*items: Section | Block, with_style: bool = True) -> str:
    """HTML for sections and/or blocks, wrapped in ``<div class="rnnattn-fragment">`` (for
    ``_repr_html_``)."""
    sections = [section_context(i) for i in items if isinstance(i, Section)]
    blocks = [block_context(i) for i in items if not isinstance(i, Section)]
    return (
        environment()
        .get_template("fragment.html")
        .render(sections=sections, blocks=blocks, with_style=with_style)
    )


def table_html(
    df: pd.DataFrame, title: str = "", caption: str = "", max_rows: int = 40, index: bool = False
) -> str:
    """A DataFrame as an escaped HTML table fragment (the report's table style)."""
    return render_fragment(Table(df, title=title, caption=caption, max_rows=max_rows, index=index))


def figure_html(fig: Any, title: str = "", caption: str = "", alt: str = "", dpi: int = 110) -> str:
    """A matplotlib figure as an inline-PNG HTML fragment."""
    return render_fragment(Figure(fig, title=title, caption=caption, alt=alt, dpi=dpi))


def section_html(section: Section) -> str:
    return render_fragment(section)
