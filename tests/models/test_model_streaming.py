"""Streaming: a split sequence with the state carried over, and token-by-token ``step``, equal the full
forward."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_zoo_cases import CASES, build, tokens

T = 9


def assert_tree_close(a, b, atol=1e-12):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=atol)
    else:
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_tree_close(x, y, atol)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("k", [0, 1, 4, T - 1, T])
def test_split_with_carried_state_equals_full(name, k):
    model = build(name)
    x = tokens(name, T=T)
    with torch.no_grad():
        y, s = model(x, return_state=True)
        y1, s1 = model(x[:, :k], return_state=True)
        y2, s2 = model(x[:, k:], state=s1, return_state=True)
    assert_tree_close(torch.cat([y1, y2], 1), y)
    assert_tree_close(s2, s)


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_by_step_equals_full(name):
    model = build(name)
    x = tokens(name, T=T)
    with torch.no_grad():
        y, s = model(x, return_state=True)
        state, ys = None, []
        for t in range(T):
            y_t, state = model.step(x[:, t], state)
            ys.append(y_t)
    assert_tree_close(torch.stack(ys, 1), y)
    assert_tree_close(state, s)


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(sorted(CASES)),
    cuts=st.lists(st.integers(0, 20), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
)
def test_any_partition_of_the_sequence_streams(name, cuts, seed):
    model = build(name, seed=seed)
    x = tokens(name, B=1, T=20, seed=seed)
    bounds = [0, *sorted(cuts), 20]
    with torch.no_grad():
        y, s = model(x, return_state=True)
        state, parts = None, []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            part, state = model(x[:, a:b], state=state, return_state=True)
            parts.append(part)
    assert_tree_close(torch.cat(parts, 1), y)
    assert_tree_close(state, s)


@pytest.mark.parametrize(
    "name", ["glr_diagonal", "lru_in_out", "lsa_2heads_WO", "lstm", "gru", "sequence_mixed"]
)
def test_streaming_in_float32(name):
    model = build(name, torch.float32)
    x = tokens(name, T=T, dtype=torch.float32)
    with torch.no_grad():
        y, s = model(x, return_state=True)
        y1, s1 = model(x[:, :4], return_state=True)
        y2, s2 = model(x[:, 4:], state=s1, return_state=True)
    assert_tree_close(torch.cat([y1, y2], 1), y, atol=1e-5)
    assert_tree_close(s2, s, atol=1e-5)


def test_state_carries_information():
    # a carried state must change the continuation (otherwise the equalities above could hold vacuously)
    for name in ("glr_diagonal", "lsa_1head", "lru_out", "lstm", "gru", "sequence_mixed"):
        model = build(name)
        x = tokens(name, T=T)
        with torch.no_grad():
            _, s1 = model(x[:, :4], return_state=True)
            assert not torch.allclose(model(x[:, 4:], state=s1), model(x[:, 4:])), name
