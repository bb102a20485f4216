"""The HTML report in headless Chromium: it renders, every figure decodes, and the console stays clean."""

import pytest
from _report_chromium import Browser, available

pytestmark = pytest.mark.skipif(
    not available(),
    reason="headless Chromium not installed at /usr/bin/chromium "
    "(Debian package 'chromium'; .ci/run installs it)",
)

PROBE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({ok: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                                                  shown: i.getBoundingClientRect().width, alt: i.alt})),
  sections: Array.from(document.querySelectorAll('main > section')).map(s => s.id),
  readings: document.querySelectorAll('p.reading').length,
  scripts: document.scripts.length,
  height: document.body.scrollHeight,
  title: document.title,
})"""


def test_report_renders_with_figures_and_no_console_errors(construction_report, tmp_path):
    import json

    with Browser(tmp_path / "profile") as b:
        b.open(construction_report.html.as_uri())
        page = json.loads(b.evaluate(PROBE))
        b.evaluate("1")  # flush pending events
        errors = b.errors()
    from rnnattn.report.build import SECTION_KEYS

    assert page["sections"] == [
        "summary",
        "lambda",
        "pruning",
        "weights",
        "effective",
        "probes",
        "polynomial",
        "context_query",
        "merges",
        "verdict",
    ]
    assert tuple(page["sections"]) == SECTION_KEYS  # every section the builder writes reaches the page
    assert page["readings"] == len(SECTION_KEYS) and page["scripts"] == 0 and page["height"] > 3000
    assert page["title"] == "Equivalence report: compact_construction"
    assert len(page["images"]) == 5  # the figures of a construction's report (no training log: no loss curve)
    for img in page["images"]:
        assert img["ok"] and img["w"] > 100 and img["h"] > 100 and img["shown"] > 100 and img["alt"], img
    assert errors == []


def test_harness_sees_console_errors_and_blocked_loads(tmp_path):
    # Negative control: the checks above would notice a broken image, a script error and a blocked external
    # load.
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:\"></head><body>"
        '<img src="data:image/png;base64,AAAA"><img src="http://192.0.2.1/x.png"></body></html>'
    )
    import json

    with Browser(tmp_path / "profile") as b:
        b.open(page.as_uri())
        imgs = json.loads(b.evaluate("JSON.stringify(Array.from(document.images).map(i => i.naturalWidth))"))
        b.evaluate("console.error('boom')")
        b.evaluate("1")
        errors = b.errors()
    assert imgs == [0, 0]
    assert any("boom" in e for e in errors) and any("Content Security Policy" in e for e in errors), errors
