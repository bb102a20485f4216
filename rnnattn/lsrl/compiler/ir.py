"""The compiled intermediate representation: a path of stages (see :mod:`.assemble`) plus torch-free runners.

``CompiledProgram.run`` is the sequential reference for every exported module: exact mode runs with ``int`` /
``Fraction`` arithmetic (no torch, no sympy), float64 mode with NumPy / scipy.sparse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..numeric import Mode, Number, SparseMatrix, norm_exact, sparse_matvec, split_large, to_mode

STAGE_KINDS = ("relu", "mul", "state")


@dataclass(frozen=True, eq=False)
class Stage:
    """One layer. ``W``: ``[u_width, prev_width]``; ``c``: ``[u_width]``; ``labels``: one per output lane;
    ``A``/``init``: ``[width, width]`` / ``[width]`` for ``state`` stages."""

    kind: str
    W: SparseMatrix
    c: tuple[Number, ...]
    labels: tuple[str, ...]
    A: SparseMatrix | None = None
    init: tuple[Number, ...] | None = None

    @property
    def width(self) -> int:
        return len(self.labels)

    @property
    def in_width(self) -> int:
        return self.W.shape[0]

    def dense_params(self) -> int:
        n = self.W.shape[0] * self.W.shape[1] + len(self.c)
        if self.kind == "state":
            n += self.width * self.width + self.width
        return n

    def nnz(self) -> int:
        n = self.W.nnz + sum(1 for v in self.c if v)
        if self.kind == "state":
            n += self.A.nnz + sum(1 for v in self.init if v)
        return n


@dataclass(frozen=True)
class CompiledStats:
    """Sizes of a compiled model. ``state_dim`` = total width of state stages (the reference's "state dim");
    ``dense_params`` counts every dense entry of W, c, A, init (and the readout); ``nnz`` the non-zero
    ones."""

    stages: int
    kinds: str
    state_dim: int
    relu_width: int
    mul_width: int
    max_width: int
    dense_params: int
    nnz: int


@dataclass(eq=False)
class CompiledProgram:
    """A compiled LSRL program: ``stages`` then the readout ``y = W_out z_K + c_out``.

    Attributes:
        mode: the numeric mode its constants are in.
        input_dim / output_dim: token dims.
        stages: the layers.
        W_out, c_out: the readout.
        name: the program name.
        compile_seconds: wall time of :func:`rnnattn.lsrl.compile`.
    """

    mode: Mode
    input_dim: int
    stages: list[Stage]
    W_out: SparseMatrix
    c_out: tuple[Number, ...]
    name: str = "program"
    input_labels: tuple[str, ...] = ()
    compile_seconds: float = 0.0
    passes: dict[str, float] = field(default_factory=dict)

    @property
    def output_dim(self) -> int:
        return self.W_out.shape[0]

    def stats(self) -> CompiledStats:
        st = [s for s in self.stages]
        ro = self.W_out.shape[0] * self.W_out.shape[1] + len(self.c_out)
        ro_nnz = self.W_out.nnz + sum(1 for v in self.c_out if v)
        return CompiledStats(
            stages=len(st),
            kinds="".join({"relu": "R", "mul": "M", "state": "S"}[s.kind] for s in st),
            state_dim=sum(s.width for s in st if s.kind == "state"),
            relu_width=sum(s.width for s in st if s.kind == "relu"),
            mul_width=sum(s.width for s in st if s.kind == "mul"),
            max_width=max([s.in_width for s in st] + [self.input_dim]),
            dense_params=sum(s.dense_params() for s in st) + ro,
            nnz=sum(s.nnz() for s in st) + ro_nnz,
        )

    def describe(self) -> str:
        """One line per stage, e.g. ``In(1) -> S(12) -> R(30) -> ... -> Out(1)``."""
        parts = [f"In({self.input_dim})"] + [f"{s.kind[0].upper()}({s.width})" for s in self.stages]
        return " -> ".join(parts + [f"Out({self.output_dim})"])

    # ---- runners
    # -----------------------------------------------------------------------------------------------
    def run(self, xs: Any, mode: Mode | str | None = None, return_states: bool = False) -> Any:
        """Runs the compiled model layer by layer (the torch-free reference).

        Args:
            xs: ``[T, D]`` (exact or float64) or ``[B, T, D]`` (float64).
            mode: defaults to the compile mode; an exact program can also be run in float64.
            return_states: also return the list of per-stage outputs ``z_k`` (``[T, w]`` / ``[B, T, w]``).

        Returns:
            ``ys`` ``[T, D_out]`` (``[B, T, D_out]``); exact mode gives an ``object`` array of
            ``int``/``Fraction``.
        """
        mode = Mode(mode) if mode is not None else self.mode
        if mode is Mode.FLOAT64:
            x = np.asarray(xs, dtype=np.float64)
            if x.ndim not in (1, 2, 3):
                raise ValueError(f"input must be [T, D] or [B, T, D], got {x.ndim} dimensions")
            self._check_width(1 if x.ndim == 1 else x.shape[-1])
            return self._run_float(xs, return_states)
        if self.mode is not Mode.EXACT:
            raise ValueError("a program compiled in float64 cannot be run exactly; compile with mode='exact'")
        return self._run_exact(xs, return_states)

    def _check_width(self, w: int) -> None:
        if w != self.input_dim:
            raise ValueError(f"input has width {w}, the program expects {self.input_dim}")

    def _run_float(self, xs: Any, return_states: bool) -> Any:
        x = np.asarray(xs, dtype=np.float64)
        batched = x.ndim == 3
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if not batched:
            x = x[None]
        B, T, _ = x.shape
        z = x
        zs = []
        for s in self.stages:
            (W_big, W_small), c, A, init = self._float_stage(s)
            zz = z.reshape(B * T, -1).T
            # large weights and the bias first: they cancel exactly before the O(1) terms join (LARGE_WEIGHT)
            u = ((W_big @ zz).T + c + (W_small @ zz).T).reshape(B, T, -1)
            if s.kind == "relu":
                z = np.maximum(u, 0.0)
            elif s.kind == "mul":
                h = s.width
                z = u[..., :h] * u[..., h:]
            else:
                st = np.tile(init, (B, 1))
                out = np.empty_like(u)
                for t in range(T):
                    st = st @ A + u[:, t]
                    out[:, t] = st
                z = out
            zs.append(z if batched else z[0])
        y = (self.W_out.to_scipy() @ z.reshape(B * T, -1).T).T.reshape(B, T, -1)
        y = y + np.asarray([float(v) for v in self.c_out])
        y = y if batched else y[0]
        return (y, zs) if return_states else y

    def _float_stage(self, s: Stage) -> tuple:
        """float64 (scipy) copies of a stage's weights, cached: ``((W_large, W_small), c, A^T, init)``."""
        import scipy.sparse as sp

        cache = self.__dict__.setdefault("_float_cache", {})
        if id(s) not in cache:
            big, small = split_large(s.W.to_scipy())
            cache[id(s)] = (
                (big.tocsr(), sp.csr_matrix(small)),
                np.asarray([float(v) for v in s.c]),
                s.A.to_scipy().T.tocsr() if s.A is not None else None,
                np.asarray([float(v) for v in s.init]) if s.init is not None else None,
            )
        return cache[id(s)]

    def _run_exact(self, xs: Any, return_states: bool) -> Any:
        from ..interpreter import _as_token_rows, _obj_array
        from ..numeric import canonical

        rows = _as_token_rows(xs)
        for row in rows:
            self._check_width(len(row))
        z = [[to_mode(canonical(e), Mode.EXACT) for e in row] for row in rows]
        zs = []
        for s in self.stages:
            W = s.W.in_mode(Mode.EXACT)
            c = [to_mode(v, Mode.EXACT) for v in s.c]
            u = [[norm_exact(a + b) for a, b in zip(sparse_matvec(W, row), c, strict=False)] for row in z]
            if s.kind == "relu":
                z = [[v if v > 0 else 0 for v in row] for row in u]
            elif s.kind == "mul":
                h = s.width
                z = [[norm_exact(a * b) for a, b in zip(row[:h], row[h:], strict=False)] for row in u]
            else:
                A = s.A.in_mode(Mode.EXACT)
                st = [to_mode(v, Mode.EXACT) for v in s.init]
                z = []
                for row in u:
                    st = [norm_exact(a + b) for a, b in zip(sparse_matvec(A, st), row, strict=False)]
                    z.append(st)
            zs.append(_obj_array(z))
        Wo = self.W_out.in_mode(Mode.EXACT)
        co = [to_mode(v, Mode.EXACT) for v in self.c_out]
        y = _obj_array(
            [[norm_exact(a + b) for a, b in zip(sparse_matvec(Wo, row), co, strict=True)] for row in z]
        )
        return (y, zs) if return_states else y

    def to_module(self, dtype: Any = None, allow_unsafe: bool = False) -> Any:
        """Exports a batched torch module (:class:`rnnattn.lsrl.modules.CompiledLSRL`).

        float32 (and lower) exports follow the float32 rule of :mod:`rnnattn.lsrl.modules`: programs with
        large-constant weights raise ``LSRLPrecisionError`` (a warning with ``allow_unsafe=True``)."""
        from ..modules import CompiledLSRL

        return CompiledLSRL.from_compiled(self, dtype=dtype, allow_unsafe=allow_unsafe)
