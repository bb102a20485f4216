"""Result value objects of the analysis steps: plain dataclasses holding DataFrames, numpy arrays and numbers.

Every result has ``to_dict()`` (JSON-serialisable: DataFrames become lists of records, arrays nested lists), a
short ``repr`` (numbers and shapes, never a module tree or a whole array) and ``_repr_html_`` for notebooks,
rendered by :mod:`rnnattn.display`. The whole pipeline's result is in :mod:`rnnattn.analysis.steps`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from rnnattn.models.base import Model


def jsonable(value: Any) -> Any:
    """Recursively turn DataFrames, arrays, numpy scalars, paths, dataclasses and models into JSON values."""
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
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Model):
        return {"class": type(value).__name__, "config": value.config.to_dict()}
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields_dict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def fields_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields, each made JSON-serialisable by :func:`jsonable` (the ``to_dict`` of the
    analysis results)."""
    return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def unit_table(hidden: tuple[int, int, Any], gating: tuple[int, int, Any], note: str) -> pd.DataFrame:
    """Unit counts of a rewrite, one row per unit kind: ``kind``, ``before``, ``after`` and a ``note`` column
    (``hidden``/``gating`` are ``(before, after, note value)``); shared by pruning and rotation summaries."""
    return pd.DataFrame(
        [
            {"kind": kind, "before": b, "after": a, note: v}
            for kind, (b, a, v) in (("hidden", hidden), ("gating", gating))
        ]
    )


def short(value: Any) -> str:
    """A short description of a field value for ``repr``: numbers, shapes and class names, never whole arrays."""
    from rnnattn.models.base import Model

    if isinstance(value, Model):
        return f"<{type(value).__name__}, {value.n_parameters()} parameters>"
    if isinstance(value, pd.DataFrame):
        return f"<DataFrame {len(value)} rows>"
    if isinstance(value, np.ndarray):
        return repr(value.tolist()) if value.size <= 6 else f"<array {value.shape}>"
    if isinstance(value, float | np.floating):
        return f"{float(value):.3g}"
    if isinstance(value, list | tuple) and len(value) > 4:
        return f"<{len(value)} items>"
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57] + "...")
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and not isinstance(value, Result):
        return repr(value)[:80]
    if isinstance(value, Result):
        return f"<{type(value).__name__}>"
    return repr(value)


class Result:
    """Base of the analysis results: ``to_dict``, a short ``repr`` and an escaped ``_repr_html_``.

    Subclasses are ``@dataclass(repr=False)`` so this ``__repr__`` applies; ``_html_blocks`` adds tables."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (models are summarised by class + config)."""
        return fields_dict(self)

    def _scalars(self) -> list[tuple[str, Any]]:
        return [
            (f.name, getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if isinstance(getattr(self, f.name), int | float | str | bool | np.number) or getattr(self, f.name) is None
        ]

    def __repr__(self) -> str:
        parts = [f"{k}={short(v)}" for k, v in self._scalars()]
        return f"{type(self).__name__}({', '.join(parts)})"

    def _html_blocks(self) -> list:
        from rnnattn.display import Table

        return [
            Table(getattr(self, f.name), title=f.name, max_rows=20)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if isinstance(getattr(self, f.name), pd.DataFrame)
        ]

    def _repr_html_(self) -> str:
        from rnnattn.display import KeyValues, format_value, fragment

        kv = KeyValues([(k, format_value(v)) for k, v in self._scalars()])
        return fragment(type(self).__name__, "", kv, *self._html_blocks())


@dataclass(repr=False)
class PruneResult(Result):
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
        return unit_table(
            (self.n_hidden_before, self.n_hidden_after, self.n_hidden_before - self.n_hidden_after),
            (self.n_gating_before, self.n_gating_after, self.n_gating_before - self.n_gating_after),
            "removed",
        )

    def _html_blocks(self) -> list:
        from rnnattn.display import Table

        return [Table(self.summary, title="units"), *super()._html_blocks()]


@dataclass(repr=False)
class CanonicalResult(Result):
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


@dataclass(repr=False)
class RankOneMerge(Result):
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


@dataclass(repr=False)
class MergeResult(Result):
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

    @property
    def evidence(self) -> pd.DataFrame:
        """One row per merge group: rows, sigma2/sigma1 of the output stack and of the kernel, merged, reason."""
        return pd.DataFrame(
            [
                {
                    "rows": ", ".join(str(int(i)) for i in m.rows),
                    "σ2/σ1 outputs": m.output_ratio,
                    "σ2/σ1 kernel": m.kernel_ratio,
                    "merged": m.merged,
                    "conforming": m.conforming,
                    "reason": m.reason,
                }
                for m in self.merges
            ],
            columns=["rows", "σ2/σ1 outputs", "σ2/σ1 kernel", "merged", "conforming", "reason"],
        )

    def _html_blocks(self) -> list:
        from rnnattn.display import Table

        return [Table(self.evidence, title="merge evidence (App. B.2)")]


@dataclass(repr=False)
class ProbeResult(Result):
    """KV and Q scores of Table 1 (§3.1): ``1 - R^2`` of linear regressions (with intercept, uniform average
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

    def _html_blocks(self) -> list:
        from rnnattn.display import Text

        return [*super()._html_blocks(), *(Text(n, "note") for n in self.notes)]


@dataclass(repr=False)
class PolynomialDistance(Result):
    """Distance between two instantaneous polynomials, per output (Table 1, §3.1), on their common monomial basis.

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
