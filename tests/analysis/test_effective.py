"""Effective KV / query counts (rnnattn.analysis.effective): rank rule, invariance under same-λ mixing, an
independent forward-pass route for the cross block, dense recurrence, the shipped student."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _constructions import gated_from_arrays, pad_and_scramble, random_lsa
from _mixing import max_rel_diff, mix_within_groups
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn import LSTM, GatedLinearRNN, GatedLinearRNNConfig, LSTMConfig
from rnnattn.analysis._moments import moments_of
from rnnattn.analysis.basis_steps import effective_step
from rnnattn.analysis.effective import effective_counts, numerical_rank
from rnnattn.analysis.errors import AnalysisNotApplicable
from rnnattn.analysis.prune import prune
from rnnattn.constructions import attention_to_gated_rnn

STUDENT = Path(__file__).resolve().parents[2] / "checkpoints" / "teacher_student_d4.safetensors"


# -- the rank rule ---------------------------------------------------------------------------------------------
def test_rank_gap_exact_and_noisy():
    assert numerical_rank(np.array([3.0, 1.0, 0.5, 0.0, 0.0])).rank == 3
    f32 = float(np.finfo(np.float32).eps)
    r = numerical_rank(np.array([1.0, 0.2, 0.05, 3e-6, 1e-6, 5e-7]), eps=f32)
    assert (r.rank, r.clear) == (3, True)
    assert 3e-6 < r.tolerance < 0.05 and r.gap == pytest.approx(0.05 / 3e-6)
    # the same values in float64 sit far above its floor: the largest gap is then the step to the floor
    assert numerical_rank(np.array([1.0, 0.2, 0.05, 3e-6, 1e-6, 5e-7])).rank == 6
    # the cut is at the largest gap, not at a fixed threshold: a small-but-separated value is kept
    assert numerical_rank(np.array([1.0, 1e-3, 1e-17])).rank == 2
    assert numerical_rank(np.array([1.0, 1e-3, 1e-17]), method="rtol", rtol=1e-2).rank == 1


def test_rank_without_gap_counts_everything_above_the_floor():
    s = 0.5 ** np.arange(60)  # decays smoothly into the float64 floor (60 eps = 1.3e-14): no gap anywhere
    r = numerical_rank(s)
    assert (r.rank, r.clear) == (int((s > 60 * np.finfo(float).eps).sum()), False)
    # a smooth spectrum that stays far above the floor is full rank, with a clear step to the floor
    assert numerical_rank(0.5 ** np.arange(12)).rank == 12
    assert r.tolerance == r.floor


def test_rank_floor_follows_the_weights_precision():
    s = np.array([1.0, 0.1, 1e-6, 1e-17])  # 1e-6: structure in float64, rounding in float32 (floor 4 * 1.2e-7)
    assert numerical_rank(s).rank == 3
    assert numerical_rank(s, eps=float(np.finfo(np.float32).eps)).rank == 2


def test_rank_rtol_zero_and_bad_method():
    assert numerical_rank(np.array([1.0, 0.1, 1e-4]), method="rtol", rtol=1e-3).rank == 2
    assert numerical_rank(np.zeros(4)).rank == 0
    assert numerical_rank(np.array([])).rank == 0
    with pytest.raises(ValueError, match="method"):
        numerical_rank(np.ones(3), method="median")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), r=st.integers(1, 7), noise=st.sampled_from([0.0, 1e-12, 1e-8]))
def test_rank_of_noisy_low_rank_matrices(seed, r, noise):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((9, r)) @ rng.standard_normal((r, 12)) + noise * rng.standard_normal((9, 12))
    assert numerical_rank(np.linalg.svd(X, compute_uv=False)).rank == r


# -- constructions and their mixtures ---------------------------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(d=st.integers(2, 5), form=st.sampled_from(["full", "compact", "minimal"]), seed=st.integers(0, 1000))
def test_mixed_constructions_have_the_compact_counts(d, form, seed):
    c = attention_to_gated_rnn(random_lsa(d, seed), form=form)
    mixed = pad_and_scramble(mix_within_groups(c, seed, extra_memory=seed % 4, extra_query=seed % 3), 5, 4, seed)
    assert max_rel_diff(c, mixed, d) < 1e-10  # the mixing preserves the function (rounding through pinv)
    e0, e = effective_counts(c), effective_counts(mixed)
    assert (e.n_kv, e.n_query) == (d * (d + 1) // 2, d)
    # the cross block is invariant under mixing, so are the spectra
    np.testing.assert_allclose(e.cross_blocks, e0.cross_blocks, atol=1e-10 * np.abs(e0.cross_blocks).max())
    assert e.block_norms["memory x memory"] < 1e-13
    assert e.block_norms["forget x forget (polynomial)"] < 1e-13
    assert e.degree_leak["kv not degree 2"] < 1e-13 and e.degree_leak["query not degree 1"] < 1e-13
    assert e.kv_spectrum[e.n_kv - 1] > 1e6 * max(e.kv_spectrum[e.n_kv], 1e-300) or e.kv_spectrum[e.n_kv] < 1e-13
    assert e.group_sizes["memory"] >= e.n_kv and e.group_sizes["forget"] >= e.n_query


def _bipartite_model(d: int, n_mem: int, n_fgt: int, M: int, seed: int) -> GatedLinearRNN:
    """Random weights, λ exactly 1 / 0, gating rows pairing a memory with a forget neuron only (no mm / ff terms)."""
    rng = np.random.default_rng(seed)
    N = n_mem + n_fgt
    W_in = rng.standard_normal((2, N, d + 1))
    nu = np.concatenate([np.full(n_mem, -math.inf), np.full(n_fgt, math.inf)])
    W_out = rng.standard_normal((2, M, N))
    W_out[0, :, n_mem:] = 0.0
    W_out[1, :, :n_mem] = 0.0
    return gated_from_arrays(W_in, nu, W_out, rng.standard_normal((d, M)))


def test_cross_block_matches_the_forward_pass():
    # y([x', x]) - y([x]) = 2 m(x')ᵀ G m(x) when the readout only pairs memory with forget neurons
    d = 3
    m = _bipartite_model(d, 5, 4, 7, seed=1)
    e = effective_counts(m)
    mom = moments_of(m)
    x = torch.randn(50, 2, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        lhs = (m(x)[:, 1] - m(x[:, 1:])[:, 0]).numpy()
    xt = np.concatenate([x.numpy(), np.ones((50, 2, 1))], axis=2)
    mm = xt[:, :, mom.pairs[:, 0]] * xt[:, :, mom.pairs[:, 1]]  # [50, 2, P] moments of both tokens
    rhs = 2 * np.einsum("np,ipq,nq->ni", mm[:, 0], e.cross_blocks, mm[:, 1])
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10 * np.abs(lhs).max())
    assert (e.n_kv, e.n_query) == (5, 4)  # generic weights: full rank up to the group sizes


def _dense_embedding(m: GatedLinearRNN, lower: bool, seed: int) -> GatedLinearRNN:
    """Dense model with two extra unit blocks: A = [[Λ, K], [0, μ I]] (extra units feed in but get no input) or
    [[Λ, 0], [K, μ I]] (extra units get the state but are never read): the function is unchanged."""
    rng = np.random.default_rng(seed)
    N, E = m.config.n_hidden, 3
    lam = m.lam.detach().numpy()
    A = np.zeros((N + E, N + E))
    A[:N, :N] = np.diag(lam)
    A[N:, N:] = 0.5 * np.eye(E)
    K = rng.standard_normal((E, N) if lower else (N, E))
    if lower:
        A[N:, :N] = K
    else:
        A[:N, N:] = K
    c = m.config
    dm = GatedLinearRNN(GatedLinearRNNConfig(c.d_input, N + E, c.n_gating, c.d_output, recurrence="dense")).double()
    with torch.no_grad():
        dm.W_in.zero_()
        dm.W_in[:, :N] = m.W_in
        dm.A.copy_(torch.from_numpy(A))
        dm.W_out.zero_()
        dm.W_out[:, :, :N] = m.W_out
        dm.D.copy_(m.D)
    return dm


@pytest.mark.parametrize("lower", [True, False])
def test_dense_recurrence_uses_the_invariant_subspaces(lower):
    c = attention_to_gated_rnn(random_lsa(3, 2), form="compact")
    dm = _dense_embedding(c, lower, seed=3)
    assert max_rel_diff(c, dm, 3) < 1e-12
    e0, e = effective_counts(c), effective_counts(dm)
    assert e.recurrence.startswith("dense") and e.group_sizes == {"memory": 6, "forget": 3, "other": 3}
    assert (e.n_kv, e.n_query) == (6, 3)
    np.testing.assert_allclose(e.cross_blocks, e0.cross_blocks, atol=1e-10)


def test_defective_dense_recurrence_is_not_applicable():
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 2, 2, 2, recurrence="dense")).double()
    with torch.no_grad():
        m.A.copy_(torch.tensor([[0.5, 1.0], [0.0, 0.5]], dtype=torch.float64))  # a Jordan block
    with pytest.raises(AnalysisNotApplicable, match="not diagonalisable"):
        effective_counts(m)
    assert "not diagonalisable" in effective_step(m.eval().requires_grad_(False), 0.99, 0.01).reason  # pipeline step


def test_lstm_is_not_applicable():
    with pytest.raises(AnalysisNotApplicable, match="effective_counts"):
        effective_counts(LSTM(LSTMConfig(d_input=3, d_hidden=4)))


# -- the shipped student -----------------------------------------------------------------------------------------
@pytest.mark.skipif(not STUDENT.exists(), reason="shipped checkpoint missing")
def test_shipped_student_holds_the_compact_construction_in_a_rotated_basis():
    e = effective_counts(STUDENT)
    assert e.group_sizes == {"memory": 15, "forget": 17, "other": 0}
    assert (e.n_kv, e.n_query) == (10, 4)
    # a gap of three orders of magnitude at both cuts, memory x memory negligible
    assert e.kv_spectrum[9] > 1e-3 > 1e-4 > e.kv_spectrum[10]
    assert e.query_spectrum[3] > 1e-2 > 1e-4 > e.query_spectrum[4]
    assert e.kv_rank.clear and e.query_rank.clear and e.kv_rank.gap > 100
    assert e.block_norms["memory x memory"] < 1e-4
    r = repr(e)
    assert "KV 10 of 15 memory" in r and "query 4 of 17 forget" in r and len(r) < 200
    json.dumps(e.to_dict())
    html = e._repr_html_()
    assert "Effective KV / query counts" in html and "<script" not in html
    # the pipeline's effective step finds the same counts on the pruned model, where the row rules find nothing
    pr = prune(STUDENT)
    eff = effective_step(pr.model, 0.99, 0.01)
    assert pr.n_hidden_after == 32 and (eff.n_kv, eff.n_query) == (10, 4)


def test_oversized_model_is_refused_before_allocating():
    big = GatedLinearRNN(GatedLinearRNNConfig(2, 20_000, 2, 2)).to(torch.float64)
    with pytest.raises(ValueError, match="MAX_ANALYSIS_BYTES"):
        effective_counts(big)
