"""Results of the steps of :func:`rnnattn.analysis.equivalence` and the pipeline's result, one field per step.

Each step field holds its result or a :class:`~rnnattn.analysis.errors.NotApplicable` saying why the step did
not apply (falsy, so ``if res.probes:`` reads "if the probes ran"). Nothing is ``None`` and nothing is read by
name from a dict: the report renders whatever each field holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rnnattn.analysis.errors import NotApplicable
from rnnattn.analysis.results import CanonicalResult, MergeResult, PolynomialDistance, ProbeResult, PruneResult, Result
from rnnattn.config import Config

if TYPE_CHECKING:
    from rnnattn.analysis.context_query import ContextQueryResult
    from rnnattn.analysis.effective import EffectiveCounts
    from rnnattn.analysis.polynomial import Polynomial
    from rnnattn.analysis.references import Reference
    from rnnattn.analysis.rotate import RotationResult
    from rnnattn.models.base import Model


@dataclass(frozen=True)
class EquivalenceThresholds(Config):
    """Pass thresholds of :func:`rnnattn.analysis.equivalence` (defaults: the paper's Table 1 order of magnitude,
    loosened about 10x, since the paper reports one run).

    Attributes:
        loss: 0.5 * MSE of student vs reference on the probe inputs must be below this.
        kv_score, q_score: ``1 - R^2`` of the probes must be below these.
        polynomial_distance: mean relative polynomial distance must be below this.
        prune_max_output_change: pruning must not move any output by more than this (relative to max |y|).
        support_distance: in-context regression: the context-query polynomial's mean relative distance to one
            step of GD over the monomials the task constrains (``y_q = 0``) must be below this (Table 2: the
            trained RNN's ``x_j^2 y_1`` coefficients are within 1% of ``eta*``; loosened 5x). It replaces the
            instantaneous polynomial check there, whose ``y_q`` terms the task never sees.
        relative_loss: in-context regression: 0.5 * MSE of student vs one-step GD divided by 0.5 * mean(y_GD^2)
            must be below this (Table 2: the RNN's loss is within 0.2% of GD's). The KV/Q probe scores are shown
            but not checked there: §4 identifies the ICL solution by its polynomial, not by probes.
    """

    loss: float = 1e-6
    kv_score: float = 1e-6
    q_score: float = 1e-6
    polynomial_distance: float = 5e-3
    prune_max_output_change: float = 1e-4
    support_distance: float = 5e-2
    relative_loss: float = 1e-3


@dataclass(frozen=True)
class EquivalenceOptions(Config):
    """The choices of one :func:`~rnnattn.analysis.equivalence` run (see its docstring for each)."""

    n_sequences: int = 256
    seq_len: int | None = None
    seed: int = 0
    hi: float = 0.99
    lo: float = 0.01
    prune_threshold: float = 1e-3
    ablation_tol: float | None = None
    merge: bool = True
    merge_tol: float = 1e-3
    merge_max_rows: int = 16
    finetune_steps: int = 0
    normalisation: str = "relative"
    rewrite_check_sequences: int = 64


@dataclass(repr=False)
class LossResult(Result):
    """0.5 * MSE of the student against the reference on the probe inputs, at the task's scored positions
    (``positions``; ``None``: every step). ``y_scale`` is ``max |y_reference|`` (scale of the output checks)."""

    value: float
    positions: list[int] | None
    y_scale: float
    description: str
    reference_half_ms: float = float("nan")  # 0.5 * mean(y_reference^2) at the scored positions


@dataclass(repr=False)
class RolesResult(Result):
    """Decays and neuron roles (§3.1).

    Attributes:
        table: one row per neuron (or eigenmode): ``neuron``, ``label``, ``lam`` (|lambda|), ``role`` and, for
            an Eq. 2 model, what the neuron reads (see :func:`~rnnattn.analysis.neuron_roles`).
        lam: ``[N]`` |lambda| (eigenvalue moduli for a dense ``A``; every recurrent layer's for other models).
        counts: ``{"memory", "forget", "other"}`` counts.
        hi, lo: thresholds (``|lambda| > hi`` memory, ``< lo`` forget).
        features: "neurons", "eigenmodes" (genuinely dense ``A``) or "decays" (not an Eq. 2 model: roles by
            the thresholds only).
        note: one line on how the table was made.
    """

    table: pd.DataFrame
    lam: np.ndarray
    counts: dict[str, int]
    hi: float
    lo: float
    features: str
    note: str

    def __repr__(self) -> str:
        return f"RolesResult({self.counts}, hi={self.hi}, lo={self.lo}, features={self.features!r})"


@dataclass(repr=False)
class WeightsResult(Result):
    """The weights after the rewrites (pruned → canonical → merged, as far as they applied; ``stage`` says which).

    ``matrices``: ``W_m_in``, ``W_x_in`` ``[N, d+1]``, ``W_m_out``, ``W_x_out`` ``[M, N]``, ``D`` ``[d_out,
    M]``, ``lam`` ``[N]`` (diagonal: the decays; dense: eigenvalue moduli) and ``A [N, N]`` for dense recurrence.
    ``labels``: ``{"hidden", "gating", "inputs", "outputs"}`` axis labels for plotting.
    """

    matrices: dict[str, np.ndarray]
    labels: dict[str, list[str]]
    stage: str

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in self.matrices.items())
        return f"WeightsResult({self.stage}: {shapes})"


@dataclass(repr=False)
class PolynomialComparison(Result):
    """The student's instantaneous polynomial against the reference's (Table 1's polynomial distance).

    ``coefficient_differences``: the largest |student - reference| coefficients; ``leading_terms``: per output
    the largest reference terms with the student's beside them (DataFrames)."""

    reference: Polynomial
    distance: PolynomialDistance
    coefficient_differences: pd.DataFrame
    leading_terms: pd.DataFrame

    def __repr__(self) -> str:
        d = self.distance
        return f"PolynomialComparison(distance={d.value:.3g} ({d.normalisation}), {d.n_monomials} monomials)"


@dataclass(repr=False)
class Checks(Result):
    """The verdict: ``table`` (``check``, ``value``, ``threshold``, ``passed``) over every check that applied,
    ``passed`` (all of them), a one-line ``text``, and the thresholds used."""

    table: pd.DataFrame
    passed: bool
    text: str
    thresholds: EquivalenceThresholds


STEP_FIELDS = ("reference", "loss", "roles", "prune", "canonical", "merges", "weights", "probes", "student_polynomial",
               "comparison", "effective", "rotation", "context_query", "checks")


@dataclass(repr=False)
class EquivalenceResult(Result):
    """Everything :func:`rnnattn.analysis.equivalence` found: is the student the reference in disguise?

    Always present: ``student`` (the analysed float64 copy), ``summary`` (DataFrame ``item``, ``student``,
    ``reference``), ``task`` (the checkpoint's task name or ``None``), ``settings`` (every choice made, in
    words). One field per step, each its result or :class:`NotApplicable`:

    ``reference`` (:class:`~rnnattn.analysis.references.Reference`), ``loss`` (:class:`LossResult`), ``roles``
    (:class:`RolesResult`), ``prune`` (:class:`PruneResult`), ``canonical`` (:class:`CanonicalResult`),
    ``merges`` (:class:`MergeResult`), ``weights`` (:class:`WeightsResult`), ``probes``
    (:class:`ProbeResult`), ``student_polynomial`` (:class:`~rnnattn.analysis.polynomial.Polynomial`),
    ``comparison`` (:class:`PolynomialComparison`), ``effective`` (:class:`~rnnattn.analysis.EffectiveCounts` of
    the pruned model), ``rotation`` (:class:`~rnnattn.analysis.rotate.RotationResult`), ``context_query``
    (:class:`~rnnattn.analysis.context_query.ContextQueryResult`, in-context regression only), ``checks``
    (:class:`Checks`).
    """

    student: Model
    summary: pd.DataFrame
    task: str | None
    settings: dict[str, Any]
    reference: Reference | NotApplicable
    loss: LossResult | NotApplicable
    roles: RolesResult | NotApplicable
    prune: PruneResult | NotApplicable
    canonical: CanonicalResult | NotApplicable
    merges: MergeResult | NotApplicable
    weights: WeightsResult | NotApplicable
    probes: ProbeResult | NotApplicable
    student_polynomial: Polynomial | NotApplicable
    comparison: PolynomialComparison | NotApplicable
    effective: EffectiveCounts | NotApplicable
    rotation: RotationResult | NotApplicable
    context_query: ContextQueryResult | NotApplicable
    checks: Checks | NotApplicable

    @property
    def verdict(self) -> bool | None:
        """True when every applicable check passed, False when one failed, None without a reference."""
        return self.checks.passed if self.checks else None

    @property
    def verdict_text(self) -> str:
        return self.checks.text if self.checks else f"no verdict: {self.checks.reason}"  # type: ignore[union-attr]

    @property
    def reference_kind(self) -> str:
        """"teacher" | "one_step_gd" | "construction" | "model", or "none"."""
        return self.reference.kind if self.reference else "none"  # type: ignore[union-attr]

    def steps(self) -> dict[str, Any]:
        """Every step's result or :class:`NotApplicable`, by step name, in pipeline order."""
        return {n: getattr(self, n) for n in STEP_FIELDS}

    @property
    def not_applicable(self) -> list[NotApplicable]:
        """The steps that did not apply, with their reasons."""
        return [v for v in self.steps().values() if isinstance(v, NotApplicable)]

    def __repr__(self) -> str:
        return f"EquivalenceResult(verdict={self.verdict}, {self.verdict_text})"

    def _repr_html_(self) -> str:
        from rnnattn.display import KeyValues, Table, Text, format_value, fragment

        blocks: list = [KeyValues([("reference", self.reference_kind), ("task", format_value(self.task))])]
        if self.checks:
            blocks.append(Table(self.checks.table, title="Checks"))
        blocks.append(Table(self.summary, title="Model"))
        ran = [(n, type(v).__name__) for n, v in self.steps().items() if not isinstance(v, NotApplicable)]
        blocks.append(KeyValues(ran, title="Steps that ran (each is a field of this result)"))
        blocks += [Text(str(na), "note") for na in self.not_applicable]
        status = "ok" if self.checks else "not_applicable"
        return fragment("Equivalence", self.verdict_text, *blocks, status=status)


__all__ = [
    "EquivalenceThresholds",
    "EquivalenceOptions",
    "EquivalenceResult",
    "LossResult",
    "RolesResult",
    "WeightsResult",
    "PolynomialComparison",
    "Checks",
]
