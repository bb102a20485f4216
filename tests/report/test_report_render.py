"""HTML (rnnattn.display) and PDF renderers on hand-made documents (no analysis involved)."""

import io
import re

import numpy as np
import pandas as pd
import pypdf

from rnnattn.display import Figure, KeyValues, Report, Section, Table, Text, format_value, render_fragment, render_html
from rnnattn.report import figures
from rnnattn.report.pdf import render_pdf

EVIL = "<script>alert('x')</script>"


def _report(n_rows: int = 5, max_rows: int = 40) -> Report:
    df = pd.DataFrame(
        {
            "name": [EVIL] + [f"row{i}" for i in range(n_rows - 1)],
            "value": np.linspace(0, 1, n_rows),
            "status": ["PASS", "FAIL"] * (n_rows // 2) + ["PASS"] * (n_rows % 2),
        }
    )
    fig = figures.lambda_histogram(np.linspace(0, 1, 10))
    return Report(
        title=f"T {EVIL}",
        subtitle="sub $x^2$",
        verdict="PASS <b>",
        verdict_ok=True,
        footer="foot",
        sections=[
            Section(
                "one",
                f"First {EVIL}",
                "reading one",
                [
                    Text(EVIL),
                    KeyValues([("k<", "v>&"), ("dollar", "$5")]),
                    Table(df, title="tab", max_rows=max_rows),
                    Figure(fig, title="fig", alt="a"),
                ],
            ),
            Section(
                "two", "Second", "reading two", [Text("does not apply", "note")], status="not_applicable"
            ),
        ],
    )


def test_html_is_escaped_self_contained_and_has_csp():
    html = render_html(_report())
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html and "k&lt;" in html and "v&gt;&amp;" in html and "PASS &lt;b&gt;" in html
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    # Nothing is fetched: every src is a data: URI and no URL appears in an attribute or in CSS.
    assert re.findall(r'src="([^"]*)"', html) and all(
        s.startswith("data:image/png;base64,") for s in re.findall(r'src="([^"]*)"', html)
    )
    assert not re.search(r'(href|src)="(https?:)?//', html) and "url(" not in html and "@import" not in html
    assert '<section id="one"' in html and '<section id="two" class="status-not_applicable"' in html
    assert 'class="pass">PASS<' in html and 'class="fail">FAIL<' in html


def test_table_truncation_is_reported():
    html = render_fragment(Table(pd.DataFrame({"a": range(50)}), max_rows=10))
    assert html.count("<tr>") == 11 and "40 more rows not shown" in html


def test_fragment_for_notebooks():
    html = render_fragment(Table(pd.DataFrame({"x": [EVIL]})), with_style=False)
    assert (
        html.startswith('<div class="rnnattn-fragment">') and "<script" not in html and "<style" not in html
    )


def test_pdf_pages_and_text():
    data = render_pdf(_report())
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 3  # title page + one page per section
    text = "\n".join(p.extract_text() for p in reader.pages)
    for s in (
        "First",
        "reading one",
        "Second",
        "not applicable",
        "sub $x^2$",
        "$5",
        "<script>alert('x')</script>",
    ):
        assert s in text, s
    assert reader.metadata.title.startswith("T <script>")


def test_pdf_long_tables_continue_on_new_pages():
    short, long = (
        len(pypdf.PdfReader(io.BytesIO(render_pdf(_report(n, max_rows=0)))).pages) for n in (5, 200)
    )
    assert long > short


def test_format_value():
    assert [format_value(v) for v in (None, True, 3, 0.0, 1.23456, 1e-9, float("nan"), np.float64(2e5))] == [
        "—",
        "yes",
        "3",
        "0",
        "1.23",
        "1.00e-09",
        "nan",
        "2.00e+05",
    ]


def test_mixed_type_column_keeps_each_numbers_scale():
    # the paper's Table 1 puts 4.97e-8 beside "86/100" in one column: each cell is formatted on its own
    df = pd.DataFrame({"quantity": ["loss", "hidden removed"], "paper": [4.97e-8, "86/100"]})
    html = render_fragment(Table(df))
    assert "<td>4.97e-08</td>" in html and "<td>86/100</td>" in html and ">0.0<" not in html
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(render_pdf(
        Report("t", sections=[Section("s", "S", "r", [Table(df)])])))).pages)
    assert "4.97e-08" in text
