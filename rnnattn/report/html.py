"""Alias of :func:`rnnattn.display.render_html` (the one HTML renderer lives in :mod:`rnnattn.display`); kept so
that existing ``rnnattn.report.html`` imports keep working."""

from rnnattn.display.html import render_html

__all__ = ["render_html"]
