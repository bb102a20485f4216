"""LRU (Eqs. 6-9, App. A.1) against a naive loop in Python complex arithmetic (cmath), per variant."""

from __future__ import annotations

import cmath
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn.models import LRU, LRU_VARIANTS, LRUConfig


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _linear(layer: torch.nn.Linear, v: list[float]) -> list[float]:
    W = layer.weight.detach().tolist()
    b = layer.bias.detach().tolist() if layer.bias is not None else [0.0] * len(W)
    return [sum(w * x for w, x in zip(row, v, strict=True)) + bi for row, bi in zip(W, b, strict=True)]


def _glu(glu, x: list[float], m_input: list[float] | None = None) -> list[float]:
    m = _linear(glu.W_m, x if m_input is None else m_input)
    xb = _linear(glu.W_x, x)
    return [_sigmoid(a) * c for a, c in zip(m, xb, strict=True)]


def naive_lru(model: LRU, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[list, list]:
    """Eq. 9: lambda_n = exp(-exp(nu_n) + i exp(theta_n)), gamma_n = exp(gamma_log_n);
    Eq. 6: h_t = lambda ⊙ h_{t-1} + gamma ⊙ (B u_t) with u_t = GLU_in(x_t) (in_out, in_skip) or x_t (out);
    Eq. 7: ỹ_t = Re(C h_t) + D ⊙ u_t;  Eq. 8: y_t = σ(W_m a_t) ⊙ (W_x ỹ_t), a_t = ỹ_t, or x_t for in_skip."""
    c = model.config
    nu, th, gl = (p.detach().tolist() for p in (model.nu_log, model.theta_log, model.gamma_log))
    lam = [cmath.exp(complex(-math.exp(a), math.exp(b))) for a, b in zip(nu, th, strict=True)]
    gamma = [math.exp(g) for g in gl]
    Bm = [
        [complex(r, i) for r, i in zip(rr, ii, strict=True)]
        for rr, ii in zip(model.B_re.detach().tolist(), model.B_im.detach().tolist(), strict=True)
    ]
    Cm = [
        [complex(r, i) for r, i in zip(rr, ii, strict=True)]
        for rr, ii in zip(model.C_re.detach().tolist(), model.C_im.detach().tolist(), strict=True)
    ]
    D = model.D.detach().tolist()
    ys, hs = [], []
    for b in range(x.shape[0]):
        h = [0j] * c.d_state if h0 is None else [complex(v) for v in h0[b].tolist()]
        yb, hb = [], []
        for t in range(x.shape[1]):
            xt = x[b, t].tolist()
            u = _glu(model.glu_in, xt) if c.variant != "out" else xt
            h = [
                lam[n] * h[n] + gamma[n] * sum(Bm[n][j] * u[j] for j in range(len(u)))
                for n in range(c.d_state)
            ]
            yt = [sum(Cm[i][n] * h[n] for n in range(c.d_state)).real + D[i] * u[i] for i in range(len(u))]
            yb.append(_glu(model.glu_out, yt, m_input=xt if c.variant == "in_skip" else None))
            hb.append(h)
        ys.append(yb)
        hs.append(hb)
    return ys, hs


def make(variant: str, d_inner=None, d_output=None, glu_bias=True, seed=0, d=3, N=5) -> LRU:
    torch.manual_seed(seed)
    return LRU(LRUConfig(d, N, variant, d_inner=d_inner, d_output=d_output, glu_bias=glu_bias)).double()


@pytest.mark.parametrize("variant", LRU_VARIANTS)
@pytest.mark.parametrize("glu_bias", [True, False])
def test_matches_naive_complex_loop(variant, glu_bias):
    inner = None if variant == "out" else 4
    m = make(variant, d_inner=inner, d_output=2, glu_bias=glu_bias)
    x = torch.randn(2, 9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h0 = torch.randn(2, 5, dtype=torch.complex128, generator=torch.Generator().manual_seed(2))
    for state in (None, h0):
        ys, hs = naive_lru(m, x, state)
        with torch.no_grad():
            y, hT = m(x, state=state, return_state=True)
            _, cache = m.run_with_cache(x, state=state)
        torch.testing.assert_close(y, torch.tensor(ys, dtype=torch.float64), rtol=0, atol=1e-12)
        torch.testing.assert_close(
            cache["hook_h"], torch.tensor(hs, dtype=torch.complex128), rtol=0, atol=1e-12
        )
        torch.testing.assert_close(hT, torch.tensor(hs, dtype=torch.complex128)[:, -1], rtol=0, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    variant=st.sampled_from(LRU_VARIANTS),
    d=st.integers(1, 3),
    N=st.integers(1, 4),
    inner=st.integers(1, 3),
    out=st.integers(1, 3),
    T=st.integers(1, 8),
    seed=st.integers(0, 10_000),
)
def test_matches_naive_property(variant, d, N, inner, out, T, seed):
    m = make(variant, d_inner=None if variant == "out" else inner, d_output=out, seed=seed, d=d, N=N)
    with torch.no_grad():  # the lambda -> 0 limit of the two-layer construction (nu_log -> +inf)
        m.nu_log[0] = float("inf")
    x = torch.randn(2, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    ys, _ = naive_lru(m, x)
    with torch.no_grad():
        torch.testing.assert_close(m(x), torch.tensor(ys, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_variants_differ_where_the_paper_says():
    # in_skip's output gate reads x_t: changing only the GLU-out m-weights' view of x changes y, and "out" has
    # no input GLU at all (u = x)
    m_out = make("out")
    assert m_out.glu_in is None and m_out.glu_out.W_m.in_features == 3
    m_skip = make("in_skip", d_inner=4, d_output=2)
    assert m_skip.glu_out.W_m.in_features == 3 and m_skip.glu_out.W_x.in_features == 4
    m_io = make("in_out", d_inner=4, d_output=2)
    assert m_io.glu_out.W_m.in_features == 4 and m_io.glu_in.W_x.out_features == 4
