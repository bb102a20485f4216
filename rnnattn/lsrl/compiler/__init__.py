"""The LSRL compiler: program DAG -> stack of recurrent layers (tracr-style, one file per pass).

Passes: :mod:`.lower` (DAG -> lanes: affine folding, constant folding, sign-justified rewrites, CSE, dead-lane
elimination) -> :mod:`.schedule` (lanes -> stages) -> :mod:`.assemble` (stages -> matrices) -> :mod:`.check`
(interpreter vs compiled on probe inputs). The result, :class:`CompiledProgram`, exports to torch via
:meth:`CompiledProgram.to_module`.
"""

from __future__ import annotations

import time
from typing import Any

from ..numeric import Mode, as_mode
from ..program import Program, as_program
from .assemble import assemble
from .check import LSRLCompileCheckError, check_compiled, probe_inputs
from .ir import CompiledProgram, CompiledStats, Stage
from .lower import lower
from .schedule import schedule

__all__ = [
    "compile",
    "CompiledProgram",
    "CompiledStats",
    "Stage",
    "LSRLCompileCheckError",
    "check_compiled",
    "probe_inputs",
]


def compile(
    program: Any,
    mode: Mode | str = Mode.FLOAT64,
    check: bool = False,
    probes: Any = None,
    name: str | None = None,
) -> CompiledProgram:
    """Compiles an LSRL program into a :class:`CompiledProgram`.

    Args:
        program: a :class:`~rnnattn.lsrl.Program` or its output node.
        mode: ``"float64"`` or ``"exact"`` — the arithmetic used for every folded constant.
        check: run the interpreter and the compiled model side by side on ``probes`` (default: a few random
            sequences within the Input's bounds) and raise :class:`LSRLCompileCheckError` if they disagree
            (exactly in exact mode; to a tolerance in float64).
        probes: list of ``[T, D]`` sequences for the check.
        name: a name for the compiled model.

    Returns:
        The compiled program (``.stats()``, ``.run(xs)``, ``.to_module()``).

    Raises:
        LSRLValidationError: the program uses unsupported constructs (reasons listed per node).
    """
    prog: Program = as_program(program)
    prog.validate()
    mode = as_mode(mode)
    t0 = time.perf_counter()
    g = lower(prog, mode)
    t1 = time.perf_counter()
    sched = schedule(g)
    t2 = time.perf_counter()
    cp = assemble(g, sched, name=name or prog.name)
    t3 = time.perf_counter()
    cp.compile_seconds = t3 - t0
    cp.passes = {"lower": t1 - t0, "schedule": t2 - t1, "assemble": t3 - t2}
    if check:
        check_compiled(prog, cp, probes)
    return cp
