"""Numeric backends for LSRL: float64 and exact rational arithmetic.

Programs store their constants as plain Python numbers (``int``, ``fractions.Fraction`` or ``float``) inside
mode-neutral :class:`SparseMatrix` / vector tuples. A *mode* is chosen explicitly by every consumer
(interpreter, compiler, runner) — there is no global mode (the reference's global ``GLOBAL_MATRIX_MODE``
leaked between tests):

* ``Mode.FLOAT64``: every constant becomes a Python/NumPy float64.
* ``Mode.EXACT``: every constant becomes an exact rational. Floats are converted to the exact binary rational
  they denote (``Fraction(0.1) == 3602879701896397/36028797018963968``), as the reference's
  ``sympy.Rational(c)`` does. Integral values are kept as Python ``int`` (faster than ``Fraction``).

Symbolic constants: a sympy number that is not rational (``sympy.pi``, ``sympy.sqrt(2)``, ``cos(pi/7)``; real,
finite, no free symbols) is kept as the sympy expression itself. Exact mode then computes with it symbolically
(``Input(1) * sympy.pi`` gives ``2*pi`` for the input 2, as the reference's symbolic mode does); float64 mode
uses its float value. Rational sympy results are turned back into ``int`` / ``Fraction`` (:func:`norm_exact`), so
programs without irrational constants never touch sympy. Plain Python floats (``math.pi``, and the rotation
counter's ``cos(2π/d)``) stay binary rationals in exact mode. Comparisons (ReLU, sign analysis) of symbolic
values rely on sympy deciding the sign of a number by numerical evaluation.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

import numpy as np

Number = int | Fraction | float  # or a sympy number (symbolic constants, see the module docstring)


#: Weights at least this large in magnitude are summed (with the bias) before the small ones when a compiled
#: float stage computes ``u = W z + c`` (see :func:`split_large`). The library's large constants (``mu^2 =
#: 1e6``, ``lam = 1e10``, ``lam * mu = 1e13``) multiply 0/1-valued conditions and are designed to cancel
#: exactly (``lam * c - lam = 0`` for ``c = 1``); summing them first keeps a small branch value ``t`` from being
#: rounded to the spacing of ``lam`` (``t + lam - lam``: errors ~1e-6 in float64, issue 15). ``mu = 1000``
#: stays in the small group: its products with O(1) values must not be separated from the O(1) terms they
#: are compared with.
LARGE_WEIGHT = 1e4


def split_large(W: Any) -> tuple[Any, Any]:
    """``W = W_large + W_small`` with ``W_large`` the entries ``|w| >= LARGE_WEIGHT`` (zero elsewhere).

    The one split used by both float runners: ``W`` is a scipy sparse matrix (the compiled program's float64
    runner) or a torch tensor (:class:`~rnnattn.lsrl.CompiledLSRL`); both spell the masked product ``multiply``."""
    big = W.multiply(abs(W) >= LARGE_WEIGHT)
    return big, W - big


class Mode(StrEnum):
    """Arithmetic used to evaluate a program or a compiled model."""

    FLOAT64 = "float64"
    EXACT = "exact"


def as_mode(mode: Mode | str) -> Mode:
    """Parses ``"float64"``/``"exact"`` (or a :class:`Mode`)."""
    try:
        return Mode(mode)
    except ValueError:
        raise ValueError(f"unknown LSRL numeric mode {mode!r}; use 'float64' or 'exact'") from None


def canonical(v: Any) -> Number:
    """Turns a user-supplied scalar into a mode-neutral Python number.

    ``int``/``bool``/numpy ints -> ``int``; ``Fraction``/sympy ``Rational`` -> ``Fraction`` (or ``int`` if
    integral); floats -> ``int`` if integral (and small enough to be exact), else ``float``.

    Raises:
        ValueError: for NaN, infinities, complex numbers and non-numbers.
    """
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else v
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"LSRL constants must be finite, got {f}")
        if f.is_integer() and abs(f) < 2**53:
            return int(f)
        return f
    if isinstance(v, numbers.Rational):  # sympy.Rational registers as numbers.Rational
        q = Fraction(int(v.numerator), int(v.denominator))
        return q.numerator if q.denominator == 1 else q
    if isinstance(v, numbers.Complex) and not isinstance(v, numbers.Real):
        raise ValueError(f"LSRL constants must be real, got {v!r}")
    if hasattr(v, "is_Rational") and v.is_Rational:  # sympy without numbers registration
        return canonical(Fraction(int(v.p), int(v.q)))
    if getattr(v, "is_Float", False):  # a sympy Float is a float, not a symbol
        return canonical(float(v))
    if hasattr(v, "evalf") and hasattr(v, "free_symbols"):  # sympy: pi, sqrt(2), cos(pi/7) stay symbolic
        if v.free_symbols or not v.is_number:
            raise ValueError(f"LSRL constants must be numbers, got the expression {v}")
        if v.is_real is not True or v.is_finite is not True:
            raise ValueError(f"LSRL constants must be real and finite, got {v}")
        return v
    if isinstance(v, numbers.Real):
        return canonical(float(v))
    raise ValueError(f"not a real number: {v!r}")


def to_mode(v: Number, mode: Mode) -> Number:
    """Converts a canonical number to the number type of ``mode`` (float, or int/Fraction)."""
    if mode is Mode.FLOAT64:
        return float(v)
    if is_symbolic(v):
        return v
    if isinstance(v, float):
        q = Fraction(v)
        return q.numerator if q.denominator == 1 else q
    return v


def norm_exact(q: Number) -> Number:
    """Returns an ``int`` for integral ``Fraction`` values (keeps exact arithmetic on the fast int path) and
    ``int`` / ``Fraction`` for rational sympy results (``2*pi - 2*pi`` is the int 0)."""
    t = type(q)
    if t is int:
        return q
    if t is Fraction:
        return q.numerator if q.denominator == 1 else q
    if getattr(q, "is_Rational", False):
        r = Fraction(int(q.p), int(q.q))
        return r.numerator if r.denominator == 1 else r
    return q


def is_symbolic(v: Any) -> bool:
    """True for a sympy number kept symbolically (see the module docstring)."""
    return not isinstance(v, (int, float, Fraction)) and hasattr(v, "free_symbols")


def as_vector(v: Any, dim: int | None = None, what: str = "vector") -> tuple[Number, ...]:
    """Canonicalises a scalar / sequence / array into a tuple of ``dim`` numbers (a scalar is broadcast)."""
    if isinstance(v, SparseMatrix):
        if v.shape[1] != 1:
            raise ValueError(f"{what}: expected a column, got shape {v.shape}")
        v = v.to_dense_list()
        v = [row[0] for row in v]
    if hasattr(v, "tolist") and not isinstance(v, (int, float, Fraction)):
        v = np.asarray(v).reshape(-1).tolist() if not _is_object_array(v) else list(np.asarray(v).reshape(-1))
    if isinstance(v, (list, tuple)):
        flat: list[Any] = []
        for e in v:
            if isinstance(e, (list, tuple)):
                flat.extend(e)
            else:
                flat.append(e)
        out = tuple(canonical(e) for e in flat)
        if dim is not None and len(out) != dim:
            raise ValueError(f"{what}: expected {dim} entries, got {len(out)}")
        return out
    if dim is None:
        return (canonical(v),)
    return (canonical(v),) * dim


def _is_object_array(v: Any) -> bool:
    return isinstance(v, np.ndarray) and v.dtype == object


@dataclass(frozen=True, eq=False)
class SparseMatrix:
    """A mode-neutral sparse matrix: ``rows[i]`` is a tuple of ``(column, value)`` with non-zero canonical
    values.

    Attributes:
        shape: ``(rows, cols)``.
        rows: per row, the non-zero entries sorted by column.
    """

    shape: tuple[int, int]
    rows: tuple[tuple[tuple[int, Number], ...], ...]

    @staticmethod
    def from_any(a: Any, shape: tuple[int, int] | None = None) -> SparseMatrix:
        """Builds a matrix from a SparseMatrix, nested lists, NumPy array, scipy.sparse or sympy matrix.

        A scalar with ``shape`` gives ``a * I`` if square-compatible (``shape[0] == shape[1]``).
        """
        if isinstance(a, SparseMatrix):
            m = a
        elif hasattr(a, "tocoo"):  # scipy.sparse
            coo = a.tocoo()
            ent: dict[int, dict[int, Number]] = {}
            for i, j, v in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=False):
                ent.setdefault(i, {})[j] = ent.get(i, {}).get(j, 0) + canonical(v)
            m = SparseMatrix._from_dict(tuple(coo.shape), ent)
        elif (
            hasattr(a, "tolist")
            and hasattr(a, "shape")
            and len(a.shape) == 2
            and not isinstance(a, np.ndarray)
        ):
            m = SparseMatrix.from_any([[canonical(e) for e in row] for row in a.tolist()])  # sympy Matrix
        elif (
            isinstance(a, (int, float, Fraction, np.number))
            or (isinstance(a, np.ndarray) and a.ndim == 0)
            or getattr(a, "is_number", False)  # a sympy number
        ):
            if shape is None or shape[0] != shape[1]:
                raise ValueError("a scalar matrix needs a square shape")
            c = canonical(a.item() if isinstance(a, np.ndarray) else a)
            m = SparseMatrix._from_dict(shape, {i: {i: c} for i in range(shape[0])} if c != 0 else {})
        else:
            arr = a if isinstance(a, (list, tuple)) else np.asarray(a)
            if isinstance(arr, np.ndarray):
                if arr.ndim == 1:
                    arr = arr.reshape(-1, 1)
                if arr.ndim != 2:
                    raise ValueError(f"matrix must be 2-D, got shape {arr.shape}")
                nrows, ncols = arr.shape
                vals = arr.tolist()
            else:
                vals = [
                    list(r) if isinstance(r, (list, tuple)) or hasattr(r, "__len__") else [r] for r in arr
                ]
                nrows = len(vals)
                ncols = len(vals[0]) if nrows else (shape[1] if shape else 0)
                if any(len(r) != ncols for r in vals):
                    raise ValueError("ragged matrix")
            ent = {}
            for i, row in enumerate(vals):
                for j, v in enumerate(row):
                    c = canonical(v)
                    if c != 0:
                        ent.setdefault(i, {})[j] = c
            m = SparseMatrix._from_dict((nrows, ncols), ent)
        if shape is not None and tuple(m.shape) != tuple(shape):
            raise ValueError(f"matrix shape {m.shape} does not match the expected {shape}")
        return m

    @staticmethod
    def _from_dict(shape: Sequence[int], ent: dict[int, dict[int, Number]]) -> SparseMatrix:
        rows = tuple(
            tuple(sorted((j, v) for j, v in ent.get(i, {}).items() if v != 0)) for i in range(int(shape[0]))
        )
        return SparseMatrix((int(shape[0]), int(shape[1])), rows)

    @staticmethod
    def from_entries(shape: tuple[int, int], entries: Iterable[tuple[int, int, Any]]) -> SparseMatrix:
        """Builds from ``(i, j, value)`` triples (duplicates are summed)."""
        ent: dict[int, dict[int, Number]] = {}
        for i, j, v in entries:
            r = ent.setdefault(i, {})
            r[j] = r.get(j, 0) + canonical(v)
        return SparseMatrix._from_dict(shape, ent)

    @staticmethod
    def eye(n: int, scale: Any = 1) -> SparseMatrix:
        c = canonical(scale)
        return SparseMatrix((n, n), tuple(((i, c),) if c != 0 else () for i in range(n)))

    @staticmethod
    def zeros(r: int, c: int) -> SparseMatrix:
        return SparseMatrix((r, c), tuple(() for _ in range(r)))

    @property
    def nnz(self) -> int:
        return sum(len(r) for r in self.rows)

    def entries(self) -> Iterator[tuple[int, int, Number]]:
        for i, row in enumerate(self.rows):
            for j, v in row:
                yield i, j, v

    def is_zero(self) -> bool:
        return self.nnz == 0

    def to_dense_list(self) -> list[list[Number]]:
        out: list[list[Number]] = [[0] * self.shape[1] for _ in range(self.shape[0])]
        for i, j, v in self.entries():
            out[i][j] = v
        return out

    def to_numpy(self) -> np.ndarray:
        """Dense float64 copy, shape ``[rows, cols]``."""
        out = np.zeros(self.shape, dtype=np.float64)
        for i, j, v in self.entries():
            out[i, j] = float(v)
        return out

    def to_scipy(self):
        """float64 ``scipy.sparse.csr_matrix``."""
        import scipy.sparse as sp

        ii, jj, vv = [], [], []
        for i, j, v in self.entries():
            ii.append(i)
            jj.append(j)
            vv.append(float(v))
        return sp.csr_matrix((vv, (ii, jj)), shape=self.shape, dtype=np.float64)

    def in_mode(self, mode: Mode) -> list[list[tuple[int, Number]]]:
        """Rows with values converted to ``mode`` numbers (used by the exact evaluators)."""
        return [[(j, to_mode(v, mode)) for j, v in row] for row in self.rows]

    def __repr__(self) -> str:
        return f"SparseMatrix(shape={self.shape}, nnz={self.nnz})"


def sparse_matvec(rows: Sequence[Sequence[tuple[int, Number]]], x: Sequence[Number]) -> list[Number]:
    """Exact ``A x`` for row lists from :meth:`SparseMatrix.in_mode`; integral results are returned as
    ``int``."""
    out = []
    for row in rows:
        acc: Number = 0
        for j, v in row:
            xj = x[j]
            if xj:
                acc += v * xj
        out.append(norm_exact(acc))
    return out
