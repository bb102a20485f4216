"""LinearSelfAttention (Eq. 1): parallel form = recurrent form = a naive double loop over (t, t' <= t)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn.models import LinearSelfAttention, LinearSelfAttentionConfig


def naive_eq1(model: LinearSelfAttention, x: torch.Tensor, S0: torch.Tensor | None = None) -> torch.Tensor:
    """y_t = W_O concat_h [ S0_h q_t + sum_{t' <= t} (W_V^h x_t') (W_K^h x_t')^T (W_Q^h x_t) ]."""
    c = model.config
    B, T, _ = x.shape
    WQ, WK, WV = model.W_Q.detach(), model.W_K.detach(), model.W_V.detach()
    out = torch.zeros(B, T, c.n_heads * c.dv, dtype=x.dtype)
    for b in range(B):
        for t in range(T):
            heads = []
            for hd in range(c.n_heads):
                q = torch.mv(WQ[hd], x[b, t])
                acc = torch.zeros(c.dv, dtype=x.dtype) if S0 is None else torch.mv(S0[b, hd], q)
                for tp in range(t + 1):  # causal, including the current token
                    v, k = torch.mv(WV[hd], x[b, tp]), torch.mv(WK[hd], x[b, tp])
                    acc = acc + v * torch.dot(k, q)
                heads.append(acc)
            out[b, t] = torch.cat(heads)
    if model.W_O is not None:
        out = out @ model.W_O.detach().T
    return out


CONFIGS = [
    LinearSelfAttentionConfig(3),
    LinearSelfAttentionConfig(3, d_output=2),
    LinearSelfAttentionConfig(3, n_heads=3, d_key=2, d_value=4),
    LinearSelfAttentionConfig(4, n_heads=2, d_key=3, d_value=2, d_output=5),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"H{c.n_heads}_dk{c.dk}_dv{c.dv}_out{c.d_output}")
def test_parallel_recurrent_and_naive_agree(config):
    torch.manual_seed(0)
    par = LinearSelfAttention(config).double()
    rec = LinearSelfAttention(config, mode="recurrent").double()
    rec.load_state_dict(par.state_dict())
    x = torch.randn(2, 8, config.d_input, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    S0 = torch.randn(
        2,
        config.n_heads,
        config.dv,
        config.dk,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(2),
    )
    for state in (None, S0):
        ref = naive_eq1(par, x, state)
        with torch.no_grad():
            yp, Sp = par(x, state=state, return_state=True)
            yr, Sr = rec(x, state=state, return_state=True)
        torch.testing.assert_close(yp, ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(yr, ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(Sp, Sr, rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    d=st.integers(1, 4),
    H=st.integers(1, 3),
    dk=st.integers(1, 3),
    dv=st.integers(1, 3),
    out=st.one_of(st.none(), st.integers(1, 4)),
    T=st.integers(1, 7),
    seed=st.integers(0, 10_000),
)
def test_forms_agree_property(d, H, dk, dv, out, T, seed):
    torch.manual_seed(seed)
    cfg = LinearSelfAttentionConfig(d, n_heads=H, d_key=dk, d_value=dv, d_output=out)
    par = LinearSelfAttention(cfg).double()
    rec = LinearSelfAttention(cfg, mode="recurrent").double()
    rec.load_state_dict(par.state_dict())
    x = torch.randn(2, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    ref = naive_eq1(par, x)
    with torch.no_grad():
        torch.testing.assert_close(par(x), ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rec(x), ref, rtol=1e-12, atol=1e-12)


def test_final_state_is_the_sum_of_value_key_outer_products():
    torch.manual_seed(3)
    m = LinearSelfAttention(LinearSelfAttentionConfig(3, n_heads=2, d_key=2, d_value=4)).double()
    x = torch.randn(1, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        _, S = m(x, return_state=True)
    for h in range(2):
        exact = sum(torch.outer(m.W_V[h] @ x[0, t], m.W_K[h] @ x[0, t]) for t in range(5)).detach()
        torch.testing.assert_close(S[0, h], exact, rtol=0, atol=1e-13)


def test_future_tokens_do_not_leak():
    torch.manual_seed(4)
    m = LinearSelfAttention(LinearSelfAttentionConfig(3, n_heads=2)).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 4:] += 1.0
    with torch.no_grad():
        assert torch.equal(m(x)[:, :4], m(x2)[:, :4])
        assert not torch.allclose(m(x)[:, 4], m(x2)[:, 4])
