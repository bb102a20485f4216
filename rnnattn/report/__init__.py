"""Equivalence reports: HTML and PDF from one document model, and HTML fragments for notebooks.

``build_report(checkpoint_or_model, reference=None, out_dir=..., formats=("html", "pdf"), force=False)`` runs
the
analysis and writes ``report.html`` / ``report.pdf``; :mod:`rnnattn.report.fragments` renders tables and
figures for
``_repr_html_``.
"""

from rnnattn.report.document import Figure, KeyValues, Report, Section, Table, Text

__all__ = ["Report", "Section", "Text", "KeyValues", "Table", "Figure", "build_report", "ReportPaths"]


def __getattr__(name: str):
    # build pulls in the analysis stage; import it only when asked for.
    if name in ("build_report", "ReportPaths", "build_document"):
        from rnnattn.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'rnnattn.report' has no attribute {name!r}")
