"""The one display layer: every piece of HTML rnnattn writes is rendered here, from one document model.

It sits below every pipeline stage (it imports nothing of rnnattn but its version), so models, analysis results,
reports and studies all use it:

* the document model (:mod:`rnnattn.display.document`): :class:`Report` of :class:`Section` s holding
  :class:`Text`, :class:`KeyValues`, :class:`Table` (a DataFrame) and :class:`Figure` (a matplotlib
  ``Figure``, never pyplot state) blocks;
* :func:`render_html` renders a whole :class:`Report` as one self-contained page (jinja2, autoescape on,
  ``StrictUndefined``, inline PNGs, a Content-Security-Policy);
* :func:`render_fragment` renders sections or blocks for ``_repr_html_`` in notebooks; :func:`fragment` is the
  shorthand result objects use (a title, a one-line reading, blocks).

Writing a study page (``analysis/*.py``) — build a :class:`Report`, render it, write it atomically::

    from rnnattn.checkpoint import atomic_write_bytes
    from rnnattn.display import Figure, Report, Section, Table, Text, render_html

    report = Report(title="LSRL noise robustness", sections=[
        Section("vec2vec", "Vec-to-vec", "error grows with the noise", [Table(df), Figure(fig)]),
    ])
    atomic_write_bytes(out / "report.html", render_html(report).encode(), overwrite=True)

Figures: make them with ``matplotlib.figure.Figure(...)`` (or :func:`rnnattn.report.figures.new_figure`), not
``pyplot``, so nothing global is left behind. The PDF report (:mod:`rnnattn.report.pdf`) walks the same
:class:`Report`.
"""

from rnnattn.display.document import Block, Figure, KeyValues, Report, Section, Table, Text, format_value
from rnnattn.display.html import render_fragment, render_html


def fragment(title: str, reading: str = "", *blocks: Block, status: str = "ok", key: str = "result") -> str:
    """``_repr_html_`` of a result object: one section (``title``, ``reading``, ``blocks``) as escaped HTML."""
    return render_fragment(Section(key, title, reading, list(blocks), status=status))  # type: ignore[arg-type]


__all__ = [
    "Report",
    "Section",
    "Text",
    "KeyValues",
    "Table",
    "Figure",
    "Block",
    "format_value",
    "render_html",
    "render_fragment",
    "fragment",
]
