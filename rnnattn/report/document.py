"""Alias of :mod:`rnnattn.display.document` (the document model moved below the analysis stage so results can
render themselves); kept so that existing ``rnnattn.report.document`` imports keep working. New code imports
:mod:`rnnattn.display`."""

from rnnattn.display.document import Block, Figure, KeyValues, Report, Section, Table, Text, format_value

__all__ = ["Block", "Figure", "KeyValues", "Report", "Section", "Table", "Text", "format_value"]
