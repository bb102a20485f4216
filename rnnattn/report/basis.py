"""Report sections of the basis-free steps: effective KV / query counts with the rotation to the canonical basis,
and, for in-context regression, the context-query polynomial against one-step GD on the task's support (§4)."""

from __future__ import annotations

from rnnattn.analysis import EffectiveCounts, NotApplicable
from rnnattn.analysis.context_query import ContextQueryResult
from rnnattn.analysis.rotate import RotationResult
from rnnattn.display import Figure, KeyValues, Section, Table, Text, format_value
from rnnattn.report import figures
from rnnattn.report.sections import ReportInputs, not_applicable


def _rotation_blocks(rot: RotationResult | NotApplicable) -> list:
    if not isinstance(rot, RotationResult):
        return [Text(f"Rotation to the canonical basis: not applicable: {rot.reason}", "note")]
    items = [
        ("polynomial distance, rotated vs original (relative)", format_value(rot.polynomial_distance)),
        ("output error max|Δy| / max|y|", format_value(rot.output_error)),
        ("output error, RMS ratio", format_value(rot.output_rms_error)),
        ("probe inputs", rot.probe),
        *[(f"polynomial distance to the reference ({k})", format_value(v)) for k, v in rot.reference_distance.items()],
    ]
    return [Table(rot.summary, title="Rotated to the canonical basis (the attention part at the effective size)",
                  caption="minimal: both sides use exactly the effective count." if rot.minimal else
                  "not minimal: a side's span has no product basis of its size."),
            KeyValues(items, title="Rotation check")]


def effective_section(src: ReportInputs) -> Section:
    title = "Effective KV / query counts (through same-λ mixing)"
    eff, rot = src.result.effective, src.result.rotation
    if not isinstance(eff, EffectiveCounts):
        return not_applicable("effective", title, eff)
    d = src.result.student.d_input
    g = eff.group_sizes
    reading = (f"{eff.n_kv} effective KV units among {g['memory']} memory neurons and {eff.n_query} effective query "
               f"units among {g['forget']} forget neurons (ranks of the moment-space memory × forget block, "
               f"invariant under mixing same-λ neurons); the compact construction for d = {d} has {d * (d + 1) // 2} "
               f"and {d}.")
    spectra = figures.rank_spectra({"KV side": eff.kv_spectrum, "query side": eff.query_spectrum},
                                   {"KV side": eff.kv_rank.tolerance, "query side": eff.query_rank.tolerance})
    norms = [(k, format_value(v)) for k, v in {**eff.block_norms, **eff.degree_leak}.items()]
    blocks: list = [
        Table(eff.summary, title="Effective counts, spectra at the cut and the stated tolerance",
              caption=f"rank rule: {eff.kv_rank.method}; {eff.recurrence} recurrence; groups |λ| > {eff.hi} "
              f"(memory), < {eff.lo} (forget)."),
        Figure(spectra, title="Spectra of the memory × forget cross block", alt="singular value spectra",
               caption="Dashed: the tolerance; the effective count is the number of values above it."),
        KeyValues(norms, title="Block norms (memory × forget absolute, others relative to it)"),
        *_rotation_blocks(rot),
    ]
    return Section("effective", title, reading, blocks)


def context_query_section(src: ReportInputs) -> Section:
    title = "In-context regression: one-step GD on the task's support (§4)"
    cq = src.result.context_query
    if not isinstance(cq, ContextQueryResult):
        return not_applicable("context_query", title, cq)
    reading = (f"At the query of [context, query], the student's output is {format_value(cq.distance_support)} "
               f"(relative) from one step of GD (η = {cq.eta:.4g}) on the terms the task constrains (y_q = 0), "
               f"{format_value(cq.distance)} over all terms; residual off GD's terms "
               f"{format_value(cq.residual_support)} constrained, {format_value(cq.residual_unconstrained)} with y_q.")
    return Section("context_query", title, reading, [
        Table(cq.summary, title="Context-query polynomial vs one-step GD"),
        Table(cq.residual_parts, title="Residual by part (off GD's terms)"),
        Table(cq.instantaneous_split, title="Table 2's instantaneous residual split by the number of y-variables"),
        Table(cq.gd_terms, title="GD's terms x_cj y_ci x_qj: the student's coefficient beside η", max_rows=12),
    ])
