"""Helpers shared by the LSRL tests."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from rnnattn.lsrl import Input, run


def scalar_fn(build, mode: str = "exact"):
    """Returns ``f(v) -> value`` evaluating ``build(x)`` on a single token ``[v]`` (or a vector token)."""

    def f(*vals):
        x = Input(len(vals))
        out = build(x)
        y = run(out, [list(vals)], mode=mode)
        return y[0].tolist() if out.dim > 1 else y[0, 0]

    return f


def as_float(a) -> np.ndarray:
    return np.asarray(a, dtype=float)


F = Fraction
