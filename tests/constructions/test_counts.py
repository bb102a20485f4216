"""Neuron-count table, measured by building the constructions."""

from __future__ import annotations

import pytest

from rnnattn.constructions import active_units, attention_to_gated_rnn, construction_sizes, gd_attention


def test_gated_rnn_counts_follow_the_formulas():
    df = construction_sizes(ds=(1, 2, 3, 4, 6), include=("gated_rnn",), icl=())
    for _, r in df.iterrows():
        d, sym = r.d, r.d * (r.d + 1) // 2
        form = r.construction.split("'")[1]
        expected = {"full": (d * d + d, d * d), "compact": (sym + d, d * d), "minimal": (sym + d, sym)}[form]
        assert (r.hidden, r.gating) == expected, r.construction
    mini = df[df.construction.str.contains("minimal")].set_index("d")
    assert (mini.loc[4, "hidden"], mini.loc[4, "gating"]) == (14, 10)  # the minimal form
    assert (mini.loc[6, "hidden"], mini.loc[6, "gating"]) == (27, 21)


def test_all_architectures_and_layers():
    df = construction_sizes(ds=(2,), forms=("full",), icl=((3, 3), (1, 2)))
    layers = dict(zip(df.construction, df.layers, strict=True))
    # Table 3: LSA in one LSTM / In+Out / In+Skip layer; two vanilla LRU layers; Eq. 2 in two LSTM layers
    assert layers["attention_to_lstm(form='full')"] == 1
    assert layers["gated_rnn_to_lstm(attention_to_gated_rnn(form='full'))"] == 2
    assert layers["attention_to_lru(variant='in_out', form='full')"] == 1
    assert layers["attention_to_lru(variant='in_skip', form='full')"] == 1
    assert layers["attention_to_lru(variant='out', form='full')"] == 2
    lstm1 = df[df.construction == "attention_to_lstm(form='full')"].iloc[0]
    assert lstm1.hidden == 2 * 2 * 2 + 2 * 2  # 2d² + 2d cells: d² terms, shared references
    icl = df[df.construction.str.startswith("one-step GD")]
    assert list(zip(icl.hidden, icl.gating, strict=True)) == [(12, 9), (3, 2)]  # d_x d_y + d_x / d_x d_y


def test_gd_attention_is_one_gd_step():
    import torch

    lsa = gd_attention(2, 1, eta=0.5)
    x = torch.randn(1, 5, 3, dtype=torch.float64)
    X, Y = x[0, :, :2], x[0, :, 2:]
    with torch.no_grad():
        y = lsa(x)[0]
    for t in range(5):
        W = 0.5 * Y[: t + 1].T @ X[: t + 1]
        assert torch.allclose(y[t, 2:], W @ X[t], rtol=1e-13, atol=1e-14)
    assert active_units(attention_to_gated_rnn(lsa)) == (2 + 2, 2)


def test_bad_include():
    with pytest.raises(ValueError, match="unknown architectures"):
        construction_sizes(include=("gru",))
