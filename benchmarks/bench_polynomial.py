"""Benchmark of instantaneous-polynomial extraction (issue 5; the polynomials of §3.1).

(a) d = 4 gated RNNs with N = M hidden/gating neurons: :func:`rnnattn.analysis.instantaneous_polynomial`
    (exact tensor contraction) against a naive sympy route on the same model (write ``D g^out(g^in(x̃))``
    symbolically, ``sympy.expand``, read the coefficients) and against the least-squares fit through the
    forward pass. Reports the times, the sympy/contraction ratio and the max coefficient difference (the
    contraction must agree to float64 rounding).
(b) Large models, contraction only: d = 6, N = M = 80 (the ICL model) and d = 16, N = M = 300 (the issue's
    target: well under a second).
(c) ``Polynomial.to_sympy()`` at d = 16, N = M = 300 (16 outputs x 4845 monomials; target < 2 s) against the naive
    construction with sympy's evaluating ``Add``/``Mul`` (the previous implementation), in the same run.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_polynomial.py [--quick] [--threads 1]``; prints a markdown
    table and writes it to ``benchmarks/results/polynomial.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import sympy
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    add_common_arguments,
    environment_lines,
    markdown_table,
    set_threads,
    time_call,
    write_result,
)

from rnnattn import GatedLinearRNN, GatedLinearRNNConfig  # noqa: E402
from rnnattn.analysis import instantaneous_polynomial  # noqa: E402
from rnnattn.analysis.polynomial import gated_rnn_polynomial_full  # noqa: E402


def model(d: int, n: int, seed: int = 0) -> GatedLinearRNN:
    torch.manual_seed(seed)
    return GatedLinearRNN(GatedLinearRNNConfig(d, n, n, d)).double()


def sympy_polynomial(m: GatedLinearRNN) -> np.ndarray:
    """Naive route: the network written out in sympy and expanded layer by layer (``h_n``; each gating branch,
    then their product ``g_k``; then each output), coefficients read off ``Poly`` on the contraction's basis.
    (Expanding the nested expression in one ``sympy.expand`` call is far slower: minutes already for N = 14.)"""
    W_in, W_out, D = (t.detach().numpy() for t in (m.W_in, m.W_out, m.D))
    d = m.d_input
    xs = sympy.symbols(f"x1:{d + 1}")
    z = [*xs, sympy.Integer(1)]

    def lin(row, vec):
        return sympy.Add(*[sympy.Float(float(w)) * v for w, v in zip(row, vec, strict=True)])

    h = [sympy.expand(lin(W_in[0, n], z) * lin(W_in[1, n], z)) for n in range(W_in.shape[1])]
    g = [
        sympy.expand(sympy.expand(lin(W_out[0, k], h)) * sympy.expand(lin(W_out[1, k], h)))
        for k in range(W_out.shape[1])
    ]
    basis = instantaneous_polynomial(m).exponents.tolist()
    index = {tuple(e): j for j, e in enumerate(basis)}
    out = np.zeros((D.shape[0], len(basis)))
    for i in range(D.shape[0]):
        for mon, c in sympy.Poly(sympy.expand(lin(D[i], g)), *xs).as_dict().items():
            out[i, index[tuple(mon)]] = float(c)
    return out


def naive_to_sympy(pol) -> list:
    """The previous ``to_sympy``: sympy's evaluating constructors (sorts and collects every term)."""
    syms = sympy.symbols(list(pol.variables))
    return [
        sympy.Add(
            *[
                sympy.Float(float(c)) * sympy.Mul(*[s ** int(e) for s, e in zip(syms, exps, strict=True)])
                for c, exps in zip(pol.coefficients[i], pol.exponents.tolist(), strict=True)
            ]
        )
        for i in range(pol.n_outputs)
    ]


def sympy_section() -> list[str]:
    pol = instantaneous_polynomial(model(16, 300))
    fast = time_call(pol.to_sympy, repeats=3, warmup=1)
    c0 = time.process_time()
    naive = naive_to_sympy(pol)
    naive_cpu = time.process_time() - c0
    same = all(sympy.expand(a - b) == 0 for a, b in zip(pol.to_sympy()[:2], naive[:2], strict=True))
    row = ["d=16, N=M=300", pol.coefficients.size, f"{fast.cpu_median:.2f}", f"{naive_cpu:.1f}",
           f"{naive_cpu / fast.cpu_median:.0f}x", "yes" if same else "NO"]
    print(row, flush=True)
    return [
        "## (c) `Polynomial.to_sympy()` (target < 2 s)",
        "",
        markdown_table(["model", "terms", "to_sympy CPU s (median of 3)", "naive evaluated sympy CPU s",
                        "speed-up", "same expressions (expand(a - b) == 0, 2 outputs)"], [row]),
        "",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(p)
    args = p.parse_args()
    set_threads(args.threads)
    lines = ["# Instantaneous polynomial extraction", "",
             f"Regenerate: `OMP_NUM_THREADS=1 python benchmarks/bench_polynomial.py {' '.join(sys.argv[1:])}`", "",
             *environment_lines(), ""]
    sizes = [14, 20] if args.quick else [14, 20, 30]
    rows = []
    for n in sizes:
        m = model(4, n)
        exact = time_call(lambda m=m: instantaneous_polynomial(m), repeats=20, warmup=2)
        full = time_call(lambda m=m: gated_rnn_polynomial_full(m), repeats=10, warmup=1)
        lstsq = time_call(lambda m=m: instantaneous_polynomial(m, "lstsq"), repeats=5, warmup=1)
        t0 = time.perf_counter()
        ref = sympy_polynomial(m)
        t_sym = time.perf_counter() - t0
        c = instantaneous_polynomial(m).coefficients
        err = float(np.abs(c - ref).max() / np.abs(ref).max())
        rows.append(
            [
                f"d=4, N=M={n}",
                f"{1e3 * exact.median:.2f}",
                f"{1e3 * full.median:.2f}",
                f"{1e3 * lstsq.median:.2f}",
                f"{t_sym:.2f}",
                f"{t_sym / exact.median:,.0f}x",
                f"{err:.1e}",
            ]
        )
        print(rows[-1], flush=True)
    lines += [
        "## (a) contraction vs naive sympy expansion (same model)",
        "",
        markdown_table(
            [
                "model",
                "instantaneous_polynomial ms (incl. float64 copy)",
                "full p^4 contraction ms",
                "least squares ms",
                "sympy s",
                "sympy / contraction",
                "max rel. coeff. diff",
            ],
            rows,
        ),
        "",
    ]
    big = []
    for d, n in [(6, 80)] if args.quick else [(6, 80), (16, 300)]:
        m = model(d, n)
        t = time_call(lambda m=m: instantaneous_polynomial(m), repeats=5, warmup=1)
        pol = instantaneous_polynomial(m)
        big.append(
            [
                f"d={d}, N=M={n}",
                pol.coefficients.shape[1],
                f"{1e3 * t.median:.1f}",
                f"{1e3 * t.cpu_median:.1f}",
            ]
        )
        print(big[-1], flush=True)
    lines += [
        "## (b) large models (contraction only)",
        "",
        markdown_table(["model", "monomials per output", "wall ms (median)", "cpu ms (median)"], big),
        "",
    ]
    lines += sympy_section()
    text = "\n".join(lines)
    print(text)
    print(f"written to {write_result('polynomial.md', text)}")


if __name__ == "__main__":
    main()
