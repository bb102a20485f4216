"""The §3.1 pipeline in one call, the only one: is a trained model a reference attention layer in disguise?

``equivalence(student, reference=None)`` resolves the student once (one float64 copy) and the reference (given,
or what the checkpoint records), then runs the steps in order: loss on probe inputs → neuron roles → prune →
canonicalise → rank-1 merges (App. B.2) → weights → KV/Q probes → instantaneous polynomials and their distance →
the basis-free steps (effective KV/query counts, rotation to the canonical basis, and for in-context regression
the context-query polynomial against one-step GD; :mod:`rnnattn.analysis.basis_steps`) → checks against stated
thresholds. Each step is a function here returning its result or
:class:`~rnnattn.analysis.errors.NotApplicable` (no reference, a model without the Eq. 2 structure, a dense
``A``, non-finite weights, ...), so one :class:`~rnnattn.analysis.steps.EquivalenceResult` is returned for any
rnnattn model; the report renders whatever it holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from rnnattn.analysis._weights import named_weights
from rnnattn.analysis.basis_steps import context_query_step, effective_step, rotation_step
from rnnattn.analysis.canonical import canonicalize_gated
from rnnattn.analysis.context_query import ContextQueryResult
from rnnattn.analysis.distance import coefficient_differences, leading_terms, polynomial_distance
from rnnattn.analysis.errors import NotApplicable, ReferenceUnavailable
from rnnattn.analysis.inputs import ProbeInputs, probe_inputs
from rnnattn.analysis.loading import (
    ModelSource,
    Subject,
    display_path,
    gated_or_na,
    input_names,
    labels,
    resolve,
)
from rnnattn.analysis.merge import merge_gated
from rnnattn.analysis.polynomial import Polynomial, gated_rnn_polynomial
from rnnattn.analysis.probes import probe_gated
from rnnattn.analysis.prune import half_mse, prune_gated
from rnnattn.analysis.references import Reference, resolve_reference
from rnnattn.analysis.results import CanonicalResult, MergeResult, ProbeResult, PruneResult
from rnnattn.analysis.roles import role_counts, role_of, roles_gated
from rnnattn.analysis.steps import (
    STEP_FIELDS,
    Checks,
    EquivalenceOptions,
    EquivalenceResult,
    EquivalenceThresholds,
    LossResult,
    PolynomialComparison,
    RolesResult,
    WeightsResult,
)
from rnnattn.models.base import Model
from rnnattn.models.gated_rnn import GatedLinearRNN
from rnnattn.models.summary import decays, nonfinite

STEPS = tuple(n for n in STEP_FIELDS if n != "reference")


# -- steps ---------------------------------------------------------------------------------------------------------
def reference_step(subj: Subject, reference: ModelSource | str | None) -> Reference | NotApplicable:
    """The reference: one asked for must work (else :class:`ReferenceUnavailable`); without one, what the
    checkpoint records, or :class:`NotApplicable` when it records none."""
    if reference is None:
        try:
            ref = resolve_reference(subj, None)
        except ReferenceUnavailable as e:
            return NotApplicable("reference", str(e))
    else:
        ref = resolve_reference(subj, reference)
    m = subj.model
    if (ref.model.d_input, ref.model.d_output) != (m.d_input, m.d_output):
        why = (f"the {ref.kind} reference maps {ref.model.d_input} -> {ref.model.d_output} features, the student "
               f"{m.d_input} -> {m.d_output}")
        if reference is not None:
            raise ReferenceUnavailable(why)
        return NotApplicable("reference", why)
    return ref


def inputs_step(subj: Subject, inputs: torch.Tensor | None, opts: EquivalenceOptions) -> ProbeInputs:
    """Probe inputs: the given ones, or sequences of the checkpoint's task (x ~ N(0, I) without one)."""
    if inputs is None:
        return probe_inputs(subj.metadata, subj.model.d_input, opts.n_sequences, opts.seq_len, opts.seed)
    x = inputs.to(torch.float64)
    return ProbeInputs(x, f"given inputs, {x.shape[0]} sequences x {x.shape[1]} steps")


def loss_step(y_s: torch.Tensor, y_ref: torch.Tensor | None, pin: ProbeInputs, ref: Reference | NotApplicable
              ) -> LossResult | NotApplicable:
    """0.5 * MSE of student vs reference outputs at the task's scored positions (ICL: the query step)."""
    if y_ref is None:
        return NotApplicable("loss", f"no reference to compare the outputs with ({ref.reason})")  # type: ignore
    sel = slice(None) if pin.loss_positions is None else pin.loss_positions
    where = "all time steps" if pin.loss_positions is None else f"time steps {pin.loss_positions}"
    return LossResult(
        value=float(half_mse(y_s[:, sel], y_ref[:, sel])),
        positions=pin.loss_positions,
        y_scale=float(y_ref.abs().max()) or 1.0,
        description=f"0.5 * mean squared error over batch, outputs and {where}",
        reference_half_ms=float(0.5 * y_ref[:, sel].pow(2).mean()),
    )


def roles_step(model: Model, opts: EquivalenceOptions) -> RolesResult | NotApplicable:
    """Roles by decay: the Eq. 2 reading analysis for a gated RNN; for other models the |lambda| of every layer
    with an input-independent decay, by the thresholds only."""
    if isinstance(model, GatedLinearRNN):
        table = roles_gated(model, opts.hi, opts.lo)
        features = "eigenmodes" if "lam_complex" in table.columns else "neurons"
        return RolesResult(table, table["lam"].to_numpy(dtype=np.float64), role_counts(table), opts.hi, opts.lo,
                           features, table.attrs.get("note", ""))
    lams = decays(model)
    if not lams:
        return NotApplicable("roles", f"{type(model).__name__} has no input-independent decay λ (its forget/update "
                                      "gate depends on the input), so there is no λ histogram")
    lam = np.concatenate([v.numpy() for v in lams.values()])
    table = pd.DataFrame({"neuron": np.arange(lam.size), "label": [f"h{i}" for i in range(lam.size)], "lam": lam,
                          "role": role_of(lam, opts.hi, opts.lo)})
    note = (f"|λ| of {', '.join(k or type(model).__name__ for k in lams)}; roles by the thresholds only (the "
            "Eq. 2 reading analysis does not apply)")
    return RolesResult(table, lam, role_counts(table), opts.hi, opts.lo, "decays", note)


def merge_step(can: CanonicalResult | NotApplicable, data: Any, loss_fn: Any, opts: EquivalenceOptions
               ) -> MergeResult | NotApplicable:
    """Rank-1 merges (App. B.2) of the gating rows outside the block form of the canonical model."""
    if not opts.merge:
        return NotApplicable("merge_rank1", "not requested (merge=False)")
    if not isinstance(can, CanonicalResult):
        return NotApplicable("merge_rank1", f"needs the canonical form to find non-conforming rows ({can.reason})")
    conf = np.asarray(can.gating_conforming, dtype=bool)
    n_bad, M = int((~conf).sum()), conf.size
    if not conf.any():
        return NotApplicable("merge_rank1", "no gating row conforms to the block form of Fig. 1 (m-branch on "
                             "memory, x-branch on forget neurons); App. B.2's merge applies once the rest of the "
                             "model has that form")
    if n_bad > opts.merge_max_rows:
        return NotApplicable("merge_rank1", f"{n_bad} gating rows are outside the block form: the merge search of "
                             f"App. B.2 targets a few leftover rows (at most {opts.merge_max_rows}), not an "
                             "unstructured model")
    if n_bad < 2:  # nothing to merge: a result, not a failure (a single row is rank 1 already)
        return MergeResult(model=can.model, merges=[], n_gating_before=M, n_gating_after=M, max_output_change=0.0)
    return merge_gated(can.model, None, opts.merge_tol, opts.hi, opts.lo, data=data, loss_fn=loss_fn,
                       finetune_steps=opts.finetune_steps)


def weights_step(pr: PruneResult | NotApplicable, can: CanonicalResult | NotApplicable,
                 mg: MergeResult | NotApplicable) -> WeightsResult | NotApplicable:
    """The weights after the rewrites that applied (pruned, then canonical, then merged)."""
    if not isinstance(pr, PruneResult):
        return NotApplicable("weights", f"no pruned model ({pr.reason})")
    final, stage = pr.model, "pruned"
    if isinstance(can, CanonicalResult):
        final, stage = can.model, "pruned + canonical"
    if isinstance(mg, MergeResult) and any(m.merged for m in mg.merges):
        final, stage = mg.model, "pruned + canonical + merged"
    c = final.config
    lbl = {
        "hidden": labels(final, "hidden", c.n_hidden),
        "gating": labels(final, "gating", c.n_gating),
        "inputs": input_names(final) + (["1"] if c.append_one else []),
        "outputs": [f"y{i + 1}" for i in range(final.d_output)],
    }
    return WeightsResult(named_weights(final), lbl, stage)


def student_polynomial_step(m: GatedLinearRNN, ref: Reference | NotApplicable) -> Polynomial:
    """The student's exact quartic polynomial, its variables named as the reference's (ICL: ``x1..x3, y1..y3``)."""
    p = gated_rnn_polynomial(m)
    if isinstance(ref, Reference) and len(ref.polynomial.variables) == len(p.variables):
        return Polynomial(p.coefficients, ref.polynomial.variables, p.outputs, p.max_degree, p.source)
    return p


def comparison_step(p_s: Polynomial, ref: Reference | NotApplicable, opts: EquivalenceOptions
                    ) -> PolynomialComparison | NotApplicable:
    """Distance between the student's and the reference's instantaneous polynomials (Table 1)."""
    if not isinstance(ref, Reference):
        return NotApplicable("polynomial comparison", f"no reference polynomial ({ref.reason})")
    p_r = ref.polynomial
    return PolynomialComparison(p_r, polynomial_distance(p_s, p_r, opts.normalisation),
                                coefficient_differences(p_s, p_r), leading_terms(p_s, p_r))


def checks_step(structure: GatedLinearRNN | NotApplicable, loss: LossResult | NotApplicable,
                probes: ProbeResult | NotApplicable, comparison: PolynomialComparison | NotApplicable,
                cq: ContextQueryResult | NotApplicable, pr: PruneResult | NotApplicable,
                thresholds: EquivalenceThresholds) -> Checks | NotApplicable:
    """Every applicable check against its threshold; the verdict passes when all of them do."""
    if isinstance(structure, NotApplicable):
        return NotApplicable("verdict", f"the checks need the Eq. 2 structure ({structure.reason})")
    if not isinstance(loss, LossResult):
        return NotApplicable("verdict", loss.reason)
    icl = isinstance(cq, ContextQueryResult)  # ICL: one-step GD on the task's support (the y_q terms are free)
    if icl:
        rows: list[tuple[str, float, float]] = [
            ("loss vs one-step GD (0.5 MSE / 0.5 mean y_GD²)", loss.value / loss.reference_half_ms,
             thresholds.relative_loss),
            ("context-query distance to one-step GD (task's support, y_q = 0)", cq.distance_support,
             thresholds.support_distance)]
    else:
        rows = [("loss (0.5 MSE vs reference)", loss.value, thresholds.loss)]
    if isinstance(probes, ProbeResult) and not icl:
        rows += [("KV score", probes.kv_score, thresholds.kv_score), ("Q score", probes.q_score, thresholds.q_score)]
    if not icl and isinstance(comparison, PolynomialComparison):
        d = comparison.distance
        rows.append((f"polynomial distance ({d.normalisation})", d.value, thresholds.polynomial_distance))
    if isinstance(pr, PruneResult):
        rows.append(("pruning output change / max|y|", pr.max_output_change / loss.y_scale,
                     thresholds.prune_max_output_change))
    table = pd.DataFrame([{"check": c, "value": float(v), "threshold": t, "passed": bool(v < t)}
                          for c, v, t in rows if np.isfinite(v)])
    passed = bool(table["passed"].all())
    failed = table.loc[~table["passed"], "check"].tolist()
    claim = "one step of GD on the task's support (y_q = 0)" if icl else "equivalent"
    text = (f"{claim}: every check below its threshold" if passed
            else f"not shown {claim}: " + ", ".join(failed) + " above threshold")
    return Checks(table, passed, text, thresholds)


# -- the pipeline --------------------------------------------------------------------------------------------------
def _summary(m: Model, ref: Reference | NotApplicable, source: str) -> pd.DataFrame:
    c = m.config.to_dict()
    r = ref.model if isinstance(ref, Reference) else None
    rows = [
        ("class", type(m).__name__, type(r).__name__ if r is not None else "none"),
        ("d_input", m.d_input, r.d_input if r is not None else ""),
        ("d_output", m.d_output, r.d_output if r is not None else ""),
        *[(k, v, "") for k, v in c.items() if k in ("n_hidden", "n_gating", "recurrence", "d_hidden", "d_state")],
        ("parameters", m.n_parameters(), r.n_parameters() if r is not None else ""),
        ("source", source, ref.description if isinstance(ref, Reference) else ref.reason),
        ("analysed in", "float64", "float64" if r is not None else ""),
    ]
    return pd.DataFrame([{"item": a, "student": str(b), "reference": str(x)} for a, b, x in rows])


def _settings(subj: Subject, pin: ProbeInputs, opts: EquivalenceOptions, loss: LossResult | NotApplicable
              ) -> dict[str, Any]:
    s = opts.to_dict()
    s.update(
        source=display_path(subj.path) or "in-memory model",
        input_distribution=pin.description,
        n_sequences=int(pin.x.shape[0]),
        seq_len=int(pin.x.shape[1]),
        rewrite_check_sequences=min(opts.rewrite_check_sequences, int(pin.x.shape[0])),
        loss=loss.description if isinstance(loss, LossResult) else "no reference",
        dtype="float64",
        probe_regression="sklearn LinearRegression with intercept, R^2 uniform average, pooled batch x time",
    )
    return s


def _unanalysable(subj: Subject, ref: Reference | NotApplicable, pin: ProbeInputs, opts: EquivalenceOptions,
                  reason: str, roles: RolesResult | NotApplicable) -> EquivalenceResult:
    """The result when no step past the roles can run (``reason`` says why)."""
    na = {n: NotApplicable(n, reason) for n in STEPS if n != "roles"}
    return EquivalenceResult(student=subj.model, summary=_summary(subj.model, ref, display_path(subj.path) or
                             "in-memory model"), task=_task_name(subj), settings=_settings(subj, pin, opts, na["loss"]),
                             reference=ref, roles=roles, **na)


def _task_name(subj: Subject) -> str | None:
    task = subj.metadata.get("task")
    return task.get("name") if isinstance(task, dict) and isinstance(task.get("name"), str) else None


def run_pipeline(subj: Subject, ref: Reference | NotApplicable, opts: EquivalenceOptions,
                 thresholds: EquivalenceThresholds, inputs: torch.Tensor | None = None) -> EquivalenceResult:
    """Every step on an already resolved subject and reference (see :func:`equivalence`)."""
    model = subj.model
    pin = inputs_step(subj, inputs, opts)
    bad = nonfinite(model)
    if bad:  # NaN/Inf weights make every number meaningless: flag them and analyse nothing
        reason = "the model has non-finite weights: " + ", ".join(
            f"{k} ({n_nan} NaN, {n_inf} Inf)" for k, (n_nan, n_inf) in list(bad.items())[:6])
        return _unanalysable(subj, ref, pin, opts, reason, NotApplicable("roles", reason))
    m = gated_or_na(model, "equivalence")
    if isinstance(m, NotApplicable):
        return _unanalysable(subj, ref, pin, opts, m.reason, roles_step(model, opts))
    with torch.no_grad():
        y_s = m(pin.x)
        y_ref = ref.model(pin.x) if isinstance(ref, Reference) else None
    loss = loss_step(y_s, y_ref, pin, ref)
    sel = slice(None) if pin.loss_positions is None else pin.loss_positions
    k = opts.rewrite_check_sequences  # rewrites are checked on a subset (forward passes per unit for ablation)
    data = (pin.x[:k], y_ref[:k]) if y_ref is not None else pin.x[:k]

    def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return half_mse(pred[:, sel], target[:, sel])  # the task's scored positions only

    pr = prune_gated(m, opts.prune_threshold, data=data, loss_fn=loss_fn, ablation_tol=opts.ablation_tol)
    can = (canonicalize_gated(pr.model, opts.hi, opts.lo) if isinstance(pr, PruneResult)
           else NotApplicable("canonicalize", f"needs the pruned model ({pr.reason})"))
    mg = merge_step(can, data, loss_fn, opts)
    probes = (probe_gated(m, ref.model, pin.x, pin.description, opts.hi, opts.lo) if isinstance(ref, Reference)
              else NotApplicable("probes", f"the KV/Q probes need the reference's keys, values and queries "
                                           f"({ref.reason})"))
    p_s = student_polynomial_step(m, ref)
    comparison = comparison_step(p_s, ref, opts)
    cq = context_query_step(m, subj, ref)
    return EquivalenceResult(
        student=m, summary=_summary(m, ref, display_path(subj.path) or "in-memory model"), task=_task_name(subj),
        settings=_settings(subj, pin, opts, loss), reference=ref, loss=loss, roles=roles_step(m, opts), prune=pr,
        canonical=can, merges=mg, weights=weights_step(pr, can, mg), probes=probes, student_polynomial=p_s,
        comparison=comparison, effective=effective_step(pr.model if isinstance(pr, PruneResult) else m, opts.hi,
                                                        opts.lo),
        rotation=rotation_step(m, subj, opts.hi, opts.lo, ref), context_query=cq,
        checks=checks_step(m, loss, probes, comparison, cq, pr, thresholds),
    )


def equivalence(
    student: ModelSource,
    reference: ModelSource | str | None = None,
    *,
    inputs: torch.Tensor | None = None,
    thresholds: EquivalenceThresholds | None = None,
    **options: Any,
) -> EquivalenceResult:
    """Run the post-hoc analysis of §3.1 / App. B.2 on a student against a linear-attention reference.

    Args:
        student: model, checkpoint or checkpoint path (analysed as one float64 copy; any rnnattn model: steps
            that need the Eq. 2 structure are :class:`NotApplicable` for others).
        reference: see :func:`~rnnattn.analysis.references.resolve_reference`; ``None``: what the checkpoint
            records (no reference recorded: the reference-dependent steps are :class:`NotApplicable`).
        inputs: probe inputs ``[B, T, d]``; default ``n_sequences`` sequences from the checkpoint's task (see
            :func:`~rnnattn.analysis.inputs.probe_inputs`), x ~ N(0, I) without one. The loss is taken at the
            task's scored positions (all steps for teacher-student, the query step for ICL).
        thresholds: pass thresholds (default :class:`EquivalenceThresholds`).
        options: fields of :class:`~rnnattn.analysis.steps.EquivalenceOptions`: ``n_sequences``, ``seq_len``,
            ``seed``; ``hi``, ``lo`` (lambda thresholds of memory / forget neurons); ``prune_threshold``,
            ``ablation_tol`` (see :func:`~rnnattn.analysis.prune`); ``merge``, ``merge_tol``,
            ``merge_max_rows``, ``finetune_steps`` (see :func:`~rnnattn.analysis.merge_rank1`, run on the
            non-conforming rows of the canonical model); ``normalisation`` (polynomial distance variant).
    Returns:
        :class:`~rnnattn.analysis.steps.EquivalenceResult`: one field per step, each its result or
        :class:`NotApplicable`.
    Raises:
        ReferenceUnavailable: the reference asked for cannot be used (missing teacher, not an attention layer,
            other input/output sizes).
    """
    opts = EquivalenceOptions(**options)
    subj = resolve(student)  # the one copy of the student
    return run_pipeline(subj, reference_step(subj, reference), opts, thresholds or EquivalenceThresholds(), inputs)


__all__ = ["equivalence", "run_pipeline", "EquivalenceResult", "EquivalenceThresholds", "EquivalenceOptions"]
