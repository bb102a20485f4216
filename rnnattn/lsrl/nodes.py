"""The LSRL language: six node types and their operator sugar (Petrov et al. 2024, §3).

Column-vector convention: a node of dimension ``d`` produces ``x_t in R^d`` at every token ``t``. Matrices are
stored as ``out x in`` (``y = A x + b``). A program is the graph reachable from its output node through
``.inputs``; nodes are ordinary immutable-by-convention Python values, so programs are built by calling
functions.

| node | per-token semantics |
|---|---|
| ``Input(dim)`` | ``x_t`` |
| ``Linear(x, A, b)`` | ``A x_t + b`` |
| ``Slice(x, a, b)`` | ``x_t[a:b]`` (a ``Linear`` with a selector matrix) |
| ``Concat([v1..vk])`` | ``[v1_t; ...; vk_t]`` |
| ``ReLU(x)`` | ``max(0, x_t)`` |
| ``LinState(x, A, B, s0, b)`` | ``s_t = A s_{t-1} + B x_t + b``, ``s_0 = s0``; outputs ``s_t`` (Eq. 3) |
| ``Multiplicative(x)`` | ``x_t[:d/2] * x_t[d/2:]`` (elementwise; ``d`` even) |
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ..limits import MAX_LSRL_DIM
from .numeric import Number, SparseMatrix, as_vector, canonical, is_symbolic

_ids = itertools.count()


class LSRLValidationError(ValueError):
    """A program uses unsupported constructs. ``issues`` lists ``(node, reason)`` pairs."""

    def __init__(self, issues: Sequence[tuple[Variable | None, str]]) -> None:
        self.issues = list(issues)
        parts = [f"{n.name if n is not None else '<program>'}: {r}" for n, r in self.issues]
        super().__init__("invalid LSRL program: " + "; ".join(parts))  # one line: CLI errors show one line


def _node(x: Any, owner: str) -> Variable:
    """``x`` if it is an LSRL node, else :class:`LSRLValidationError` (before anything reads ``x.dim``)."""
    if not isinstance(x, Variable):
        raise LSRLValidationError([(None, f"{owner}: inputs must be LSRL nodes, got {type(x).__name__}")])
    return x


def _check_dim(owner: str, dim: Any) -> int:
    """Dimensions are ints in ``[1, MAX_LSRL_DIM]`` (checked before anything of that size is allocated)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise LSRLValidationError([(None, f"{owner}: dimension must be an int, got {type(dim).__name__}")])
    if not 1 <= int(dim) <= MAX_LSRL_DIM:
        raise LSRLValidationError(
            [(None, f"{owner}: dimension {int(dim):,} is outside [1, {MAX_LSRL_DIM:,}] (rnnattn.limits.MAX_LSRL_DIM)")]
        )
    return int(dim)


def _is_scalar(c: Any) -> bool:
    try:
        canonical(c)
        return not hasattr(c, "__len__")
    except (ValueError, TypeError):
        return False


class Variable:
    """Base class of every LSRL node.

    Attributes:
        inputs: the input nodes (a tuple; ``Concat`` may repeat a node).
        dim: output dimension.
        name: a label used by the display and by compiled-lane labels.
        uid: a creation counter (stable ordering, ids for display).
    """

    kind: str = "Variable"

    def __init__(self, inputs: Sequence[Variable], dim: int, name: str | None = None) -> None:
        dim = _check_dim(type(self).__name__, dim)
        for v in inputs:
            _node(v, type(self).__name__)
        self.inputs: tuple[Variable, ...] = tuple(inputs)
        self.dim = dim
        self.uid = next(_ids)
        self.name = name or f"{self.kind}{self.uid}"

    # ``==`` keeps identity semantics so nodes can be dict keys; use ``sugar.f_eq`` for comparisons.
    __hash__ = object.__hash__

    def named(self, name: str) -> Variable:
        """Sets the display name and returns ``self`` (for chaining)."""
        self.name = name
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"

    # ---- operator sugar, all lowered to Linear/Concat
    # -----------------------------------------------------------
    def __add__(self, other: Any) -> Variable:
        if isinstance(other, Variable):
            if other.dim != self.dim:
                raise ValueError(f"cannot add dims {self.dim} and {other.dim} (no broadcasting in LSRL)")
            n = self.dim
            a = SparseMatrix.from_entries(
                (n, 2 * n), [(i, i, 1) for i in range(n)] + [(i, n + i, 1) for i in range(n)]
            )
            return Linear(Concat([self, other]), a)
        return Linear(self, SparseMatrix.eye(self.dim), as_vector(other, self.dim, "added constant"))

    __radd__ = __add__

    def __neg__(self) -> Variable:
        return Linear(self, SparseMatrix.eye(self.dim, -1))

    def __sub__(self, other: Any) -> Variable:
        if isinstance(other, Variable):
            if other.dim != self.dim:
                raise ValueError(f"cannot subtract dims {self.dim} and {other.dim} (no broadcasting in LSRL)")
            n = self.dim
            a = SparseMatrix.from_entries(
                (n, 2 * n), [(i, i, 1) for i in range(n)] + [(i, n + i, -1) for i in range(n)]
            )
            return Linear(Concat([self, other]), a)
        c = as_vector(other, self.dim, "subtracted constant")
        return Linear(self, SparseMatrix.eye(self.dim), tuple(-x for x in c))

    def __rsub__(self, other: Any) -> Variable:
        return Linear(self, SparseMatrix.eye(self.dim, -1), as_vector(other, self.dim, "constant"))

    def __mul__(self, c: Any) -> Variable:
        if isinstance(c, Variable):
            raise TypeError("v * w of two Variables is not linear: use Multiplicative(Concat([v, w]))")
        if not _is_scalar(c):
            raise TypeError("only scalar multiplication is sugar; use Linear for matrices")
        return Linear(self, SparseMatrix.eye(self.dim, c))

    __rmul__ = __mul__

    def __truediv__(self, c: Any) -> Variable:
        if isinstance(c, Variable) or not _is_scalar(c):
            raise TypeError("only division by a scalar is supported")
        c = canonical(c)
        if c == 0:
            raise ValueError("division by zero")
        inv = 1 / c if isinstance(c, float) or is_symbolic(c) else Fraction(1) / Fraction(c)
        return self * inv

    def __getitem__(self, key: int | slice) -> Variable:
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise ValueError("LSRL slices do not support a step")
            start, stop, _ = key.indices(self.dim)
            return Slice(self, start, stop)
        if isinstance(key, int):
            i = key + self.dim if key < 0 else key
            if not 0 <= i < self.dim:
                raise IndexError(f"index {key} out of range for dim {self.dim}")
            return Slice(self, i, i + 1)
        raise TypeError(f"unsupported index {key!r}")


class Input(Variable):
    """The program input ``x_t`` (exactly one per program).

    Args:
        dim: input dimension.
        lower: optional per-component (or scalar) lower bounds the user guarantees, e.g. ``0`` for token ids.
            The compiler uses them for sign analysis (a ReLU of a non-negative value is the identity).
        upper: optional upper bounds (same format).
    """

    kind = "Input"

    def __init__(self, dim: int, lower: Any = None, upper: Any = None, name: str | None = None) -> None:
        super().__init__((), dim, name or "input")  # checks dim <= MAX_LSRL_DIM before the bounds are built
        self.lower = _bounds(lower, dim)
        self.upper = _bounds(upper, dim)


def _bounds(b: Any, dim: int) -> tuple[Number | None, ...]:
    if b is None:
        return (None,) * dim
    if _is_scalar(b):
        return (canonical(b),) * dim
    vals = list(b)
    if len(vals) != dim:
        raise ValueError(f"expected {dim} bounds, got {len(vals)}")
    return tuple(None if v is None else canonical(v) for v in vals)


class Linear(Variable):
    """``y_t = A x_t + b``.

    Args:
        input: the node ``x`` (dim ``n``).
        A: ``m x n`` matrix (array-like, scipy.sparse, sympy or :class:`SparseMatrix`).
        b: bias (scalar broadcast or ``m`` values); default 0.
    """

    kind = "Linear"

    def __init__(self, input: Variable, A: Any, b: Any = None, name: str | None = None) -> None:
        _node(input, type(self).__name__)
        A = SparseMatrix.from_any(A)
        if A.shape[1] != input.dim:
            raise ValueError(f"Linear: A has {A.shape[1]} columns but the input has dim {input.dim}")
        super().__init__((input,), A.shape[0], name)
        self.A = A
        self.b: tuple[Number, ...] = as_vector(0 if b is None else b, A.shape[0], "Linear bias")

    @property
    def input(self) -> Variable:
        return self.inputs[0]


class Slice(Linear):
    """``y_t = x_t[start:end]`` — a :class:`Linear` with a 0/1 selector matrix."""

    kind = "Slice"

    def __init__(self, input: Variable, start: int, end: int, name: str | None = None) -> None:
        _node(input, "Slice")
        if not 0 <= start < end <= input.dim:
            raise ValueError(f"Slice: need 0 <= start < end <= {input.dim}, got [{start}, {end})")
        sel = SparseMatrix((end - start, input.dim), tuple(((start + i, 1),) for i in range(end - start)))
        super().__init__(input, sel, None, name)
        self.start, self.end = start, end


class Concat(Variable):
    """``y_t = [v1_t; ...; vk_t]`` (the only multi-input node; the same node may appear several times)."""

    kind = "Concat"

    def __init__(self, inputs: Sequence[Variable], name: str | None = None) -> None:
        inputs = [_node(v, "Concat") for v in inputs]
        if not inputs:
            raise ValueError("Concat needs at least one input")
        super().__init__(inputs, sum(v.dim for v in inputs if isinstance(v, Variable)), name)


class ReLU(Variable):
    """``y_t = max(0, x_t)`` elementwise."""

    kind = "ReLU"

    def __init__(self, input: Variable, name: str | None = None) -> None:
        _node(input, "ReLU")
        super().__init__((input,), input.dim, name)

    @property
    def input(self) -> Variable:
        return self.inputs[0]


class LinState(Variable):
    """The linear state ``s_t = A s_{t-1} + B x_t + bias`` with ``s_0 = init_state``; outputs the updated
    ``s_t``.

    This is the recurrence of a Linear RNN layer (paper Eq. 3).

    Args:
        input: ``x`` (dim ``n``).
        A: ``d x d`` transition.
        B: ``d x n`` input matrix.
        init_state: ``s_0`` (scalar broadcast or ``d`` values); default 0.
        bias: ``d`` values (scalar broadcast); default 0.
    """

    kind = "LinState"

    def __init__(
        self,
        input: Variable,
        A: Any,
        B: Any,
        init_state: Any = None,
        bias: Any = None,
        name: str | None = None,
    ) -> None:
        _node(input, "LinState")
        B = (
            SparseMatrix.from_any(B)
            if not _is_scalar(B)
            else SparseMatrix.from_any(B, (input.dim, input.dim))
        )
        d = B.shape[0]
        A = SparseMatrix.from_any(A, (d, d)) if _is_scalar(A) else SparseMatrix.from_any(A)
        if A.shape != (d, d):
            raise ValueError(f"LinState: A must be {d}x{d} (B has {d} rows), got {A.shape}")
        if B.shape[1] != input.dim:
            raise ValueError(f"LinState: B has {B.shape[1]} columns but the input has dim {input.dim}")
        super().__init__((input,), d, name)
        self.A, self.B = A, B
        self.init_state = as_vector(0 if init_state is None else init_state, d, "init_state")
        self.bias = as_vector(0 if bias is None else bias, d, "LinState bias")

    @property
    def input(self) -> Variable:
        return self.inputs[0]


class Multiplicative(Variable):
    """``y_t = x_t[:d/2] * x_t[d/2:]`` elementwise (multiplicative gating; requires an even input dim)."""

    kind = "Multiplicative"

    def __init__(self, input: Variable, name: str | None = None) -> None:
        if _node(input, "Multiplicative").dim % 2:
            raise ValueError(f"Multiplicative: input dim must be even, got {input.dim}")
        super().__init__((input,), input.dim // 2, name)

    @property
    def input(self) -> Variable:
        return self.inputs[0]


Multi = Multiplicative

NODE_TYPES: tuple[type, ...] = (Input, Linear, Slice, Concat, ReLU, LinState, Multiplicative)
