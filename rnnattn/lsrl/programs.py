"""The two universal in-context approximation programs (paper Lst. 1 and Lst. 2) and their prompt builders.

Every conditional goes through :func:`rnnattn.lsrl.sugar.ifelse`, so each program exists in all
:data:`~rnnattn.lsrl.sugar.IFELSE_VARIANTS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from .nodes import Concat, Input, Linear, LinState, Variable
from .numeric import SparseMatrix
from .program import Program
from .sugar import (
    LAMBDA,
    MU,
    broadcast,
    f_and,
    f_bump,
    f_constant,
    f_larger,
    f_modulo_counter,
    f_not,
    f_smaller,
    f_sum,
    ifelse,
)

HALF = Fraction(1, 2)


def continuous_program(
    d_in: int, d_out: int, variant: str = "multiplicative_optimized", mu: Any = MU, lam: Any = LAMBDA
) -> Program:
    """Lst. 1: in-context approximation of a continuous ``f: [0,1]^d_in -> R^d_out``.

    Token dim ``1 + d_in + d_out``. Token 0 is the query ``[q; 0]``; every later token is a cell ``[delta,
    l_1..l_d_in, f(cell)]`` (see :func:`continuous_prompt`). The output at the last token is ``f(cell)`` of
    the cell containing ``q`` (App. B: error <= ``delta L sqrt(d_in) / 2`` for an ``L``-Lipschitz ``f``).

    Args:
        d_in, d_out: dimensions of ``f``.
        variant: the conditional implementation (one of ``IFELSE_VARIANTS``).
        mu: step sharpness (queries within ``1/mu`` above a cell's lower bound are blended).
        lam: the large constant of the ReLU conditionals (``> max |f|``).
    """
    inp = Input(1 + d_in + d_out, lower=[0] * (1 + d_in) + [None] * d_out, name="token")
    ctr = LinState(f_constant(inp, 1), 1, 1, init_state=0, name="ctr")  # = 1 at the query
    is_query = f_smaller(ctr, Fraction(3, 2), mu)
    x = LinState(
        ifelse(variant, broadcast(is_query, d_in), inp[:d_in], None, nonneg=True, lam=lam, mu=mu),
        SparseMatrix.eye(d_in),
        SparseMatrix.eye(d_in),
        name="query",
    )
    lb = inp[1 : 1 + d_in]
    ub = lb + broadcast(inp[0], d_in)
    bump = f_bump(x, lb, ub, mu)
    in_cell = f_larger(f_sum(bump), d_in - HALF, mu)
    icp = f_and(in_cell, f_larger(ctr, Fraction(3, 2), mu), mu)
    # Re-snap the condition before it meets ``lam`` (the reference's ``f_larger(icp, 1/2)``). ``icp`` comes out
    # of three nested steps whose compiled (fused) weights reach ``mu^3``, so in float64 it is 1 only up to
    # ~1e-11; Eq. (7) multiplies that error by ``lam = 1e10`` (0.25 at cell centres, issue 15). One more step
    # maps 1 +- 1e-11 to 1 with weights of size ``mu``, whose float64 products are exact integers.
    upd = ifelse(variant, broadcast(f_larger(icp, HALF, mu), d_out), inp[1 + d_in :], None, lam=lam, mu=mu)
    y = LinState(upd, SparseMatrix.eye(d_out), SparseMatrix.eye(d_out), name="y")
    return Program(y, name=f"continuous_{d_in}to{d_out}_{variant}")


def continuous_prompt(
    f: Callable[[np.ndarray], Any], d_in: int, d_out: int, N: int, query: Sequence[float] | None = None
) -> np.ndarray:
    """The prompt of Lst. 1 (query first): ``[1 + N^d_in, 1 + d_in + d_out]``.

    Cells in ``itertools.product`` order (last coordinate fastest); each row is ``[1/N, i_1/N, ...,
    f(centre)]`` with ``centre = (i + 1/2) / N``. ``query=None`` leaves the query row zero (fill row 0 later).
    """
    rows = [np.zeros(1 + d_in + d_out)]
    if query is not None:
        rows[0][:d_in] = np.asarray(query, dtype=float)
    for idx in itertools.product(range(N), repeat=d_in):
        ii = np.asarray(idx, dtype=float)
        val = np.asarray(f((ii + 0.5) / N), dtype=float).reshape(d_out)
        rows.append(np.concatenate([[1.0 / N], ii / N, val]))
    return np.stack(rows)


def continuous_error_bound(lipschitz: float, d_in: int, N: int) -> float:
    """App. B: ``||f(q) - f(centre)||_2 <= delta L sqrt(d_in) / 2`` with ``delta = 1/N``."""
    return lipschitz * np.sqrt(d_in) / (2 * N)


def token_program(
    n: int,
    variant: str = "multiplicative_optimized",
    counter: str = "cyclic",
    mu: Any = MU,
    lam: Any = LAMBDA,
) -> Program:
    """Lst. 2: in-context lookup of a token map ``V^n -> V^n`` given as (key, value) pairs.

    Input: token ids (dim 1, non-negative): the query ``q_1..q_n``, then pairs ``k_1..k_n v_1..v_n``. The last
    ``n`` outputs are the value of the key equal to the query (0s if none). Keys must be unique.

    Args:
        n: key/value length.
        variant: conditional implementation (``IFELSE_VARIANTS``).
        counter: ``"cyclic"`` (exact one-hot counters, the default) or ``"rotation"`` (the paper's App. F.7 form;
            positions are then tested with ``f_and(f_larger(mod, i - 1/2), f_smaller(mod, i + 1/2))``).
        mu, lam: step sharpness and conditional constant (``lam`` must exceed the token ids and the length).
    """
    inp = Input(1, lower=0, name="token")

    def cond(c: Variable, t: Variable | None, f: Variable | None = None) -> Variable:
        return ifelse(variant, c, t, f, nonneg=True, lam=lam, mu=mu)

    t = LinState(f_constant(inp, 1), 1, 1, init_state=-1, name="t")  # 0-based position
    mod_n, hot_n = f_modulo_counter(inp, n, counter, mu, return_onehot=True)
    mod_2n, hot_2n = f_modulo_counter(inp, 2 * n, counter, mu, return_onehot=True)
    if counter == "cyclic":
        eq = [hot_n[i] for i in range(n)]
        is_compare = f_sum(hot_2n[n : 2 * n])
    else:
        eq = [f_and(f_larger(mod_n, i - HALF, mu), f_smaller(mod_n, i + HALF, mu), mu) for i in range(n)]
        is_compare = f_larger(mod_2n, n - HALF, mu)
    is_prompt = f_larger(t, n - HALF, mu)
    is_copy = f_and(is_prompt, f_not(is_compare), mu)
    first_copy = f_and(is_copy, eq[0], mu)
    not_prompt_in = cond(f_not(is_prompt), inp)
    q = LinState(
        Concat([cond(eq[i], not_prompt_in) for i in range(n)]),
        SparseMatrix.eye(n),
        SparseMatrix.eye(n),
        name="query",
    )
    cor = _sum([cond(eq[i], q[i]) for i in range(n)])
    matching = f_and(f_and(f_larger(inp, cor - HALF, mu), f_smaller(inp, cor + HALF, mu), mu), is_compare, mu)
    shift = SparseMatrix.from_entries((n + 1, n + 1), [(i, i + 1, 1) for i in range(n)])
    e_last = SparseMatrix.from_entries((n + 1, 1), [(n, 0, 1)])
    buffer = LinState(matching, shift, e_last, name="match_buffer")
    all_match = f_larger(f_sum(buffer[:n]), n - HALF, mu)
    started_on = LinState(cond(f_and(all_match, first_copy, mu), t), 1, 1, name="started_on")
    copy_on = f_and(is_copy, f_smaller(t, started_on + n - HALF, mu), mu)
    regs = [LinState(cond(f_and(copy_on, eq[i], mu), inp), 1, 1, name=f"reg{i}") for i in range(n)]
    out = _sum([cond(eq[i], regs[i]) for i in range(n)])
    return Program(out, name=f"token_n{n}_{variant}")


def _sum(vs: list[Variable]) -> Variable:
    return (
        vs[0]
        if len(vs) == 1
        else Linear(Concat(vs), SparseMatrix((1, len(vs)), (tuple((i, 1) for i in range(len(vs))),)))
    )


def token_prompt(query: Sequence[int], pairs: Any) -> np.ndarray:
    """The input of Lst. 2, ``[n + 2 n M, 1]``: the query then every ``key, value`` pair (a dict or a list of
    pairs; keys must be unique)."""
    items = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
    keys = [tuple(k) for k, _ in items]
    if len(set(keys)) != len(keys):
        raise ValueError("keys must be unique")
    n = len(query)
    seq = list(query)
    for k, v in items:
        if len(k) != n or len(v) != n:
            raise ValueError(f"every key and value must have length {n}")
        seq += list(k) + list(v)
    return np.asarray(seq, dtype=np.int64).reshape(-1, 1)


def token_answer(outputs: Any, n: int) -> list:
    """The answer of Lst. 2: the last ``n`` outputs (rounded to ints for float outputs)."""
    last = np.asarray(outputs)[-n:].reshape(-1)
    return [
        int(v)
        if isinstance(v, (int, np.integer)) or getattr(v, "denominator", 0) == 1
        else int(round(float(v)))
        for v in last
    ]


def random_token_map(n: int, num_pairs: int, vocab: int, rng: np.random.Generator) -> dict[tuple, tuple]:
    """``num_pairs`` random distinct keys in ``{0..vocab-1}^n`` with random values."""
    keys: set[tuple] = set()
    while len(keys) < num_pairs:
        keys.add(tuple(int(v) for v in rng.integers(0, vocab, n)))
    return {
        k: tuple(int(v) for v in rng.integers(0, vocab, n)) for k in sorted(keys, key=lambda _: rng.random())
    }
