"""Pipeline steps of :func:`~rnnattn.analysis.equivalence` that look through the neuron basis.

A trained student may hold the attention construction in a mixed basis of same-λ neurons, where the row rules of
pruning and canonicalisation see nothing. These steps use the basis-free analyses:

* ``effective``: :func:`~rnnattn.analysis.effective.effective_counts` (effective KV / query counts from the
  moment-space rank, with spectra and the stated tolerance) of the pruned model;
* ``rotation``: :func:`~rnnattn.analysis.rotate.rotate_to_canonical` (the attention part rebuilt at the
  effective counts' size);
* ``context_query``: :func:`~rnnattn.analysis.context_query.context_query` (in-context regression only: the
  output at the query against one-step GD on the task's support, ``y_q = 0``, and Table 2's residual split).

Each returns its result or :class:`~rnnattn.analysis.errors.NotApplicable`; the model passed in is the
pipeline's float64 copy, wrapped in a :class:`~rnnattn.analysis.loading.Subject` so nothing is copied again.
"""

from __future__ import annotations

from typing import Any

from rnnattn.analysis.context_query import ContextQueryResult, context_query
from rnnattn.analysis.effective import EffectiveCounts, effective_counts
from rnnattn.analysis.errors import AnalysisNotApplicable, NotApplicable
from rnnattn.analysis.loading import Subject
from rnnattn.analysis.references import Reference, task_gd_eta
from rnnattn.analysis.rotate import RotationResult, rotate_to_canonical
from rnnattn.limits import ResourceLimitError
from rnnattn.models.gated_rnn import GatedLinearRNN

# The two typed refusals of the basis-free analyses: the step does not apply, or the model is too large for it.
_REFUSALS = (AnalysisNotApplicable, ResourceLimitError)


def _why(e: Exception) -> str:
    return e.reason if isinstance(e, AnalysisNotApplicable) else str(e)


def effective_step(model: GatedLinearRNN, hi: float, lo: float) -> EffectiveCounts | NotApplicable:
    """Effective KV / query counts of ``model`` (the pruned model: dead units add nothing to the ranks)."""
    try:
        eff = effective_counts(Subject(model), hi, lo)
    except _REFUSALS as e:
        return NotApplicable("effective counts", _why(e))
    empty = [g for g in ("memory", "forget") if eff.group_sizes[g] == 0]
    if empty:  # the cross block is empty: its ranks say nothing about attention
        return NotApplicable("effective counts", f"no {' and no '.join(empty)} neurons (|λ| > {hi} memory, < {lo} "
                             "forget): the counts are ranks of the memory × forget block")
    return eff


def rotation_step(m: GatedLinearRNN, subj: Subject, hi: float, lo: float, ref: Reference | NotApplicable
                  ) -> RotationResult | NotApplicable:
    """The attention part of ``m`` rebuilt in the canonical basis at the effective counts' size, with distances to
    the reference the rest of the pipeline uses."""
    try:
        return rotate_to_canonical(Subject(m, subj.metadata, subj.extras, subj.path), hi, lo,
                                   reference=ref if isinstance(ref, Reference) else None)
    except _REFUSALS as e:
        return NotApplicable("rotation to the canonical basis", _why(e))


def _icl_sizes(task: dict[str, Any], ref: Reference | NotApplicable) -> tuple[int, int, float | None] | None:
    """``(d_x, d_y, eta)`` of an in-context regression student: the one-step-GD reference's, else the task's."""
    meta = ref.model.metadata if isinstance(ref, Reference) and ref.kind == "one_step_gd" else {}
    d_x, d_y = meta.get("d_x", task.get("d_x")), meta.get("d_y", task.get("d_y"))
    if d_x is None or d_y is None:
        return None
    return int(d_x), int(d_y), meta.get("eta")


def context_query_step(m: GatedLinearRNN, subj: Subject, ref: Reference | NotApplicable
                       ) -> ContextQueryResult | NotApplicable:
    """For an in-context regression student: the context-query polynomial against one-step GD."""
    task = subj.metadata.get("task") if isinstance(subj.metadata.get("task"), dict) else {}
    icl = task.get("name") == "icl_regression" or (isinstance(ref, Reference) and ref.kind == "one_step_gd")
    sizes = _icl_sizes(task, ref) if icl else None
    if sizes is None:
        what = task.get("name") or "none recorded"
        return NotApplicable("context-query polynomial", "defined for in-context regression on tokens (x, y) with "
                             f"known d_x, d_y; the checkpoint's task is {what}")
    d_x, d_y, eta = sizes
    if d_x + d_y != m.d_input or m.d_output < d_y:
        return NotApplicable("context-query polynomial", f"tokens of d_x + d_y = {d_x + d_y} features do not fit "
                             f"the student ({m.d_input} inputs, {m.d_output} outputs)")
    if eta is None and task_gd_eta(task, d_x) is None:
        return NotApplicable("context-query polynomial", "no GD step size: the task states neither eta_star nor "
                             "n_context")
    try:
        return context_query(Subject(m, subj.metadata), d_x, d_y, eta)
    except _REFUSALS as e:
        return NotApplicable("context-query polynomial", _why(e))


__all__ = ["effective_step", "rotation_step", "context_query_step"]
