r"""Effective KV / query counts: the attention structure of §3.1 seen through any mixing of same-λ neurons.

Why: if neurons ``n, n'`` share a decay λ, any invertible map ``h -> M h`` on them (inputs ``M g^in``, readout
``W^out M^{-1}``) leaves the function of Eq. 2 unchanged. A trained student may therefore hold the compact
construction of §2.2 (``d(d+1)/2`` KV + ``d`` query units) in a rotated, over-complete basis, where the row
rules of :func:`~rnnattn.analysis.prune` and :func:`~rnnattn.analysis.roles.neuron_roles` see nothing. The
quantities below are invariant under such mixing.

Moment space. With ``x̃ = (x, 1)`` (``p = d + 1`` entries) each neuron's input ``g^in_n = (W_m^in[n]·x̃)(W_x^in[n]·x̃)``
is a linear form in the ``P = p(p+1)/2`` moments ``m(x̃) = (x̃_a x̃_b)_{a≤b}`` (15 for d = 4): ``g^in = U m``
with ``U [N, P]``. Output ``i`` is a quadratic form in ``h``, ``y_i = hᵀ H_i h`` with

.. math::
    H_i = \sum_k D_{ik}\, \mathrm{sym}(W_m^{out}[k] \otimes W_x^{out}[k]) .

Split the neurons by decay into *memory* (``|λ - 1| ≤ 1 - hi``: ``h`` accumulates ``Σ_{t'≤t} U m(x̃_{t'})``),
*forget* (``|λ| ≤ lo``: ``h = U m(x̃_t)``) and *other*. The part of ``y_i`` that pairs a past token with the
current one is ``2 Σ_{t'} m(x̃_{t'})ᵀ G_i m(x̃_t)`` with the moment-space cross block

.. math::
    G_i = U_{mem}^\top\, H_i[\mathrm{mem}, \mathrm{fgt}]\, U_{fgt} \qquad [P, P].

Linear attention (Eq. 1) has exactly this form: ``y_i = Σ_{t'} Σ_j v_i k_j (x_{t'}) q_j(x_t)``. The numerical
rank of ``[G_1 … G_o]`` (``P × oP``; the past-token side) is the **effective KV count**: how many moment features
the memory must hold (``d(d+1)/2`` for a generic teacher: all quadratic forms ``v_a v_b``). The rank of
``[G_1; …; G_o]`` (``oP × P``; the current-token side) is the **effective query count** (``d``). Both are
unchanged by any invertible mixing within the memory or within the forget group, and dead neurons add zero
rows. The memory×memory block ``U_memᵀ H_i[mem, mem] U_mem`` (past × past products, absent in attention) and the
forget×forget block (quartic terms in the current token alone; only its polynomial is function-relevant, so it
is folded onto quartic monomials before taking the norm) should be ≈ 0.

Coordinates: moments are plain monomial coefficients (``x1*x2`` has coefficient ``2 Q_12`` of the symmetric
form ``Q``), ordered like :func:`~rnnattn.analysis.polynomial.monomial_basis` ``(d, 2)``. Spectra are given
relative to the largest singular value.

Rank tolerance (:func:`numerical_rank`). Default ``method="gap"``: the rank sits at the largest ratio
``σ_k / σ_{k+1}`` of the normalised spectrum. Values below the precision floor ``P ε_w`` are clipped to it, and
the floor is appended as ``σ_{P+1}`` so that a full-rank spectrum is recognised; ``ε_w`` is the machine epsilon
of the precision the weights carry (float32's 1.2e-7 when every weight is a float32 value, as in checkpoints
trained in float32, else float64's 2.2e-16), because singular values below it are rounding of the weights, not
structure. The reported tolerance is the geometric middle of the chosen gap. If the largest gap is below
``min_gap`` (a decade by default) the spectrum has no clear rank: every value above the floor counts and
``clear`` is False. Caveat: values well above the floor are structure to this rule, so a spectrum whose noise
comes from training rather than rounding (a float64-trained student) can read as full rank; pass ``eps`` (the
noise level) or ``method="rtol"`` (counts ``σ/σ_1 > rtol``) there. On the shipped N=M=32 student the cut gaps
are ×1.4e3 (KV) and ×7e3 (query).

Dense recurrence: neurons are replaced by the real invariant subspaces of ``A`` for the eigenvalues of each
group (spectral projectors ``V_g V^{-1}_g``); a defective (non-diagonalisable) ``A`` is not applicable.

Public API: :func:`effective_counts` (model, checkpoint or path) -> :class:`EffectiveCounts`;
:func:`numerical_rank`; the moment-space blocks themselves are in :mod:`rnnattn.analysis._moments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rnnattn.analysis._moments import GROUPS, fold_bilinear, moment_blocks
from rnnattn.analysis.loading import ModelSource, require_gated_rnn, resolve
from rnnattn.analysis.results import fields_dict
from rnnattn.models.gated_rnn import GatedLinearRNN

_EPS = np.finfo(np.float64).eps


# -- numerical rank -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankDecision:
    """``rank`` of a spectrum, the relative ``tolerance`` separating kept from dropped values, the ``method``,
    the ``gap`` factor ``σ_r / σ_{r+1}`` at the cut, whether it is ``clear`` (``gap >= min_gap``) and the
    relative precision ``floor`` below which values count as zero."""

    rank: int
    tolerance: float
    method: str
    gap: float
    clear: bool
    floor: float


def numerical_rank(
    s: np.ndarray, method: str = "gap", rtol: float = 1e-3, min_gap: float = 10.0, eps: float = _EPS
) -> RankDecision:
    """Rank of singular values ``s`` (any order, ``>= 0``); see the module docstring for the rule.

    ``eps`` is the relative precision of the matrix entries (the floor is ``len(s) * eps``).

    Example:
        >>> numerical_rank(np.array([1.0, 0.3, 2e-6, 1e-6])).rank
        2
    """
    if method not in ("gap", "rtol"):
        raise ValueError(f"numerical_rank: method must be 'gap' or 'rtol', got {method!r}")
    s = np.sort(np.abs(np.asarray(s, dtype=np.float64)))[::-1]
    floor = max(s.size, 1) * eps
    if s.size == 0 or s[0] == 0 or not np.isfinite(s).all():
        return RankDecision(0, float("nan"), method, float("nan"), s.size == 0 or s[0] == 0, floor)
    rel = s / s[0]
    ext = np.append(np.maximum(rel, floor), floor)
    ratios = ext[:-1] / ext[1:]
    if method == "rtol":
        r = int((rel > rtol).sum())
        gap = float(ratios[r - 1]) if r else float("nan")
        return RankDecision(r, rtol, method, gap, bool(gap >= min_gap), floor)
    k = int(np.argmax(ratios))
    if ratios[k] < min_gap:  # no clear gap: everything above the float64 floor counts
        r = int((rel > floor).sum())
        return RankDecision(r, floor, method, float(ratios[k]), False, floor)
    return RankDecision(k + 1, float(np.sqrt(ext[k] * ext[k + 1])), method, float(ratios[k]), True, floor)


def weight_eps(model: GatedLinearRNN) -> float:
    """Machine epsilon of the precision ``model``'s weights carry: float32's when every weight is a float32
    value (a float32-trained checkpoint analysed in float64), else float64's."""
    for p in model.parameters():
        w = p.detach().double()
        finite = w[w.isfinite()]
        if not bool((finite.float().double() == finite).all()):
            return _EPS
    return float(np.finfo(np.float32).eps)


# -- the result ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class EffectiveCounts:
    """Outcome of :func:`effective_counts`.

    Attributes:
        n_kv, n_query: effective KV count (rank of the past-token side) and query count (current-token side).
        kv_spectrum, query_spectrum: all ``P`` singular values of the two sides, relative to the largest.
        kv_rank, query_rank: the :class:`RankDecision` s (stated tolerance, gap, method).
        block_norms: ``"memory x forget"`` (``||G||_F`` over all outputs, absolute), and relative to it
            ``"memory x memory"``, ``"forget x forget (polynomial)"`` and ``"with other"``.
        degree_leak: ``"kv not degree 2"`` (share of ``||G||`` on past-token moments of degree ≠ 2) and
            ``"query not degree 1"`` (current-token moments of degree ≠ 1): 0 for linear attention.
        group_sizes: neurons (or modes) per group; ``hi``, ``lo``: the group thresholds.
        moments: names of the ``P`` moments; kv_basis ``[P, n_kv]``, query_basis ``[P, n_query]``: leading
            singular vectors; cross_blocks ``G [o, P, P]``.
    """

    n_kv: int
    n_query: int
    kv_spectrum: np.ndarray
    query_spectrum: np.ndarray
    kv_rank: RankDecision
    query_rank: RankDecision
    block_norms: dict[str, float]
    degree_leak: dict[str, float]
    group_sizes: dict[str, int]
    hi: float
    lo: float
    recurrence: str
    moments: tuple[str, ...]
    kv_basis: np.ndarray = field(repr=False)
    query_basis: np.ndarray = field(repr=False)
    cross_blocks: np.ndarray = field(repr=False)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per side: count, group size, spectrum endpoints at the cut, tolerance, gap."""
        rows = []
        for side, n, spec, rk, grp in (
            ("KV (memory side)", self.n_kv, self.kv_spectrum, self.kv_rank, "memory"),
            ("query (current-token side)", self.n_query, self.query_spectrum, self.query_rank, "forget"),
        ):
            rows.append(
                {
                    "side": side,
                    "effective count": n,
                    "group": grp,
                    "group size": self.group_sizes[grp],
                    "last kept σ/σ1": spec[n - 1] if n else np.nan,
                    "first dropped σ/σ1": spec[n] if n < spec.size else np.nan,
                    "tolerance": rk.tolerance,
                    "gap": rk.gap,
                    "clear gap": rk.clear,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)

    def __repr__(self) -> str:
        g = self.group_sizes
        return (
            f"EffectiveCounts(KV {self.n_kv} of {g['memory']} memory, query {self.n_query} of {g['forget']} forget, "
            f"{g['other']} other; tol {self.kv_rank.tolerance:.2g}/{self.query_rank.tolerance:.2g} "
            f"({self.kv_rank.method}); memory x memory {self.block_norms['memory x memory']:.2g})"
        )

    def _repr_html_(self) -> str:
        from rnnattn.display import KeyValues, Table, fragment

        spectra = pd.DataFrame(
            {
                "moment rank": np.arange(1, self.kv_spectrum.size + 1),
                "KV side σ/σ1": self.kv_spectrum,
                "query side σ/σ1": self.query_spectrum,
            }
        )
        kv = KeyValues([(k, f"{v:.3g}") for k, v in {**self.block_norms, **self.degree_leak}.items()], "blocks")
        reading = (
            f"{self.n_kv} effective KV and {self.n_query} effective query units "
            f"({self.recurrence} recurrence, λ groups: {self.group_sizes})"
        )
        return fragment("Effective KV / query counts", reading, Table(self.summary), kv, Table(spectra))


def effective_counts(
    model: ModelSource,
    hi: float = 0.99,
    lo: float = 0.01,
    method: str = "gap",
    rtol: float = 1e-3,
    min_gap: float = 10.0,
    eps: float | None = None,
) -> EffectiveCounts:
    """Effective KV and query counts of a gated RNN (see the module docstring for the definition).

    Args:
        model: a :class:`GatedLinearRNN` (model, checkpoint or path); analysed as a float64 copy.
        hi, lo: memory ``|λ - 1| <= 1 - hi``, forget ``|λ| <= lo`` (the thresholds of :func:`neuron_roles`).
        method, rtol, min_gap: rank rule of :func:`numerical_rank`.
        eps: relative precision of the weights for the rank floor (default :func:`weight_eps`).
    Returns:
        :class:`EffectiveCounts`.
    Raises:
        AnalysisNotApplicable: not a :class:`GatedLinearRNN`, or a defective dense ``A``.

    Example:
        >>> effective_counts("checkpoints/teacher_student_d4.safetensors")  # doctest: +SKIP
        EffectiveCounts(KV 10 of 15 memory, query 4 of 17 forget, 0 other; ...)
    """
    m = require_gated_rnn(resolve(model).model, "effective_counts")
    blocks = moment_blocks(m, hi, lo)
    mom = blocks.moments
    G = blocks.block("memory", "forget")  # [o, P, P]
    scale = float(np.linalg.norm(G))
    rel = lambda x: float(x) / scale if scale > 0 else float("nan")  # noqa: E731
    mm = blocks.block("memory", "memory")
    others = [blocks.block(a, "other") for a in GROUPS]
    past = np.concatenate(list(G), axis=1)  # [P, o P]: rows are past-token moments
    cur = np.concatenate(list(G), axis=0)  # [o P, P]: columns are current-token moments
    Lm, s_kv, _ = np.linalg.svd(past)
    _, s_q, Rq = np.linalg.svd(cur)
    eps = weight_eps(m) if eps is None else float(eps)
    kv_rank = numerical_rank(s_kv, method, rtol, min_gap, eps)
    q_rank = numerical_rank(s_q, method, rtol, min_gap, eps)
    norm0 = lambda s: s / s[0] if s[0] > 0 else s  # noqa: E731
    deg = mom.degrees
    return EffectiveCounts(
        n_kv=kv_rank.rank,
        n_query=q_rank.rank,
        kv_spectrum=norm0(s_kv),
        query_spectrum=norm0(s_q),
        kv_rank=kv_rank,
        query_rank=q_rank,
        block_norms={
            "memory x forget": scale,
            "memory x memory": rel(np.linalg.norm(mm + mm.transpose(0, 2, 1)) / 2),
            "forget x forget (polynomial)": rel(np.linalg.norm(fold_bilinear(blocks.block("forget", "forget"), mom))),
            "with other": rel(np.sqrt(sum(np.linalg.norm(o) ** 2 for o in others))),
        },
        degree_leak={
            "kv not degree 2": rel(np.linalg.norm(G[:, deg != 2, :])),
            "query not degree 1": rel(np.linalg.norm(G[:, :, deg != 1])),
        },
        group_sizes={g: int(blocks.U[g].shape[0]) for g in GROUPS},
        hi=hi,
        lo=lo,
        recurrence="dense (eigenmodes of A)" if blocks.dense else "diagonal",
        moments=mom.names,
        kv_basis=Lm[:, : kv_rank.rank],
        query_basis=Rq[: q_rank.rank].T,
        cross_blocks=G,
    )
