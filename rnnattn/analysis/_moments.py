"""Moment-space form of a gated RNN (Eq. 2), grouped by decay: the algebra behind
:mod:`rnnattn.analysis.effective` and :mod:`rnnattn.analysis.rotate` (see the first for the definitions).

Each neuron's input is a linear form ``U[n] · m(x̃)`` in the quadratic moments ``m(x̃) = (x̃_a x̃_b)_{a≤b}`` of
``x̃ = (x, 1)``; each output a quadratic form ``hᵀ H_i h`` in the state. Neurons are grouped into memory (λ ≈ 1),
forget (λ ≈ 0) and other; a dense ``A`` is split into its real invariant subspaces per group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnattn.analysis.errors import AnalysisNotApplicable
from rnnattn.analysis.loading import hidden_lambda, input_names
from rnnattn.analysis.polynomial import monomial_basis, monomial_name
from rnnattn.limits import check_at_most
from rnnattn.models.gated_rnn import GatedLinearRNN

GROUPS = ("memory", "forget", "other")


# -- moment space ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Moments:
    """The ``P`` quadratic moments of ``x̃``: index pairs ``a ≤ b`` into ``x̃``, their exponent vectors in ``x``
    ``[P, d]``, names and degrees in ``x`` (the constant ``x̃_{d+1} = 1`` has degree 0)."""

    pairs: np.ndarray
    exponents: np.ndarray
    names: tuple[str, ...]
    const: int | None

    @property
    def degrees(self) -> np.ndarray:
        return self.exponents.sum(axis=1)

    @property
    def size(self) -> int:
        return len(self.names)


def moments_of(model: GatedLinearRNN) -> Moments:
    """The moment basis of ``model``'s augmented input, in ``monomial_basis(d, 2)`` order."""
    d = model.d_input
    p = d + int(model.config.append_one)
    const = d if model.config.append_one else None
    a, b = np.triu_indices(p)
    exps = np.zeros((a.size, d), dtype=np.int64)
    for idx in (a, b):
        real = idx != const
        np.add.at(exps, (np.flatnonzero(real), idx[real]), 1)
    order_of = {tuple(e): i for i, e in enumerate(monomial_basis(d, 2).tolist())}
    order = np.argsort([order_of[tuple(e)] for e in exps.tolist()], kind="stable")
    names = input_names(model)
    exps = exps[order]
    return Moments(np.stack([a[order], b[order]], 1), exps, tuple(monomial_name(e, names) for e in exps), const)


def input_forms(W_m: np.ndarray, W_x: np.ndarray, mom: Moments) -> np.ndarray:
    """``U [N, P]``: ``(W_m[n]·x̃)(W_x[n]·x̃) = U[n] · m(x̃)`` (``x̃_a x̃_b`` coefficients, doubled off the diagonal)."""
    a, b = mom.pairs[:, 0], mom.pairs[:, 1]
    return np.where(a == b, 0.5, 1.0) * (W_m[:, a] * W_x[:, b] + W_m[:, b] * W_x[:, a])


def readout_forms(W_m_out: np.ndarray, W_x_out: np.ndarray, D: np.ndarray) -> np.ndarray:
    """``H [o, N, N]``: ``y_i = hᵀ H_i h``, ``H_i = Σ_k D_ik sym(W_m^out[k] ⊗ W_x^out[k])``."""
    H = np.einsum("ik,ka,kb->iab", D, W_m_out, W_x_out)
    return 0.5 * (H + H.transpose(0, 2, 1))


def fold_bilinear(G: np.ndarray, mom: Moments) -> np.ndarray:
    """Coefficients of the quartic polynomials ``m(x̃)ᵀ G_i m(x̃)`` (``G [o, P, P]``) on ``monomial_basis(d, 4)``."""
    d = mom.exponents.shape[1]
    basis = monomial_basis(d, 4)
    code = lambda e: e @ (5 ** np.arange(d))  # noqa: E731  (exponents are <= 4)
    pos = {c: i for i, c in enumerate(code(basis).tolist())}
    both = (mom.exponents[:, None, :] + mom.exponents[None, :, :]).reshape(-1, d)
    idx = np.array([pos[c] for c in code(both).tolist()])
    return np.stack([np.bincount(idx, weights=g.ravel(), minlength=len(basis)) for g in G])


# -- groups of neurons by decay ----------------------------------------------------------------------------
def _group_of(lam: np.ndarray, hi: float, lo: float) -> np.ndarray:
    return np.where(np.abs(lam - 1) <= 1 - hi, "memory", np.where(np.abs(lam) <= lo, "forget", "other"))


def _group_bases(model: GatedLinearRNN, hi: float, lo: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per group ``(B [N, n], L [n, N], λ [n])``: ``h = Σ_g B_g c_g`` with group coordinates ``c_g = L_g h``.

    Diagonal (or dense but diagonal) recurrence: ``B``, ``L`` select neurons. Dense ``A = V Λ V^{-1}``: ``B_g`` is an
    orthonormal real basis of the range of the spectral projector ``P_g = V_g V^{-1}_g`` and ``L_g = B_gᵀ P_g``.
    """
    N = model.config.n_hidden
    lam_t = hidden_lambda(model)
    if lam_t is not None:
        lam = lam_t.detach().double().numpy()
        grp = _group_of(lam, hi, lo)
        eye = np.eye(N)
        return {g: (eye[:, grp == g], eye[grp == g], lam[grp == g]) for g in GROUPS}
    A = model.A.detach().double().numpy()
    ev, V = np.linalg.eig(A)
    if not np.isfinite(ev).all() or np.linalg.cond(V) > 1e10:
        raise AnalysisNotApplicable(
            "effective_counts",
            model,
            "dense A is not diagonalisable (defective or ill-conditioned eigenvectors), "
            "so its modes do not split into memory / forget groups",
        )
    Vinv = np.linalg.inv(V)
    grp = _group_of(ev, hi, lo)
    out = {}
    for g in GROUPS:
        sel = grp == g
        P = (V[:, sel] @ Vinv[sel]).real  # real: each group is closed under conjugation
        B = np.linalg.svd(P)[0][:, : int(sel.sum())] if sel.any() else np.zeros((N, 0))
        out[g] = (B, B.T @ P, ev[sel])
    return out


@dataclass
class MomentBlocks:
    """The model in moment space: per group the inputs ``U_g [n_g, P]``, basis ``B_g [N, n_g]`` and decays, and
    ``H [o, N, N]``. ``block(g, h)`` is ``U_gᵀ B_gᵀ H_i B_h U_h`` for every output: ``[o, P, P]``."""

    moments: Moments
    U: dict[str, np.ndarray]
    B: dict[str, np.ndarray]
    lam: dict[str, np.ndarray]
    H: np.ndarray
    dense: bool

    def block(self, g: str, h: str) -> np.ndarray:
        # batched matmuls over the outputs (an unoptimised einsum loops over every index: ~30x slower at N = 100)
        return self.U[g].T @ (self.B[g].T @ self.H @ self.B[h]) @ self.U[h]


def moment_blocks(model: GatedLinearRNN, hi: float = 0.99, lo: float = 0.01) -> MomentBlocks:
    """Moment-space inputs and readout forms of a float64 :class:`GatedLinearRNN`, grouped by decay."""
    N, o, P = model.config.n_hidden, model.d_output, (model.d_input + 2) * (model.d_input + 1) // 2
    # refuse before allocating: H [o, N, N] (and its transpose), the dense eigenbasis, U [N, P], the blocks
    need = 8 * (2 * o * N * N + 4 * N * N + 2 * N * P + 6 * o * P * P)
    check_at_most("moment-space analysis working memory (bytes)", need, "MAX_ANALYSIS_BYTES")
    f = lambda t: t.detach().double().numpy()  # noqa: E731
    mom = moments_of(model)
    U_all = input_forms(f(model.W_m_in), f(model.W_x_in), mom)
    bases = _group_bases(model, hi, lo)
    return MomentBlocks(
        mom,
        {g: L @ U_all for g, (_, L, _) in bases.items()},
        {g: B for g, (B, _, _) in bases.items()},
        {g: lam for g, (_, _, lam) in bases.items()},
        readout_forms(f(model.W_m_out), f(model.W_x_out), f(model.D)),
        hidden_lambda(model) is None,
    )
