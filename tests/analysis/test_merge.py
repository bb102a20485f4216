import numpy as np
import pytest
import torch
from _constructions import fig1, gated_from_arrays, pad_and_scramble, random_lsa, split_row, weights

from rnnattn.analysis import canonicalize, merge_rank1, prune

D_IN = 3


def _xy(lsa, seed=0):
    x = torch.randn(8, 20, D_IN, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        return x, lsa(x)


@pytest.mark.parametrize("row", [0, 4])
def test_split_row_is_found_and_merged_back(row):
    lsa = random_lsa(D_IN, seed=row)
    split = split_row(fig1(lsa), row, seed=row)
    assert split.config.n_gating == D_IN * D_IN + 2
    x, y = _xy(lsa)
    res = merge_rank1(split, data=(x, y))
    assert len(res.merges) == 1
    mg = res.merges[0]
    n = D_IN * D_IN
    assert mg.rows == [n - 1, n, n + 1] and mg.merged and mg.reason == "merged 3 rows into 1"
    assert mg.output_ratio < 1e-12 and mg.kernel_ratio < 1e-12  # the SVD evidence: both rank 1
    assert mg.conforming  # u reads one KV unit, v one query unit, as in the construction
    assert res.n_gating_after == n and res.max_output_change < 1e-11
    assert res.loss_after_merge < 1e-24
    # the merged row is the original row up to the (c, 1/c) and D-scale invariances
    W_in, nu, W_out, D = weights(fig1(lsa))
    K_orig = np.einsum("i,a,b->iab", D[:, row], W_out[0, row], W_out[1, row])
    K_new = np.einsum("i,a,b->iab", mg.c, mg.u, mg.v)
    np.testing.assert_allclose(K_new, K_orig, atol=1e-12)
    np.testing.assert_allclose(np.einsum("i,ab->iab", mg.c, mg.kernel), K_orig, atol=1e-12)
    canon = canonicalize(res.model)
    assert canon.gating_conforming.all()


def test_merge_after_prune_of_scrambled_split_construction():
    lsa = random_lsa(D_IN, seed=7)
    m = pad_and_scramble(split_row(fig1(lsa), 2, seed=1), extra_hidden=6, extra_gating=6, seed=3)
    pr = prune(m)
    assert (pr.n_hidden_after, pr.n_gating_after) == (D_IN * D_IN + D_IN, D_IN * D_IN + 2)
    canon = canonicalize(pr.model)
    assert (~canon.gating_conforming).sum() == 3
    assert list(np.flatnonzero(~canon.gating_conforming)) == [D_IN * D_IN - 1, D_IN * D_IN, D_IN * D_IN + 1]
    res = merge_rank1(canon.model)
    assert res.n_gating_after == D_IN * D_IN and res.merges[0].merged
    assert canonicalize(res.model).gating_conforming.all()


def test_no_merge_without_rank1_evidence():
    lsa = random_lsa(D_IN, seed=1)
    m = fig1(lsa)
    # rows 0 and 4 feed different outputs with different kernels: stack rank 2, must not be merged
    res = merge_rank1(m, rows=[0, 4])
    mg = res.merges[0]
    assert not mg.merged and "not proportional" in mg.reason and mg.output_ratio > 0.5
    assert res.n_gating_after == m.config.n_gating and res.max_output_change == 0.0
    # same output but different KV units: proportional (one output) but the kernel has rank 2
    res = merge_rank1(m, rows=[0, 1])
    assert not res.merges[0].merged and "not rank 1" in res.merges[0].reason


def test_finetune_recovers_loss_after_approximate_merge():
    lsa = random_lsa(D_IN, seed=2)
    W_in, nu, W_out, D = weights(split_row(fig1(lsa), 0))
    rng = np.random.default_rng(0)
    W_out[:, -1] += 1e-3 * rng.standard_normal(W_out[:, -1].shape)  # break exact rank 1 a little
    m = gated_from_arrays(W_in, nu, W_out, D)
    x, _ = _xy(lsa, 1)
    with torch.no_grad():
        y = m(x)  # targets: the unmerged model itself, so any merge error shows as loss
    res = merge_rank1(m, tol=1e-2, data=(x, y), finetune_steps=30, lr=1e-7)
    assert res.merges[0].merged and 0 < res.merges[0].kernel_ratio < 1e-2
    assert res.loss_before == 0.0 and res.loss_after_merge > 0  # merging an approximately rank-1 group costs
    assert res.loss_after_finetune < 0.8 * res.loss_after_merge and res.finetune_steps == 30


def test_rows_validation():
    m = fig1(random_lsa(2))
    with pytest.raises(ValueError, match="distinct indices"):
        merge_rank1(m, rows=[0, 0])
    with pytest.raises(ValueError, match="fine-tuning needs targets"):
        merge_rank1(m, rows=[0, 1], finetune_steps=3)
