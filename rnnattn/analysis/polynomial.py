r"""Instantaneous polynomials (§3.1): what a layer computes on one token from a zero state.

For the gated RNN of Eq. 2 the instantaneous map is :math:`P(x) = D\,g^{out}(g^{in}(\tilde x))`, a quartic
form in :math:`z = \tilde x = (x, 1)`; for linear self-attention (Eq. 1) it is the cubic form :math:`(W_V
x)(W_K x)^\top (W_Q x)`. Both are extracted *exactly* (to float64 rounding) by tensor contraction:

.. math::
    Q_n = W^{in}_{m,n} \otimes W^{in}_{x,n},\quad A_k = \sum_n W^{out}_{m,kn} Q_n,\quad
    B_k = \sum_n W^{out}_{x,kn} Q_n,\quad T^{(i)} = \sum_k D_{ik}\, A_k \otimes B_k ,

and the coefficient of a monomial :math:`z^\alpha` is the sum of :math:`T^{(i)}` over all index tuples that
are permutations of :math:`\alpha` (a ``bincount`` over the folded index). Because :math:`z_{d+1} = 1`, the
degree-4 monomials in z are exactly the monomials of degree <= 4 in x: C(d+4, 4) of them (70 for d = 4, 210
for d = 6).

:func:`fit_polynomial` is the independent least-squares route (used to cross-check the contraction).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import torch

from rnnattn.analysis.errors import AnalysisNotApplicable
from rnnattn.analysis.loading import ModelSource, input_names, resolve
from rnnattn.analysis.monomials import (  # noqa: F401  (re-exported: the basis belongs to the polynomials' API)
    _basis_index,
    fold_symmetric,
    monomial_basis,
    monomial_features,
    monomial_name,
    n_monomials,
)
from rnnattn.limits import check_polynomial
from rnnattn.models.attention import LinearSelfAttention
from rnnattn.models.gated_rnn import GatedLinearRNN


# -- the value object
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Polynomial:
    """A vector-valued polynomial in plain monomial coordinates.

    Attributes:
        coefficients: ``[n_outputs, n_monomials]`` float64, on ``monomial_basis(n_vars, max_degree)``.
        variables: variable names (``x1..xd``), length ``n_vars``.
        outputs: output names (``y1..``).
        max_degree: degree of the basis (4 for the gated RNN, 3 for attention).
        source: what the polynomial came from, in words.
    """

    coefficients: np.ndarray
    variables: tuple[str, ...]
    outputs: tuple[str, ...]
    max_degree: int
    source: str = ""

    def __post_init__(self) -> None:
        n_mono = len(monomial_basis(len(self.variables), self.max_degree))
        if self.coefficients.shape != (len(self.outputs), n_mono):
            raise ValueError(
                f"Polynomial: coefficients {self.coefficients.shape} do not match "
                f"{len(self.outputs)} outputs x {n_mono} monomials"
            )

    # -- structure
    @property
    def n_vars(self) -> int:
        return len(self.variables)

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    @property
    def exponents(self) -> np.ndarray:
        """``[n_monomials, n_vars]`` exponent vectors of the basis."""
        return monomial_basis(self.n_vars, self.max_degree)

    @property
    def degrees(self) -> np.ndarray:
        return self.exponents.sum(axis=1)

    @property
    def monomials(self) -> list[str]:
        return [monomial_name(e, self.variables) for e in self.exponents.tolist()]

    @property
    def degree(self) -> int:
        """Actual degree (highest degree with a nonzero coefficient; -1 for the zero polynomial)."""
        nz = np.any(self.coefficients != 0, axis=0)
        return int(self.degrees[nz].max()) if nz.any() else -1

    @property
    def table(self) -> pd.DataFrame:
        """Coefficient table: one row per monomial (``monomial``, ``degree``), one column per output."""
        df = pd.DataFrame({"monomial": self.monomials, "degree": self.degrees})
        for i, name in enumerate(self.outputs):
            df[name] = self.coefficients[i]
        return df

    def with_degree(self, max_degree: int) -> Polynomial:
        """The same polynomial on the basis of degree <= ``max_degree`` (zero-padded; raises if terms would be lost)."""
        if max_degree == self.max_degree:
            return self
        if max_degree < self.degree:
            raise ValueError(
                f"Polynomial has degree {self.degree}, cannot express it with degree <= {max_degree}"
            )
        target = _basis_index(self.n_vars, max_degree)
        out = np.zeros((self.n_outputs, len(target)))
        for j, e in enumerate(self.exponents.tolist()):
            if tuple(e) in target:
                out[:, target[tuple(e)]] = self.coefficients[:, j]
        return Polynomial(out, self.variables, self.outputs, max_degree, self.source)

    def coefficient(self, output: int | str, monomial: str | Sequence[int]) -> float:
        """One coefficient, e.g. ``p.coefficient("y1", "x1^2*x2")`` or ``p.coefficient(0, (2, 1, 0, 0))``."""
        i = self.outputs.index(output) if isinstance(output, str) else int(output)
        j = (
            self.monomials.index(monomial)
            if isinstance(monomial, str)
            else _basis_index(self.n_vars, self.max_degree)[tuple(int(v) for v in monomial)]
        )
        return float(self.coefficients[i, j])

    def leading_terms(self, k: int = 5) -> pd.DataFrame:
        """Per output the ``k`` terms largest in magnitude: ``output``, ``monomial``, ``coefficient``."""
        rows, names = [], self.monomials  # the property names every monomial: once, not per term
        for i, name in enumerate(self.outputs):
            order = np.argsort(-np.abs(self.coefficients[i]), kind="stable")[:k]
            rows += [
                {"output": name, "monomial": names[j], "coefficient": float(self.coefficients[i, j])}
                for j in order
            ]
        return pd.DataFrame(rows)

    # -- evaluation and display
    def evaluate(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """``P(x)``: ``x [n, n_vars] -> [n, n_outputs]``."""
        return monomial_features(np.asarray(x, dtype=np.float64), self.max_degree) @ self.coefficients.T

    def to_sympy(self, tol: float = 0.0) -> list[Any]:
        """One sympy expression per output (coefficients with ``|c| <= tol`` dropped), for display and LaTeX.

        Each output is one flat ``Add`` of flat ``Mul(c, x_i**e_i, ...)`` terms in basis order, built without
        sympy's canonicalising constructors: the terms are distinct monomials, so there is nothing to collect, and
        sorting them cost 18 s at d = 16, N = M = 300 (16 x 4845 terms; ~1 s this way,
        ``benchmarks/bench_polynomial.py``). Substitution, printing and ``sympy.expand`` work as usual; ``==``
        against an expression sympy built itself compares structure, so compare ``sympy.expand(a - b) == 0``.
        """
        import sympy

        syms = sympy.symbols(list(self.variables))
        syms = syms if isinstance(syms, list | tuple) else [syms]
        factors = [tuple(s ** int(e) for s, e in zip(syms, exps, strict=True) if e) for exps in self.exponents.tolist()]
        exprs = []
        for row in self.coefficients.tolist():
            terms = [
                sympy.Mul._from_args((sympy.Float(c), *f)) if f else sympy.Float(c)
                for c, f in zip(row, factors, strict=True)
                if abs(c) > tol
            ]
            exprs.append(sympy.Add._from_args(terms) if len(terms) > 1 else (terms[0] if terms else sympy.Integer(0)))
        return exprs

    def to_latex(self, tol: float = 0.0, digits: int = 4) -> str:
        """LaTeX lines ``y_i = ...`` (coefficients rounded to ``digits`` significant digits), joined by ``\\\\``."""
        import sympy

        lines = []
        for name, expr in zip(self.outputs, self.to_sympy(tol), strict=True):
            lines.append(f"{sympy.latex(sympy.Symbol(name))} = {sympy.latex(expr.evalf(digits))}")
        return " \\\\\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variables": list(self.variables),
            "outputs": list(self.outputs),
            "max_degree": self.max_degree,
            "source": self.source,
            "monomials": self.monomials,
            "coefficients": self.coefficients.tolist(),
        }

    def __repr__(self) -> str:
        outs = self.outputs[0] if self.n_outputs == 1 else f"{self.outputs[0]}..{self.outputs[-1]}"
        ins = self.variables[0] if self.n_vars == 1 else f"{self.variables[0]}..{self.variables[-1]}"
        nz = int(np.count_nonzero(self.coefficients))
        return (f"Polynomial({self.n_outputs} outputs {outs}, {len(self.monomials)} monomials of degree <= "
                f"{self.max_degree} in {ins}, {nz} nonzero, degree {self.degree}, source={self.source!r})")

    def _repr_html_(self) -> str:
        from rnnattn.display import Table, Text, fragment

        return fragment(
            "Polynomial",
            repr(self),
            Table(self.leading_terms(5), title="leading terms per output"),
            Text("the full coefficient table is .table (a DataFrame); .to_sympy() gives the expressions", "note"),
        )


# -- features and least squares
# ----------------------------------------------------------------------------------
def fit_polynomial(
    fn: Callable[[np.ndarray], np.ndarray],
    n_vars: int,
    max_degree: int,
    n_points: int | None = None,
    seed: int = 0,
    variables: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
) -> Polynomial:
    """Least-squares fit of ``fn: [n, n_vars] -> [n, n_out]`` on the monomials of degree <= ``max_degree``.

    Exact (up to conditioning, ~1e-12 relative) when ``fn`` is such a polynomial; samples ``n_points``
    (default 4 x #monomials; at least 2x keeps the fit well conditioned) points ~ N(0, I) in float64.
    """
    n_fit = n_points or 4 * math.comb(n_vars + max_degree, max_degree)
    check_polynomial(n_vars, max_degree, 1, "least-squares polynomial fit", n_fit)  # refuse before allocating
    n_mono = len(monomial_basis(n_vars, max_degree))
    n_points = n_points or 4 * n_mono
    x = np.random.default_rng(seed).standard_normal((n_points, n_vars))
    y = np.asarray(fn(x), dtype=np.float64).reshape(n_points, -1)
    coef, *_ = np.linalg.lstsq(monomial_features(x, max_degree), y, rcond=None)
    variables = tuple(variables) if variables is not None else tuple(f"x{i + 1}" for i in range(n_vars))
    outputs = tuple(outputs) if outputs is not None else tuple(f"y{i + 1}" for i in range(y.shape[1]))
    return Polynomial(
        coef.T.copy(), variables, outputs, max_degree, f"least-squares fit on {n_points} points"
    )


# -- extraction
# --------------------------------------------------------------------------------------------------
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


@lru_cache(maxsize=32)
def _pairs(p: int, n_vars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs ``a <= b`` of a side-``p`` symmetric matrix, their multiplicity (1 on the diagonal, 2 off it),
    and for every pair of pairs the position of the quartic monomial ``z_a z_b z_c z_e`` in the degree-4 basis."""
    a, b = np.triu_indices(p)
    w = np.where(a == b, 1.0, 2.0)
    quad = np.stack([np.repeat(a, len(a)), np.repeat(b, len(a)), np.tile(a, len(a)), np.tile(b, len(a))])
    counts = np.stack([(quad == v).sum(axis=0) for v in range(n_vars)], axis=1)
    codes = counts @ (5 ** np.arange(n_vars))
    basis = monomial_basis(n_vars, 4)
    table = dict(zip((basis @ (5 ** np.arange(n_vars))).tolist(), range(len(basis)), strict=True))
    fold = np.fromiter((table[c] for c in codes.tolist()), dtype=np.int64, count=codes.size)
    for arr in (a, b, w, fold):
        arr.setflags(write=False)
    return np.stack([a, b]), w, fold


def gated_rnn_polynomial(model: GatedLinearRNN) -> Polynomial:
    """Exact quartic instantaneous polynomial of a gated RNN (§3.1); see the module docstring.

    Implementation: ``z^T A_k z`` only sees the symmetric part of ``A_k``, so each ``A_k`` (and ``B_k``) is
    packed into its ``p(p+1)/2`` quadratic-monomial coefficients first; then ``T'^(i) = Â^T diag(D_i) B̂`` holds
    the products of quadratic monomials, folded onto quartic monomials by an index-add. Same result as the full
    ``p^4`` contraction of the module docstring (tested), about 4x fewer FLOPs. Runs in torch float64, which
    honours ``torch.set_num_threads`` (numpy's BLAS may spin extra threads on a shared machine).
    """
    check_polynomial(model.d_input, 4, model.d_output, "exact polynomial extraction")  # refuse before allocating
    f64 = lambda t: t.detach().to(torch.float64)  # noqa: E731
    Wm_in, Wx_in = f64(model.W_m_in), f64(model.W_x_in)  # [N, p]
    Wm_out, Wx_out, D = f64(model.W_m_out), f64(model.W_x_out), f64(model.D)  # [M, N], [M, N], [o, M]
    p = Wm_in.shape[1]
    (ia, ib), w, fold = (torch.from_numpy(np.array(a)) for a in _pairs(p, model.d_input))
    # packed symmetric part of Q_n = W_m,n ⊗ W_x,n: coefficient of z_a z_b in (W_m,n z)(W_x,n z)
    Q = w * 0.5 * (Wm_in[:, ia] * Wx_in[:, ib] + Wm_in[:, ib] * Wx_in[:, ia])  # [N, P]
    A, B = Wm_out @ Q, Wx_out @ Q  # [M, P]: quadratic forms of the two output branches
    # T'^(i) = sum_k D_ik A_k ⊗ B_k on quadratic monomials, all outputs in one batched matmul: [o, P, P]
    T = torch.matmul(A.T[None] * D[:, None, :], B)
    n_mono = len(monomial_basis(model.d_input, 4))
    coef = torch.zeros(D.shape[0], n_mono, dtype=torch.float64).index_add_(1, fold, T.reshape(D.shape[0], -1))
    coef = coef.numpy()
    return Polynomial(
        coef,
        tuple(input_names(model)),
        tuple(f"y{i + 1}" for i in range(D.shape[0])),
        4,
        f"{type(model).__name__} (exact quartic form)",
    )


def gated_rnn_polynomial_full(model: GatedLinearRNN) -> Polynomial:
    """The literal ``p^4`` contraction of the module docstring (reference for :func:`gated_rnn_polynomial`; slower)."""
    Wm_in, Wx_in = _np(model.W_m_in), _np(model.W_x_in)
    Wm_out, Wx_out, D = _np(model.W_m_out), _np(model.W_x_out), _np(model.D)
    N, p = Wm_in.shape
    Q = (Wm_in[:, :, None] * Wx_in[:, None, :]).reshape(N, p * p)  # Q_n = W_m,n ⊗ W_x,n
    A, B = Wm_out @ Q, Wx_out @ Q  # [M, p^2]
    T = np.stack([(A * D[i][:, None]).T @ B for i in range(D.shape[0])]).reshape((D.shape[0],) + (p,) * 4)
    return Polynomial(
        fold_symmetric(T, model.d_input),
        tuple(input_names(model)),
        tuple(f"y{i + 1}" for i in range(D.shape[0])),
        4,
        "full p^4 contraction",
    )


def attention_polynomial(model: LinearSelfAttention) -> Polynomial:
    """Exact cubic instantaneous polynomial of linear self-attention: ``W_O concat_h (W_V x)(W_K x)^T (W_Q x)``."""
    check_polynomial(model.d_input, 3, model.d_output, "exact polynomial extraction")  # refuse before allocating
    WQ, WK, WV = _np(model.W_Q), _np(model.W_K), _np(model.W_V)  # [H, dk, d], [H, dk, d], [H, dv, d]
    T = np.einsum("hva,hjb,hjc->hvabc", WV, WK, WQ)
    T = T.reshape(-1, *T.shape[2:])  # [H*dv, d, d, d] (heads concatenated)
    if model.W_O is not None:
        T = np.einsum("io,oabc->iabc", _np(model.W_O), T)
    coef = fold_symmetric(T, model.d_input)
    return Polynomial(
        coef,
        tuple(input_names(model)),
        tuple(f"y{i + 1}" for i in range(T.shape[0])),
        3,
        f"{type(model).__name__} (exact cubic form)",
    )


def _single_token_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    def fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float64)[:, None, :])[:, 0].numpy()

    return fn


def instantaneous_polynomial(
    model: ModelSource, method: str = "exact", n_points: int | None = None, seed: int = 0
) -> Polynomial:
    """The instantaneous polynomial of a gated RNN (degree 4) or linear self-attention (degree 3).

    Args:
        model: model, checkpoint or checkpoint path (analysed in float64).
        method: "exact" (tensor contraction) or "lstsq" (least-squares fit of the model's one-token outputs
            from a zero state — an independent route through the forward pass).
        n_points, seed: for "lstsq".
    Returns:
        :class:`Polynomial` with one row of coefficients per output.
    Raises:
        AnalysisNotApplicable: for models whose one-token map is not a polynomial (LSTM, GRU, LRU, stacks).

    Example:
        >>> p = instantaneous_polynomial(GatedLinearRNN(GatedLinearRNNConfig(4, 20, 20, 4)))
        >>> p.coefficients.shape
        (4, 70)
    """
    m = resolve(model).model
    if not isinstance(m, GatedLinearRNN | LinearSelfAttention):
        from rnnattn.analysis.loading import require_gated_rnn

        require_gated_rnn(m, "instantaneous_polynomial")
    degree = 4 if isinstance(m, GatedLinearRNN) else 3
    if isinstance(m, GatedLinearRNN) and not m.config.append_one:
        degree = 4  # homogeneous quartic; lower-degree coefficients come out zero
    if method == "exact":
        return gated_rnn_polynomial(m) if isinstance(m, GatedLinearRNN) else attention_polynomial(m)
    if method == "lstsq":
        names = input_names(m)
        p = fit_polynomial(_single_token_fn(m), m.d_input, degree, n_points, seed, names)
        return p
    raise ValueError(f"instantaneous_polynomial: method must be 'exact' or 'lstsq', got {method!r}")





__all__ = [
    "Polynomial",
    "instantaneous_polynomial",
    "fit_polynomial",
    "monomial_basis",
    "monomial_features",
    "fold_symmetric",
    "gated_rnn_polynomial",
    "attention_polynomial",
    "n_monomials",
    "monomial_name",
    "AnalysisNotApplicable",
]
