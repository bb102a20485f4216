"""GatedLinearRNN against a naive implementation of Eq. 2 written from the equations (loops over batch and
time, separate W_m / W_x products, no fused matmul, no fast recurrence)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig


def naive_eq2(model: GatedLinearRNN, x: torch.Tensor, h0: torch.Tensor | None = None):
    """h_t = lam ⊙ h_{t-1} + (W_m^in x̃_t) ⊙ (W_x^in x̃_t);  y_t = D [(W_m^out h_t) ⊙ (W_x^out h_t)];
    x̃ = (x, 1)."""
    c = model.config
    Wm_in, Wx_in = model.W_in[0].detach(), model.W_in[1].detach()
    Wm_out, Wx_out = model.W_out[0].detach(), model.W_out[1].detach()
    D = model.D.detach()
    if c.recurrence == "diagonal":
        A = torch.diag(torch.exp(-torch.exp(model.nu.detach())))  # App. B.1: lambda = exp(-exp(nu))
    else:
        A = model.A.detach()
    B, T, _ = x.shape
    ys = torch.zeros(B, T, c.d_output, dtype=x.dtype)
    hs = torch.zeros(B, T, c.n_hidden, dtype=x.dtype)
    for b in range(B):
        h = torch.zeros(c.n_hidden, dtype=x.dtype) if h0 is None else h0[b].clone()
        for t in range(T):
            xt = torch.cat([x[b, t], torch.ones(1, dtype=x.dtype)]) if c.append_one else x[b, t]
            g_in = torch.mv(Wm_in, xt) * torch.mv(Wx_in, xt)
            h = torch.mv(A, h) + g_in
            g_out = torch.mv(Wm_out, h) * torch.mv(Wx_out, h)
            ys[b, t] = torch.mv(D, g_out)
            hs[b, t] = h
    return ys, hs


def make(recurrence="diagonal", append_one=True, d=3, N=6, M=4, dout=2, seed=0) -> GatedLinearRNN:
    torch.manual_seed(seed)
    m = GatedLinearRNN(
        GatedLinearRNNConfig(d, N, M, dout, recurrence=recurrence, append_one=append_one)
    ).double()
    if recurrence == "dense":
        with torch.no_grad():
            m.A.copy_(torch.randn(N, N, dtype=torch.float64) / (2 * N**0.5))  # a genuinely dense matrix
    return m


@pytest.mark.parametrize("recurrence", ["diagonal", "dense"])
@pytest.mark.parametrize("append_one", [True, False])
def test_matches_naive_equations(recurrence, append_one):
    m = make(recurrence, append_one)
    x = torch.randn(3, 11, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h0 = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for state in (None, h0):
        y_ref, h_ref = naive_eq2(m, x, state)
        with torch.no_grad():
            y, hT = m(x, state=state, return_state=True)
            _, cache = m.run_with_cache(x, state=state)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(cache["hook_h"], h_ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(hT, h_ref[:, -1], rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    d=st.integers(1, 4),
    N=st.integers(1, 7),
    M=st.integers(1, 7),
    dout=st.integers(1, 3),
    T=st.integers(1, 12),
    seed=st.integers(0, 10_000),
)
def test_matches_naive_equations_property(d, N, M, dout, T, seed):
    m = make(d=d, N=N, M=M, dout=dout, seed=seed)
    with torch.no_grad():  # include the lambda limits
        m.nu[0] = float("-inf")  # lambda = 1
        if N > 1:
            m.nu[1] = float("inf")  # lambda = 0
    x = torch.randn(2, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    y_ref, _ = naive_eq2(m, x)
    with torch.no_grad():
        torch.testing.assert_close(m(x), y_ref, rtol=1e-12, atol=1e-12)


def test_lambda_parametrisation_limits():
    m = make(N=3)
    with torch.no_grad():
        m.nu.copy_(torch.tensor([float("-inf"), float("inf"), 0.0]))
    assert m.lam.tolist() == [1.0, 0.0, pytest.approx(torch.exp(torch.tensor(-1.0)).item())]


def test_float32_model_agrees_with_float64_naive():
    m = make(seed=3)
    x = torch.randn(2, 30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y_ref, _ = naive_eq2(m, x)
    with torch.no_grad():
        y32 = m.float()(x.float())
    torch.testing.assert_close(y32.double(), y_ref, rtol=1e-4, atol=1e-5)


def test_helper_methods_decompose_the_forward():
    m = make(seed=5)
    x = torch.randn(2, 8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        xt = m.augment(x)
        assert torch.equal(xt[..., :3], x) and torch.equal(xt[..., 3], torch.ones(2, 8, dtype=torch.float64))
        u = m.gate_in(x)
        torch.testing.assert_close(u, (xt @ m.W_m_in.T) * (xt @ m.W_x_in.T), rtol=0, atol=1e-14)
        _, cache = m.run_with_cache(x)
        torch.testing.assert_close(m.readout(cache["hook_h"]), m(x), rtol=0, atol=0)
