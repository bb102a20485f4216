"""``build_report``: analyse a checkpoint (or model) and write its equivalence report as HTML and PDF.

The report runs :func:`rnnattn.analysis.equivalence` (the one pipeline) against the reference the checkpoint
records (teacher, one-step GD, construction source) or the one given, and renders every step's result; a step
that does not apply (no reference, a model without the Eq. 2 structure, non-finite weights) gives a section
saying why, so a report is written for any rnnattn model. Paths in the report are relative to the working
folder (or bare file names): a report never records the building machine's folders.

Example:
    >>> paths = build_report("checkpoints/teacher_student_d4.safetensors", out_dir="reports/teacher_student_d4")
    >>> paths.html, paths.pdf
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rnnattn._version import __version__
from rnnattn.analysis.equivalence import equivalence
from rnnattn.analysis.loading import Subject, display_path, resolve
from rnnattn.checkpoint import Checkpoint, load_checkpoint
from rnnattn.display import Report
from rnnattn.limits import MAX_FILE_BYTES
from rnnattn.models.base import Model
from rnnattn.report.basis import context_query_section, effective_section
from rnnattn.report.comparison import merges_section, polynomial_section, verdict_section
from rnnattn.report.files import FORMATS, report_targets, write_formats
from rnnattn.report.sections import (
    ReportInputs,
    lambda_section,
    probes_section,
    pruning_section,
    summary_section,
    weights_section,
)
from rnnattn.safeio import printable, read_regular
from rnnattn.training.state import read_log

SECTION_KEYS = ("summary", "lambda", "pruning", "weights", "effective", "probes", "polynomial", "context_query",
                "merges", "verdict")
SECTIONS = (summary_section, lambda_section, pruning_section, weights_section, effective_section, probes_section,
            polynomial_section, context_query_section, merges_section, verdict_section)


@dataclass(frozen=True)
class ReportPaths:
    """Files written by :func:`build_report` (``None`` for a format not asked for)."""

    out_dir: Path
    html: Path | None = None
    pdf: Path | None = None

    def files(self) -> list[Path]:
        return [p for p in (self.html, self.pdf) if p is not None]


def safe_name(name: str) -> str:
    """A folder-safe report name (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"


def _load(source: Model | Checkpoint | str | os.PathLike) -> tuple[Subject, str]:
    if isinstance(source, str | os.PathLike):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN weights are reported by the analysis, not as a warning here
            source = load_checkpoint(Path(source))
    if isinstance(source, Checkpoint):
        name = source.path.stem if source.path else type(source.model).__name__.lower()
    elif isinstance(source, Model):
        name = str(source.metadata.get("name") or type(source).__name__.lower())
    else:
        raise TypeError(f"build_report needs a model, a Checkpoint or a checkpoint path, got {type(source).__name__}")
    return resolve(source), name


def find_log(path: Path | None, metadata: dict[str, Any]) -> tuple[pd.DataFrame | None, Path | None, list[str]]:
    """The training log (CSV) beside a checkpoint: ``metadata["training"]["log"]`` if it names a file in the same
    folder, else ``<stem>.csv``, ``<stem>.log.csv``, ``<stem>_log.csv``, or ``log.csv`` for a run directory's
    ``model.safetensors``. Only the checkpoint's own folder is searched (metadata cannot point elsewhere)."""
    if path is None:
        return None, None, []
    folder, stem = path.parent, path.stem
    names = []
    training = metadata.get("training")
    if isinstance(training, dict) and isinstance(training.get("log"), str):
        names.append(Path(training["log"]).name)  # a bare file name: the metadata cannot escape the folder
    names += [f"{stem}.csv", f"{stem}.log.csv", f"{stem}_log.csv", f"{stem}-log.csv"]
    if path.name == "model.safetensors":
        names.append("log.csv")
    searched = []
    for n in dict.fromkeys(names):
        p = folder / n
        searched.append(printable(p))  # shown in the report: escaped, always encodable
        if p.is_file():
            try:
                return read_log(p), p, searched  # bounded and validated (rnnattn.limits: MAX_LOG_*)
            except (OSError, ValueError, pd.errors.ParserError):  # an unreadable log is reported as missing
                continue
    return None, None, searched


def build_document(
    source: Model | Checkpoint | str | os.PathLike,
    reference: Any = None,
    *,
    name: str | None = None,
    **analysis_kwargs: Any,
) -> Report:
    """Analyse ``source`` and return the report as a :class:`~rnnattn.display.Report` (nothing written).

    Args:
        source: model, checkpoint or checkpoint path.
        reference: as for :func:`rnnattn.analysis.equivalence` ("teacher", "one_step_gd", "construction", a
            LinearSelfAttention model or checkpoint path; None: what the checkpoint records).
        name: report name (default: the checkpoint's file stem).
        analysis_kwargs: passed to :func:`~rnnattn.analysis.equivalence` (``hi``, ``lo``, ``prune_threshold``, ...).
    """
    subj, default_name = _load(source)
    name = name or default_name
    log, log_path, searched = find_log(subj.path, subj.metadata)
    result = equivalence(subj, reference, **analysis_kwargs)
    src = ReportInputs(
        name=name,
        result=result,
        path=display_path(subj.path),
        metadata=subj.metadata,
        extras=subj.extras,
        log=log,
        log_name=log_path.name if log_path else None,
        log_searched=[Path(s).name for s in searched],
    )
    raw = read_regular(subj.path, MAX_FILE_BYTES, "checkpoint") if subj.path else None  # bounded, never a FIFO
    meta = {"checkpoint-sha256": hashlib.sha256(raw).hexdigest()} if raw is not None else {}
    verdict = result.verdict
    claim = "ONE-STEP GD ON THE TASK'S SUPPORT" if result.task == "icl_regression" else "EQUIVALENT"
    headline = {True: f"{claim} — ", False: f"NOT SHOWN {claim} — ", None: "No verdict — "}[verdict]
    ref = result.reference
    against = f" vs {ref.kind.replace('_', '-')} reference" if ref else " (no reference)"  # type: ignore[union-attr]
    return Report(
        title=f"Equivalence report: {name}",
        subtitle=f"{type(result.student).__name__}{against} · rnnattn {__version__}",
        sections=[build(src) for build in SECTIONS],
        verdict=headline + (result.verdict_text if verdict is not None else result.checks.reason),  # type: ignore
        verdict_ok=verdict,
        footer=f"rnnattn {__version__} · {name}",
        meta=meta,
    )


def build_report(
    source: Model | Checkpoint | str | os.PathLike,
    reference: Any = None,
    out_dir: str | os.PathLike | None = None,
    formats: Sequence[str] = FORMATS,
    force: bool = False,
    *,
    name: str | None = None,
    **analysis_kwargs: Any,
) -> ReportPaths:
    """Write ``report.html`` (self-contained) and/or ``report.pdf`` for ``source`` into ``out_dir``.

    Args:
        source: model, checkpoint or checkpoint path.
        reference: see :func:`build_document`.
        out_dir: folder for the files (default ``reports/<name>``).
        formats: any of ``"html"``, ``"pdf"``.
        force: replace existing report files (otherwise :class:`FileExistsError`, checked before any analysis).
        name: report name (default: the checkpoint's file stem).
    Returns:
        :class:`ReportPaths` of the files written (each written atomically).
    """
    if out_dir is None:
        stem = Path(source).stem if isinstance(source, str | os.PathLike) else None
        out_dir = Path("reports") / safe_name(name or stem or "model")
    out_dir = Path(out_dir)
    targets = report_targets(out_dir, list(formats), force)  # before the analysis: fail fast
    written = write_formats(build_document(source, reference, name=name, **analysis_kwargs), targets, force)
    return ReportPaths(out_dir, written.get("html"), written.get("pdf"))


__all__ = ["build_report", "build_document", "ReportPaths", "find_log", "SECTION_KEYS", "FORMATS"]
