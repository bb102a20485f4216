"""The display document model: sections made of blocks (text, key-value lists, tables, figures).

Every page rnnattn writes is built from these: the equivalence report (HTML and PDF), the reproduction studies'
pages and the notebook displays (``_repr_html_``). Blocks hold raw values (strings, DataFrames, matplotlib
figures); escaping is the renderers' job: HTML through jinja2 autoescape (:mod:`rnnattn.display.html`), PDF by
turning off mathtext (:mod:`rnnattn.report.pdf`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

SectionStatus = Literal["ok", "not_applicable", "failed"]


@dataclass
class Text:
    """A paragraph. ``kind`` styles it: ``"p"`` plain, ``"note"`` muted, ``"warning"`` highlighted."""

    text: str
    kind: Literal["p", "note", "warning"] = "p"


@dataclass
class KeyValues:
    """A two-column list of ``(key, value)`` pairs (values are shown as strings)."""

    items: list[tuple[str, str]]
    title: str = ""


@dataclass
class Table:
    """A table from a DataFrame. ``max_rows`` truncates long tables (the renderers say how many rows were cut).

    Cells are formatted one by one (:func:`format_value`), so a column mixing numbers and text (``4.97e-8``
    beside ``"86/100"``) shows each number in its own scale."""

    df: pd.DataFrame
    title: str = ""
    caption: str = ""
    max_rows: int = 40
    index: bool = False


@dataclass
class Figure:
    """A matplotlib figure (a ``matplotlib.figure.Figure``, not pyplot state) with a title and an alt text.

    ``png`` renders it once at ``dpi`` and caches the bytes; both renderers embed those bytes, so HTML and PDF
    show the same picture.
    """

    fig: Any
    title: str = ""
    caption: str = ""
    alt: str = ""
    dpi: int = 110
    _png: bytes | None = field(default=None, repr=False)

    @property
    def png(self) -> bytes:
        if self._png is None:
            buf = io.BytesIO()
            # No "Software"/date chunks: the same figure gives the same bytes (reproducible reports).
            self.fig.savefig(buf, format="png", dpi=self.dpi, metadata={"Software": None})
            self._png = buf.getvalue()
        return self._png

    @property
    def size_px(self) -> tuple[int, int]:
        w, h = self.fig.get_size_inches()
        return int(round(w * self.dpi)), int(round(h * self.dpi))


Block = Text | KeyValues | Table | Figure


@dataclass
class Section:
    """One report section: a title, a one-line ``reading`` of what it shows, and its blocks.

    ``status`` is ``"not_applicable"`` when the analysis step does not apply to the model (e.g. pruning an
    LSTM): the section then holds the reason instead of numbers. ``"failed"`` records an analysis error without
    stopping the rest of the report.
    """

    key: str
    title: str
    reading: str
    blocks: list[Block] = field(default_factory=list)
    status: SectionStatus = "ok"


@dataclass
class Report:
    """A whole report: title, subtitle, sections in order, and an overall verdict line."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    verdict: str = ""
    verdict_ok: bool | None = None
    footer: str = ""
    meta: dict[str, str] = field(
        default_factory=dict
    )  # e.g. {"checkpoint-sha256": ...}: HTML meta tags, PDF Subject

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(f"report has no section {key!r}")


def format_value(v: Any, digits: int = 3) -> str:
    """A short display string: floats in 3 significant digits (scientific when small or large), others as str."""
    import math
    import numbers

    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        x = float(v)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0:
            return "0"
        if 1e-3 <= abs(x) < 1e4:
            return f"{x:.{digits}g}"
        return f"{x:.{max(digits - 1, 0)}e}"
    return str(v)
