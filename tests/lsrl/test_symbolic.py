"""Symbolic constants (issue 15): sympy numbers stay exact through compile and run in exact mode, checked
against sympy evaluating the same recurrences directly."""

import numpy as np
import pytest
import sympy

from rnnattn.lsrl import Concat, Input, LinState, Multiplicative, Program, ReLU, compile, run


def _program():
    x = Input(1)
    a = ReLU(x * sympy.pi - 1)  # paper's symbolic mode keeps Input * pi as 2*pi
    s = LinState(x / sympy.sqrt(2), sympy.Rational(1, 2), 1, init_state=sympy.E)
    m = Multiplicative(Concat([a, s]))
    return Program(Concat([a, s, m]), name="symbolic")


def _expected(xs):
    """The same recurrences written directly in sympy (the independent route)."""
    out, s = [], sympy.E
    for (x,) in xs:
        a = sympy.Max(0, x * sympy.pi - 1)
        s = s / 2 + x / sympy.sqrt(2)
        out.append([a, s, a * s])
    return out


@pytest.mark.parametrize("xs", [[[2], [1], [0], [3]], [[sympy.Rational(1, 3)], [-1], [5]]])
def test_symbolic_constants_exact_through_compile_and_run(xs):
    p = _program()
    want = _expected(xs)
    got_interp = run(p, xs, mode="exact")
    cp = compile(p, mode="exact", check=True)
    got = cp.run(xs)
    for t, row in enumerate(want):
        for j, w in enumerate(row):
            assert sympy.simplify(got[t, j] - w) == 0, (t, j, got[t, j], w)
            assert sympy.simplify(got_interp[t, j] - w) == 0
    assert got[0, 0] == 2 * sympy.pi - 1 if xs[0][0] == 2 else True
    assert any(sympy.sympify(v).has(sympy.pi) for v in got[:, 0])  # not turned into a binary fraction


def test_symbolic_constants_float_modes_use_the_value():
    xs = [[2.0], [1.0], [0.5]]
    want = np.array([[float(v) for v in row] for row in _expected([[2], [1], [sympy.Rational(1, 2)]])])
    np.testing.assert_allclose(compile(_program()).run(xs), want, rtol=1e-12)
    np.testing.assert_allclose(run(_program(), xs), want, rtol=1e-12)


def test_rational_sympy_results_come_back_as_python_numbers():
    x = Input(1)
    cp = compile(x * sympy.pi - x * sympy.pi + sympy.Rational(1, 2), mode="exact")
    y = cp.run([[3]])[0, 0]
    assert y == sympy.Rational(1, 2) and type(y).__name__ == "Fraction"


@pytest.mark.parametrize("bad", [sympy.Symbol("a"), sympy.I, sympy.oo, sympy.zoo])
def test_non_numeric_sympy_constants_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        Input(1) * bad
    with pytest.raises(ValueError, match="real|numbers"):
        Input(1) + bad
