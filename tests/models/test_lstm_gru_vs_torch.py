"""LSTM / GRU agree with torch.nn.LSTM / torch.nn.GRU given the same weights, set through the per-gate views,
on both the fast path (the wrapped torch module) and the explicit per-step path (taken while caching)."""

from __future__ import annotations

import pytest
import torch

from rnnattn.models import GRU, LSTM, GRUConfig, LSTMConfig

# paper gate name -> torch's row block (torch.nn.LSTM rows are i, f, g, o; the paper calls them g, f, c̃, o)
LSTM_TORCH_BLOCK = {"g": 0, "f": 1, "c": 2, "o": 3}
GRU_TORCH_BLOCK = {"r": 0, "z": 1, "n": 2}
D, H = 3, 5


def torch_reference(kind: str, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    ref = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(D, H, batch_first=True).to(dtype)
    with torch.no_grad():
        for p in ref.parameters():  # well away from torch's init so that a swapped gate cannot pass by chance
            p.copy_(torch.randn_like(p) * 0.7)
    return ref


def ours_from_views(kind: str, ref, dtype=torch.float64):
    torch.manual_seed(123)  # different init from the reference: every weight must come through the views
    model = (LSTM(LSTMConfig(D, H)) if kind == "lstm" else GRU(GRUConfig(D, H))).to(dtype)
    blocks = LSTM_TORCH_BLOCK if kind == "lstm" else GRU_TORCH_BLOCK
    with torch.no_grad():
        for name, i in blocks.items():
            sl = slice(i * H, (i + 1) * H)
            g = model.gate(name)
            g.U.copy_(ref.weight_ih_l0[sl])
            g.V.copy_(ref.weight_hh_l0[sl])
            g.b.copy_(ref.bias_ih_l0[sl])
            g.b_h.copy_(ref.bias_hh_l0[sl])
    return model


def initial_state(kind, B, dtype, g):
    h = torch.randn(B, H, generator=g, dtype=dtype)
    return (h, torch.randn(B, H, generator=g, dtype=dtype)) if kind == "lstm" else h


def torch_state(kind, s):
    return (s[0][None], s[1][None]) if kind == "lstm" else s[None]


def flat(kind, s):
    return list(s) if kind == "lstm" else [s]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_state", [False, True])
def test_agrees_with_torch(kind, dtype, with_state):
    ref = torch_reference(kind, dtype)
    model = ours_from_views(kind, ref, dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 13, D, generator=g, dtype=dtype)
    s0 = initial_state(kind, 4, dtype, g) if with_state else None
    tol = dict(rtol=0, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        y_ref, s_ref = ref(x, torch_state(kind, s0)) if with_state else ref(x)
        s_ref = [t[0] for t in flat(kind, s_ref)]
        y_fast, s_fast = model(x, state=s0, return_state=True)
        y_slow, cache = model.run_with_cache(x, state=s0)  # explicit per-step path
        _, s_slow = model._explicit(x, s0)
    assert not model.caching
    torch.testing.assert_close(y_fast, y_ref, **tol)
    torch.testing.assert_close(y_slow, y_ref, **tol)
    torch.testing.assert_close(cache["hook_h"], y_ref, **tol)
    for a, b, c in zip(flat(kind, s_fast), flat(kind, s_slow), s_ref, strict=True):
        torch.testing.assert_close(a, c, **tol)
        torch.testing.assert_close(b, c, **tol)


def test_lstm_gate_names_follow_the_paper():
    """Eqs. 10-15 at t = 0 from a zero state: each cached gate equals its own formula with its own weights."""
    ref = torch_reference("lstm")
    model = ours_from_views("lstm", ref)
    x = torch.randn(2, 1, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, cache = model.run_with_cache(x)
        pre = {n: x[:, 0] @ model.gate(n).U.T + model.gate(n).b + model.gate(n).b_h for n in "gfco"}
        f, c_tilde, g, o = (
            torch.sigmoid(pre["f"]),
            torch.tanh(pre["c"]),
            torch.sigmoid(pre["g"]),
            torch.sigmoid(pre["o"]),
        )
        c = g * c_tilde  # c_0 = f ⊙ 0 + g ⊙ c̃
        expected = {
            "hook_f": f,
            "hook_c": c_tilde,
            "hook_g": g,
            "hook_o": o,
            "hook_cell": c,
            "hook_h": o * torch.tanh(c),
        }
    for name, value in expected.items():
        torch.testing.assert_close(cache[name][:, 0], value, rtol=0, atol=1e-14)


def test_gru_gate_names_follow_torch_semantics():
    ref = torch_reference("gru")
    model = ours_from_views("gru", ref)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 1, D, dtype=torch.float64, generator=g)
    h0 = torch.randn(2, H, dtype=torch.float64, generator=g)
    with torch.no_grad():
        _, cache = model.run_with_cache(x, state=h0)
        gp = {n: model.gate(n) for n in "rzn"}
        r = torch.sigmoid(x[:, 0] @ gp["r"].U.T + gp["r"].b + h0 @ gp["r"].V.T + gp["r"].b_h)
        z = torch.sigmoid(x[:, 0] @ gp["z"].U.T + gp["z"].b + h0 @ gp["z"].V.T + gp["z"].b_h)
        n = torch.tanh(x[:, 0] @ gp["n"].U.T + gp["n"].b + r * (h0 @ gp["n"].V.T + gp["n"].b_h))
        h = (1 - z) * n + z * h0
    for name, value in {"hook_r": r, "hook_z": z, "hook_n": n, "hook_h": h}.items():
        torch.testing.assert_close(cache[name][:, 0], value, rtol=0, atol=1e-14)


def test_gate_views_write_through_and_reject_unknown_names():
    model = LSTM(LSTMConfig(D, H))
    before = model.cell.bias_ih_l0.detach().clone()
    with torch.no_grad():
        model.gate("f").b.fill_(7.0)
    after = model.cell.bias_ih_l0.detach()
    assert torch.equal(after[H : 2 * H], torch.full((H,), 7.0))  # block 1 = torch's forget gate
    assert torch.equal(after[:H], before[:H]) and torch.equal(after[2 * H :], before[2 * H :])
    assert model.gate("g").U.shape == (H, D) and model.gate("g").V.shape == (H, H)
    with pytest.raises(KeyError, match="gates"):
        model.gate("i")
    with pytest.raises(KeyError, match="gates"):
        GRU(GRUConfig(D, H)).gate("h")


def test_explicit_path_for_a_dtype_other_than_the_weights():
    ref = torch_reference("gru", torch.float32)
    model = ours_from_views("gru", ref, torch.float32)
    x = torch.randn(2, 6, D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = model(x)  # float64 input, float32 weights: explicit path in float64
        y_ref, _ = ref.double()(x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
