"""Pass 4 — checking: run the interpreter and the compiled model side by side (tracr's silent miscompiles
taught us to verify, not only validate)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..interpreter import run as interpret
from ..numeric import Mode
from ..program import Program
from .ir import CompiledProgram


class LSRLCompileCheckError(AssertionError):
    """The compiled model disagrees with the interpreter on a probe input."""


def probe_inputs(program: Program, n: int = 3, length: int = 8, seed: int = 0) -> list[np.ndarray]:
    """Random probe sequences ``[length, D]`` within the Input's declared bounds (default box ``[-2, 2]``), on
    a grid of quarters so that they are exactly representable in both modes."""
    rng = np.random.default_rng(seed)
    inp = program.input
    lo, hi = [], []
    for l, u in zip(inp.lower, inp.upper, strict=False):
        l2 = float(l) if l is not None else (float(u) - 4.0 if u is not None else -2.0)
        u2 = float(u) if u is not None else l2 + 4.0
        lo.append(l2)
        hi.append(max(u2, l2))
    lo, hi = np.array(lo), np.array(hi)
    out = []
    for _ in range(n):
        x = rng.uniform(lo, hi, size=(length, inp.dim))
        out.append(np.clip(np.round(x * 4) / 4, lo, hi))
    return out


def check_compiled(
    program: Program, compiled: CompiledProgram, probes: Any = None, rtol: float = 1e-7, atol: float = 1e-6
) -> float:
    """Raises :class:`LSRLCompileCheckError` unless ``compiled`` reproduces ``program`` on every probe.

    Exact mode requires equality (the real check). float64 allows ``atol + 64 eps max|W| + rtol |y|``: fused
    weights such as ``lambda * mu = 1e13`` in Eq. (7) turn rounding into absolute errors of order ``eps
    max|W|``, so in float64 this only catches gross miscompiles. Returns the max abs error seen.
    """
    probes = probe_inputs(program) if probes is None else probes
    # fused weights like lambda * mu (1e13 for Eq. 7) turn rounding into absolute errors ~ eps * max|W|
    wmax = max([1.0] + [abs(float(v)) for s in compiled.stages for _, _, v in s.W.entries()])
    atol = atol + 64 * np.finfo(float).eps * wmax
    worst = 0.0
    for i, xs in enumerate(probes):
        want = interpret(program, xs, mode=compiled.mode)
        got = compiled.run(xs)
        if compiled.mode is Mode.EXACT:
            bad = np.argwhere(want != got)
            if len(bad):
                t, j = bad[0]
                raise LSRLCompileCheckError(
                    f"probe {i}: compiled != interpreted at token {t}, output {j}: "
                    f"{got[t, j]} vs {want[t, j]}"
                )
            continue
        err = np.abs(np.asarray(got, float) - np.asarray(want, float))
        tol = atol + rtol * np.abs(np.asarray(want, float))
        worst = max(worst, float(err.max(initial=0.0)))
        if (err > tol).any():
            t, j = np.argwhere(err > tol)[0]
            raise LSRLCompileCheckError(
                f"probe {i}: compiled vs interpreted differ at token {t}, output {j}: "
                f"{got[t, j]!r} vs {want[t, j]!r}"
            )
    return worst
