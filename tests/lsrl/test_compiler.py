from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnattn.lsrl import (
    Concat,
    Input,
    Linear,
    LinState,
    LSRLCompileCheckError,
    LSRLValidationError,
    Multiplicative,
    ReLU,
    compile,
    f_constant,
    f_ifelse,
    f_larger,
    f_relu_identity,
    run,
)
from rnnattn.lsrl.compiler import check_compiled, probe_inputs
from rnnattn.lsrl.program import Program


def _check_both(out, probes=None):
    for mode in ("exact", "float64"):
        cp = compile(out, mode=mode, check=True, probes=probes)
        assert cp.mode.value == mode
    return cp


def test_more_ones_than_zeros_is_one_layer():
    """Paper Fig. 1: one LinState, one ReLU layer."""
    x = Input(1, lower=0, upper=1)
    s = LinState(x, 1, 2, bias=-1)  # ones - zeros
    y = f_larger(s, 0)
    cp = _check_both(y)
    assert cp.stats().kinds == "SR" and cp.stats().state_dim == 1
    assert cp.run([[1], [0], [0], [1], [1]])[:, 0].tolist() == [1, 0, 0, 0, 1]


def test_branch_into_every_kind():
    """One node feeding a Linear, ReLU, LinState, Multiplicative, Concat and a Slice at once."""
    x = Input(2)
    b = Linear(x, [[1, -1], [2, 1]], [F(1, 3), 0])
    outs = [
        b * 3,
        ReLU(b),
        LinState(b, [[0, 1], [1, 0]], np.eye(2), init_state=[1, 2]),
        Multiplicative(Concat([b, x])),
        Concat([b, b])[1:3],
        b[0] + b[1] + x[0],
    ]
    y = Concat([o if o.dim == 2 else Concat([o, o]) for o in outs])
    cp = _check_both(y)
    assert set(cp.stats().kinds) == {"S", "R", "M"}


def test_ifelse_branches_and_relu_identity():
    x = Input(3)
    c = f_larger(x[0], 0)
    y = f_ifelse(c, f_relu_identity(x[1:3]), LinState(x[1:3], np.eye(2), np.eye(2)))
    _check_both(y)


def test_constant_folding_and_cse():
    x = Input(1)
    one = f_constant(x, 1)
    y = ReLU(one * 3 - 1) + Multiplicative(Concat([one, x])) + ReLU(x) + ReLU(x) + ReLU(x * 1)
    cp = _check_both(y)
    assert cp.stats().relu_width == 2 and cp.stats().mul_width == 0  # ReLU(x) doubles as the carried x+
    assert run(y, [[2]], mode="exact")[0, 0] == 2 + 2 + 6


def test_nonneg_input_needs_no_relu():
    x = Input(2, lower=0)
    cp = compile(ReLU(ReLU(x) + x), mode="exact", check=True)
    assert cp.stats().stages == 0


def test_linstate_with_zero_block_is_affine_and_dead_lanes_removed():
    x = Input(2)
    s = LinState(x, [[0, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0], [0, 1], [1, 1]])
    assert _check_both(s[0]).stats().stages == 0  # A = 0 block: affine
    assert _check_both(s[1]).stats().state_dim == 1  # lane 2 is dead
    assert _check_both(s[0:2]).stats().state_dim == 2  # x0 is carried through the state stage


def test_pure_affine_program_and_only_constants():
    x = Input(2)
    cp = _check_both(x * 2 + 1)
    assert cp.stats().stages == 0
    cp = compile(f_constant(x, [F(1, 3), 2]), mode="exact", check=True)
    assert cp.run([[5, 6]], mode="exact")[0].tolist() == [F(1, 3), 2]


def test_check_catches_a_miscompile():
    x = Input(1)
    y = LinState(ReLU(x), 1, 1)
    cp = compile(y, mode="exact")
    bad = cp.stages[-1]
    object.__setattr__(bad, "c", tuple(v + 1 for v in bad.c))
    with pytest.raises(LSRLCompileCheckError):
        check_compiled(Program(y), cp)


def test_validation_error_on_compile():
    with pytest.raises(LSRLValidationError):
        compile(Input(1) + Input(1))


def test_probe_inputs_respect_bounds():
    x = Input(3, lower=[0, None, -1], upper=[1, 5, None])
    for p in probe_inputs(Program(x)):
        assert (
            (p[:, 0] >= 0).all() and (p[:, 0] <= 1).all() and (p[:, 1] <= 5).all() and (p[:, 2] >= -1).all()
        )


@st.composite
def random_programs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    d_in = int(rng.integers(1, 4))
    x = Input(d_in)
    pool = [x]
    for _ in range(int(rng.integers(2, 9))):
        v = pool[int(rng.integers(len(pool)))]
        kind = rng.integers(7)
        if kind == 0:
            m = int(rng.integers(1, 4))
            A = rng.integers(-2, 3, size=(m, v.dim))
            pool.append(Linear(v, A, rng.integers(-2, 3, size=m) / 2))
        elif kind == 1:
            pool.append(ReLU(v))
        elif kind == 2:
            w = pool[int(rng.integers(len(pool)))]
            pool.append(Multiplicative(Concat([v, w])) if v.dim == w.dim else Multiplicative(Concat([v, v])))
        elif kind == 3:
            A = rng.integers(-1, 2, size=(v.dim, v.dim)) * (rng.random((v.dim, v.dim)) < 0.5)
            pool.append(LinState(v, A, np.eye(v.dim), init_state=rng.integers(-1, 2, v.dim)))
        elif kind == 4:
            pool.append(Concat([v, pool[int(rng.integers(len(pool)))]]))
        elif kind == 5:
            a = int(rng.integers(v.dim))
            pool.append(v[a:])
        else:
            pool.append(f_larger(v, F(int(rng.integers(-3, 4)), 2)))
    outs = [pool[-1]] + [pool[int(i)] for i in rng.integers(len(pool), size=2)]
    return Concat(outs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_programs())
def test_random_programs_compile_exactly(out):
    p = Program(out)
    probes = probe_inputs(p, n=2, length=6)
    cp = compile(p, mode="exact", check=True, probes=probes)
    fcp = compile(p, mode="float64")
    for xs in probes:
        want = np.asarray(cp.run(xs), dtype=float)
        np.testing.assert_allclose(fcp.run(xs), want, rtol=1e-9, atol=1e-9)
