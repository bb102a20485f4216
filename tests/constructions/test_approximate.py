"""Approximate constructions (LSTM: App. A.2 / Table 4; LRU: App. A.1): accuracy at the default eps,
convergence as eps -> 0, and the structure that makes them work (exact f/o gates, exact decays)."""

from __future__ import annotations

import math

import pytest
import torch
from _construction_tools import err, random_lsa, unit_inputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnattn.constructions import (
    ConstructionError,
    attention_to_gated_rnn,
    attention_to_gru,
    attention_to_lru,
    attention_to_lstm,
    gated_rnn_to_lru,
    gated_rnn_to_lstm,
)
from rnnattn.constructions.gru import gated_rnn_to_gru
from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig

BUILDERS = {
    "lstm-1": lambda lsa, eps, form: attention_to_lstm(lsa, eps, form=form),
    "lstm-2": lambda lsa, eps, form: gated_rnn_to_lstm(attention_to_gated_rnn(lsa, form), eps),
    "lru-in_out": lambda lsa, eps, form: attention_to_lru(lsa, eps, variant="in_out", form=form),
    "lru-in_skip": lambda lsa, eps, form: attention_to_lru(lsa, eps, variant="in_skip", form=form),
    "lru-out": lambda lsa, eps, form: attention_to_lru(lsa, eps, variant="out", form=form),
}
# eps sweeps inside the truncation-dominated range (error ~ eps^2); below it rounding (~u/eps^k) takes over
SWEEPS = {
    "lstm-1": [1e-1, 3e-2, 1e-2, 3e-3, 1e-3],
    "lstm-2": [3e-2, 1e-2, 1e-3, 1e-4, 1e-5],
    "lru-in_out": [3e-2, 1e-2, 1e-3, 1e-4, 1e-5],
    "lru-in_skip": [1e-1, 3e-2, 1e-2, 1e-3, 1e-4],
    "lru-out": [3e-2, 1e-2, 1e-3, 1e-4, 1e-5],
}
prop = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("form", ["full", "minimal"])
def test_error_decreases_monotonically_with_eps(name, form):
    lsa = random_lsa(3, 7, cond=3.0)
    x = unit_inputs(4, 32, 3, 8)
    with torch.no_grad():
        y = lsa(x)
        errs = [err(BUILDERS[name](lsa, eps, form)(x), y).rel for eps in SWEEPS[name]]
    assert all(b < a for a, b in zip(errs, errs[1:], strict=False)), (
        f"{name}/{form}: errors {errs} not decreasing"
    )
    # and the decrease is the predicted second order: a 10x smaller eps gains well over 10x
    assert errs[0] / errs[-1] > (SWEEPS[name][0] / SWEEPS[name][-1]) ** 1.5


@pytest.mark.parametrize("name", list(BUILDERS))
@prop
@given(
    d=st.integers(1, 8),
    T=st.integers(1, 64),
    seed=st.integers(0, 2**31 - 1),
    form=st.sampled_from(["full", "minimal"]),
)
def test_default_eps_meets_1e_4_float64(name, d, T, seed, form):
    lsa = random_lsa(d, seed, cond=10.0)
    x = unit_inputs(2, T, d, seed + 1)
    model = BUILDERS[name](lsa, None, form)
    with torch.no_grad():
        e = err(model(x), lsa(x))
    assert e.rel < 1e-4, f"{name}/{form} d={d} T={T}: {e}"


def _random_gated_rnn(d: int, N: int, M: int, seed: int) -> GatedLinearRNN:
    """A generic gated RNN: every weight non-zero (the constant column too), decays spread in (0, 1) plus one
    unit with λ = 1 and one with λ = 0 exactly."""
    torch.manual_seed(seed)
    rnn = GatedLinearRNN(GatedLinearRNNConfig(d_input=d, n_hidden=N, n_gating=M, d_output=d)).double()
    rnn.requires_grad_(False)
    rnn.nu[0], rnn.nu[1] = -math.inf, math.inf
    return rnn


@pytest.mark.parametrize("convert", ["lstm", "lru-out", "lru-in_out", "lru-in_skip"])
def test_generic_gated_rnn(convert):
    rnn = _random_gated_rnn(3, 7, 5, 0)
    x = unit_inputs(3, 40, 3, 1)
    make = {
        "lstm": lambda eps: gated_rnn_to_lstm(rnn, eps),
        **{
            f"lru-{v}": (lambda eps, v=v: gated_rnn_to_lru(rnn, eps, v)) for v in ("out", "in_out", "in_skip")
        },
    }
    with torch.no_grad():
        y = rnn(x)
        errs = [err(make[convert](eps)(x), y).rel for eps in (1e-2, 1e-3, 1e-4)]
        default = err(make[convert](None)(x), y).rel
    assert errs[0] > errs[1] > errs[2]
    assert default < 1e-6


def test_lstm_gates_follow_table_4():
    lsa = random_lsa(2, 0)
    sig = lambda g: torch.sigmoid(g.b + g.b_h)  # noqa: E731  (the gate value when U and V are zero)
    lstm1 = attention_to_lstm(lsa).layers[0]
    f = lstm1.gate("f")
    assert (sig(f) == 1).all() and (f.U == 0).all() and (f.V == 0).all()  # f = 1 exactly: perfect memory
    assert all((lstm1.gate(g).V == 0).all() for g in "fgco")
    two = gated_rnn_to_lstm(attention_to_gated_rnn(lsa)).layers
    for layer in two:
        o = layer.gate("o")
        assert (sig(o) == 1).all() and (o.U == 0).all()  # o = 1 exactly
    assert (sig(two[1].gate("f")) == 0).all()  # layer 2 keeps no memory
    fv = sig(two[0].gate("f"))
    assert (fv == 0).sum() == 2 and (fv == 1).sum() == len(
        fv
    ) - 2  # λ = 0: the 2 query cells; λ = 1: key-values
    for model in (attention_to_lstm(lsa), gated_rnn_to_lstm(attention_to_gated_rnn(lsa))):
        assert all(torch.isfinite(p).all() for p in model.parameters())  # saturation by ±1000, not ±inf


def test_lstm_forget_bias_reproduces_generic_decays():
    rnn = _random_gated_rnn(2, 6, 3, 3)
    layer = gated_rnn_to_lstm(rnn).layers[0]
    lam = set(rnn.lam.detach().tolist())
    got = torch.sigmoid(layer.gate("f").b).tolist()
    assert all(any(abs(g - v) <= 1e-15 * max(v, 1e-300) or g == v for v in lam) for g in got)  # a few ulp


def test_lru_decays_exact_and_real():
    model = attention_to_lru(random_lsa(3, 0), variant="out")
    l1, l2 = model.layers
    assert (l1.lam == 0).all()
    lam = l2.lam
    assert (lam.imag == 0).all() and set(lam.real.tolist()) == {0.0, 1.0}


def test_float32_sources_build_in_float32():
    lsa = random_lsa(3, 0, dtype=torch.float32, cond=3.0)
    x = unit_inputs(2, 32, 3, 1, torch.float32)
    bounds = {"lstm-1": 1e-2, "lstm-2": 3e-3, "lru-in_out": 3e-3, "lru-in_skip": 3e-3, "lru-out": 3e-3}
    with torch.no_grad():
        y = lsa.double()(x.double())
        for name, make in BUILDERS.items():
            m = make(lsa.float(), None, "full")
            assert next(m.parameters()).dtype == torch.float32
            assert err(m(x), y).rel < bounds[name], name


def test_bad_arguments():
    lsa = random_lsa(2, 0)
    for bad in (0, -1e-3, math.inf, math.nan, "1e-3", True):
        with pytest.raises(ConstructionError, match="eps"):
            attention_to_lstm(lsa, bad)  # type: ignore[arg-type]
    with pytest.raises(ConstructionError, match="variant"):
        attention_to_lru(lsa, variant="in")
    dense = GatedLinearRNN(
        GatedLinearRNNConfig(d_input=2, n_hidden=3, n_gating=3, d_output=2, recurrence="dense")
    )
    for convert in (gated_rnn_to_lstm, gated_rnn_to_lru):
        with pytest.raises(ConstructionError, match="dense"):
            convert(dense)
    with pytest.raises(ConstructionError, match="GatedLinearRNN"):
        gated_rnn_to_lstm(lsa)  # type: ignore[arg-type]


def test_in_skip_needs_query_times_memory():
    rnn = attention_to_gated_rnn(random_lsa(2, 0))
    with torch.no_grad():
        rnn.W_x_out[0, 0] = 1.0  # gating row 0 now multiplies a key-value by (query + key-value)
    from rnnattn.constructions.lru import _attention_in_skip

    with pytest.raises(ConstructionError, match="In\\+Skip"):
        _attention_in_skip(rnn, 1e-5)


def test_gru_is_refused_with_the_reason():
    for f in (attention_to_gru, gated_rnn_to_gru):
        with pytest.raises(ConstructionError, match=r"App\. A\.3.*") as e:
            f(random_lsa(2, 0))
        assert "update gate" in str(e.value) and "\n" not in str(e.value)
