"""Monomial bases of the instantaneous polynomials (§3.1): exponent vectors, names, features, and the folding of
a symmetric coefficient tensor onto monomials (each monomial summed over all permutations of its indices)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def monomial_basis(n_vars: int, max_degree: int) -> np.ndarray:
    """Exponent vectors ``[n_monomials, n_vars]`` of all monomials of degree <= ``max_degree``, ordered by degree,
    then lexicographically by variable index (``1, x1, x2, x1^2, x1 x2, ...``). Read-only; C(n+K, K) rows."""
    rows = []
    for k in range(max_degree + 1):
        for combo in itertools.combinations_with_replacement(range(n_vars), k):
            e = [0] * n_vars
            for v in combo:
                e[v] += 1
            rows.append(e)
    out = np.array(rows, dtype=np.int64).reshape(-1, n_vars)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _basis_index(n_vars: int, max_degree: int) -> dict[tuple[int, ...], int]:
    return {tuple(e): i for i, e in enumerate(monomial_basis(n_vars, max_degree).tolist())}


@lru_cache(maxsize=32)
def _fold_index(p: int, order: int, n_vars: int) -> np.ndarray:
    """For every index tuple of a ``p^order`` tensor over ``z`` (variables ``0..n_vars-1`` then, if ``p > n_vars``,
    the constant), the position of its monomial in ``monomial_basis(n_vars, order)``. Summing a tensor's
    entries by this index (bincount) sums each monomial over all permutations of its indices."""
    idx = np.indices((p,) * order).reshape(order, -1)  # [order, p^order]
    counts = np.stack([(idx == v).sum(axis=0) for v in range(n_vars)], axis=1)  # exponents, constant dropped
    # encode exponent vectors, then map codes to basis positions
    base = order + 1
    codes = counts @ (base ** np.arange(n_vars))
    basis = monomial_basis(n_vars, order)
    table = dict(zip((basis @ (base ** np.arange(n_vars))).tolist(), range(len(basis)), strict=True))
    out = np.fromiter((table[c] for c in codes.tolist()), dtype=np.int64, count=codes.size)
    out.setflags(write=False)
    return out


def fold_symmetric(T: np.ndarray, n_vars: int) -> np.ndarray:
    """Coefficients of the forms ``T [n_out, p, ..., p]`` (order K) on ``monomial_basis(n_vars, K)``.

    ``p`` is ``n_vars`` (homogeneous form in x) or ``n_vars + 1`` (the last index is the constant 1).
    """
    n_out, order, p = T.shape[0], T.ndim - 1, T.shape[1]
    if p not in (n_vars, n_vars + 1):
        raise ValueError(f"fold_symmetric: tensor side {p} must be n_vars ({n_vars}) or n_vars + 1")
    idx = _fold_index(p, order, n_vars)
    n_mono = len(monomial_basis(n_vars, order))
    flat = T.reshape(n_out, -1)
    return np.stack([np.bincount(idx, weights=flat[i], minlength=n_mono) for i in range(n_out)])


def monomial_name(exponents: Sequence[int], variables: Sequence[str]) -> str:
    """``(2, 1, 0)`` with ``x1, x2, x3`` → ``"x1^2*x2"``; the constant is ``"1"``."""
    parts = [v if e == 1 else f"{v}^{e}" for v, e in zip(variables, exponents, strict=True) if e]
    return "*".join(parts) if parts else "1"


def monomial_features(x: np.ndarray, max_degree: int) -> np.ndarray:
    """All monomials of ``x [n, d]`` of degree <= ``max_degree``: ``[n, n_monomials]`` (basis order)."""
    x = np.asarray(x, dtype=np.float64)
    exps = monomial_basis(x.shape[1], max_degree)
    powers = np.stack([x**k for k in range(max_degree + 1)], axis=0)  # [K+1, n, d]
    cols = np.ones((x.shape[0], len(exps)))
    for v in range(x.shape[1]):
        cols *= powers[exps[:, v], :, v].T
    return cols


def n_monomials(d: int, max_degree: int = 4) -> int:
    """C(d + K, K): 70 for d = 4, 210 for d = 6 (K = 4)."""
    return math.comb(d + max_degree, max_degree)
