"""Result value objects of the analysis stage: plain dataclasses holding DataFrames, numpy arrays and numbers.

Every result has ``to_dict()`` (JSON-serialisable: DataFrames become lists of records, arrays nested lists) so
the report stage and the CLI can store it; :class:`EquivalenceResult` also renders itself in notebooks
(``_repr_html_``). Field names are part of the public API (the report stage reads them): change them only
together.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rnnattn.config import Config

if TYPE_CHECKING:
    from rnnattn.analysis.polynomial import Polynomial
    from rnnattn.models.base import Model


def jsonable(value: Any) -> Any:
    """Recursively turn DataFrames, arrays, numpy scalars, dataclasses and models into JSON values."""
    from rnnattn.models.base import Model

    if isinstance(value, pd.DataFrame):
        return [{str(k): jsonable(v) for k, v in rec.items()} for rec in value.to_dict(orient="records")]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, complex):
        return {"re": jsonable(value.real), "im": jsonable(value.imag)}
    if isinstance(value, Model):
        return {"class": type(value).__name__, "config": value.config.to_dict()}
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (models are summarised by class + config)."""
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclass
class PruneResult(_ToDict):
    """Outcome of :func:`rnnattn.analysis.prune`.

    Attributes:
        model: the pruned model (a new float64 model; the input is untouched).
        removed: one row per removed unit: ``kind`` ("hidden" | "gating"), ``index`` (in the input model),
            ``label``, ``rule`` (why: "W_m_in row ~ 0", "D column ~ 0", "ablation", ...), ``score`` (the
            relative magnitude max|row|/max|W| or the |delta loss| that triggered the removal), ``round``
            (iteration).
        hidden_kept, gating_kept: indices (in the input model) of the units that remain, in order.
        n_hidden_before, n_hidden_after, n_gating_before, n_gating_after: unit counts.
        loss_before, loss_after: loss on the supplied data (``nan`` when no targets were given).
        max_output_change: max |y_pruned - y_original| over the check inputs.
        threshold: relative weight threshold used; ablation_tol: ablation tolerance (None: no ablation pass).
    """

    model: Model
    removed: pd.DataFrame
    hidden_kept: np.ndarray
    gating_kept: np.ndarray
    n_hidden_before: int
    n_hidden_after: int
    n_gating_before: int
    n_gating_after: int
    loss_before: float
    loss_after: float
    max_output_change: float
    threshold: float
    ablation_tol: float | None = None

    @property
    def summary(self) -> pd.DataFrame:
        """Counts before/after and removed, one row per unit kind (the "86/100 and 87/100" of Table 1)."""
        return pd.DataFrame(
            [
                {
                    "kind": "hidden",
                    "before": self.n_hidden_before,
                    "after": self.n_hidden_after,
                    "removed": self.n_hidden_before - self.n_hidden_after,
                },
                {
                    "kind": "gating",
                    "before": self.n_gating_before,
                    "after": self.n_gating_after,
                    "removed": self.n_gating_before - self.n_gating_after,
                },
            ]
        )


@dataclass
class CanonicalResult(_ToDict):
    """Outcome of :func:`rnnattn.analysis.canonicalize` (an equivalence-preserving rewrite).

    Attributes:
        model: the canonical model (new float64 model).
        hidden_perm: ``[N]``; canonical hidden neuron ``n`` is input neuron ``hidden_perm[n]``.
        gating_perm: ``[M]``; canonical gating row ``k`` is input row ``gating_perm[k]``.
        input_swapped, output_swapped: ``[N]``, ``[M]`` bools (indexed canonically): the m/x branches were
            swapped.
        input_scale, output_scale: ``[N]``, ``[M]``: the m-branch row was multiplied by ``c`` and the x-branch
            row by ``1/c`` (applied after the swap).
        hidden_role: ``[N]`` "memory" | "forget" | "other" per canonical hidden neuron.
        gating_conforming: ``[M]`` bool: the row's m-branch reads only memory neurons and its x-branch only
            forget neurons (the block form of Fig. 1); non-conforming rows are put last.
        blocks: DataFrame with one row per block (``matrix``, ``rows`` "a:b", ``cols`` "a:b", ``name``,
            ``max_abs``) describing the block form, for plotting separators.
        max_output_change: max |y_canonical - y_input| on random check inputs.
    """

    model: Model
    hidden_perm: np.ndarray
    gating_perm: np.ndarray
    input_swapped: np.ndarray
    output_swapped: np.ndarray
    input_scale: np.ndarray
    output_scale: np.ndarray
    hidden_role: np.ndarray
    gating_conforming: np.ndarray
    blocks: pd.DataFrame
    max_output_change: float


@dataclass
class RankOneMerge(_ToDict):
    """One merge of App. B.2 (Eq. 20): gating rows ``rows`` replaced by a single row ``sqrt(s) u``, ``sqrt(s) v``.

    Attributes:
        rows: indices (in the input model) of the merged gating rows.
        output_singular_values: singular values of the ``[N*N, d_out]`` stack of vec(K_i) (step 1; rank 1 when
            ``sigma_2/sigma_1 ~ 0``).
        kernel_singular_values: singular values of the common kernel ``K`` (step 2).
        output_ratio, kernel_ratio: ``sigma_2 / sigma_1`` of each (0 for an exact rank-1 structure).
        kernel: ``K [N, N]`` (unsymmetrised), normalised so that ``K_i = c_i K``.
        c: ``[d_out]`` per-output coefficients (the new D column).
        u, v: ``[N]`` the new ``W_m^out`` and ``W_x^out`` rows (already scaled by sqrt(s)).
        transposed: ``[|rows|]`` bools: the row entered the kernel as ``x m^T`` (its m/x branches swapped; the
            function is the same, the unsymmetrised kernel is transposed), chosen to make the sum rank 1.
        swapped: u/v were exchanged so that u reads memory neurons and v forget neurons (step 4).
        conforming: the merged row follows the block structure (u on memory, v on forget neurons).
        merged: False when the evidence did not support a rank-1 merge (then the model is unchanged).
        reason: one line explaining ``merged``.
    """

    rows: list[int]
    output_singular_values: np.ndarray
    kernel_singular_values: np.ndarray
    output_ratio: float
    kernel_ratio: float
    kernel: np.ndarray
    c: np.ndarray
    u: np.ndarray
    v: np.ndarray
    transposed: np.ndarray
    swapped: bool
    conforming: bool
    merged: bool
    reason: str


@dataclass
class MergeResult(_ToDict):
    """Outcome of :func:`rnnattn.analysis.merge_rank1`.

    Attributes:
        model: the model after merging (new float64 model).
        merges: one :class:`RankOneMerge` per merged group (evidence kept even when not merged).
        n_gating_before, n_gating_after: gating row counts.
        max_output_change: max |y_merged - y_input| on the check inputs (before fine-tuning).
        loss_before, loss_after_merge, loss_after_finetune: on the given data (``nan`` without targets or
            without fine-tuning).
        finetune_steps: optimiser steps taken after merging.
    """

    model: Model
    merges: list[RankOneMerge]
    n_gating_before: int
    n_gating_after: int
    max_output_change: float
    loss_before: float = float("nan")
    loss_after_merge: float = float("nan")
    loss_after_finetune: float = float("nan")
    finetune_steps: int = 0


@dataclass
class ProbeResult(_ToDict):
    """KV and Q scores of Table 1 (spec §2.6): ``1 - R^2`` of linear regressions (with intercept, uniform average
    over targets) from the memory neurons' states to the cumulative key-values, and from the forget neurons'
    states to the queries, pooled over batch x time.

    Attributes:
        kv_score, q_score: ``1 - R^2`` (0 = perfectly linearly decodable).
        kv_detail, q_detail: per-target DataFrames: ``target`` (e.g. "kv[h0,1,3]", "q[h0,2]"), ``r2``,
            ``score``, ``variance`` (of the target).
        memory_neurons, forget_neurons: indices of the neurons used as regressors (eigenmodes for dense A).
        n_points: regression samples (batch x time).
        hi, lo: lambda thresholds (|lambda| > hi memory, < lo forget).
        input_distribution: the inputs used, in words (e.g. "x ~ N(0, I), 256 sequences x 32 steps, seed 0").
        features: "neurons" (diagonal) or "eigenmodes" (dense A: states projected on A's eigenbasis).
        notes: caveats (e.g. "no memory neurons: KV score is 1 by definition").
    """

    kv_score: float
    q_score: float
    kv_detail: pd.DataFrame
    q_detail: pd.DataFrame
    memory_neurons: np.ndarray
    forget_neurons: np.ndarray
    n_points: int
    hi: float
    lo: float
    input_distribution: str
    features: str = "neurons"
    notes: list[str] = field(default_factory=list)


@dataclass
class PolynomialDistance(_ToDict):
    """Distance between two instantaneous polynomials, per output (spec §2.6), on their common monomial basis.

    The paper's "normalized Euclidean distance ... averaged over the outputs" is read as
    ``relative[i] = ||c_i^p - c_i^q||_2 / ||c_i^q||_2`` (``q`` is the reference), ``value = mean(relative)``.
    Also given: ``absolute[i] = ||c_i^p - c_i^q||_2`` and the distance of unit-normalised vectors
    ``unit[i] = ||c_i^p / ||c_i^p|| - c_i^q / ||c_i^q|| ||_2``. Coefficients are those of the plain monomial
    basis (``x1^2 x2`` has its coefficient in the expanded polynomial, no multinomial weighting) over all
    monomials of degree <= the larger degree of the two.

    Attributes:
        value: the headline number: mean over outputs of the chosen normalisation.
        normalisation: "relative" | "absolute" | "unit" (which array ``value`` averages).
        relative, absolute, unit: ``[d_out]`` arrays.
        n_monomials: size of the common basis; n_outputs: outputs compared.
        table: DataFrame with one row per output: ``output``, ``relative``, ``absolute``, ``unit``,
            ``norm_p``, ``norm_q``.
    """

    value: float
    normalisation: str
    relative: np.ndarray
    absolute: np.ndarray
    unit: np.ndarray
    n_monomials: int
    n_outputs: int
    table: pd.DataFrame

    @property
    def description(self) -> str:
        what = {
            "relative": "mean_i ||p_i - q_i|| / ||q_i|| (q = reference)",
            "absolute": "mean_i ||p_i - q_i||",
            "unit": "mean_i ||p_i/||p_i|| - q_i/||q_i||||",
        }[self.normalisation]
        return f"{what}, over {self.n_monomials} monomial coefficients per output"


@dataclass(frozen=True)
class EquivalenceThresholds(Config):
    """Pass thresholds of :func:`rnnattn.analysis.equivalence` (defaults: the paper's Table 1 order of magnitude,
    loosened about 10x, since the paper reports one run).

    Attributes:
        loss: 0.5 * MSE of student vs reference on the probe inputs must be below this.
        kv_score, q_score: ``1 - R^2`` of the probes must be below these.
        polynomial_distance: mean relative polynomial distance must be below this.
        prune_max_output_change: pruning must not move any output by more than this (relative to max |y|).
    """

    loss: float = 1e-6
    kv_score: float = 1e-6
    q_score: float = 1e-6
    polynomial_distance: float = 5e-3
    prune_max_output_change: float = 1e-4


# The paper's Table 1 and §3.1 pruning figures, for side-by-side display.
PAPER_TABLE1: dict[str, float] = {
    "loss": 4.97e-8,
    "kv_score": 4.52e-8,
    "q_score": 2.06e-10,
    "polynomial_distance": 3.73e-4,
    "hidden_removed": 86,
    "hidden_before": 100,
    "gating_removed": 87,
    "gating_before": 100,
}


@dataclass
class EquivalenceResult(_ToDict):
    """Everything :func:`rnnattn.analysis.equivalence` found: is the student the reference in disguise?

    Fields (all plain numbers, strings, numpy arrays, DataFrames or the result objects above; ``None`` where a
    step did not apply, with the reason in ``notes``):

    - ``student``: the analysed student (float64 copy, unchanged). ``reference``: the reference model
      (LinearSelfAttention) or ``None`` if only a polynomial reference exists.
    - ``reference_kind``: "teacher" | "one_step_gd" | "construction" | "model" | "polynomial".
    - ``model_summary``: DataFrame ``item``, ``student``, ``reference`` (class, sizes, parameters, recurrence,
      source).
    - ``lam``: ``[N]`` |lambda| of the student (eigenvalue moduli for dense A): the lambda histogram data.
    - ``roles``: DataFrame from :func:`neuron_roles` (one row per hidden neuron: ``neuron``, ``label``,
      ``lam``, ``role``, reading columns). ``role_counts``: ``{"memory", "forget", "other"}`` counts.
    - ``loss``: 0.5 * mean squared error of student vs reference outputs on the probe inputs (the paper's
      loss).
    - ``prune``: :class:`PruneResult` (``.summary`` DataFrame: before/after/removed per unit kind).
    - ``canonical``: :class:`CanonicalResult` of the pruned model.
    - ``weights``: dict of numpy arrays of the pruned + canonicalised (+ merged, if ``merge`` ran) model:
      ``W_m_in``, ``W_x_in`` ``[N, d+1]``, ``lam`` ``[N]`` (or ``A [N, N]``), ``W_m_out``, ``W_x_out`` ``[M,
      N]``, ``D`` ``[d_out, M]``; ``weight_labels``: ``{"hidden": [...], "gating": [...], "inputs": [...],
      "outputs": [...]}`` axis labels for plotting.
    - ``probes``: :class:`ProbeResult` (``kv_score``, ``q_score``, per-target ``kv_detail``/``q_detail``).
    - ``student_polynomial``, ``reference_polynomial``: :class:`~rnnattn.analysis.polynomial.Polynomial`
      (``.table`` DataFrame of monomials, ``.to_sympy()``, ``.to_latex()``).
    - ``polynomial_distance``: :class:`PolynomialDistance` (``value``, per-output ``table``, normalisation
      stated).
    - ``coefficient_differences``: DataFrame of the largest |student - reference| coefficients: ``output``,
      ``monomial``, ``degree``, ``student``, ``reference``, ``difference``.
    - ``leading_terms``: DataFrame, per output the largest reference terms: ``output``, ``monomial``,
      ``student``, ``reference``.
    - ``merges``: :class:`MergeResult` (rank-1 merges of App. B.2 with kernels, u, v, singular values) or
      ``None``.
    - ``checks``: DataFrame of the verdict: ``check``, ``value``, ``threshold``, ``passed``.
      ``verdict``: True when every applicable check passed. ``verdict_text``: one line.
    - ``thresholds``: :class:`EquivalenceThresholds` used.
    - ``paper_table1``: DataFrame ``quantity``, ``paper``, ``rnnattn`` (Table 1 + pruning counts side by
      side).
    - ``settings``: dict of the choices made (hi, lo, prune threshold, ablation tol, input distribution, n
      sequences, seq len, seed, distance normalisation).
    - ``notes``: list of one-line remarks (steps not applicable and why; choices the paper leaves open).
    """

    student: Model
    reference: Model | None
    reference_kind: str
    model_summary: pd.DataFrame
    lam: np.ndarray
    roles: pd.DataFrame
    role_counts: dict[str, int]
    loss: float
    prune: PruneResult | None
    canonical: CanonicalResult | None
    weights: dict[str, np.ndarray]
    weight_labels: dict[str, list[str]]
    probes: ProbeResult | None
    student_polynomial: Polynomial
    reference_polynomial: Polynomial
    polynomial_distance: PolynomialDistance
    coefficient_differences: pd.DataFrame
    leading_terms: pd.DataFrame
    merges: MergeResult | None
    checks: pd.DataFrame
    verdict: bool
    verdict_text: str
    thresholds: EquivalenceThresholds
    paper_table1: pd.DataFrame
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        from rnnattn.analysis._html import equivalence_html

        return equivalence_html(self)

    def __repr__(self) -> str:
        return f"EquivalenceResult(verdict={self.verdict}, {self.verdict_text})"
