"""``build_report``: analyse a checkpoint (or model) and write its equivalence report as HTML and PDF.

The report runs :func:`rnnattn.analysis.equivalence` against the reference the checkpoint records (teacher,
one-step
GD, construction source) or the one given. When the whole pipeline cannot run — no reference, or a model that
is not
an Eq. 2 gated RNN — the steps that still apply are run one by one and every other section says why it does
not
apply, so a report is written for any rnnattn model.

Example:
    >>> paths = build_report("checkpoints/teacher_student_d4.safetensors",
    out_dir="reports/teacher_student_d4")
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

import numpy as np
import pandas as pd

from rnnattn._version import __version__
from rnnattn.analysis.errors import AnalysisNotApplicable
from rnnattn.analysis.loading import Subject, resolve
from rnnattn.checkpoint import Checkpoint, atomic_write_bytes, load_checkpoint
from rnnattn.models.base import Model
from rnnattn.report.comparison import merges_section, polynomial_section, verdict_section
from rnnattn.report.document import Report
from rnnattn.report.sections import (
    Context,
    lambda_section,
    probes_section,
    pruning_section,
    summary_section,
    weights_section,
)

FORMATS = ("html", "pdf")
MAX_MERGE_ROWS = 16  # partial reports only: beyond this the model has no block form to speak of
SECTION_KEYS = ("summary", "lambda", "pruning", "weights", "probes", "polynomial", "merges", "verdict")


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


# -- inputs
# ------------------------------------------------------------------------------------------------------
def _load(source: Model | Checkpoint | str | os.PathLike) -> tuple[Subject, str]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN weights are reported by the analysis, not as a warning here
            source = load_checkpoint(path)
    if isinstance(source, Checkpoint):
        name = source.path.stem if source.path else type(source.model).__name__.lower()
    elif isinstance(source, Model):
        name = str(source.metadata.get("name") or type(source).__name__.lower())
    else:
        raise TypeError(
            f"build_report needs a model, a Checkpoint or a checkpoint path, got {type(source).__name__}"
        )
    return resolve(source), name


def find_log(
    path: Path | None, metadata: dict[str, Any]
) -> tuple[pd.DataFrame | None, Path | None, list[str]]:
    """The training log (CSV) beside a checkpoint: ``metadata["training"]["log"]`` if it names a file in the
    same
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
        searched.append(str(p))
        if p.is_file():
            try:
                return pd.read_csv(p), p, searched
            except (OSError, ValueError, pd.errors.ParserError):
                continue
    return None, None, searched


# -- analysis
# ----------------------------------------------------------------------------------------------------
def _partial(ctx: Context, kw: dict[str, Any]) -> None:
    """Run the steps that apply without the full pipeline, recording why the others do not."""
    from rnnattn.analysis import canonicalize, instantaneous_polynomial, merge_rank1, neuron_roles, prune
    from rnnattn.models.gated_rnn import GatedLinearRNN
    from rnnattn.models.summary import decays

    m, part, why = ctx.model, ctx.partial, ctx.reasons
    hi, lo = kw.get("hi", 0.99), kw.get("lo", 0.01)
    why["probes"] = f"the KV/Q probes need the reference's keys, values and queries — {ctx.reason}"
    if not isinstance(m, GatedLinearRNN):
        for step in ("prune", "canonicalize", "merge_rank1", "polynomial"):
            why[step] = ctx.reason
        lams = decays(m)
        if lams:
            part["lam"] = np.concatenate([v.numpy() for v in lams.values()])
            why["lambda"] = (
                f"|λ| of {', '.join(k or type(m).__name__ for k in lams)}; roles by the thresholds "
                "only (the Eq. 2 reading analysis does not apply)."
            )
        else:
            why["lambda"] = (
                f"{type(m).__name__} has no input-independent decay λ (its forget/update gate depends on "
                "the input), so there is no λ histogram."
            )
        return
    roles = neuron_roles(m, hi, lo)
    part["roles"], part["lam"] = roles, roles["lam"].to_numpy(dtype=np.float64)
    pr = prune(m, kw.get("prune_threshold", 1e-3))
    part["prune"] = pr
    final = pr.model
    try:
        can = canonicalize(pr.model, hi, lo)
        part["canonical"], final = can, can.model
        n_bad = int((~can.gating_conforming).sum())
        if 2 <= n_bad <= MAX_MERGE_ROWS:
            part["merges"] = merge_rank1(final, None, kw.get("merge_tol", 1e-3), hi, lo)
        elif n_bad > MAX_MERGE_ROWS:
            why["merge_rank1"] = (
                f"{n_bad} gating rows are outside the block form: the merge search of App. B.2 "
                f"targets a few leftover rows (at most {MAX_MERGE_ROWS} here), not an unstructured "
                "model"
            )
    except AnalysisNotApplicable as e:
        why["canonicalize"] = why["merge_rank1"] = str(e)
    g = lambda t: t.detach().to(float).cpu().numpy() if hasattr(t, "detach") else t  # noqa: E731
    part["weights"] = {
        "W_m_in": g(final.W_m_in),
        "W_x_in": g(final.W_x_in),
        "W_m_out": g(final.W_m_out),
        "W_x_out": g(final.W_x_out),
        "D": g(final.D),
    }
    if final.config.recurrence == "diagonal":
        part["weights"]["lam"] = g(final.lam)
    part["student_polynomial"] = instantaneous_polynomial(final)


def _analyse(ctx: Context, subj: Any, reference: Any, analysis_kwargs: dict[str, Any]) -> None:
    """The full pipeline, or the steps that apply when it cannot run."""
    from rnnattn.analysis import equivalence

    try:
        ctx.result = equivalence(subj, reference, **analysis_kwargs)
    except (AnalysisNotApplicable, ValueError) as e:
        # Not an Eq. 2 model, or no reference recorded: report what applies. A reference the user asked for
        # but
        # that cannot be used is their error, and says so.
        if reference is not None and not isinstance(e, AnalysisNotApplicable):
            raise
        ctx.reason = str(e).splitlines()[0]
        _partial(ctx, analysis_kwargs)


def build_document(
    source: Model | Checkpoint | str | os.PathLike,
    reference: Any = None,
    *,
    name: str | None = None,
    **analysis_kwargs: Any,
) -> Report:
    """Analyse ``source`` and return the report as a :class:`~rnnattn.report.document.Report` (nothing
    written).

    Args:
        source: model, checkpoint or checkpoint path.
        reference: as for :func:`rnnattn.analysis.equivalence` ("teacher", "one_step_gd", "construction", a
            LinearSelfAttention model or checkpoint path; None: what the checkpoint records).
        name: report name (default: the checkpoint's file stem).
        analysis_kwargs: passed to :func:`~rnnattn.analysis.equivalence` (``hi``, ``lo``, ``prune_threshold``,
        ...).
    """
    from rnnattn.models.summary import nonfinite

    subj, default_name = _load(source)
    name = name or default_name
    log, log_path, searched = find_log(subj.path, subj.metadata)
    ctx = Context(
        name,
        subj.model,
        subj.metadata,
        subj.extras,
        subj.path,
        log=log,
        log_path=log_path,
        log_searched=searched,
    )
    bad = nonfinite(subj.model)
    if bad:
        # NaN/Inf weights make every number of the analysis meaningless: flag them and report nothing else.
        ctx.reason = "the model has non-finite weights: " + ", ".join(
            f"{k} ({n_nan} NaN, {n_inf} Inf)" for k, (n_nan, n_inf) in list(bad.items())[:6]
        )
        for step in ("lambda", "prune", "canonicalize", "merge_rank1", "polynomial", "probes"):
            ctx.reasons[step] = ctx.reason
    else:
        _analyse(ctx, subj, reference, analysis_kwargs)
    sections = [
        summary_section(ctx),
        lambda_section(ctx),
        pruning_section(ctx),
        weights_section(ctx),
        probes_section(ctx),
        polynomial_section(ctx),
        merges_section(ctx),
        verdict_section(ctx),
    ]
    r = ctx.result
    meta = {"checkpoint-sha256": hashlib.sha256(subj.path.read_bytes()).hexdigest()} if subj.path else {}
    verdict = (
        ("EQUIVALENT — " if r.verdict else "NOT SHOWN EQUIVALENT — ") + r.verdict_text
        if r is not None
        else f"No verdict — {ctx.reason}"
    )
    ref = f" vs {r.reference_kind.replace('_', '-')} reference" if r is not None else " (no reference)"
    return Report(
        title=f"Equivalence report: {name}",
        subtitle=f"{type(subj.model).__name__}{ref} · rnnattn {__version__}",
        sections=sections,
        verdict=verdict,
        verdict_ok=r.verdict if r is not None else None,
        footer=f"rnnattn {__version__} · {name}",
        meta=meta,
    )


def _targets(out_dir: Path, formats: Sequence[str]) -> dict[str, Path]:
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown report format(s) {bad or list(formats)}; choose from {', '.join(FORMATS)}")
    return {f: out_dir / f"report.{f}" for f in dict.fromkeys(formats)}


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
        force: replace existing report files (otherwise :class:`FileExistsError`, checked before any
        analysis).
        name: report name (default: the checkpoint's file stem).
    Returns:
        :class:`ReportPaths` of the files written (each written atomically).
    """
    if out_dir is None:
        stem = Path(source).stem if isinstance(source, str | os.PathLike) else None
        out_dir = Path("reports") / safe_name(name or stem or "model")
    out_dir = Path(out_dir)
    targets = _targets(out_dir, list(formats))
    if not force:
        for p in targets.values():
            if p.exists():
                raise FileExistsError(f"{p} exists (use --force / force=True to replace it)")
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} exists and is not a directory")
    report = build_document(source, reference, name=name, **analysis_kwargs)
    written: dict[str, Path] = {}
    for fmt, path in targets.items():
        if fmt == "html":
            from rnnattn.report.html import render_html

            data = render_html(report).encode("utf-8")
        else:
            from rnnattn.report.pdf import render_pdf

            data = render_pdf(report)
        written[fmt] = atomic_write_bytes(path, data, overwrite=force)
    return ReportPaths(out_dir, written.get("html"), written.get("pdf"))


__all__ = ["build_report", "build_document", "ReportPaths", "find_log", "SECTION_KEYS", "FORMATS"]
