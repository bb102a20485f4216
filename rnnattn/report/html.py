"""The HTML report: one self-contained file (inline CSS, inline PNG figures, no scripts, no external URLs).

A Content-Security-Policy meta tag (``default-src 'none'; img-src data:; style-src 'unsafe-inline'``) is
defence in
depth on top of autoescaping: even markup that slipped through could neither run script nor fetch anything.
"""

from __future__ import annotations

from rnnattn._version import __version__
from rnnattn.report.document import Report
from rnnattn.report.fragments import environment, section_context


def render_html(report: Report) -> str:
    """Render ``report`` to a complete HTML document (a string)."""
    verdict_class = {True: "ok", False: "bad", None: "unknown"}[report.verdict_ok]
    return (
        environment()
        .get_template("report.html")
        .render(
            report=report,
            sections=[section_context(s) for s in report.sections],
            verdict_class=verdict_class,
            version=__version__,
        )
    )
