import math

import numpy as np
import pytest
import sympy
import torch
from _constructions import fig1, gated_from_arrays, random_lsa, weights
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn import (
    LSTM,
    GatedLinearRNN,
    GatedLinearRNNConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
    LSTMConfig,
)
from rnnattn.analysis import (
    AnalysisNotApplicable,
    Polynomial,
    fit_polynomial,
    instantaneous_polynomial,
    monomial_basis,
)
from rnnattn.analysis.polynomial import fold_symmetric, gated_rnn_polynomial_full, n_monomials


def _random_gated(d, n, m, o, seed, append_one=True):
    torch.manual_seed(seed)
    return GatedLinearRNN(GatedLinearRNNConfig(d, n, m, o, append_one=append_one)).to(torch.float64)


def _sympy_coeffs(exprs, xs, poly: Polynomial) -> np.ndarray:
    """Coefficients of sympy expressions on the polynomial's basis, read off an independent sympy expansion."""
    out = np.zeros_like(poly.coefficients)
    index = {tuple(e): j for j, e in enumerate(poly.exponents.tolist())}
    for i, e in enumerate(exprs):
        for mon, c in sympy.Poly(sympy.expand(e), *xs).as_dict().items():
            out[i, index[tuple(mon)]] = float(c)
    return out


def _sympy_gated(model):
    W_in, nu, W_out, D = weights(model)
    d = model.d_input
    xs = sympy.symbols(f"x1:{d + 1}")
    z = list(xs) + ([sympy.Integer(1)] if model.config.append_one else [])
    lin = lambda row: sum(sympy.Float(float(w), 30) * zi for w, zi in zip(row, z, strict=False))  # noqa: E731
    h = [lin(W_in[0, n]) * lin(W_in[1, n]) for n in range(W_in.shape[1])]
    g = [
        sum(sympy.Float(float(W_out[0, k, n]), 30) * h[n] for n in range(len(h)))
        * sum(sympy.Float(float(W_out[1, k, n]), 30) * h[n] for n in range(len(h)))
        for k in range(W_out.shape[1])
    ]
    ys = [sum(sympy.Float(float(D[i, k]), 30) * g[k] for k in range(len(g))) for i in range(D.shape[0])]
    return ys, xs


@pytest.mark.parametrize("d,n,m,o,append_one", [(2, 3, 2, 2, True), (3, 2, 3, 1, True), (2, 3, 2, 2, False)])
def test_gated_polynomial_matches_sympy_expansion(d, n, m, o, append_one):
    model = _random_gated(d, n, m, o, seed=d + n, append_one=append_one)
    p = instantaneous_polynomial(model)
    ys, xs = _sympy_gated(model)
    expected = _sympy_coeffs(ys, xs, p)
    np.testing.assert_allclose(p.coefficients, expected, rtol=0, atol=1e-13 * np.abs(expected).max())
    assert p.max_degree == 4 and p.coefficients.shape == (o, math.comb(d + 4, 4))


def test_attention_polynomial_matches_sympy_expansion():
    torch.manual_seed(3)
    lsa = LinearSelfAttention(
        LinearSelfAttentionConfig(3, n_heads=2, d_key=2, d_value=2, d_output=2)
    ).double()
    p = instantaneous_polynomial(lsa)
    xs = sympy.symbols("x1:4")
    x = sympy.Matrix(xs)
    M = lambda t: sympy.Matrix(t.detach().numpy().tolist())  # noqa: E731
    heads = [M(lsa.W_V[h]) * x * ((M(lsa.W_K[h]) * x).T * (M(lsa.W_Q[h]) * x)) for h in range(2)]
    y = M(lsa.W_O) * sympy.Matrix.vstack(*heads)
    expected = _sympy_coeffs(list(y), xs, p)
    np.testing.assert_allclose(p.coefficients, expected, rtol=0, atol=1e-13)
    assert p.degree == 3


def test_exact_matches_least_squares_and_full_contraction():
    model = _random_gated(4, 20, 20, 4, seed=1)
    exact = instantaneous_polynomial(model)
    lstsq = instantaneous_polynomial(model, method="lstsq")
    full = gated_rnn_polynomial_full(model)
    scale = np.abs(exact.coefficients).max()
    np.testing.assert_allclose(lstsq.coefficients, exact.coefficients, atol=1e-10 * scale, rtol=0)
    np.testing.assert_allclose(full.coefficients, exact.coefficients, atol=1e-13 * scale, rtol=0)
    lsa = random_lsa(4, seed=2)
    np.testing.assert_allclose(
        instantaneous_polynomial(lsa, "lstsq").coefficients,
        instantaneous_polynomial(lsa).coefficients,
        atol=1e-11,
        rtol=0,
    )


def test_monomial_counts_and_basis_order():
    assert n_monomials(4) == 70 and n_monomials(6) == 210
    assert len(monomial_basis(4, 4)) == 70 and len(monomial_basis(6, 4)) == 210
    b = monomial_basis(2, 2).tolist()
    assert b == [[0, 0], [1, 0], [0, 1], [2, 0], [1, 1], [0, 2]]


def test_fold_symmetric_sums_over_permutations():
    # T[a, b] for z = (x1, 1): x1*1 appears at (0, 1) and (1, 0)
    T = np.array([[[2.0, 3.0], [5.0, 7.0]]])
    np.testing.assert_array_equal(fold_symmetric(T, 1), [[7.0, 8.0, 2.0]])  # 1, x1, x1^2


def test_construction_polynomial_is_the_attention_cubic():
    lsa = random_lsa(4)
    p, q = instantaneous_polynomial(fig1(lsa)), instantaneous_polynomial(lsa)
    assert np.abs(p.with_degree(4).coefficients - q.with_degree(4).coefficients).max() < 1e-13
    assert np.all(p.coefficients[:, p.degrees != 3] == 0)  # no other degree: constant inputs never enter


def test_polynomial_value_object():
    lsa = random_lsa(2, seed=5)
    p = instantaneous_polynomial(lsa)
    x = np.random.default_rng(0).standard_normal((7, 2))
    with torch.no_grad():
        y = lsa(torch.from_numpy(x)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(p.evaluate(x), y, atol=1e-13)
    exprs = p.to_sympy()
    x1, x2 = sympy.symbols("x1 x2")
    assert abs(float(exprs[0].subs({x1: x[0, 0], x2: x[0, 1]})) - y[0, 0]) < 1e-12
    assert "y_{1} =" in p.to_latex() and "x_{1}" in p.to_latex()
    t = p.table
    assert list(t.columns) == ["monomial", "degree", "y1", "y2"] and len(t) == math.comb(2 + 3, 3)
    assert p.coefficient("y1", "x1^3") == pytest.approx(t.loc[t.monomial == "x1^3", "y1"].item())
    with pytest.raises(ValueError, match="degree"):
        p.with_degree(2)


@pytest.mark.parametrize("model", [LSTM(LSTMConfig(3, 4))])
def test_not_applicable_models(model):
    with pytest.raises(AnalysisNotApplicable, match="instantaneous_polynomial: not applicable to LSTM"):
        instantaneous_polynomial(model)


def test_fit_polynomial_recovers_known_polynomial():
    p = fit_polynomial(lambda x: x[:, :1] ** 2 * x[:, 1:] - 3.0 + 0.5 * x[:, :1], 2, 3)
    np.testing.assert_allclose(p.coefficients[0], [-3, 0.5, 0, 0, 0, 0, 0, 1, 0, 0], atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_polynomial_invariant_under_gating_symmetries(seed):
    """Permuting neurons/rows, (c, 1/c) rescaling and m/x swaps leave the instantaneous polynomial unchanged."""
    rng = np.random.default_rng(seed)
    model = _random_gated(3, 6, 5, 2, seed=seed % 97)
    W_in, nu, W_out, D = weights(model)
    hp, gp = rng.permutation(6), rng.permutation(5)
    W_in, nu, W_out, D = W_in[:, hp], nu[hp], W_out[:, gp][:, :, hp], D[:, gp]
    for W in (W_in, W_out):
        c = rng.uniform(0.2, 5.0, W.shape[1]) * rng.choice([-1, 1], W.shape[1])
        W[0] *= c[:, None]
        W[1] /= c[:, None]
        swap = rng.random(W.shape[1]) < 0.5
        W[:, swap] = W[::-1][:, swap]
    other = gated_from_arrays(W_in, nu, W_out, D)
    a, b = instantaneous_polynomial(model).coefficients, instantaneous_polynomial(other).coefficients
    np.testing.assert_allclose(b, a, atol=1e-12 * np.abs(a).max(), rtol=0)
