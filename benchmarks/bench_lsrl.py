"""Benchmark of the LSRL compiler and compiled models against the reference implementation's figures.

Measures, for both universal-approximation programs (Lst. 1 continuous, d_in = d_out in {1, 2, 3}; Lst. 2
token map, n in {3, 5, 10}, 20 pairs) and every f_ifelse variant: compile time (float64 and exact), state
size, dense parameters and non-zeros of the compiled model, and tokens per second of the exported torch module
for one sequence and for a batch, plus the torch-free exact runner. Prints markdown tables with the
figures of Petrov et al.'s public implementation for Listings 1-2 beside ours.

Usage: ``python benchmarks/bench_lsrl.py [--quick] [--threads 1] [--batch 256]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rnnattn.lsrl import (
    IFELSE_VARIANTS,
    compile,
    continuous_program,
    continuous_prompt,
    random_token_map,
    token_program,
    token_prompt,
)

# figures of Petrov et al.'s public implementation (Listings 1-2): (state dim, dense params, nnz)
REF_CONT = {
    (1, "direct"): (52, 133_990, 1_889),
    (2, "direct"): (90, 386_310, 3_231),
    (3, "direct"): (128, 769_238, 4_573),
    (1, "multiplicative"): (31, 24_138, 884),
    (2, "multiplicative"): (53, 65_301, 1_471),
    (3, "multiplicative"): (75, 126_584, 2_058),
}
REF_TOK = {
    (3, "direct"): (296_609, 3.19e11, 4_007_120),
    (5, "direct"): (454_407, 7.50e11, 6_139_506),
    (3, "multiplicative"): (5_111, 1.11e8, 81_419),
    (5, "multiplicative"): (7_775, 2.56e8, 124_475),
}
REF_COMPILE = {
    ("tok", 3, "multiplicative"): 13.8,
    ("tok", 3, "direct"): 41.5,
    ("tok", 10, None): 186.0,
    ("cont", None, None): 1.0,
}
REF_MS_PER_TOKEN = {"cont": "8", "tok": "30-117"}


def _time(fn, min_time: float = 0.3) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= min_time:
            return el / n


def _ref_compile(kind: str, size: int, variant: str) -> str:
    if kind == "cont":
        return "~1"
    if size == 10:
        return "186"
    v = REF_COMPILE.get(("tok", size, variant))
    return f"{v}" if v else "-"


def bench_one(kind: str, size: int, variant: str, batch: int, exact: bool) -> dict:
    rng = np.random.default_rng(0)
    if kind == "cont":
        prog = continuous_program(size, size, variant)
        W = rng.normal(size=(size, size))

        def f(x):
            return np.sin(W @ x)

        def make():
            return continuous_prompt(f, size, size, 8 if size < 3 else 4, rng.uniform(0, 1, size))
    else:
        prog = token_program(size, variant)

        def make():
            m = random_token_map(size, 20, 10, rng)
            return token_prompt(list(m)[int(rng.integers(20))], m)

    t0 = time.perf_counter()
    cp = compile(prog)
    t_compile = time.perf_counter() - t0
    t_exact = float("nan")
    cpe = None
    if exact:
        t0 = time.perf_counter()
        cpe = compile(prog, mode="exact")
        t_exact = time.perf_counter() - t0
    st = cp.stats()
    m = cp.to_module()
    xs = np.stack([make() for _ in range(batch)])
    X = torch.as_tensor(xs, dtype=torch.float64)
    T = X.shape[1]
    with torch.no_grad():
        t1 = _time(lambda: m(X[:1]))
        tb = _time(lambda: m(X), 0.5)
    tps_exact = float("nan")
    if cpe is not None:
        t0 = time.perf_counter()
        cpe.run(xs[0])
        tps_exact = T / (time.perf_counter() - t0)
    return {
        "program": "continuous" if kind == "cont" else "token",
        "size": size,
        "variant": variant,
        "compile_s": t_compile,
        "compile_exact_s": t_exact,
        "stages": st.stages,
        "state": st.state_dim,
        "params": st.dense_params,
        "nnz": st.nnz,
        "tok_s_1": T / t1,
        "tok_s_batch": batch * T / tb,
        "tok_s_exact": tps_exact,
        "T": T,
        "dag_nodes": len(prog.nodes),
    }


def float32_table(quick: bool) -> None:
    """Where float32 is safe (issue 15): the float32 export (``allow_unsafe=True``) of each universal program
    against the truth - continuous (d = 2): max error at every cell centre for N in {2, 4, 8}; token: % of wrong
    answers over 4 queries of a random map. The rule in ``rnnattn.lsrl.modules`` (refuse weights >= LARGE_WEIGHT)
    comes from this table."""
    import warnings

    from rnnattn.lsrl import float32_issue, token_answer

    print("\n### float32 exports (allow_unsafe=True) against the truth\n")
    print("| program | variant | size | float32 error | refused by the rule |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for variant in ("direct", "multiplicative") if quick else IFELSE_VARIANTS:
        cp = compile(continuous_program(2, 2, variant))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = cp.to_module(torch.float32, allow_unsafe=True)
        for N in (2, 4, 8):
            err = 0.0
            for idx in np.ndindex(N, N):
                q = (np.array(idx) + 0.5) / N
                y = m(torch.as_tensor(continuous_prompt(np.sin, 2, 2, N, q), dtype=torch.float32)[None])
                err = max(err, float(np.abs(y[0, -1].detach().numpy() - np.sin(q)).max()))
            print(f"| continuous | {variant} | d=2, N={N} | max {err:.3g} | {float32_issue(cp) is not None} |")
        for n in (2, 3) if quick else (2, 3, 5):
            cp = compile(token_program(n, variant))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = cp.to_module(torch.float32, allow_unsafe=True)
            table = random_token_map(n, 20, 30, rng)
            keys = list(table)[:4]
            X = torch.as_tensor(np.stack([token_prompt(k, table) for k in keys]), dtype=torch.float32)
            y = m(X).detach().numpy()
            wrong = np.mean([token_answer(y[b], n) != list(table[k]) for b, k in enumerate(keys)])
            refused = float32_issue(cp) is not None
            print(f"| token | {variant} | n={n}, 20 pairs | {100 * wrong:.0f}% wrong | {refused} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and variants")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--no-exact", action="store_true", help="skip exact-mode compile/run")
    ap.add_argument("--float32", action="store_true", help="only the float32 safety table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.float32:
        float32_table(args.quick)
        return
    variants = ("direct", "multiplicative") if args.quick else IFELSE_VARIANTS
    jobs = [("cont", d) for d in ((1, 2) if args.quick else (1, 2, 3))]
    jobs += [("tok", n) for n in ((3, 10) if args.quick else (3, 5, 10))]
    rows = [bench_one(k, s, v, args.batch, not args.no_exact) for k, s in jobs for v in variants]

    print(
        f"\n### LSRL compile + run ({torch.get_num_threads()} torch thread(s), batch {args.batch}, float64)\n"
    )
    print(
        "| program | size | variant | DAG nodes | compile s (ours f64 / exact) | compile s (ref) | stages "
        "| state (ours / ref) | dense params (ours / ref) | nnz (ours / ref) | tok/s 1 seq | tok/s batched "
        "| tok/s exact runner | ref ms/token |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        kind = "cont" if r["program"] == "continuous" else "tok"
        ref = (REF_CONT if kind == "cont" else REF_TOK).get((r["size"], r["variant"]))

        def rs(i: int, fmt: str, ref: tuple | None = ref) -> str:
            return fmt.format(ref[i]) if ref else "-"

        print(
            f"| {r['program']} | {'d=' if kind == 'cont' else 'n='}{r['size']} | {r['variant']} "
            f"| {r['dag_nodes']} "
            f"| {r['compile_s']:.3f} / {r['compile_exact_s']:.3f} "
            f"| {_ref_compile(kind, r['size'], r['variant'])} "
            f"| {r['stages']} | {r['state']:,} / {rs(0, '{:,}')} | {r['params']:,} / {rs(1, '{:,.3g}')} "
            f"| {r['nnz']:,} / {rs(2, '{:,}')} | {r['tok_s_1']:,.0f} | {r['tok_s_batch']:,.0f} "
            f"| {r['tok_s_exact']:,.0f} | {REF_MS_PER_TOKEN[kind]} |"
        )


if __name__ == "__main__":
    main()
