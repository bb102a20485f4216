"""Hook points and the activation cache: every documented hook is recorded with its documented shape, cached
runs equal plain runs, interventions through ``model.hooks`` change outputs, and hooks never outlive their
context."""

from __future__ import annotations

import pytest
import torch

from rnnattn import ActivationCache
from rnnattn.models import (
    GRU,
    LRU,
    LSTM,
    GatedLinearRNN,
    GatedLinearRNNConfig,
    GRUConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
    LRUConfig,
    LSTMConfig,
    SequenceModel,
    SequenceModelConfig,
)

B, T, d = 2, 6, 3


def documented_shapes(model) -> dict[str, tuple]:
    """Hook name -> shape, as the models' docstrings document them."""
    c = model.config
    if isinstance(model, GatedLinearRNN):
        N, M = c.n_hidden, c.n_gating
        return {
            "hook_x_in": (B, T, c.d_input + int(c.append_one)),
            "hook_in_m": (B, T, N),
            "hook_in_x": (B, T, N),
            "hook_gate_in": (B, T, N),
            "hook_h": (B, T, N),
            "hook_out_m": (B, T, M),
            "hook_out_x": (B, T, M),
            "hook_gate_out": (B, T, M),
            "hook_y": (B, T, c.d_output),
        }
    if isinstance(model, LinearSelfAttention):
        H, dk, dv = c.n_heads, c.dk, c.dv
        return {
            "hook_q": (B, T, H, dk),
            "hook_k": (B, T, H, dk),
            "hook_v": (B, T, H, dv),
            "hook_kv": (B, T, H, dv, dk),
            "hook_heads": (B, T, H, dv),
            "hook_y": (B, T, c.out_dim),
        }
    if isinstance(model, LRU):
        shapes = {
            "hook_u": (B, T, c.inner),
            "hook_h": (B, T, c.d_state),
            "hook_y_tilde": (B, T, c.inner),
            "hook_y": (B, T, c.out),
            "glu_out.hook_m": (B, T, c.out),
            "glu_out.hook_x": (B, T, c.out),
        }
        if c.variant != "out":
            shapes.update({"glu_in.hook_m": (B, T, c.inner), "glu_in.hook_x": (B, T, c.inner)})
        return shapes
    if isinstance(model, LSTM):
        return {f"hook_{g}": (B, T, c.d_hidden) for g in ("g", "f", "c", "o", "cell", "h", "y")}
    if isinstance(model, GRU):
        return {f"hook_{g}": (B, T, c.d_hidden) for g in ("r", "z", "n", "h", "y")}
    raise AssertionError(type(model))


MODELS = {
    "glr": lambda: GatedLinearRNN(GatedLinearRNNConfig(d, 6, 5, 2)),
    "glr_dense": lambda: GatedLinearRNN(
        GatedLinearRNNConfig(d, 4, 3, 2, recurrence="dense", append_one=False)
    ),
    "lsa": lambda: LinearSelfAttention(
        LinearSelfAttentionConfig(d, n_heads=2, d_key=2, d_value=4, d_output=5)
    ),
    "lru_out": lambda: LRU(LRUConfig(d, 4, "out")),
    "lru_in_out": lambda: LRU(LRUConfig(d, 4, "in_out", d_inner=5, d_output=2)),
    "lru_in_skip": lambda: LRU(LRUConfig(d, 4, "in_skip", d_inner=5, d_output=2)),
    "lstm": lambda: LSTM(LSTMConfig(d, 4)),
    "gru": lambda: GRU(GRUConfig(d, 4)),
}


def make(name):
    torch.manual_seed(0)
    return MODELS[name]().double()


def x_for(model):
    return torch.randn(B, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cache_has_every_documented_hook_with_its_shape(name):
    model = make(name)
    y, cache = model.run_with_cache(x_for(model))
    assert isinstance(cache, ActivationCache)
    expected = documented_shapes(model)
    assert set(cache) == set(model.hook_points()) == set(expected)
    for hook, shape in expected.items():
        assert tuple(cache[hook].shape) == shape, hook
        assert not cache[hook].requires_grad
    assert torch.equal(cache["hook_y"], y)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cached_output_equals_plain_output(name):
    model = make(name)
    x = x_for(model)
    with torch.no_grad():
        plain = model(x)
        cached, _ = model.run_with_cache(x)
    if name.startswith(("glr", "lru")):
        assert torch.equal(cached, plain)  # same code path: bit for bit
    else:  # LSA caches via the cumulative-state form, LSTM/GRU via the explicit per-step path
        torch.testing.assert_close(cached, plain, rtol=0, atol=1e-12)
    assert not model.caching


def test_cached_intermediates_are_consistent_with_the_equations():
    model = make("glr")
    _, c = model.run_with_cache(x_for(model))
    assert torch.equal(c["hook_gate_in"], c["hook_in_m"] * c["hook_in_x"])
    assert torch.equal(c["hook_gate_out"], c["hook_out_m"] * c["hook_out_x"])
    lam = model.lam.detach()
    torch.testing.assert_close(
        c["hook_h"][:, 1:], lam * c["hook_h"][:, :-1] + c["hook_gate_in"][:, 1:], rtol=0, atol=1e-13
    )
    lsa = make("lsa")
    _, c = lsa.run_with_cache(x_for(lsa))
    kv = torch.einsum("bthv,bthk->bthvk", c["hook_v"], c["hook_k"]).cumsum(1)
    torch.testing.assert_close(c["hook_kv"], kv, rtol=0, atol=1e-13)


def test_selected_names_only():
    model = make("glr")
    _, cache = model.run_with_cache(x_for(model), names=["hook_h"])
    assert list(cache) == ["hook_h"]
    _, cache = model.run_with_cache(x_for(model), names=lambda n: n.startswith("hook_out"))
    assert set(cache) == {"hook_out_m", "hook_out_x"}


def test_intervention_changes_outputs_exactly_as_the_equations_predict():
    model = make("glr")
    x = x_for(model)
    with torch.no_grad():
        y = model(x)
        with model.hooks({"hook_h": lambda t, name: torch.zeros_like(t)}):
            assert model.caching
            y_zero = model(x)
        with model.hooks({"hook_gate_in": lambda t, name: 2 * t}):
            y_double = model(x)  # h doubles, the quadratic output gate quadruples
        seen = []
        with model.hooks({"hook_h": lambda t, name: seen.append(name)}):  # returning None: observe only
            y_seen = model(x)
        y_after = model(x)
    assert torch.equal(y_zero, torch.zeros_like(y))
    torch.testing.assert_close(y_double, 4 * y, rtol=1e-12, atol=1e-12)
    assert seen == ["hook_h"] and torch.equal(y_seen, y)
    assert torch.equal(y_after, y) and not model.caching


def test_intervention_inside_a_stack_and_in_lstm_gates():
    torch.manual_seed(0)
    m = SequenceModel(SequenceModelConfig(d, 2, 4, layers=({"class": "LSTM"}, {"class": "GRU"}))).double()
    x = x_for(m)
    with torch.no_grad():
        y = m(x)
        with m.hooks({"layers.0.hook_y": lambda t, n: torch.zeros_like(t)}):
            y_cut = m(x)
        # with the first layer's output zeroed, the rest sees a constant input: every time step is a function
        # of the (same) zero sequence, so the output no longer depends on x
        with m.hooks({"layers.0.hook_y": lambda t, n: torch.zeros_like(t)}):
            y_cut2 = m(x + 1.0)
    assert not torch.allclose(y, y_cut)
    assert torch.equal(y_cut, y_cut2)


def test_unknown_hook_name_is_a_clear_error_and_leaves_no_hook_behind():
    model = make("glr")
    with pytest.raises(KeyError, match="unknown hook point 'hook_nope'"):
        with model.hooks({"hook_h": lambda t, n: None, "hook_nope": lambda t, n: None}):
            pass
    assert not model.caching


def test_hooks_are_removed_when_the_body_raises():
    model = make("lstm")
    with pytest.raises(RuntimeError, match="boom"):
        with model.hooks({"hook_f": lambda t, n: None}):
            raise RuntimeError("boom")
    assert not model.caching


def test_activation_cache_errors_and_html():
    model = make("gru")
    _, cache = model.run_with_cache(x_for(model))
    with pytest.raises(KeyError, match="no cached activation 'hook_q'; recorded: "):
        cache["hook_q"]
    html = cache._repr_html_()
    assert "hook_r" in html and "<table class=\"data\">" in html and "(2, 6, 4)" in html
    assert len(cache) == 5 and "hook_z" in cache and dict(cache.items()).keys() == set(cache.keys())
