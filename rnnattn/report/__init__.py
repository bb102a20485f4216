"""Equivalence reports: HTML and PDF of one :func:`rnnattn.analysis.equivalence` result.

``build_report(checkpoint_or_model, reference=None, out_dir=..., formats=("html", "pdf"), force=False)`` runs the
pipeline and writes ``report.html`` / ``report.pdf``. The sections (:mod:`rnnattn.report.sections`,
:mod:`rnnattn.report.comparison`) turn each step's typed result into a :class:`~rnnattn.display.Section`; the
paper's table of the checkpoint's task is chosen in :mod:`rnnattn.report.paper`; HTML is rendered by
:mod:`rnnattn.display`, the PDF by :mod:`rnnattn.report.pdf`.
"""

from rnnattn.display.document import Figure, KeyValues, Report, Section, Table, Text

__all__ = ["Report", "Section", "Text", "KeyValues", "Table", "Figure", "build_report", "ReportPaths"]


def __getattr__(name: str):
    # build pulls in the analysis stage; import it only when asked for.
    if name in ("build_report", "ReportPaths", "build_document"):
        from rnnattn.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'rnnattn.report' has no attribute {name!r}")
