"""Shapes, dtypes, configs and input validation of every model in the zoo."""

from __future__ import annotations

import math

import pytest
import torch
from model_zoo_cases import CASES, build, tokens

from rnnattn.models import (
    GRU,
    LRU,
    LSTM,
    GatedLinearRNN,
    GatedLinearRNNConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
    LRUConfig,
    LSTMConfig,
    SequenceModel,
    SequenceModelConfig,
)

COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def expected_state(model, B: int, dtype: torch.dtype):
    """(shape, dtype) tree of the documented final state of ``model``."""
    c = model.config
    if isinstance(model, GatedLinearRNN):
        return ((B, c.n_hidden), dtype)
    if isinstance(model, LinearSelfAttention):
        return ((B, c.n_heads, c.dv, c.dk), dtype)
    if isinstance(model, LRU):
        return ((B, c.d_state), COMPLEX[dtype])
    if isinstance(model, LSTM):
        return [((B, c.d_hidden), dtype), ((B, c.d_hidden), dtype)]
    if isinstance(model, GRU):
        return ((B, c.d_hidden), dtype)
    if isinstance(model, SequenceModel):
        return [expected_state(layer, B, dtype) for layer in model.layers]
    raise AssertionError(type(model))


def actual_state(s):
    if isinstance(s, torch.Tensor):
        return (tuple(s.shape), s.dtype)
    return [actual_state(v) for v in s]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("B, T", [(1, 1), (2, 7), (3, 16)])
def test_output_and_state_shapes(name, dtype, B, T):
    model = build(name, dtype)
    x = tokens(name, B, T, dtype)
    y = model(x)
    assert y.shape == (B, T, CASES[name].d_out) and y.dtype == dtype
    assert torch.isfinite(y).all()
    y2, s = model(x, return_state=True)
    assert torch.equal(y, y2)
    assert actual_state(s) == expected_state(model, B, dtype)
    assert model.d_input == CASES[name].d_in and model.d_output == CASES[name].d_out
    yt, st = model.step(x[:, 0], None)
    assert yt.shape == (B, CASES[name].d_out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_reaches_every_parameter(name):
    model = build(name, torch.float64)
    model(tokens(name)).pow(2).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_round_trip(name):
    model = build(name)
    cfg = model.config
    again = type(cfg).from_dict(cfg.to_dict())
    assert again == cfg and hash(again) == hash(cfg)
    rebuilt = type(model)(again)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_gated_rnn_parameter_layout_and_count():
    d, N, M, dout = 4, 10, 7, 3
    m = GatedLinearRNN(GatedLinearRNNConfig(d, N, M, dout))
    assert m.W_in.shape == (2, N, d + 1) and m.nu.shape == (N,)
    assert m.W_out.shape == (2, M, N) and m.D.shape == (dout, M)
    assert m.n_parameters() == 2 * N * (d + 1) + N + 2 * M * N + dout * M
    assert torch.equal(m.W_m_in, m.W_in[0]) and torch.equal(m.W_x_in, m.W_in[1])
    assert torch.equal(m.W_m_out, m.W_out[0]) and torch.equal(m.W_x_out, m.W_out[1])
    assert m.recurrence_parameters() == [m.nu]
    dense = GatedLinearRNN(GatedLinearRNNConfig(d, N, M, dout, recurrence="dense", append_one=False))
    assert dense.A.shape == (N, N) and dense.W_in.shape == (2, N, d)
    assert dense.recurrence_parameters() == [dense.A]
    assert dense.n_parameters() == 2 * N * d + N * N + 2 * M * N + dout * M


def test_gated_rnn_ring_initialisation():
    torch.manual_seed(0)
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 4000, 2, 2, r_min=0.4, r_max=0.9))
    lam = m.lam.detach()
    assert lam.min() >= 0.4 - 1e-6 and lam.max() <= 0.9 + 1e-6
    # uniform in area on the ring: P(|lambda| <= r) = (r^2 - r_min^2) / (r_max^2 - r_min^2)
    frac = (lam <= 0.7).double().mean().item()
    assert abs(frac - (0.7**2 - 0.4**2) / (0.9**2 - 0.4**2)) < 0.03
    dense = GatedLinearRNN(GatedLinearRNNConfig(2, 50, 2, 2, recurrence="dense", r_min=0.5, r_max=0.6))
    A = dense.A.detach()
    assert torch.equal(A, torch.diag(torch.diagonal(A)))
    assert torch.diagonal(A).min() >= 0.5 - 1e-6 and torch.diagonal(A).max() <= 0.6 + 1e-6


def test_lru_initialisation_follows_minimal_lru():
    torch.manual_seed(0)
    m = LRU(LRUConfig(3, 4000, r_min=0.5, r_max=0.95, max_phase=math.pi / 4))
    lam = m.lam.detach()
    assert lam.dtype == torch.complex64
    mod, phase = lam.abs(), lam.angle()
    assert mod.min() >= 0.5 - 1e-5 and mod.max() <= 0.95 + 1e-5
    assert phase.min() >= 0 and phase.max() <= math.pi / 4 + 1e-5
    torch.testing.assert_close(m.gamma.detach(), torch.sqrt(1 - mod**2), rtol=1e-4, atol=1e-6)
    assert m.B_re.shape == (4000, 3) and m.C_re.shape == (3, 4000) and m.D.shape == (3,)
    assert m.recurrence_parameters() == [m.nu_log, m.theta_log, m.gamma_log, m.B_re, m.B_im]


def test_lsa_projection_only_when_configured():
    assert LinearSelfAttention(LinearSelfAttentionConfig(3)).W_O is None
    m = LinearSelfAttention(LinearSelfAttentionConfig(3, n_heads=2, d_key=5, d_value=4, d_output=6))
    assert m.W_Q.shape == (2, 5, 3) and m.W_K.shape == (2, 5, 3) and m.W_V.shape == (2, 4, 3)
    assert m.W_O.shape == (6, 8)


def test_sequence_model_widths_chain():
    m = build("sequence_unequal")
    assert [layer.d_input for layer in m.layers] == [6, 5, 4]
    assert [layer.d_output for layer in m.layers] == [5, 4, 3]
    assert m.layers[0].W_O is not None  # explicit d_output of a single-head LSA is kept
    assert m.embed.bias is None and m.readout.in_features == 3
    mixed = build("sequence_mixed")
    assert [type(layer).__name__ for layer in mixed.layers] == [
        "GatedLinearRNN",
        "LRU",
        "LSTM",
        "GRU",
        "LinearSelfAttention",
        "GatedLinearRNN",
    ]
    assert all(layer.d_input == 6 and layer.d_output == 6 for layer in mixed.layers)
    assert len(mixed.recurrence_parameters()) == 1 + 5 + 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: GatedLinearRNNConfig(0, 4, 4, 4),
        lambda: GatedLinearRNNConfig(4, 4, 4, 4, recurrence="lstm"),
        lambda: GatedLinearRNNConfig(4, 4, 4, 4, r_min=0.9, r_max=0.1),
        lambda: GatedLinearRNNConfig(4, True, 4, 4),
        lambda: LinearSelfAttentionConfig(3, n_heads=0),
        lambda: LinearSelfAttentionConfig(3, d_key=-1),
        lambda: LinearSelfAttention(LinearSelfAttentionConfig(3), mode="sideways"),
        lambda: LRUConfig(3, 4, variant="in"),
        lambda: LRUConfig(3, 4, variant="out", d_inner=5),
        lambda: LRUConfig(3, 4, r_max=1.5),
        lambda: LSTMConfig(3, 0),
        lambda: SequenceModelConfig(3, 2, 4, layers=()),
        lambda: SequenceModelConfig(3, 2, 4, layers=("LRU",)),
        lambda: SequenceModel(SequenceModelConfig(3, 2, 4, layers=({"class": "SequenceModel"},))),
        lambda: SequenceModel(
            SequenceModelConfig(
                3, 2, 4, layers=({"class": "LSTM", "d_hidden": 3}, {"class": "GRU", "d_input": 4})
            )
        ),
        lambda: GatedLinearRNNConfig.from_dict(
            {"d_input": 1, "n_hidden": 1, "n_gating": 1, "d_output": 1, "x": 2}
        ),
    ],
)
def test_bad_configs_raise_one_line_value_errors(make):
    with pytest.raises(ValueError) as e:
        make()
    assert "\n" not in str(e.value)


def test_model_needs_its_own_config_class():
    with pytest.raises(TypeError, match="needs a GatedLinearRNNConfig"):
        GatedLinearRNN(LSTMConfig(3, 4))


@pytest.mark.parametrize(
    "name", ["glr_diagonal", "lsa_2heads_WO", "lru_in_skip", "lstm", "gru", "sequence_mixed"]
)
def test_bad_inputs_raise_clear_errors(name):
    model = build(name)
    with pytest.raises(ValueError, match="features"):
        model(torch.zeros(2, 5, CASES[name].d_in + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[batch, time, features\]"):
        model(torch.zeros(5, CASES[name].d_in, dtype=torch.float64))
