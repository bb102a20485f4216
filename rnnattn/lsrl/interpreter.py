"""The LSRL interpreter: runs a program token by token — the ground truth every compiled model is checked
against.

Layout: a sequence is ``[T, D]`` (one row per token; the paper's ``D x T`` transposed); float64 mode also
accepts a batch ``[B, T, D]``. Exact mode returns NumPy ``object`` arrays of ``int``/``Fraction``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .nodes import Concat, Input, Linear, LinState, Multiplicative, ReLU, Variable
from .numeric import Mode, as_mode, norm_exact, sparse_matvec, to_mode
from .program import Program, as_program


class Interpreter:
    """A stateful, token-by-token evaluator of one program.

    Args:
        program: a :class:`Program` or its output node.
        mode: ``"float64"`` or ``"exact"``.

    Example:
        >>> from rnnattn.lsrl import Input, LinState
        >>> x = Input(1); s = LinState(x, 1, 1)          # running sum
        >>> Interpreter(s).run([[1], [2], [3]]).ravel().tolist()
        [1.0, 3.0, 6.0]
    """

    def __init__(self, program: Program | Variable, mode: Mode | str = Mode.FLOAT64) -> None:
        self.program = as_program(program)
        self.program.validate()
        self.mode = as_mode(mode)
        self._ops: dict[Variable, Any] = {}
        for n in self.program.nodes:
            if isinstance(n, LinState):
                self._ops[n] = self._prep(n.A, n.B, n.bias) + (self._vec(n.init_state),)
            elif isinstance(n, Linear):
                self._ops[n] = self._prep(n.A, None, n.b)
        self.state: dict[LinState, Any] = {}
        self.batch = 1
        self.reset()

    def _vec(self, v: tuple) -> Any:
        if self.mode is Mode.FLOAT64:
            return np.asarray([float(x) for x in v], dtype=np.float64)
        return [to_mode(x, self.mode) for x in v]

    def _prep(self, A: Any, B: Any, b: tuple) -> tuple:
        if self.mode is Mode.FLOAT64:
            return (_mat(A), None if B is None else _mat(B), self._vec(b))
        return (A.in_mode(self.mode), None if B is None else B.in_mode(self.mode), self._vec(b))

    def reset(self, batch: int = 1) -> None:
        """Restores every ``LinState`` to its ``init_state`` (for ``batch`` sequences in float64 mode)."""
        self.batch = batch
        for n in self.program.nodes:
            if isinstance(n, LinState):
                s0 = self._ops[n][3]
                self.state[n] = np.tile(s0, (batch, 1)) if self.mode is Mode.FLOAT64 else list(s0)

    def step(self, x: Any, record: dict | None = None) -> Any:
        """One token. ``x``: ``[D]`` (or ``[B, D]`` in float64). Returns the output ``[D_out]`` / ``[B, D_out]``."""
        f64 = self.mode is Mode.FLOAT64
        vals: dict[Variable, Any] = {}
        for n in self.program.nodes:
            if isinstance(n, Input):
                if f64:
                    v = np.asarray(x, dtype=np.float64).reshape(self.batch, n.dim)
                else:
                    v = [to_mode(_canon(e), self.mode) for e in np.asarray(x, dtype=object).reshape(-1)]
                    if len(v) != n.dim:
                        raise ValueError(f"input token has {len(v)} entries, expected {n.dim}")
            elif isinstance(n, LinState):
                A, B, bias, _ = self._ops[n]
                u = vals[n.input]
                if f64:
                    v = self.state[n] @ A + u @ B + bias
                else:
                    As = sparse_matvec(A, self.state[n])
                    Bu = sparse_matvec(B, u)
                    v = [norm_exact(a + b + c) for a, b, c in zip(As, Bu, bias, strict=False)]
                self.state[n] = v
            elif isinstance(n, Linear):
                A, _, b = self._ops[n]
                u = vals[n.input]
                if f64:
                    v = u @ A + b
                else:
                    v = [norm_exact(a + c) for a, c in zip(sparse_matvec(A, u), b, strict=False)]
            elif isinstance(n, Concat):
                v = (
                    np.concatenate([vals[p] for p in n.inputs], axis=1)
                    if f64
                    else [e for p in n.inputs for e in vals[p]]
                )
            elif isinstance(n, ReLU):
                u = vals[n.input]
                v = np.maximum(u, 0.0) if f64 else [e if e > 0 else 0 for e in u]
            elif isinstance(n, Multiplicative):
                u = vals[n.input]
                h = n.dim
                v = u[:, :h] * u[:, h:] if f64 else [norm_exact(a * b) for a, b in zip(u[:h], u[h:], strict=True)]
            else:  # pragma: no cover - validate() rejects other types
                raise TypeError(type(n).__name__)
            vals[n] = v
        if record is not None:
            for n, v in vals.items():
                record.setdefault(n, []).append(v)
        out = vals[self.program.output]
        return out if f64 else list(out)

    def run(self, xs: Any, record: bool = False) -> Any:
        """Resets, then runs a whole sequence.

        Evaluates node by node over all tokens at once (only ``LinState`` loops over time); per token this is
        the same arithmetic as :meth:`step`, without the per-token Python overhead.

        Args:
            xs: ``[T, D]`` (any mode) or ``[B, T, D]`` (float64).
            record: also return ``{node: values [T, dim] (or [B, T, dim])}`` for every node.

        Returns:
            ``ys`` of shape ``[T, D_out]`` (``[B, T, D_out]``), plus the record dict if requested.
        """
        inp, batched, B, T = self._sequence(xs)
        self.reset(B)
        vals: dict[Variable, Any] = {}
        for n in self.program.nodes:
            vals[n] = self._eval_node(n, vals, inp, B, T)
        out = vals[self.program.output]
        if self.mode is Mode.FLOAT64:
            ys = out if batched else out[0]
            rec = {n: (v if batched else v[0]) for n, v in vals.items()} if record else None
        else:
            ys = _obj_array(out)
            rec = {n: _obj_array(v) for n, v in vals.items()} if record else None
        return (ys, rec) if record else ys

    def _sequence(self, xs: Any) -> tuple[Any, bool, int, int]:
        """``xs`` in this mode: float64 ``[B, T, D]`` array (a ``[T, D]`` or ``[T]`` input gets ``B = 1``), or
        exact ``T`` lists of ``D`` canonical numbers. Returns ``(inputs, batched, B, T)``."""
        if self.mode is Mode.FLOAT64:
            arr = np.asarray(xs, dtype=np.float64)
            batched = arr.ndim == 3
            if arr.ndim == 1:
                arr = arr.reshape(-1, 1)
            if not batched:
                arr = arr[None]
            B, T, _ = arr.shape
            return arr, batched, B, T
        seq = [[to_mode(_canon(e), self.mode) for e in row] for row in _as_token_rows(xs)]
        return seq, False, 1, len(seq)

    def _eval_node(self, n: Variable, vals: dict[Variable, Any], inp: Any, B: int, T: int) -> Any:
        """Values of node ``n`` at all ``T`` tokens (``[B, T, dim]`` float64, ``T`` lists exact), given those of
        its inputs in ``vals``; the same arithmetic per token as :meth:`step`."""
        f64 = self.mode is Mode.FLOAT64
        if isinstance(n, Input):
            if (inp.shape[-1] if f64 else len(inp[0]) if inp else n.dim) != n.dim:
                raise ValueError(f"input tokens must have {n.dim} entries")
            return inp
        if isinstance(n, LinState):
            return self._scan(n, vals[n.input], B, T)
        if isinstance(n, Linear):
            A, _, b = self._ops[n]
            u = vals[n.input]
            if f64:
                return (u.reshape(B * T, -1) @ A).reshape(B, T, -1) + b
            return [[norm_exact(a + c) for a, c in zip(sparse_matvec(A, row), b, strict=True)] for row in u]
        if isinstance(n, Concat):
            if f64:
                return np.concatenate([vals[p] for p in n.inputs], axis=-1)
            return [[e for p in n.inputs for e in vals[p][t]] for t in range(T)]
        if isinstance(n, ReLU):
            u = vals[n.input]
            return np.maximum(u, 0.0) if f64 else [[e if e > 0 else 0 for e in row] for row in u]
        if isinstance(n, Multiplicative):
            u, h = vals[n.input], n.dim
            if f64:
                return u[..., :h] * u[..., h:]
            return [[norm_exact(a * b) for a, b in zip(row[:h], row[h:], strict=False)] for row in u]
        raise TypeError(type(n).__name__)  # pragma: no cover - validate() rejects other types

    def _scan(self, n: LinState, u: Any, B: int, T: int) -> Any:
        """``LinState`` over time: ``s_t = A s_{t-1} + B u_t + bias`` from the current state (row-vector form
        ``s_t = s_{t-1} A^T + u_t B^T + bias``); leaves ``s_T`` in ``self.state[n]``, returns all ``s_t``."""
        A, Bm, bias, _ = self._ops[n]
        st = self.state[n]
        if self.mode is Mode.FLOAT64:
            Bu = (u.reshape(B * T, -1) @ Bm).reshape(B, T, -1) + bias
            v = np.empty_like(Bu)
            for t in range(T):
                st = st @ A + Bu[:, t]
                v[:, t] = st
        else:
            v = []
            for row in u:
                st = [
                    norm_exact(a + b + c)
                    for a, b, c in zip(sparse_matvec(A, st), sparse_matvec(Bm, row), bias, strict=True)
                ]
                v.append(st)
        self.state[n] = st
        return v


def _mat(A: Any) -> Any:
    """``A^T`` for row-vector products: dense when small (faster), CSR otherwise."""
    if A.shape[0] * A.shape[1] <= 1 << 16:
        return np.ascontiguousarray(A.to_numpy().T)
    return A.to_scipy().T.tocsr()


def _canon(e: Any) -> Any:
    from .numeric import canonical

    return canonical(e)


def _as_token_rows(xs: Any) -> list[list[Any]]:
    if isinstance(xs, np.ndarray):
        if xs.ndim == 1:
            return [[e] for e in xs.tolist()]
        if xs.ndim != 2:
            raise ValueError("exact mode runs one sequence [T, D] at a time")
        return [list(r) for r in (xs.tolist() if xs.dtype != object else xs)]
    rows = list(xs)
    return [list(r) if hasattr(r, "__len__") else [r] for r in rows]


def _obj_array(rows: list[list[Any]]) -> np.ndarray:
    out = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=object)
    for i, r in enumerate(rows):
        for j, e in enumerate(r):
            out[i, j] = e
    return out


def run(program: Program | Variable, xs: Any, mode: Mode | str = Mode.FLOAT64, record: bool = False) -> Any:
    """Interprets ``program`` on ``xs`` from a fresh state (see :meth:`Interpreter.run`)."""
    return Interpreter(program, mode).run(xs, record=record)
