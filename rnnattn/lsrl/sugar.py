"""The LSRL library: step functions, comparisons, logic, conditionals and counters (paper §3, App. F).

``mu`` is the step sharpness (default 1000: ``f_step`` rises from 0 to 1 on ``[0, 1/mu]``); ``lam`` is the
large constant of the ReLU conditionals (default ``10**10``), which must exceed every ``|t|``, ``|f|`` they
select. Constants are kept exact (``Fraction``) so that the exact backend evaluates the library without
rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from .nodes import Concat, Linear, LinState, Multiplicative, ReLU, Variable
from .numeric import SparseMatrix, as_vector, canonical

MU = 1000
LAMBDA = 10**10

#: Names of the conditional implementations (used by the programs and the noise study).
IFELSE_VARIANTS = (
    "direct",
    "optimized",
    "step",
    "step_optimized",
    "multiplicative",
    "multiplicative_optimized",
)


def _exact(c: Any) -> Fraction | int:
    v = canonical(c)
    return Fraction(v) if isinstance(v, float) else v


def _check_mu(mu: Any) -> Fraction | int:
    if isinstance(mu, bool) or not isinstance(mu, (int, float, Fraction)) or not mu > 0:
        raise ValueError(f"the step sharpness mu must be a positive number, got {mu!r}")
    return _exact(mu)


def _like(x: Variable, y: Any) -> Variable | tuple:
    """``y`` as something addable to ``x``: a Variable of the same dim or a constant vector."""
    if isinstance(y, Variable):
        if y.dim != x.dim:
            raise ValueError(f"dimension mismatch: {x.dim} vs {y.dim}")
        return y
    return as_vector(y, x.dim)


def broadcast(v: Variable, dim: int) -> Variable:
    """Up-projects a 1-dim variable to ``dim`` copies (``Linear(ones(dim, 1))``); identity if already
    ``dim``."""
    if v.dim == dim:
        return v
    if v.dim != 1:
        raise ValueError(f"cannot broadcast dim {v.dim} to {dim}")
    return Linear(v, SparseMatrix((dim, 1), tuple(((0, 1),) for _ in range(dim))))


def f_sum(v: Variable) -> Variable:
    """``1^T v`` (a 1-dim Linear)."""
    return Linear(v, SparseMatrix((1, v.dim), (tuple((j, 1) for j in range(v.dim)),)))


def f_constant(input: Variable, value: Any) -> Variable:
    """A constant hanging off ``input``: ``Linear(A=0, b=value)`` (dim = len(value), a scalar gives dim 1)."""
    vals = as_vector(value)
    return Linear(input, SparseMatrix.zeros(len(vals), input.dim), vals)


def f_step(x: Variable, mu: Any = MU) -> Variable:
    """``ReLU(mu x) - mu ReLU(x - 1/mu)``: 0 for ``x <= 0``, ``mu x`` on ``[0, 1/mu]``, 1 for ``x >= 1/mu``."""
    mu = _check_mu(mu)
    return ReLU(x * mu) - ReLU(x - Fraction(1) / mu) * mu


def f_bump(x: Variable, lower: Any, upper: Any, mu: Any = MU) -> Variable:
    """``f_step(x - l) - f_step(x - u)``: 0 at ``x <= l``, 1 on ``[l + 1/mu, u]``, 0 again from ``u + 1/mu``."""
    lo, up = _like(x, lower), _like(x, upper)
    if isinstance(lo, Variable) != isinstance(up, Variable):
        raise ValueError("f_bump: lower and upper must both be numbers or both Variables")
    return f_step(x - lo, mu) - f_step(x - up, mu)


def f_larger(x: Variable, y: Any, mu: Any = MU) -> Variable:
    """``f_step(x - y)``: 1 if ``x >= y + 1/mu``, 0 if ``x <= y``."""
    return f_step(x - _like(x, y), mu)


def f_smaller(x: Variable, y: Any, mu: Any = MU) -> Variable:
    """``f_step(y - x)``: 1 if ``x <= y - 1/mu``, 0 if ``x >= y``."""
    y = _like(x, y)
    return f_step((y - x) if isinstance(y, Variable) else (-x + y), mu)


def f_eq(x: Variable, y: Any, mu: Any = MU) -> Variable:
    """``f_step(1 - f_step(x-y) - f_step(y-x))``: exact when ``|x - y|`` is 0 or ``>= 1/mu``."""
    y = _like(x, y)
    d = x - y
    return f_step(1 - f_step(d, mu) - f_step(-d, mu), mu)


def f_neq(x: Variable, y: Any, mu: Any = MU) -> Variable:
    """``f_step(f_step(x-y) + f_step(y-x))``."""
    d = x - _like(x, y)
    return f_step(f_step(d, mu) + f_step(-d, mu), mu)


def f_not(x: Variable) -> Variable:
    """``1 - x`` (for ``x in {0, 1}``)."""
    return 1 - x


def f_and(x: Variable, y: Variable, mu: Any = MU) -> Variable:
    """``ReLU(f_step(x) + f_step(y) - 1)``."""
    return ReLU(f_step(x, mu) + f_step(y, mu) - 1)


def f_or(x: Variable, y: Variable, mu: Any = MU) -> Variable:
    """``f_step(x + y)``."""
    return f_step(x + y, mu)


def _check_branches(c: Variable, t: Variable | None, f: Variable | None) -> tuple[Variable, int]:
    if t is None and f is None:
        raise ValueError("ifelse needs at least one branch")
    dim = (t if t is not None else f).dim
    if t is not None and f is not None and t.dim != f.dim:
        raise ValueError(f"ifelse branches have different dims {t.dim} and {f.dim}")
    return broadcast(c, dim), dim


def _relu_select(gate: Variable, v: Variable, lam: Any, nonneg: bool) -> Variable:
    """``ReLU(-lam*gate + v) - ReLU(-lam*gate - v)`` = ``v`` if gate == 0, 0 if gate >= 1 (``|v| < lam``)."""
    lam = _exact(lam)
    pos = ReLU(gate * (-lam) + v)
    return pos if nonneg else pos - ReLU(gate * (-lam) - v)


def f_ifelse(c: Variable, t: Variable | None, f: Variable | None, lam: Any = LAMBDA) -> Variable:
    """Direct conditional, paper Eq. (7): ``t`` if ``c == 1``, ``f`` if ``c == 0``.

    ``ReLU(-lam c + f) + ReLU(-lam (1-c) + t) - ReLU(-lam c - f) - ReLU(-lam (1-c) - t)``; a missing branch is
    0. Needs ``c`` exactly 0 or 1 and ``lam > max(|t|, |f|)``. ``c`` of dim 1 is broadcast.
    """
    c, _ = _check_branches(c, t, f)
    parts = []
    if f is not None:
        parts.append(_relu_select(c, f, lam, False))
    if t is not None:
        parts.append(_relu_select(1 - c, t, lam, False))
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


def f_ifelse_optimized(
    c: Variable, t: Variable | None, f: Variable | None, lam: Any = LAMBDA, nonneg: bool = False
) -> Variable:
    """Eq. (7) with the dead terms removed: a missing branch costs nothing, and ``nonneg=True`` (caller
    guarantees the selected values are >= 0) keeps one ReLU per branch: ``ReLU(-lam (1-c) + t)``."""
    c, _ = _check_branches(c, t, f)
    parts = []
    if f is not None:
        parts.append(_relu_select(c, f, lam, nonneg))
    if t is not None:
        parts.append(_relu_select(1 - c, t, lam, nonneg))
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


def f_ifelse_step(
    c: Variable, t: Variable | None, f: Variable | None, lam: Any = LAMBDA, mu: Any = MU, nonneg: bool = False
) -> Variable:
    """Step-based conditional, paper Eq. (9): the gates are ``lam - lam f_step(c - 1/2)`` (for ``t``) and
    ``lam - lam f_step(1/2 - c)`` (for ``f``), so ``c`` only needs to be within ``1/2 - 1/mu`` of 0 or 1.
    ``nonneg=True`` gives the one-ReLU-per-branch "step_optimized" form."""
    c, _ = _check_branches(c, t, f)
    half = Fraction(1, 2)
    parts = []
    if f is not None:
        parts.append(_relu_select(1 - f_step(half - c, mu), f, lam, nonneg))
    if t is not None:
        parts.append(_relu_select(1 - f_step(c - half, mu), t, lam, nonneg))
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


def f_ifelse_mul(c: Variable, t: Variable | None, f: Variable | None) -> Variable:
    """Multiplicative conditional, paper Eq. (10): ``c * t + (1 - c) * f`` with one ``Multiplicative`` node.

    With a missing branch: ``Multi([c; t])`` or ``Multi([1-c; f])`` ("multiplicative_optimized")."""
    c, dim = _check_branches(c, t, f)
    if t is None:
        return Multiplicative(Concat([1 - c, f]))
    if f is None:
        return Multiplicative(Concat([c, t]))
    prod = Multiplicative(Concat([c, 1 - c, t, f]))
    return Linear(
        prod,
        SparseMatrix.from_entries(
            (dim, 2 * dim), [(i, i, 1) for i in range(dim)] + [(i, dim + i, 1) for i in range(dim)]
        ),
    )


def ifelse(
    variant: str,
    c: Variable,
    t: Variable | None,
    f: Variable | None,
    *,
    nonneg: bool = False,
    lam: Any = LAMBDA,
    mu: Any = MU,
) -> Variable:
    """Dispatches to one of :data:`IFELSE_VARIANTS`.

    ``direct`` = Eq. (7) (a missing branch is dropped, as in the reference); ``optimized`` = Eq. (7) with one
    ReLU per branch when ``nonneg``; ``step``/``step_optimized`` = Eq. (9); ``multiplicative`` = Eq. (10) with
    both branches (a missing one is a constant 0); ``multiplicative_optimized`` = Eq. (10) without the missing
    branch.
    """
    if variant == "direct":
        return f_ifelse(c, t, f, lam)
    if variant == "optimized":
        return f_ifelse_optimized(c, t, f, lam, nonneg)
    if variant == "step":
        return f_ifelse_step(c, t, f, lam, mu, False)
    if variant == "step_optimized":
        return f_ifelse_step(c, t, f, lam, mu, nonneg)
    if variant == "multiplicative":
        ref = t if t is not None else f
        zero = Linear(ref, SparseMatrix.zeros(ref.dim, ref.dim))
        return f_ifelse_mul(c, t if t is not None else zero, f if f is not None else zero)
    if variant == "multiplicative_optimized":
        return f_ifelse_mul(c, t, f)
    raise ValueError(f"unknown f_ifelse variant {variant!r}; choose from {IFELSE_VARIANTS}")


def f_ifeq(
    x: Variable, y: Any, t: Variable | None, f: Variable | None, mu: Any = MU, lam: Any = LAMBDA
) -> Variable:
    """``f_ifelse(f_eq(x, y), t, f)``."""
    return f_ifelse(f_eq(x, y, mu), t, f, lam)


def f_relu_identity(x: Variable) -> Variable:
    """``ReLU(x) - ReLU(-x) = x`` (App. F.6): passes a signed value through a ReLU layer."""
    return ReLU(x) - ReLU(-x)


def f_modulo_counter(
    x: Variable, d: int, method: str = "cyclic", mu: Any = MU, return_onehot: bool = False
) -> Any:
    """A counter outputting ``t mod d`` at token ``t = 0, 1, ...`` (App. F.7).

    Methods:
        ``"cyclic"`` (default): ``LinState`` with the ``d x d`` cyclic shift ``P`` (``P e_i = e_{i+1 mod d}``),
            ``s_0 = e_{d-1}``, so ``s_t = e_{t mod d}`` is an exact one-hot and the value is ``[0..d-1] . s_t``. Integer
            weights: exact in float64 *and* exact mode, no ReLU, no ``d <= 70`` limit; costs ``d`` state units instead
            of 2 (but saves the ``2d`` ReLUs of the readout). This is our answer to the irrationality of ``cos(2pi/d)``:
            no rational rotation has order ``d`` for ``d not in {1, 2, 4}``, and a rounded rotation's exact powers have
            denominators growing like ``2^{53 t}``.
        ``"rotation"``: the paper's 2-d rotation ``R`` by ``2pi/d`` with ``s_0 = R^{-1} e_1``; the one-hot is
            ``f_larger(E s, cos(pi/d))`` with rows ``(R^i e_1)^T`` (needs ``1 - cos(pi/d) >= 1/mu``, i.e. ``d
            <= 70`` at ``mu = 1000``). Its constants are floats; the exact backend uses their exact binary
            values, which keeps the thresholded one-hot correct (the rotation drifts by ~1e-16 per step).

    Args:
        x: any node (only used to anchor the counter in the graph).
        d: the modulus (>= 1).
        method: ``"cyclic"`` or ``"rotation"``.
        mu: step sharpness of the rotation readout.
        return_onehot: also return the ``d``-dim one-hot of ``t mod d``.

    Returns:
        The 1-dim counter value, or ``(value, onehot)``.
    """
    if int(d) != d or d < 1:
        raise ValueError(f"modulus must be a positive integer, got {d}")
    d = int(d)
    zero_b = SparseMatrix.zeros(d if method == "cyclic" else 2, x.dim)
    if method == "cyclic":
        P = SparseMatrix.from_entries((d, d), [((i + 1) % d, i, 1) for i in range(d)])
        init = [0] * d
        init[d - 1] = 1
        onehot = LinState(x, P, zero_b, init_state=init, name=f"mod{d}_onehot")
    elif method == "rotation":
        if 1 - math.cos(math.pi / d) < 1 / float(mu):
            raise ValueError(f"rotation counter needs 1 - cos(pi/d) >= 1/mu; d={d} is too large for mu={mu}")
        th = 2 * math.pi / d
        c, s = math.cos(th), math.sin(th)
        R = [[c, -s], [s, c]]
        state = LinState(x, R, zero_b, init_state=[c, -s], name=f"mod{d}_rotation")
        E = [[math.cos(i * th), math.sin(i * th)] for i in range(d)]
        onehot = f_larger(Linear(state, E), math.cos(math.pi / d), mu)
    else:
        raise ValueError(f"unknown counter method {method!r}; use 'cyclic' or 'rotation'")
    value = Linear(onehot, SparseMatrix((1, d), (tuple((i, i) for i in range(1, d)),)), name=f"mod{d}")
    return (value, onehot) if return_onehot else value


def counter(x: Variable, start: int = 0) -> Variable:
    """``s_t = s_{t-1} + 1`` with ``s_0 = start - 1``: outputs ``start + t`` at token ``t``."""
    return LinState(f_constant(x, 1), 1, 1, init_state=start - 1, name="counter")


LIBRARY: dict[str, Callable[..., Any]] = {
    name: obj
    for name, obj in globals().items()
    if name.startswith("f_") or name in ("ifelse", "counter", "broadcast")
}
