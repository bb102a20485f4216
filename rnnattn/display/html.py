"""HTML rendering: one jinja2 environment (autoescape on, undefined names are errors) for every page and fragment.

:func:`render_html` renders a whole :class:`~rnnattn.display.document.Report` (the equivalence report and the
studies' pages); :func:`render_fragment` renders sections or blocks for ``_repr_html_``. Values are escaped by the
environment, so names and metadata read from a checkpoint cannot inject markup or script; figures are inline
``data:`` PNGs, so nothing is fetched from the network. A Content-Security-Policy meta tag (``default-src
'none'; img-src data:; style-src 'unsafe-inline'``) on full pages is defence in depth on top of autoescaping.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from rnnattn._version import __version__
from rnnattn.display.document import Block, Figure, KeyValues, Report, Section, Table, Text, format_value

_STATUS_CLASSES = {"pass": "pass", "fail": "fail", "n/a": "na", "not applicable": "na"}


@functools.cache
def environment():
    """The jinja2 environment of rnnattn's templates (autoescape on for every template, undefined is an error)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("rnnattn.display", "templates"),
        autoescape=True,  # always, whatever the template's extension
        undefined=jinja2.StrictUndefined,
    )


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table_rows(t: Table) -> tuple[list[str], list[list[tuple[str, str]]], int]:
    """``(columns, rows of (text, css class), rows cut)``; every cell goes through :func:`format_value` on its
    own (a mixed-type column keeps each number's scale)."""
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
        return {"type": "table", "title": b.title, "caption": b.caption, "columns": columns, "rows": rows,
                "cut": cut}
    if isinstance(b, Figure):
        w, h = b.size_px
        return {"type": "figure", "title": b.title, "caption": b.caption, "alt": b.alt or b.title or "figure",
                "src": png_data_uri(b.png), "width": w, "height": h}
    raise TypeError(f"unknown display block {type(b).__name__}")


def section_context(s: Section) -> dict[str, Any]:
    return {"key": s.key, "title": s.title, "reading": s.reading, "status": s.status,
            "blocks": [block_context(b) for b in s.blocks]}


def render_html(report: Report) -> str:
    """A complete, self-contained HTML document (a string) for ``report``."""
    verdict_class = {True: "ok", False: "bad", None: "unknown"}[report.verdict_ok]
    return environment().get_template("report.html").render(
        report=report,
        sections=[section_context(s) for s in report.sections],
        verdict_class=verdict_class,
        version=__version__,
    )


def render_fragment(*items: Section | Block, with_style: bool = True) -> str:
    """HTML for sections and/or blocks in ``<div class="rnnattn-fragment">`` (what ``_repr_html_`` returns)."""
    sections = [section_context(i) for i in items if isinstance(i, Section)]
    blocks = [block_context(i) for i in items if not isinstance(i, Section)]
    return environment().get_template("fragment.html").render(sections=sections, blocks=blocks,
                                                              with_style=with_style)
