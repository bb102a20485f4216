import numpy as np
import pytest
import torch
from _constructions import fig1, random_lsa

from rnnattn import (
    LRU,
    GatedLinearRNN,
    GatedLinearRNNConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
    LRUConfig,
)
from rnnattn.analysis import (
    AnalysisNotApplicable,
    instantaneous_polynomial,
    polynomial_distance,
    probe_scores,
)
from rnnattn.analysis.distance import coefficient_differences, leading_terms
from rnnattn.constructions import attention_to_gated_rnn


@pytest.mark.parametrize("form", ["full", "compact", "minimal"])
@pytest.mark.parametrize("d", [2, 4])
def test_exact_constructions_distance_and_scores(form, d):
    lsa = random_lsa(d, seed=d)
    rnn = attention_to_gated_rnn(lsa, form=form)
    dist = polynomial_distance(instantaneous_polynomial(rnn), instantaneous_polynomial(lsa))
    assert dist.value < 1e-12 and dist.normalisation == "relative" and dist.n_monomials == {2: 15, 4: 70}[d]
    pr = probe_scores(rnn, lsa, n_sequences=64, seq_len=16)
    assert pr.kv_score < 1e-10 and pr.q_score < 1e-10
    assert len(pr.kv_detail) == d * d and len(pr.q_detail) == d and (pr.kv_detail["score"] < 1e-10).all()
    assert pr.n_points == 64 * 16 and "N(0, I)" in pr.input_distribution
    n_kv = d * d if form == "full" else d * (d + 1) // 2
    assert pr.memory_neurons.size == n_kv and pr.forget_neurons.size == d


def test_test_helper_construction_agrees_with_library():
    lsa = random_lsa(3, seed=1)
    a, b = fig1(lsa), attention_to_gated_rnn(lsa, form="full")
    for name in ("W_in", "nu", "W_out", "D"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def test_scores_detect_a_wrong_student():
    lsa = random_lsa(3, seed=0)
    # probes measure linear decodability: a full construction of another teacher still spans every v_i k_j
    other = attention_to_gated_rnn(random_lsa(3, seed=9), form="full")
    assert probe_scores(other, lsa, n_sequences=32, seq_len=16).kv_score < 1e-10
    # KV = W_V (sum x x^T) W_K^T only needs the d(d+1)/2 second moments; take one memory and one query unit
    # away
    # (lambda 0.5) and neither the key-values nor the queries are decodable any more
    other = attention_to_gated_rnn(lsa, form="compact")
    with torch.no_grad():
        other.nu[0] = other.nu[-1] = np.log(-np.log(0.5))
    pr = probe_scores(other, lsa, n_sequences=32, seq_len=16)
    assert pr.memory_neurons.size == 5 and pr.forget_neurons.size == 2
    assert pr.kv_score > 1e-5 and pr.q_score > 1e-3  # vs < 1e-10 when complete
    torch.manual_seed(0)
    rnd = GatedLinearRNN(GatedLinearRNNConfig(3, 10, 10, 3, r_min=0.2, r_max=0.9)).double()
    pr = probe_scores(rnd, lsa, n_sequences=8, seq_len=8)
    assert pr.kv_score == 1.0 and pr.q_score == 1.0 and len(pr.notes) == 2  # no memory/forget neurons at all


def test_probe_scores_match_an_independent_regression():
    lsa = random_lsa(2, seed=3)
    torch.manual_seed(1)
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 6, 4, 2)).double()
    with torch.no_grad():
        m.nu.copy_(torch.tensor([-np.inf, -np.inf, -np.inf, np.inf, np.inf, 0.0]))
    x = torch.randn(16, 12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pr = probe_scores(m, lsa, inputs=x)
    # independent route: loop recurrence, numpy least squares with an intercept column, R^2 by hand
    W_in = m.W_in.detach().numpy()
    xt = np.concatenate([x.numpy(), np.ones((16, 12, 1))], -1)
    g = (xt @ W_in[0].T) * (xt @ W_in[1].T)
    h = np.cumsum(g[..., :3], axis=1).reshape(-1, 3)
    v = x.numpy() @ lsa.W_V[0].detach().numpy().T
    k = x.numpy() @ lsa.W_K[0].detach().numpy().T
    kv = np.cumsum(v[..., :, None] * k[..., None, :], axis=1).reshape(-1, 4)
    X = np.concatenate([h, np.ones((h.shape[0], 1))], 1)
    res = kv - X @ np.linalg.lstsq(X, kv, rcond=None)[0]
    r2 = 1 - (res**2).sum(0) / ((kv - kv.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(pr.kv_detail["r2"].to_numpy(), r2, rtol=1e-9)
    assert pr.kv_score == pytest.approx(1 - r2.mean(), rel=1e-9)


def test_dense_recurrence_probes_use_eigenmodes():
    lsa = random_lsa(2, seed=2)
    diag = attention_to_gated_rnn(lsa, form="full")
    dense = GatedLinearRNN(diag.config.replace(recurrence="dense")).double()
    with torch.no_grad():
        dense.W_in.copy_(diag.W_in)
        dense.W_out.copy_(diag.W_out)
        dense.D.copy_(diag.D)
        dense.A.copy_(torch.diag(diag.lam))
    pr = probe_scores(dense, lsa, n_sequences=16, seq_len=8)
    assert pr.features == "neurons" and pr.kv_score < 1e-10 and pr.q_score < 1e-10  # diagonal A: per neuron
    with torch.no_grad():
        dense.A[0, 1] = 0.3  # now a genuinely dense A
    pr = probe_scores(dense, lsa, n_sequences=16, seq_len=8)
    assert pr.features == "eigenmodes" and any("eigenmode" in n for n in pr.notes)
    assert 0.0 <= pr.kv_score <= 1.0


def test_probes_not_applicable_to_lru():
    with pytest.raises(AnalysisNotApplicable, match="probe_scores: not applicable to LRU"):
        probe_scores(LRU(LRUConfig(2, 4)), random_lsa(2))


def test_distance_normalisations_by_hand():
    lsa = LinearSelfAttention(LinearSelfAttentionConfig(1)).double()
    with torch.no_grad():
        for n in ("W_Q", "W_K", "W_V"):
            getattr(lsa, n).fill_(1.0)  # y = x^3
    q = instantaneous_polynomial(lsa)
    p = type(q)(np.array([[0.0, 0.0, 0.0, 2.0]]), q.variables, q.outputs, 3)  # 2 x^3
    r = polynomial_distance(p, q)
    assert r.relative[0] == pytest.approx(1.0) and r.absolute[0] == pytest.approx(1.0) and r.unit[0] == 0.0
    p4 = type(q)(np.array([[0, 0, 0, 1.0, 1.0]]), q.variables, q.outputs, 4)  # x^3 + x^4
    r = polynomial_distance(p4, q, normalisation="unit")
    assert r.absolute[0] == pytest.approx(1.0) and r.n_monomials == 5
    assert r.value == pytest.approx(np.linalg.norm(np.array([1, 1]) / np.sqrt(2) - np.array([1, 0])))
    diffs = coefficient_differences(p4, q)
    assert diffs.iloc[0]["monomial"] == "x1^4" and diffs.iloc[0]["difference"] == 1.0
    assert leading_terms(p4, q, k=1).iloc[0]["monomial"] == "x1^3"
    with pytest.raises(ValueError, match="normalisation"):
        polynomial_distance(p, q, normalisation="l1")
