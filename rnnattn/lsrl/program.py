"""Programs: the DAG behind an output node, its validation, and size statistics.

A :class:`Program` is a thin, immutable view over the nodes reachable from an output ``Variable``; it is what
the interpreter, the compiler and the display take (a bare output ``Variable`` is accepted everywhere too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

from .nodes import (
    NODE_TYPES,
    Concat,
    Input,
    Linear,
    LinState,
    LSRLValidationError,
    Multiplicative,
    ReLU,
    Slice,
    Variable,
)

__all__ = ["LSRLValidationError", "Program", "ProgramStats", "as_program", "topological_nodes", "validation_issues"]


@dataclass(frozen=True)
class ProgramStats:
    """Sizes of a program DAG (reference ``parameter_count`` = dense sizes of A, b, B, bias)."""

    nodes: int
    by_kind: dict[str, int]
    state_dim: int
    dense_params: int
    nnz: int


class Program:
    """The computation DAG ending at ``output``.

    Args:
        output: the output node (or a :class:`Program`).
        name: optional program name.

    Attributes:
        output: the output node.
        nodes: every reachable node in a deterministic topological order (inputs first).
        input: the unique :class:`Input` node.
    """

    def __init__(self, output: Variable | Program, name: str = "program") -> None:
        if isinstance(output, Program):
            output = output.output
        if not isinstance(output, Variable):
            raise TypeError(f"a program is built from an output Variable, got {type(output).__name__}")
        self.output = output
        self.name = name
        self.nodes = topological_nodes(output)
        inputs = [n for n in self.nodes if isinstance(n, Input)]
        self.input: Input | None = inputs[0] if len(inputs) == 1 else None
        self._inputs = inputs

    @property
    def input_dim(self) -> int:
        return self.input.dim if self.input is not None else 0

    @property
    def output_dim(self) -> int:
        return self.output.dim

    def consumers(self) -> dict[Variable, list[Variable]]:
        """Maps every node to the nodes that read it."""
        out: dict[Variable, list[Variable]] = {n: [] for n in self.nodes}
        for n in self.nodes:
            for p in dict.fromkeys(n.inputs):
                out[p].append(n)
        return out

    def validate(self) -> None:
        """Checks the program; raises :class:`LSRLValidationError` listing every problem with its node."""
        issues = validation_issues(self)
        if issues:
            raise LSRLValidationError(issues)

    def stats(self) -> ProgramStats:
        by_kind: dict[str, int] = {}
        dense = nnz = state = 0
        for n in self.nodes:
            by_kind[n.kind] = by_kind.get(n.kind, 0) + 1
            if isinstance(n, Linear):
                dense += n.A.shape[0] * n.A.shape[1] + n.dim
                nnz += n.A.nnz + sum(1 for v in n.b if v)
            elif isinstance(n, LinState):
                dense += n.dim * n.dim + n.B.shape[0] * n.B.shape[1] + n.dim
                nnz += n.A.nnz + n.B.nnz + sum(1 for v in n.bias if v)
                state += n.dim
        return ProgramStats(len(self.nodes), by_kind, state, dense, nnz)

    def to_json(self, indent: int | None = None) -> str:
        """This program as JSON text (versioned; see :mod:`rnnattn.lsrl.serialize`)."""
        from .serialize import program_to_json

        return program_to_json(self, indent)

    @staticmethod
    def from_json(text: str | bytes) -> Program:
        """A program from :meth:`to_json` text; loading validates every field and never runs code
        (``ProgramFormatError`` otherwise)."""
        from .serialize import program_from_json

        return program_from_json(text)

    def __call__(self, xs: Any, mode: str = "float64") -> Any:
        """Runs the interpreter from a fresh state (see :func:`rnnattn.lsrl.interpreter.run`)."""
        from .interpreter import run

        return run(self, xs, mode=mode)

    def __repr__(self) -> str:
        return f"Program({self.name!r}, nodes={len(self.nodes)}, in={self.input_dim}, out={self.output_dim})"


def as_program(p: Variable | Program) -> Program:
    return p if isinstance(p, Program) else Program(p)


def topological_nodes(output: Variable) -> list[Variable]:
    """Nodes reachable from ``output`` in topological order (ties broken by creation order)."""
    seen: dict[Variable, None] = {}
    stack = [output]
    while stack:
        n = stack.pop()
        if not isinstance(n, Variable):  # only reachable by mutating .inputs by hand
            raise LSRLValidationError([(None, f"a node's inputs hold a {type(n).__name__}, not an LSRL node")])
        if n in seen:
            continue
        seen[n] = None
        stack.extend(n.inputs)
    ts: TopologicalSorter = TopologicalSorter({n: set(n.inputs) for n in seen})
    try:
        ts.prepare()
    except CycleError as e:  # only reachable by mutating .inputs by hand
        raise LSRLValidationError([(None, f"the graph has a cycle: {e.args[1]}")]) from None
    order: list[Variable] = []
    while ts.is_active():
        ready = sorted(ts.get_ready(), key=lambda v: v.uid)
        order.extend(ready)
        ts.done(*ready)
    return order


def validation_issues(program: Program) -> list[tuple[Variable | None, str]]:
    """Per-node reasons why ``program`` cannot be interpreted or compiled (empty list if it is fine)."""
    issues: list[tuple[Variable | None, str]] = []
    if len(program._inputs) != 1:
        issues.append((None, f"a program needs exactly one Input node, found {len(program._inputs)}"))
    for n in program.nodes:
        if not isinstance(n, NODE_TYPES):
            issues.append(
                (
                    n,
                    f"unsupported node type {type(n).__name__}; "
                    f"build programs from {[t.__name__ for t in NODE_TYPES]}",
                )
            )
            continue
        ins = n.inputs
        if isinstance(n, Input):
            if ins:
                issues.append((n, "Input must not have inputs"))
        elif isinstance(n, Concat):
            if n.dim != sum(v.dim for v in ins):
                issues.append((n, "Concat dim differs from the sum of its input dims"))
        elif len(ins) != 1:
            issues.append((n, f"{n.kind} must have exactly one input, has {len(ins)}"))
        elif isinstance(n, Linear):
            if n.A.shape != (n.dim, ins[0].dim) or len(n.b) != n.dim:
                issues.append(
                    (n, f"Linear shapes A{n.A.shape}, b({len(n.b)}) do not fit input dim {ins[0].dim}")
                )
            if isinstance(n, Slice) and not (0 <= n.start < n.end <= ins[0].dim):
                issues.append((n, "Slice bounds out of range"))
            issues.extend((n, r) for r in _finite_issues(n.A, n.b))
        elif isinstance(n, LinState):
            if n.A.shape != (n.dim, n.dim) or n.B.shape != (n.dim, ins[0].dim):
                issues.append((n, f"LinState shapes A{n.A.shape}, B{n.B.shape} do not fit dim {n.dim}"))
            if len(n.init_state) != n.dim or len(n.bias) != n.dim:
                issues.append((n, "LinState init_state/bias have the wrong length"))
            issues.extend((n, r) for r in _finite_issues(n.A, n.init_state, n.B, n.bias))
        elif isinstance(n, Multiplicative):
            if ins[0].dim % 2 or n.dim * 2 != ins[0].dim:
                issues.append((n, f"Multiplicative needs an even input dim, got {ins[0].dim}"))
        elif isinstance(n, ReLU):
            if n.dim != ins[0].dim:
                issues.append((n, "ReLU dim differs from its input"))
    return issues


def _finite_issues(*objs: Any) -> list[str]:
    out = []
    for o in objs:
        vals = [v for _, _, v in o.entries()] if hasattr(o, "entries") else list(o)
        if any(isinstance(v, float) and not math.isfinite(v) for v in vals):
            out.append("non-finite constant")
    return out
