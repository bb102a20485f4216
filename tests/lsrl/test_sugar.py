from fractions import Fraction as F

import numpy as np
import pytest
from _lsrl_util import scalar_fn
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn.lsrl import (
    IFELSE_VARIANTS,
    Input,
    counter,
    f_and,
    f_bump,
    f_constant,
    f_eq,
    f_ifelse,
    f_ifelse_mul,
    f_ifelse_step,
    f_ifeq,
    f_larger,
    f_modulo_counter,
    f_neq,
    f_not,
    f_or,
    f_relu_identity,
    f_smaller,
    f_step,
    ifelse,
    run,
)

MU = 1000
fracs = st.fractions(min_value=-3, max_value=3, max_denominator=4000)


def step_ref(x, mu=MU):
    return min(max(mu * x, 0), 1)


@pytest.mark.parametrize("mode", ["exact", "float64"])
@pytest.mark.parametrize(
    "x,want",
    [(-1, 0), (0, 0), (F(1, 2000), F(1, 2)), (F(1, 1000), 1), (F(2, 1000), 1), (5, 1), (F(-1, 10**6), 0)],
)
def test_step_at_thresholds(mode, x, want):
    got = scalar_fn(lambda v: f_step(v), mode)(x)
    assert got == want if mode == "exact" else got == pytest.approx(float(want), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(fracs)
def test_step_matches_formula_exactly(x):
    assert scalar_fn(lambda v: f_step(v))(x) == step_ref(x)


@settings(max_examples=30, deadline=None)
@given(fracs, fracs)
def test_comparisons_exact(x, y):
    f = scalar_fn(lambda v: f_larger(v[0], v[1]))
    g = scalar_fn(lambda v: f_smaller(v[0], v[1]))
    assert f(x, y) == step_ref(x - y) and g(x, y) == step_ref(y - x)
    eq = scalar_fn(lambda v: f_eq(v[0], v[1]))(x, y)
    neq = scalar_fn(lambda v: f_neq(v[0], v[1]))(x, y)
    if x == y:
        assert eq == 1 and neq == 0
    elif abs(x - y) >= F(1, MU):
        assert eq == 0 and neq == 1


@pytest.mark.parametrize(
    "x,want",
    [
        (0, 0),
        (F(1, 10), 0),
        (F(1, 10) + F(1, 2000), F(1, 2)),
        (F(1, 10) + F(1, 1000), 1),
        (F(1, 5), 1),
        (F(3, 10), 1),
        (F(3, 10) + F(1, 2000), F(1, 2)),
        (F(3, 10) + F(1, 1000), 0),
        (1, 0),
    ],
)
def test_bump_profile(x, want):
    assert scalar_fn(lambda v: f_bump(v, F(1, 10), F(3, 10)))(x) == want


def test_bump_with_variable_bounds_vectors():
    f = scalar_fn(lambda v: f_bump(v[0:2], v[2:4], v[4:6]))
    assert f(F(1, 2), 2, 0, 5, 1, 3) == [1, 0]


@pytest.mark.parametrize("a", [0, 1])
@pytest.mark.parametrize("b", [0, 1])
def test_logic_truth_tables(a, b):
    assert scalar_fn(lambda v: f_and(v[0], v[1]))(a, b) == (a and b)
    assert scalar_fn(lambda v: f_or(v[0], v[1]))(a, b) == (a or b)
    assert scalar_fn(lambda v: f_not(v[0]))(a, b) == 1 - a


@pytest.mark.parametrize("variant", IFELSE_VARIANTS)
@pytest.mark.parametrize("mode", ["exact", "float64"])
def test_ifelse_variants_select(variant, mode):
    def build(v):
        return ifelse(variant, v[0], v[1:3], v[3:5], nonneg=True)

    f = scalar_fn(build, mode)
    assert f(1, 2, 3, 5, 7) == [2, 3]
    assert f(0, 2, 3, 5, 7) == [5, 7]
    only_t = scalar_fn(lambda v: ifelse(variant, v[0], v[1:3], None, nonneg=True), mode)
    assert only_t(1, 4, 9) == [4, 9] and only_t(0, 4, 9) == [0, 0]
    only_f = scalar_fn(lambda v: ifelse(variant, v[0], None, v[1:3], nonneg=True), mode)
    assert only_f(1, 4, 9) == [0, 0] and only_f(0, 4, 9) == [4, 9]


@pytest.mark.parametrize("c", [0, 1])
def test_ifelse_signed_values(c):
    for fn in (f_ifelse, f_ifelse_step, lambda c_, t, f: f_ifelse_mul(c_, t, f)):
        g = scalar_fn(lambda v, fn=fn: fn(v[0], v[1], v[2]))
        assert g(c, -3, F(-5, 2)) == (-3 if c else F(-5, 2))


def test_step_ifelse_tolerates_inexact_condition():
    g = scalar_fn(lambda v: f_ifelse_step(v[0], v[1], v[2]))
    assert g(F(3, 10), 4, 9) == 9 and g(F(7, 10), 4, 9) == 4
    direct = scalar_fn(lambda v: f_ifelse(v[0], v[1], v[2]))
    assert direct(F(7, 10), 4, 9) != 4  # Eq. 7 needs c exactly in {0, 1}


def test_ifeq_constant_relu_identity_counter():
    assert scalar_fn(lambda v: f_ifeq(v[0], v[1], v[2], v[3]))(3, 3, 10, 20) == 10
    assert scalar_fn(lambda v: f_ifeq(v[0], v[1], v[2], v[3]))(3, 4, 10, 20) == 20
    assert scalar_fn(lambda v: f_constant(v, [1, F(1, 3)]))(7) == [1, F(1, 3)]
    assert scalar_fn(lambda v: f_relu_identity(v))(F(-7, 3)) == F(-7, 3)
    x = Input(1)
    assert run(counter(x, start=5), [[0]] * 4, mode="exact")[:, 0].tolist() == [5, 6, 7, 8]


@pytest.mark.parametrize(
    "method,d",
    [("cyclic", 1), ("cyclic", 5), ("cyclic", 20), ("rotation", 3), ("rotation", 7), ("rotation", 20)],
)
@pytest.mark.parametrize("mode", ["exact", "float64"])
def test_modulo_counter(method, d, mode):
    x = Input(1)
    val, hot = f_modulo_counter(x, d, method, return_onehot=True)
    T = 2 * d + 3
    y = run(val, [[0]] * T, mode=mode)[:, 0]
    want = [t % d for t in range(T)]
    if mode == "exact":
        assert y.tolist() == want
    else:
        np.testing.assert_allclose(y.astype(float), want, atol=1e-9)
    h = np.asarray(run(hot, [[0]] * T, mode=mode), dtype=float)
    np.testing.assert_allclose(h, np.eye(d)[want], atol=1e-9)


def test_modulo_counter_limits():
    with pytest.raises(ValueError, match="too large"):
        f_modulo_counter(Input(1), 80, "rotation")
    with pytest.raises(ValueError):
        f_modulo_counter(Input(1), 0)
    with pytest.raises(ValueError):
        f_modulo_counter(Input(1), 3, "hyperbolic")
    with pytest.raises(ValueError):
        f_step(Input(1), mu=0)
    with pytest.raises(ValueError):
        ifelse("fancy", Input(1), Input(1), None)
