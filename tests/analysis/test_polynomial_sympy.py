"""Polynomial.to_sympy builds flat expressions without sympy's canonicalisation; check them against the naive
evaluated construction (an independent route) and the polynomial's own evaluation."""

import numpy as np
import sympy
import torch

from rnnattn.analysis.polynomial import gated_rnn_polynomial
from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig


def test_to_sympy_equals_the_naive_construction():
    torch.manual_seed(3)
    p = gated_rnn_polynomial(GatedLinearRNN(GatedLinearRNNConfig(2, 3, 3, 2)).double())
    syms = sympy.symbols(list(p.variables))
    fast = p.to_sympy()
    for i, expr in enumerate(fast):
        naive = sympy.Add(
            *[
                sympy.Float(float(c)) * sympy.Mul(*[s ** int(e) for s, e in zip(syms, exps, strict=True)])
                for c, exps in zip(p.coefficients[i], p.exponents.tolist(), strict=True)
            ]
        )
        assert sympy.expand(expr - naive) == 0
        x = np.array([[0.7, -1.3]])
        assert abs(float(expr.subs(dict(zip(syms, x[0], strict=True)))) - p.evaluate(x)[0, i]) < 1e-12
    assert p.to_sympy(tol=1e300) == [0, 0]  # everything dropped: zero, not an empty Add
