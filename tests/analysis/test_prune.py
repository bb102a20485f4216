import numpy as np
import pytest
import torch
from _constructions import fig1, gated_from_arrays, pad_and_scramble, random_lsa, weights

from rnnattn import GRU, GatedLinearRNN, GatedLinearRNNConfig, GRUConfig
from rnnattn.analysis import AnalysisNotApplicable, prune

D_IN = 4


def _x(seed=0, b=8, t=24):
    return torch.randn(b, t, D_IN, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1])
def test_prune_recovers_construction_counts(seed):
    lsa = random_lsa(D_IN, seed)
    m = pad_and_scramble(fig1(lsa), extra_hidden=30, extra_gating=36, seed=seed)
    x = _x(seed)
    with torch.no_grad():
        y = lsa(x)
    res = prune(m, data=(x, y))
    assert (res.n_hidden_before, res.n_gating_before) == (50, 52)
    assert (res.n_hidden_after, res.n_gating_after) == (D_IN * D_IN + D_IN, D_IN * D_IN)
    assert res.max_output_change < 1e-12 * float(y.abs().max())
    assert res.loss_after < 1e-24 and res.loss_before < 1e-24
    with torch.no_grad():
        torch.testing.assert_close(res.model(x), y, atol=1e-11, rtol=0)
    # every removal has a rule; gating rows reading only input-dead neurons go in a later round
    assert set(res.removed["rule"]) >= {
        "W_m_in row ~ 0",
        "W_x_in row ~ 0",
        "W_out columns ~ 0",
        "D column ~ 0",
        "W_m_out row ~ 0",
    }
    assert res.removed["round"].max() >= 1
    assert res.summary.set_index("kind").loc["hidden", "removed"] == 30
    assert res.model.metadata["labels"]["hidden"] == [f"h{i}" for i in res.hidden_kept]


def test_prune_does_not_touch_input_model_and_keeps_live_units():
    m = fig1(random_lsa(3))
    before = [p.clone() for p in m.parameters()]
    res = prune(m)
    assert res.n_hidden_after == 12 and res.n_gating_after == 9 and len(res.removed) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=False))


def test_relative_threshold():
    W_in, nu, W_out, D = weights(fig1(random_lsa(2)))
    D[:, 0] *= 1e-4  # small but not negligible at threshold 1e-5
    m = gated_from_arrays(W_in, nu, W_out, D)
    assert prune(m, threshold=1e-5).n_gating_after == 4
    res = prune(m, threshold=1e-3)
    assert res.n_gating_after == 3 and res.removed["score"].iloc[0] == pytest.approx(1e-4)
    assert res.max_output_change > 0  # the tiny row did contribute: the record says how much


def test_ablation_pruning_removes_only_negligible_units():
    lsa = random_lsa(2, seed=4)
    W_in, nu, W_out, D = weights(fig1(lsa))
    # add a live gating row whose effect is tiny (1e-7 relative) but far above the weight threshold 0
    W_out = np.concatenate([W_out, W_out[:, :1]], axis=1)
    D = np.concatenate([D, 1e-7 * np.ones((2, 1))], axis=1)
    m = gated_from_arrays(W_in, nu, W_out, D)
    x = torch.randn(8, 16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = lsa(x)
    res = prune(m, threshold=0.0, data=(x, y), ablation_tol=1e-10)
    assert res.n_gating_after == 4 and res.n_hidden_after == 6
    assert list(res.removed["rule"]) == ["ablation"] and int(res.removed["index"].iloc[0]) == 4
    assert abs(res.loss_after - res.loss_before) <= 1e-10 and res.loss_after < res.loss_before


def test_dense_recurrence_neurons_with_recurrent_input_are_kept():
    torch.manual_seed(0)
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 3, 2, 1, recurrence="dense")).double()
    with torch.no_grad():
        m.A.copy_(torch.tensor([[0.5, 0.0, 0.0], [0.3, 0.2, 0.0], [0.0, 0.0, 0.9]]))
        m.W_in[0, 1] = 0.0  # neuron 1 gets no direct input, but reads neuron 0 through A
        m.W_in[0, 2] = 0.0  # neuron 2 gets nothing at all
    res = prune(m)
    assert list(res.hidden_kept) == [0, 1]
    assert res.max_output_change < 1e-14


def test_prune_not_applicable_to_gru():
    with pytest.raises(AnalysisNotApplicable, match="prune: not applicable to GRU"):
        prune(GRU(GRUConfig(2, 3)))
