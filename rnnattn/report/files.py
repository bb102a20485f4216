"""Writing a report's files: one place for both report kinds (:mod:`rnnattn.report.build`, :mod:`rnnattn.report.lsrl`).

:func:`report_targets` checks the output before any analysis runs (known formats, no existing file replaced
without ``force``, ``out_dir`` not a file); :func:`write_formats` renders the :class:`~rnnattn.display.Report` as
HTML (:mod:`rnnattn.display`) and/or PDF (:mod:`rnnattn.report.pdf`) and writes each file atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rnnattn.checkpoint import atomic_write_bytes
from rnnattn.display import Report

FORMATS = ("html", "pdf")


def report_targets(out_dir: Path, formats: Sequence[str], force: bool) -> dict[str, Path]:
    """``{format: out_dir / report.<format>}``; raises ValueError (unknown format), FileExistsError (a file exists
    and not ``force``) or NotADirectoryError (``out_dir`` is a file)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown report format(s) {bad or list(formats)}; choose from {', '.join(FORMATS)}")
    targets = {f: out_dir / f"report.{f}" for f in dict.fromkeys(formats)}
    if not force:
        for p in targets.values():
            if p.exists():
                raise FileExistsError(f"{p} exists (use --force / force=True to replace it)")
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} exists and is not a directory")
    return targets


def write_formats(report: Report, targets: dict[str, Path], force: bool) -> dict[str, Path]:
    """Render ``report`` in each target's format and write it atomically; returns ``{format: path written}``."""
    written: dict[str, Path] = {}
    for fmt, path in targets.items():
        if fmt == "html":
            from rnnattn.display import render_html

            data = render_html(report).encode("utf-8")
        else:
            from rnnattn.report.pdf import render_pdf

            data = render_pdf(report)
        written[fmt] = atomic_write_bytes(path, data, overwrite=force)
    return written


__all__ = ["FORMATS", "report_targets", "write_formats"]
