r"""In-context regression on the task's support: the context–query polynomial and the y-split residual (§4, Table 2).

Tokens are ``(x, y)`` with ``d_x + d_y`` features; the query token is ``(x_q, y_q = 0)``, so the loss never sees the
terms of the model that involve ``y_q``. Two views compare a gated RNN with one step of GD (Eq. 4 / App. C.2,
``ŷ = η Σ_t y_t x_tᵀ x_q``):

(a) **Context–query polynomial** :math:`P(c, q)`: the output at the query of the two-token sequence ``[c, q]``
    from ``h_0 = 0``, exactly, as a polynomial of degree ≤ 4 in the ``2(d_x + d_y)`` variables ``(x_c, y_c, x_q,
    y_q)``. With Eq. 2, ``h = Λ g^in(c̃) + g^in(q̃)`` (``Λ = diag(λ)`` or the dense ``A``) is a quadratic form in
    ``w = (c, q, 1)`` per neuron, and ``y_i = Σ_k D_ik (W_m^out[k]·h)(W_x^out[k]·h)`` a quartic form, folded onto
    monomials like :func:`~rnnattn.analysis.polynomial.instantaneous_polynomial`. The GD reference on the same
    sequence is the one-step-GD attention layer (:func:`rnnattn.constructions.gd_attention`, causal including
    the query): ``η (y_c x_cᵀ x_q + y_q x_qᵀ x_q)``; its second term vanishes on the support. Monomials without
    ``y_q`` are *constrained* by the task, the others are not. Reported: the relative distance to GD over all
    monomials and over the constrained ones, the residual (coefficients off GD's terms, as Table 2's "residual
    norm") on each side, split into context-only, query-only and cross terms, and GD's coefficients
    ``x_cj y_ci x_qj`` (η each) beside the model's.
(b) **Instantaneous polynomial split by y-degree**: the residual of Table 2 (coefficients of output ``i``'s
    quartic other than ``x_j² y_i``) split by the number of y-variables in each monomial (0, 1, ≥ 2). Terms with
    ≥ 2 y-variables need ``y`` read on the query side, where it is always 0.

Outputs: the prediction is the last ``d_y`` outputs of the model (``d_output = d_y``, as trained, or ``d_x +
d_y`` for a construction that writes the y slots). ``d_x``, ``d_y`` and ``η`` default to the checkpoint's task
metadata (``eta_star``, else the analytic ``η*`` of App. C.2).

Public API: :func:`context_query` (model, checkpoint or path) -> :class:`ContextQueryResult`;
:func:`context_query_polynomial` (the exact polynomial (a)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rnnattn.analysis.loading import ModelSource, hidden_lambda, require_gated_rnn, resolve
from rnnattn.analysis.monomials import _basis_index
from rnnattn.analysis.polynomial import Polynomial, fold_symmetric, instantaneous_polynomial, monomial_basis
from rnnattn.analysis.references import task_gd_eta
from rnnattn.analysis.results import fields_dict
from rnnattn.limits import check_at_most
from rnnattn.models.gated_rnn import GatedLinearRNN


def _names(d_x: int, d_y: int) -> list[str]:
    return [f"x{j + 1}" for j in range(d_x)] + [f"y{j + 1}" for j in range(d_y)]


def context_query_polynomial(
    model: ModelSource, outputs: list[int] | None = None, names: list[str] | None = None
) -> Polynomial:
    """Exact output at the query of the sequence ``[c, q]`` as a polynomial in ``(c, q)`` (view (a) above).

    Args:
        model: a :class:`GatedLinearRNN` (diagonal or dense).
        outputs: output indices to keep (default: all).
        names: the ``d`` token feature names (default ``x1..xd``); variables are ``<name>_c`` then ``<name>_q``.
    Returns:
        :class:`Polynomial` of degree 4 in ``2d`` variables (``C(2d + 4, 4)`` monomials: 1820 for d = 6).
    """
    m: GatedLinearRNN = require_gated_rnn(resolve(model).model, "context_query_polynomial")
    f = lambda t: t.detach().double().numpy()  # noqa: E731
    d, const = m.d_input, m.config.append_one
    p, nw = d + int(const), 2 * d + int(const)
    n_out = m.d_output if outputs is None else len(outputs)
    N, M = m.config.n_hidden, m.config.n_gating
    # refuse before allocating: the full quartic tensor [o, nw^4], its einsum intermediate, per-neuron forms
    need = 8 * (2 * n_out * nw**4 + n_out * M * nw**2 + 4 * N * nw**2 + 2 * M * nw**2)
    check_at_most("context-query polynomial working memory (bytes)", need, "MAX_ANALYSIS_BYTES")
    Wm, Wx = f(m.W_m_in), f(m.W_x_in)
    Q = 0.5 * (Wm[:, :, None] * Wx[:, None, :] + Wm[:, None, :] * Wx[:, :, None])  # [N, p, p]: g^in = x̃ᵀ Q x̃
    S_c, S_q = np.zeros((p, nw)), np.zeros((p, nw))  # x̃ of each token from w = (c, q, 1)
    S_c[:d, :d] = S_q[:d, d : 2 * d] = np.eye(d)
    if const:
        S_c[d, -1] = S_q[d, -1] = 1.0
    Qc = np.einsum("ap,nab,bq->npq", S_c, Q, S_c)
    Qq = np.einsum("ap,nab,bq->npq", S_q, Q, S_q)
    lam = hidden_lambda(m)
    decay = np.diag(f(lam)) if lam is not None else f(m.A)
    Qh = np.einsum("nm,mpq->npq", decay, Qc) + Qq  # h at the query, per neuron, as a quadratic form in w
    A = np.einsum("kn,npq->kpq", f(m.W_m_out), Qh)
    B = np.einsum("kn,npq->kpq", f(m.W_x_out), Qh)
    D = f(m.D)
    outputs = list(range(D.shape[0])) if outputs is None else list(outputs)
    T = np.einsum("ik,kab,kcd->iabcd", D[outputs], A, B, optimize=True)
    names = names or [f"x{j + 1}" for j in range(d)]
    variables = tuple(f"{n}_c" for n in names) + tuple(f"{n}_q" for n in names)
    return Polynomial(
        fold_symmetric(T, 2 * d),
        variables,
        tuple(f"y{i + 1}" for i in range(len(outputs))),
        4,
        f"{type(m).__name__}: output at the query of [context, query]",
    )


def gd_context_query_coefficients(eta: float, d_x: int, d_y: int) -> np.ndarray:
    """``[d_y, C(2d+4, 4)]``: one-step GD on ``[c, q]``, ``η (y_ci x_cᵀ x_q + y_qi x_qᵀ x_q)``, written directly."""
    d = d_x + d_y
    idx = _basis_index(2 * d, 4)
    out = np.zeros((d_y, len(idx)))
    for i in range(d_y):
        for j in range(d_x):
            cross, self_ = [0] * (2 * d), [0] * (2 * d)
            cross[j] += 1  # x_cj
            cross[d_x + i] += 1  # y_ci
            cross[d + j] += 1  # x_qj
            self_[d + j] += 2  # x_qj^2
            self_[d + d_x + i] += 1  # y_qi
            out[i, idx[tuple(cross)]] += eta
            out[i, idx[tuple(self_)]] += eta
    return out


@dataclass(repr=False)
class ContextQueryResult:
    """Outcome of :func:`context_query`.

    Attributes:
        polynomial, reference: the model's and one-step GD's context–query polynomials (prediction outputs).
        eta, d_x, d_y: the GD step and the token split used.
        distance, distance_support: mean over outputs of ``||P_i - GD_i|| / ||GD_i||`` over all monomials, resp.
            over the constrained ones (no ``y_q``).
        residual_support, residual_unconstrained: mean over outputs of the norm of the coefficients off GD's
            terms, constrained resp. unconstrained monomials (absolute, like Table 2's residual).
        residual_parts: residual norms by part (context only / query only / cross) × (constrained, unconstrained).
        gd_terms: the model's coefficient of every GD term ``x_cj y_ci x_qj`` beside ``η``.
        instantaneous_split: per output, Table 2's residual of the instantaneous polynomial split by the number of
            y-variables (``0 y``, ``1 y``, ``>=2 y``, ``total``) and the mean ``x_j² y_i`` coefficient.
    """

    polynomial: Polynomial
    reference: Polynomial
    eta: float
    d_x: int
    d_y: int
    distance: float
    distance_support: float
    residual_support: float
    residual_unconstrained: float
    residual_parts: pd.DataFrame
    gd_terms: pd.DataFrame
    instantaneous_split: pd.DataFrame

    @property
    def summary(self) -> pd.DataFrame:
        first = self.instantaneous_split.iloc[0]
        rows = [
            ("relative distance to one-step GD, all terms", self.distance),
            ("relative distance to one-step GD, constrained terms (y_q = 0)", self.distance_support),
            ("residual off GD's terms, constrained", self.residual_support),
            ("residual off GD's terms, unconstrained (contain y_q)", self.residual_unconstrained),
            ("mean GD-term coefficient (x_cj y_ci x_qj)", float(self.gd_terms["model"].mean())),
            ("eta", self.eta),
            (
                "instantaneous residual, output 1: 0 / 1 / >=2 y-variables",
                f"{first['0 y']:.3g} / {first['1 y']:.3g} / {first['>=2 y']:.3g}",
            ),
        ]
        return pd.DataFrame(rows, columns=["quantity", "value"])

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)

    def __repr__(self) -> str:
        return (
            f"ContextQueryResult(distance {self.distance:.3g}, on support {self.distance_support:.3g}, residual "
            f"constrained {self.residual_support:.3g} / unconstrained {self.residual_unconstrained:.3g}, "
            f"eta {self.eta:.4g})"
        )

    def _repr_html_(self) -> str:
        from rnnattn.display import Table, fragment

        reading = (
            f"output at the query vs one-step GD (eta {self.eta:.4g}): residual {self.residual_support:.3g} on "
            f"the task's support, {self.residual_unconstrained:.3g} on terms with y_q"
        )
        return fragment(
            "Context-query polynomial",
            reading,
            Table(self.summary),
            Table(self.residual_parts, "residual"),
            Table(self.instantaneous_split, "instantaneous residual by y-degree"),
            Table(self.gd_terms),
        )


def _task_defaults(meta: dict[str, Any], d_x, d_y, eta) -> tuple[int, int, float]:
    task = meta.get("task") if isinstance(meta.get("task"), dict) else {}
    d_x = d_x if d_x is not None else task.get("d_x")
    d_y = d_y if d_y is not None else task.get("d_y")
    if d_x is None or d_y is None:
        raise ValueError("context_query: pass d_x and d_y (the checkpoint's task metadata does not state them)")
    if eta is None:
        eta = task_gd_eta(task, int(d_x))
    if eta is None:
        raise ValueError("context_query: pass eta (the task metadata states neither eta_star nor n_context)")
    return int(d_x), int(d_y), float(eta)


def _instantaneous_split(model: GatedLinearRNN, outputs: list[int], d_x: int, d_y: int) -> pd.DataFrame:
    """Table 2's residual (off ``x_j² y_i``) of each prediction output, split by the number of y-variables."""
    coef = instantaneous_polynomial(model).coefficients[outputs]
    exps = monomial_basis(d_x + d_y, 4)
    ydeg = exps[:, d_x:].sum(1)
    idx = _basis_index(d_x + d_y, 4)
    rows = []
    for i, c in enumerate(coef):
        gd = np.zeros(len(exps), dtype=bool)
        for j in range(d_x):
            e = [0] * (d_x + d_y)
            e[j], e[d_x + i] = 2, 1
            gd[idx[tuple(e)]] = True
        r = np.where(gd, 0.0, c)
        rows.append(
            {
                "output": f"y{i + 1}",
                "0 y": np.linalg.norm(r[ydeg == 0]),
                "1 y": np.linalg.norm(r[ydeg == 1]),
                ">=2 y": np.linalg.norm(r[ydeg >= 2]),
                "total": np.linalg.norm(r),
                "x_j^2 y_i (mean)": float(c[gd].mean()),
            }
        )
    return pd.DataFrame(rows)


def context_query(
    model: ModelSource, d_x: int | None = None, d_y: int | None = None, eta: float | None = None
) -> ContextQueryResult:
    """Compare an in-context-regression gated RNN with one-step GD on the task's support (module docstring).

    Args:
        model: a :class:`GatedLinearRNN` (model, checkpoint or path) trained on tokens ``(x, y)``.
        d_x, d_y, eta: token split and GD step; default from ``metadata["task"]``.
    Returns:
        :class:`ContextQueryResult`.
    Raises:
        AnalysisNotApplicable: not a :class:`GatedLinearRNN`.
        ValueError: ``d_x + d_y`` differs from the model's input size, or ``d_x``/``d_y``/``eta`` are unknown.
    """
    subj = resolve(model)
    m = require_gated_rnn(subj.model, "context_query")
    d_x, d_y, eta = _task_defaults(subj.metadata, d_x, d_y, eta)
    d = d_x + d_y
    if d != m.d_input or m.d_output < d_y:
        raise ValueError(
            f"context_query: d_x + d_y = {d} and d_y = {d_y} do not fit the model "
            f"(d_input {m.d_input}, d_output {m.d_output})"
        )
    outputs = list(range(m.d_output - d_y, m.d_output))
    poly = context_query_polynomial(m, outputs, _names(d_x, d_y))
    ref = Polynomial(gd_context_query_coefficients(eta, d_x, d_y), poly.variables, poly.outputs, 4, "one-step GD")
    P, R = poly.coefficients, ref.coefficients
    exps = monomial_basis(2 * d, 4)
    constrained = exps[:, d + d_x :].sum(1) == 0
    on_gd = (R != 0).any(0)
    norm = lambda A, mask: np.linalg.norm(A[:, mask], axis=1)  # noqa: E731
    rel = lambda mask: float(np.mean(norm(P - R, mask) / norm(R, mask)))  # noqa: E731
    res = lambda mask: float(np.mean(np.linalg.norm(P[:, mask & ~on_gd], axis=1)))  # noqa: E731
    in_c, in_q = exps[:, :d].sum(1) > 0, exps[:, d:].sum(1) > 0
    parts = {"context only": in_c & ~in_q, "query only": ~in_c & in_q, "cross": in_c & in_q, "constant": ~in_c & ~in_q}
    residual_parts = pd.DataFrame(
        [
            {"part": k, "constrained": res(v & constrained), "unconstrained": res(v & ~constrained)}
            for k, v in parts.items()
        ]
    )
    cross_gd = on_gd & constrained
    names = poly.monomials  # a property that names every monomial: read once, not per row
    gd_terms = pd.DataFrame(
        [
            {"output": poly.outputs[i], "monomial": names[j], "model": P[i, j], "gd": R[i, j]}
            for i in range(d_y)
            for j in np.flatnonzero(cross_gd)
            if R[i, j] != 0
        ]
    )
    return ContextQueryResult(
        polynomial=poly,
        reference=ref,
        eta=eta,
        d_x=d_x,
        d_y=d_y,
        distance=rel(np.ones_like(constrained)),
        distance_support=rel(constrained),
        residual_support=res(constrained),
        residual_unconstrained=res(~constrained),
        residual_parts=residual_parts,
        gd_terms=gd_terms,
        instantaneous_split=_instantaneous_split(m, outputs, d_x, d_y),
    )
