"""Report sections that compare the student with its reference: the instantaneous polynomials, the rank-1 merges
of App. B.2 (Fig. 2C), and the verdict against stated thresholds with the paper's figures of the task beside ours.
"""

from __future__ import annotations

import numpy as np

from rnnattn.analysis import (
    Checks,
    MergeResult,
    NotApplicable,
    Polynomial,
    PolynomialComparison,
    ProbeResult,
    RolesResult,
)
from rnnattn.display import Figure, KeyValues, Section, Table, Text, format_value
from rnnattn.paper import paper_figures
from rnnattn.report import figures
from rnnattn.report.paper import paper_comparison, table2
from rnnattn.report.sections import ReportInputs, final_value, not_applicable


def log_losses(src: ReportInputs) -> dict[str, float | None]:
    return {k: final_value(src.log, c) for k, c in (("train", "train_loss"), ("val", "val_loss"),
                                                     ("ref_val", "ref_val_loss"))}


# -- 6. polynomial comparison ------------------------------------------------------------------------------------
def _student_only(p: Polynomial, why: NotApplicable) -> Section:
    return Section(
        "polynomial", "Instantaneous polynomial",
        f"No reference to compare with ({why.reason}); the student's own leading terms are listed (degree "
        f"{p.degree}, {len(p.monomials)} monomials).",
        [Table(p.leading_terms(5), title="Leading terms of the student"), Text(why.reason, "note")],
    )


def polynomial_section(src: ReportInputs) -> Section:
    title = "Instantaneous polynomial"
    r = src.result
    p, cmp = r.student_polynomial, r.comparison
    if not isinstance(p, Polynomial):
        return not_applicable("polynomial", title, p)
    if not isinstance(cmp, PolynomialComparison):
        return _student_only(p, cmp)
    dist = cmp.distance
    deg = max(p.max_degree, cmp.reference.max_degree)
    ps, qs = p.with_degree(deg), cmp.reference.with_degree(deg)
    reading = (f"Distance {format_value(dist.value)} ({dist.normalisation}) between the student's degree-{deg} "
               f"polynomial and the reference's over {dist.n_monomials} monomials: 0 means the one-token map is "
               "exactly the attention layer's.")
    blocks: list = [Text(f"Distance: {dist.description}.", "note"), Table(dist.table, title="Distance per output")]
    paper = paper_figures(r.task)
    t2 = table2(r, log_losses(src)) if paper is not None and paper.task == "icl_regression" else None
    if t2 is not None:
        blocks.append(Table(t2, title="Table 2: one-step GD in the polynomial",
                            caption="η* = 1/14.8 = 0.0676 for T = 12, d_x = 3, uniform inputs (App. C.2)."))
    blocks.append(Table(cmp.leading_terms, title="Leading terms (largest reference coefficients)", max_rows=16))
    blocks.append(Table(cmp.coefficient_differences, title="Largest coefficient differences", max_rows=12))
    fig = figures.coefficient_comparison(ps.monomials, ps.coefficients, qs.coefficients, list(ps.outputs),
                                         reference_label=r.reference_kind)
    blocks.append(Figure(fig, title="Student vs reference coefficients", alt="coefficient comparison",
                         caption="Left: every coefficient of every output (on the diagonal = equal); right: the "
                         "leading terms of the first output."))
    return Section("polynomial", title, reading, blocks)


# -- 7. rank-1 merges (Fig. 2C) ----------------------------------------------------------------------------------
def merges_section(src: ReportInputs) -> Section:
    title = "Rank-1 merges (App. B.2, Fig. 2C)"
    res = src.result.merges
    if not isinstance(res, MergeResult):
        return not_applicable("merges", title, res)
    if not res.merges:
        n_bad = int(res.n_gating_before - np.sum(src.result.canonical.gating_conforming))  # type: ignore[union-attr]
        reading = ("Every gating row is in the block form (reads one KV and one query unit): nothing to merge."
                   if n_bad == 0 else
                   "One gating row is outside the block form; a single row is rank 1 already: nothing to merge.")
        return Section("merges", title, reading, [])
    n_merged = sum(m.merged for m in res.merges)
    reading = (f"{n_merged} of {len(res.merges)} group(s) of non-conforming gating rows have one rank-1 kernel "
               f"shared by all outputs and merge into a single row: gating rows {res.n_gating_before} → "
               f"{res.n_gating_after}.")
    shown = res.merges[:4]
    kernels = figures.kernel_images(
        [np.asarray(m.kernel) for m in shown],
        [f"K of rows {', '.join(str(int(i)) for i in m.rows)}"[:40] for m in shown],
        [np.asarray(m.kernel_singular_values) for m in shown],
    )
    blocks: list = [
        Table(res.evidence, title="Merge evidence"),
        KeyValues([("max |Δy| after merging", format_value(res.max_output_change)),
                   ("loss before", format_value(res.loss_before)),
                   ("loss after merge", format_value(res.loss_after_merge)),
                   ("loss after fine-tuning", format_value(res.loss_after_finetune)),
                   ("fine-tuning steps", str(res.finetune_steps))], title="Function check"),
        Figure(kernels, title="Kernels K (hidden × hidden) and their spectra", alt="rank-1 kernel images",
               caption="Rank 1 shows as a single dominant singular value."),
    ]
    return Section("merges", title, reading, blocks)


# -- 8. verdict --------------------------------------------------------------------------------------------------
def notes(src: ReportInputs) -> list[str]:
    """Every step that did not apply (with its reason) and the caveats the steps recorded."""
    r = src.result
    out = [str(na) for na in r.not_applicable]
    if isinstance(r.probes, ProbeResult):
        out += r.probes.notes
    if isinstance(r.roles, RolesResult) and r.roles.features == "eigenmodes":
        out.append(r.roles.note)
    return out


def verdict_section(src: ReportInputs) -> Section:
    title = "Verdict"
    r = src.result
    if not isinstance(r.checks, Checks):
        return Section("verdict", title, f"No verdict: {r.checks.reason}", [Text(r.checks.reason, "warning")],
                       status="not_applicable")
    checks = r.checks.table.copy()
    checks["passed"] = ["PASS" if v else "FAIL" for v in checks["passed"]]
    reading = ("Equivalent to the reference: " if r.checks.passed else "Not shown equivalent: ") + r.checks.text + "."
    blocks: list = [Table(checks, title="Checks against stated thresholds",
                          caption="Thresholds: EquivalenceThresholds (the paper's orders of magnitude, loosened "
                          "about 10x since the paper reports one run).")]
    paper = paper_comparison(r, log_losses(src))
    if paper is not None:
        blocks.append(Table(paper[0], title=f"Beside the paper: {paper[1]}"))
    blocks += [Text(n, "note") for n in notes(src)]
    return Section("verdict", title, reading, blocks)
