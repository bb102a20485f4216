"""SequenceModel = embed -> layers -> readout; the model summaries used by `rnnattn info` and the reports."""

from __future__ import annotations

import torch
from model_zoo_cases import build, tokens

from rnnattn.models import (
    LRU,
    GatedLinearRNN,
    GatedLinearRNNConfig,
    LRUConfig,
    get_model_class,
    registered_models,
)
from rnnattn.models.summary import decay_summaries, decays, nonfinite


def test_equals_the_composition_of_its_parts():
    for name in ("sequence_mixed", "sequence_unequal"):
        m = build(name)
        x = tokens(name, T=10)
        with torch.no_grad():
            z = m.embed(x)
            states = []
            for layer in m.layers:
                z, s = layer(z, return_state=True)
                states.append(s)
            expected = m.readout(z)
            y, got_states = m(x, return_state=True)
        assert torch.equal(y, expected)
        assert len(got_states) == len(m.layers)


def test_layer_hooks_are_namespaced():
    m = build("sequence_mixed")
    names = set(m.hook_points())
    assert {
        "hook_embed",
        "hook_y",
        "layers.0.hook_h",
        "layers.1.glu_out.hook_m",
        "layers.2.hook_f",
        "layers.3.hook_z",
        "layers.4.hook_kv",
        "layers.5.hook_gate_out",
    } <= names


def test_registry_knows_every_model():
    known = registered_models()
    for cls in ("GatedLinearRNN", "LinearSelfAttention", "LRU", "LSTM", "GRU", "SequenceModel"):
        assert cls in known and get_model_class(cls).__name__ == cls


def test_decays_count_memory_and_forget_neurons():
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 6, 2, 2)).double()
    lam = torch.tensor([1.0, 0.999, 0.995, 0.5, 0.005, 0.0], dtype=torch.float64)
    with torch.no_grad():
        m.nu.copy_(torch.log(-torch.log(lam)))  # nu = log(-log lambda): -inf at 1, +inf at 0
    torch.testing.assert_close(m.lam.detach(), lam, rtol=1e-12, atol=0)
    (s,) = decay_summaries(m, hi=0.99, lo=0.01)
    assert (s.name, s.kind, s.n, s.memory, s.forget) == ("", "GatedLinearRNN", 6, 3, 2)
    dense = GatedLinearRNN(GatedLinearRNNConfig(2, 2, 2, 2, recurrence="dense")).double()
    with torch.no_grad():
        dense.A.copy_(torch.tensor([[0.0, -0.5], [0.5, 0.0]]))  # eigenvalues ±0.5i
    torch.testing.assert_close(decays(dense)[""], torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_decays_of_a_stack_by_layer():
    m = build("sequence_mixed")
    d = decays(m)
    assert set(d) == {"layers.0", "layers.1", "layers.5"}
    lru = m.layers[1]
    torch.testing.assert_close(d["layers.1"], lru.lam.detach().abs().to(torch.float64))
    assert isinstance(LRU(LRUConfig(2, 3)).lam, torch.Tensor)


def test_nonfinite_reports_nan_and_inf():
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 3, 2, 2))
    assert nonfinite(m) == {}
    with torch.no_grad():
        m.D[0, 0] = float("nan")
        m.W_in[0, 0, 0] = float("inf")
        m.W_in[1, 0, 0] = float("-inf")
    assert nonfinite(m) == {"D": (1, 0), "W_in": (0, 2)}
