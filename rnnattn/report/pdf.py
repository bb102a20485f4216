"""The PDF report: the same :class:`~rnnattn.display.Report` as the HTML, laid out on A4 pages with
matplotlib's ``PdfPages`` (no system libraries such as Pango/weasyprint needed).

Layout is a simple flow: a title page with the verdict and the contents, then each section from a new page —
heading, the one-line reading, and its blocks top to bottom (text wrapped, tables in monospace, figures as the
same PNGs the HTML embeds), continuing on further pages when a block does not fit. All text is drawn with
``parse_math=False``, so a ``$`` in checkpoint metadata is a dollar sign, never mathtext.
"""

from __future__ import annotations

import io
import textwrap
import warnings

import matplotlib.image as mpimg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure as MplFigure

from rnnattn._version import __version__
from rnnattn.display.document import Figure, KeyValues, Report, Section, Table, Text
from rnnattn.display.html import table_rows

PAGE_W, PAGE_H = 8.27, 11.69  # A4, inches
MARGIN = 0.6
BODY_W = PAGE_W - 2 * MARGIN
PT = 1 / 72  # one point in inches
SANS, MONO = "DejaVu Sans", "DejaVu Sans Mono"


def _chars_per_line(width_in: float, fontsize: float, mono: bool = False) -> int:
    # DejaVu: monospace advance is 0.602 em; proportional text averages about 0.55 em.
    return max(int(width_in / (fontsize * PT * (0.602 if mono else 0.55))), 10)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: max(n - 1, 1)] + "…"


class _Writer:
    """Flows text lines and images down A4 pages, starting a new page when the next item does not fit."""

    def __init__(self, pdf: PdfPages, footer: str) -> None:
        self.pdf, self.footer = pdf, footer
        self.page: MplFigure | None = None
        self.y = 0.0
        self.n_pages = 0

    def new_page(self) -> None:
        self.finish_page()
        self.page = MplFigure(figsize=(PAGE_W, PAGE_H))
        self.n_pages += 1
        self.y = MARGIN
        self.page.text(
            0.5,
            0.35 / PAGE_H,
            f"{self.footer} — page {self.n_pages}",
            ha="center",
            va="bottom",
            fontsize=7,
            color="#777777",
            family=SANS,
            parse_math=False,
        )

    def finish_page(self) -> None:
        if self.page is not None:
            self.pdf.savefig(self.page)
            self.page = None

    def room(self) -> float:
        return PAGE_H - MARGIN - self.y

    def ensure(self, height: float) -> None:
        if self.page is None or height > self.room():
            self.new_page()

    def line(
        self,
        s: str,
        size: float = 9.0,
        *,
        mono: bool = False,
        weight: str = "normal",
        style: str = "normal",
        color: str = "#1b1b1b",
        indent: float = 0.0,
        gap: float = 1.35,
    ) -> None:
        h = size * PT * gap
        self.ensure(h)
        self.page.text(
            (MARGIN + indent) / PAGE_W,
            1 - self.y / PAGE_H,
            s,
            fontsize=size,
            va="top",
            ha="left",
            family=MONO if mono else SANS,
            weight=weight,
            style=style,
            color=color,
            parse_math=False,
        )
        self.y += h

    def lines(
        self,
        rows: list[str],
        size: float,
        *,
        mono: bool = True,
        gap: float = 1.3,
        color: str = "#1b1b1b",
        indent: float = 0.0,
    ) -> None:
        """Many lines at once: one multi-line Text per page (drawing hundreds of Text objects was the slow
        part)."""
        h = size * PT * gap
        i = 0
        while i < len(rows):
            self.ensure(h)
            n = max(1, min(len(rows) - i, int(self.room() / h)))
            self.page.text(
                (MARGIN + indent) / PAGE_W,
                1 - self.y / PAGE_H,
                "\n".join(rows[i : i + n]),
                fontsize=size,
                va="top",
                ha="left",
                family=MONO if mono else SANS,
                color=color,
                parse_math=False,
                linespacing=gap,
            )  # matplotlib: line pitch = linespacing x font size
            self.y += n * h
            i += n

    def paragraph(self, s: str, size: float = 9.0, *, mono: bool = False, indent: float = 0.0, **kw) -> None:
        width = _chars_per_line(BODY_W - indent, size, mono)
        for raw in str(s).splitlines() or [""]:
            for ln in textwrap.wrap(raw, width, break_long_words=True, replace_whitespace=False) or [""]:
                self.line(ln, size, mono=mono, indent=indent, **kw)

    def space(self, inches: float) -> None:
        if self.page is not None:
            self.y = min(self.y + inches, PAGE_H - MARGIN)

    def image(self, png: bytes, width_in: float) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = mpimg.imread(io.BytesIO(png), format="png")
        h_px, w_px = arr.shape[:2]
        w = min(width_in, BODY_W)
        h = w * h_px / w_px
        max_h = PAGE_H - 2 * MARGIN - 0.3
        if h > max_h:  # taller than a page: shrink to fit
            w, h = w * max_h / h, max_h
        self.ensure(h + 0.05)
        ax = self.page.add_axes(
            ((MARGIN + (BODY_W - w) / 2) / PAGE_W, 1 - (self.y + h) / PAGE_H, w / PAGE_W, h / PAGE_H)
        )
        ax.imshow(
            arr, interpolation="none"
        )  # vector backends then embed the PNG pixels as they are (no resampling)
        ax.set_axis_off()
        self.y += h + 0.08


def _table(w: _Writer, t: Table) -> None:
    columns, rows, cut = table_rows(t)
    cells = [columns] + [[c for c, _ in r] for r in rows]
    widths = [min(max(len(r[j]) for r in cells), 34) for j in range(len(columns))]
    size = 7.5
    while sum(widths) + 2 * len(widths) > _chars_per_line(BODY_W, size, mono=True) and size > 5.5:
        size -= 0.5
    limit = _chars_per_line(BODY_W, size, mono=True)
    while (
        sum(widths) + 2 * len(widths) > limit and max(widths) > 8
    ):  # still too wide: narrow the widest column
        widths[widths.index(max(widths))] -= 1

    def fmt(r: list[str]) -> str:
        return "  ".join(_clip(c, wd).ljust(wd) for c, wd in zip(r, widths, strict=True)).rstrip()

    if t.title:
        w.line(t.title, 8.5, weight="bold")
    w.ensure(size * PT * 1.3 * min(len(cells) + 1, 4))  # keep the header with the first rows
    w.line(fmt(columns), size, mono=True, weight="bold", gap=1.3)
    w.line("  ".join("-" * wd for wd in widths), size, mono=True, gap=1.1, color="#888888")
    w.lines([fmt(r) for r in cells[1:]], size)
    if cut:
        w.line(f"{cut} more rows not shown.", 7, style="italic", color="#666666")
    if t.caption:
        w.paragraph(t.caption, 7.5, color="#555555")
    w.space(0.1)


def _section(w: _Writer, s: Section) -> None:
    w.new_page()
    badge = {"not_applicable": "  [not applicable]", "failed": "  [analysis failed]"}.get(s.status, "")
    w.paragraph(s.title + badge, 14, weight="bold", gap=1.4)
    w.space(0.04)
    w.paragraph(s.reading, 9.5, style="italic", color="#223344")
    w.space(0.12)
    for b in s.blocks:
        if isinstance(b, Text):
            color = {"note": "#666666", "warning": "#8a5a00"}.get(b.kind, "#1b1b1b")
            w.paragraph(b.text, 9, color=color)
            w.space(0.06)
        elif isinstance(b, KeyValues):
            if b.title:
                w.line(b.title, 8.5, weight="bold")
            kw = min(max((len(k) for k, _ in b.items), default=0), 28)
            width = _chars_per_line(BODY_W, 7.5, mono=True) - kw - 2
            rows = []
            for k, v in b.items:
                wrapped = textwrap.wrap(" ".join(str(v).split()), width, break_long_words=True) or [""]
                rows += [
                    f"{_clip(str(k), kw).ljust(kw) if j == 0 else ' ' * kw}  {ln}"
                    for j, ln in enumerate(wrapped)
                ]
            w.lines(rows, 7.5)
            w.space(0.1)
        elif isinstance(b, Table):
            _table(w, b)
        elif isinstance(b, Figure):
            if b.title:
                w.ensure(0.4 + min(2.0, b.size_px[1] / b.dpi))  # keep a figure title with its figure
                w.line(b.title, 8.5, weight="bold")
            w.image(b.png, b.size_px[0] / b.dpi)
            if b.caption:
                w.paragraph(b.caption, 7.5, color="#555555")
            w.space(0.1)
        else:
            raise TypeError(f"unknown report block {type(b).__name__}")


def render_pdf(report: Report) -> bytes:
    """Render ``report`` to PDF bytes: a title page (verdict, contents) and one or more pages per section."""
    buf = io.BytesIO()
    # Fixed metadata (no creation date): the same report gives the same bytes.
    meta = {
        "Title": report.title,
        "Creator": f"rnnattn {__version__}",
        "Producer": "matplotlib PdfPages",
        "CreationDate": None,
        "Subject": "; ".join(f"{k} {v}" for k, v in report.meta.items()),
    }
    with PdfPages(buf, metadata=meta) as pdf:
        w = _Writer(pdf, report.footer or f"rnnattn {__version__}")
        w.new_page()
        w.space(0.6)
        w.paragraph(report.title, 18, weight="bold", gap=1.4)
        if report.subtitle:
            w.paragraph(report.subtitle, 10, color="#555555")
        w.space(0.2)
        if report.verdict:
            color = {True: "#145214", False: "#7a1010", None: "#333333"}[report.verdict_ok]
            w.paragraph(report.verdict, 11, weight="bold", color=color)
        w.space(0.3)
        w.line("Contents", 12, weight="bold")
        for i, s in enumerate(report.sections, 1):
            na = " (not applicable)" if s.status == "not_applicable" else ""
            w.line(f"{i}. {s.title}{na}", 9.5, indent=0.1)
            w.paragraph(s.reading, 8, indent=0.35, color="#555555")
        for s in report.sections:
            _section(w, s)
        w.finish_page()
    return buf.getvalue()
