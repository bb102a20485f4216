import numpy as np
import pytest
import torch
from _constructions import fig1, pad_and_scramble, random_lsa
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn import GatedLinearRNN, GatedLinearRNNConfig
from rnnattn.analysis import AnalysisNotApplicable, canonicalize, prune

D_IN = 3
N_KV, N_Q = D_IN * D_IN, D_IN


def _assert_block_form(m: GatedLinearRNN):
    Wm_in, Wx_in = m.W_m_in.detach().numpy(), m.W_x_in.detach().numpy()
    Wm_out, Wx_out = m.W_m_out.detach().numpy(), m.W_x_out.detach().numpy()
    lam = m.lam.detach().numpy()
    np.testing.assert_array_equal(lam, [1.0] * N_KV + [0.0] * N_Q)
    # KV units: degree-2 input, no constant column; query units: W_m reads x only, W_x reads the constant only
    assert np.all(Wm_in[:, -1] == 0) and np.all(Wx_in[:N_KV, -1] == 0)
    assert np.all(Wx_in[N_KV:, :-1] == 0) and np.all(Wx_in[N_KV:, -1] != 0)
    # output gating: m-branch reads KV units only, x-branch reads query units only, one unit each
    assert np.all(Wm_out[:, N_KV:] == 0) and np.all(Wx_out[:, :N_KV] == 0)
    assert np.all((Wm_out != 0).sum(1) == 1) and np.all((Wx_out != 0).sum(1) == 1)
    np.testing.assert_allclose(np.linalg.norm(Wm_out, axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(Wm_in, axis=1), 1.0, rtol=1e-14)
    # gating rows ordered by the KV unit they read
    assert list(np.argmax(np.abs(Wm_out), axis=1)) == sorted(np.argmax(np.abs(Wm_out), axis=1))


def _x():
    return torch.randn(4, 20, D_IN, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 1000))
def test_prune_then_canonicalize_recovers_block_form(seed):
    lsa = random_lsa(D_IN, seed)
    scrambled = pad_and_scramble(fig1(lsa), extra_hidden=9, extra_gating=9, seed=seed)
    pruned = prune(scrambled).model
    res = canonicalize(pruned)
    _assert_block_form(res.model)
    x = _x()
    with torch.no_grad():
        y = lsa(x)
        torch.testing.assert_close(res.model(x), y, atol=1e-11 * float(y.abs().max()), rtol=0)
    assert res.max_output_change < 1e-11
    assert res.gating_conforming.all() and list(res.hidden_role) == ["memory"] * N_KV + ["forget"] * N_Q
    # the recorded permutation and scales map the canonical rows back to the input rows
    W_in = pruned.W_in.detach().numpy()
    for n, src in enumerate(res.hidden_perm):
        rows = W_in[::-1, src] if res.input_swapped[n] else W_in[:, src]
        np.testing.assert_allclose(res.model.W_in[0, n].numpy(), rows[0] * res.input_scale[n], atol=1e-14)
        np.testing.assert_allclose(res.model.W_in[1, n].numpy(), rows[1] / res.input_scale[n], atol=1e-14)
    # same rows (as a set) as the canonical form of the unscrambled construction
    ref = canonicalize(fig1(lsa)).model

    def rows(m):
        a = np.round(torch.cat([m.W_in[0], m.W_in[1]], 1).numpy(), 9)
        return a[np.lexsort(a.T[::-1])]

    np.testing.assert_allclose(rows(res.model), rows(ref), atol=1e-8)


def test_non_conforming_rows_go_last_and_dense_needs_diagonal():
    torch.manual_seed(0)
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 4, 3, 1, recurrence="dense")).double()
    with pytest.raises(AnalysisNotApplicable, match="dense A is not diagonal"):
        with torch.no_grad():
            m.A.copy_(torch.eye(4) + 0.1)
        canonicalize(m)
    with torch.no_grad():
        m.A.copy_(torch.diag(torch.tensor([0.0, 1.0, 0.5, 1.0])))
    res = canonicalize(m)
    assert list(res.hidden_perm) == [1, 3, 0, 2]  # memory, forget, other
    assert not res.gating_conforming.any() and res.max_output_change < 1e-13
