"""Noise robustness of the f_ifelse implementations (Petrov et al. 2024, Fig. 4), with rnnattn's LSRL
compiler.

Each universal-approximation program is compiled (float64) with each conditional variant; ``N(0, sigma^2)`` is
added to every non-zero weight of the compiled model (``rnnattn.lsrl.perturb_nonzeros``), and the model is run
with teacher forcing (every state stage starts each step from the clean run's state), as in the paper.

* vec2vec (Lst. 1): ``d_in = d_out = 2``, 5 random control points in ``[-0.1, 1.1]^2`` with values in ``[-3,
  3]``, Laplace-kernel weighted average (smoothness 1), ``N = 8`` (64 prompt tokens), 10 uniform queries;
  metric: mean ``||y - f(q)||_2`` against the true ``f``.
* tok2tok (Lst. 2): ``n = 10``, 20 pairs, vocabulary 10, 5 distinct queries; metric: % of the 50 rounded
  output tokens that are wrong.

Writes ``vec2vec.csv``, ``tok2tok.csv``, ``summary_*.csv``, ``fig4.png`` and ``index.html`` into
``reports/lsrl_noise/``. ``--quick`` (5 targets instead of 25) finishes in about a minute on 2 CPU cores.

Usage: ``python analysis/lsrl_noise.py [--quick] [--out reports/lsrl_noise]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnattn.checkpoint import atomic_write_bytes
from rnnattn.display import Figure, Report, Section, Table, Text, render_html
from rnnattn.lsrl import (
    compile,
    continuous_program,
    continuous_prompt,
    random_token_map,
    token_answer,
    token_program,
    token_prompt,
)
from rnnattn.lsrl.noise import SIGMAS, noisy_outputs

VARIANTS = ("direct", "optimized", "step_optimized", "multiplicative", "multiplicative_optimized")

# the reference implementation's results (Petrov et al. Fig. 4)
REF_VEC = {
    "direct": [
        "0.025 / 0.036 / 0",
        "0.025 / 0.038 / 0",
        "0.071 / 0.57 / 6",
        "5.1e3 / 1.5e5 / 13",
        "0.042 / 7.7e10 / 10",
    ],
    "optimized": [
        "0.025 / 0.033 / 0",
        "0.025 / 0.033 / 0",
        "0.245 / 0.50 / 6",
        "0.25 / 0.53 / 6",
        "0.76 / 1.7e9 / 12",
    ],
    "step_optimized": [
        "0.045 / 0.073 / 0",
        "0.045 / 2.4e4 / 1",
        "9.0e8 / 2.9e9 / 14",
        "0.056 / 2.1e12 / 6",
        "0.049 / 8.4e15 / 3",
    ],
    "multiplicative": [
        "0.025 / 0.033 / 0",
        "0.025 / 0.033 / 0",
        "0.041 / 0.39 / 4",
        "0.041 / 1.8 / 5",
        "0.037 / 1.5e3 / 7",
    ],
    "multiplicative_optimized": [
        "0.025 / 0.033 / 0",
        "0.025 / 0.033 / 0",
        "0.042 / 0.36 / 4",
        "0.071 / 1.8 / 9",
        "0.037 / 2.7e3 / 5",
    ],
}
REF_TOK = {
    "direct": ["89.2 (72-96)", "89.8 (80-96)", "90.9 (82-100)", "99.5 (88-100)", "99.5 (94-100)"],
    "optimized": ["0 (0-0)", "0.2 (0-2)", "69.7 (20-100)", "99.4 (96-100)", "99.6 (90-100)"],
    "step_optimized": ["0 (0-0)", "98.0 (94-100)", "98.9 (96-100)", "100 (100-100)", "96.7 (88-100)"],
    "multiplicative": ["0 (0-0)", "0 (0-0)", "68.8 (0-100)", "99.8 (98-100)", "98.9 (94-100)"],
    "multiplicative_optimized": ["0 (0-0)", "0 (0-0)", "71.8 (8-100)", "99.4 (96-100)", "99.2 (94-100)"],
}


def target_function(seed: int, d_in: int = 2, d_out: int = 2, points: int = 5, smoothness: float = 1.0):
    """A smooth random ``f: [0,1]^d_in -> [-3,3]^d_out``: Laplace-kernel weighted average of control
    values."""
    rng = np.random.default_rng(seed)
    P = rng.uniform(-0.1, 1.1, size=(points, d_in))
    V = rng.uniform(-3, 3, size=(points, d_out))

    def f(x: np.ndarray) -> np.ndarray:
        w = np.exp(-np.linalg.norm(np.asarray(x)[None] - P, axis=1) / smoothness)
        return (w[:, None] * V).sum(0) / w.sum()

    return f


def vec2vec(targets: int, N: int = 8, queries: int = 10) -> pd.DataFrame:
    rows = []
    for variant in VARIANTS:
        module = compile(continuous_program(2, 2, variant)).to_module()
        for seed in range(targets):
            f = target_function(seed)
            qs = np.random.default_rng(1000 + seed).uniform(0, 1, size=(queries, 2))
            X = torch.as_tensor(np.stack([continuous_prompt(f, 2, 2, N, q) for q in qs]), dtype=torch.float64)
            truth = np.stack([f(q) for q in qs])
            for sigma, y in noisy_outputs(module, X, SIGMAS, seed).items():
                err = np.linalg.norm(y[:, -1] - truth, axis=1)
                rows.append(
                    {
                        "variant": variant,
                        "sigma": sigma,
                        "target": seed,
                        "avg_difference": float(np.nan_to_num(err, nan=np.inf).mean()),
                    }
                )
    return pd.DataFrame(rows)


def tok2tok(targets: int, n: int = 10, pairs: int = 20, vocab: int = 10, queries: int = 5) -> pd.DataFrame:
    rows = []
    for variant in VARIANTS:
        module = compile(token_program(n, variant)).to_module()
        for seed in range(targets):
            rng = np.random.default_rng(seed)
            table = random_token_map(n, pairs, vocab, rng)
            keys = [list(table)[i] for i in rng.choice(pairs, size=queries, replace=False)]
            X = torch.as_tensor(np.stack([token_prompt(k, table) for k in keys]), dtype=torch.float64)
            want = np.array([table[k] for k in keys])
            for sigma, y in noisy_outputs(module, X, SIGMAS, seed).items():
                got = np.array([_safe_answer(y[b], n) for b in range(queries)])
                rows.append(
                    {
                        "variant": variant,
                        "sigma": sigma,
                        "target": seed,
                        "wrong_pct": float(100 * (got != want).mean()),
                    }
                )
    return pd.DataFrame(rows)


def _safe_answer(y: np.ndarray, n: int) -> list[int]:
    y = np.where(np.isfinite(y), y, -1e18)
    return token_answer(np.clip(y, -1e18, 1e18), n)


def exact_check(n: int = 10, targets: int = 1) -> pd.DataFrame:
    """The direct form compiled with the exact backend: wrong-token % at sigma = 0 (expected 0)."""
    cp = compile(token_program(n, "direct"), mode="exact")
    rows = []
    for seed in range(targets):
        rng = np.random.default_rng(seed)
        table = random_token_map(n, 20, 10, rng)
        keys = [list(table)[i] for i in rng.choice(20, size=2, replace=False)]
        wrong = [np.mean(np.array(token_answer(cp.run(token_prompt(k, table)), n)) != np.array(table[k])) for k in keys]
        rows.append({"variant": "direct (exact backend)", "target": seed, "wrong_pct": 100 * float(np.mean(wrong))})
    return pd.DataFrame(rows)


def summarise(vec: pd.DataFrame, tok: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    def vfmt(s: pd.Series) -> str:
        return f"{s.median():.3g} / {s.mean():.3g} / {(s > 1).sum()}"

    def tfmt(s: pd.Series) -> str:
        return f"{s.mean():.1f} ({s.min():.0f}-{s.max():.0f})"

    sv = vec.groupby(["variant", "sigma"])["avg_difference"].apply(vfmt).unstack("sigma").reindex(VARIANTS)
    st = tok.groupby(["variant", "sigma"])["wrong_pct"].apply(tfmt).unstack("sigma").reindex(VARIANTS)
    sv.columns = [f"sigma={c:g}" for c in sv.columns]
    st.columns = [f"sigma={c:g}" for c in st.columns]
    return sv, st


def figure(vec: pd.DataFrame, tok: pd.DataFrame):
    """The Fig. 4 strip plots as a ``matplotlib.figure.Figure`` (no pyplot state)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(12, 4))
    axes = fig.subplots(1, 2)
    rng = np.random.default_rng(0)
    colors = colormaps["tab10"](np.arange(len(VARIANTS)))
    for ax, df, col, ylab, log in (
        (axes[0], vec, "avg_difference", "average difference (log)", True),
        (axes[1], tok, "wrong_pct", "wrong outputs (%)", False),
    ):
        for vi, variant in enumerate(VARIANTS):
            for si, sigma in enumerate(SIGMAS):
                vals = df[(df.variant == variant) & (df.sigma == sigma)][col].to_numpy()
                vals = np.clip(np.nan_to_num(vals, nan=1e20, posinf=1e20), 1e-6 if log else -1, 1e20)
                x = si + (vi - 2) * 0.15 + rng.uniform(-0.04, 0.04, size=len(vals))
                ax.scatter(x, vals, s=8, color=colors[vi], label=variant if si == 0 else None, alpha=0.8)
        ax.set_xticks(range(len(SIGMAS)), [f"{s:g}" for s in SIGMAS])
        ax.set_xlabel("noise sigma")
        ax.set_ylabel(ylab)
        if log:
            ax.set_yscale("log")
    axes[0].set_title("Lst. 1 (vec2vec, d=2, N=8)")
    axes[1].set_title("Lst. 2 (tok2tok, n=10, 20 pairs)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def readings(vec: pd.DataFrame, tok: pd.DataFrame) -> list[str]:
    def tmean(v: str, s: float) -> float:
        return float(tok[(tok.variant == v) & (tok.sigma == s)].wrong_pct.mean())

    def vmed(v: str, s: float) -> float:
        return float(vec[(vec.variant == v) & (vec.sigma == s)].avg_difference.median())

    out = [
        f"tok2tok at sigma=0: direct {tmean('direct', 0):.1f}% wrong, "
        f"optimized {tmean('optimized', 0):.1f}%, "
        f"multiplicative {tmean('multiplicative', 0):.1f}% (reference: 89.2%, 0%, 0%).",
        f"tok2tok at sigma=1e-9: direct {tmean('direct', 1e-9):.1f}%, "
        f"step_optimized {tmean('step_optimized', 1e-9):.1f}%, "
        f"multiplicative {tmean('multiplicative', 1e-9):.1f}%, multiplicative_optimized "
        f"{tmean('multiplicative_optimized', 1e-9):.1f}% wrong.",
        f"vec2vec median error at sigma=1e-7: direct {vmed('direct', 1e-7):.3g}, multiplicative "
        f"{vmed('multiplicative', 1e-7):.3g} "
        f"(discretisation error at sigma=0: {vmed('multiplicative', 0):.3g}).",
    ]
    mult_best = all(
        tmean("multiplicative", s) <= min(tmean(v, s) for v in ("direct", "step_optimized")) + 1e-9 for s in SIGMAS[:3]
    )
    out.append(
        "Multiplicative forms are the most robust at small noise: " + ("yes." if mult_best else "not in this run.")
    )
    return out


OUTPUTS = ("vec2vec.csv", "tok2tok.csv", "summary_vec2vec.csv", "summary_tok2tok.csv", "fig4.png", "index.html")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 targets instead of 25 (about a minute on 2 cores)")
    ap.add_argument("--targets", type=int, default=None)
    ap.add_argument("--out", default="reports/lsrl_noise")
    ap.add_argument("--force", action="store_true", help="replace this study's files in --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    targets = args.targets or (5 if args.quick else 25)
    out = Path(args.out)
    existing = [n for n in OUTPUTS if (out / n).exists()]
    if existing and not args.force:  # checked before any work: never replace a file without --force
        sys.exit(f"lsrl_noise: error: {out / existing[0]} exists (use --force to replace this study's files)")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    vec = vec2vec(targets)
    tok = tok2tok(targets)
    exact = exact_check(targets=1)
    runtime = time.perf_counter() - t0
    atomic_write_bytes(out / "vec2vec.csv", vec.to_csv(index=False).encode(), overwrite=args.force)
    atomic_write_bytes(out / "tok2tok.csv", tok.to_csv(index=False).encode(), overwrite=args.force)
    sv, st = summarise(vec, tok)
    atomic_write_bytes(out / "summary_vec2vec.csv", sv.to_csv().encode(), overwrite=args.force)
    atomic_write_bytes(out / "summary_tok2tok.csv", st.to_csv().encode(), overwrite=args.force)
    fig = Figure(figure(vec, tok), title="Fig. 4 (rnnattn)", alt="strip plots of error against noise sigma")
    atomic_write_bytes(out / "fig4.png", fig.png, overwrite=args.force)
    cols = [f"sigma={s:g}" for s in SIGMAS]
    ref_v = pd.DataFrame(REF_VEC, index=cols).T
    ref_t = pd.DataFrame(REF_TOK, index=cols).T
    report = Report(
        title="Noise robustness of the f_ifelse implementations (Fig. 4)",
        subtitle=f"{targets} targets per program, sigma in {', '.join(f'{s:g}' for s in SIGMAS)}; runtime "
        f"{runtime:.0f} s",
        sections=[
            Section(
                "setup",
                "Setup",
                "teacher forcing; noise on every non-zero weight of the compiled model (rnnattn.lsrl.noise)",
                [fig],
            ),
            Section(
                "vec2vec",
                "vec2vec: average difference",
                "median / mean / #targets with error > 1",
                [Table(sv, title="rnnattn", index=True), Table(ref_v, title="reference implementation", index=True)],
            ),
            Section(
                "tok2tok",
                "tok2tok: wrong outputs %",
                "mean (min-max)",
                [
                    Table(st, title="rnnattn", index=True),
                    Table(ref_t, title="reference implementation", index=True),
                    Table(exact, title="direct form with the exact (rational) backend, sigma = 0"),
                ],
            ),
            Section("reading", "Reading", "", [Text(r) for r in readings(vec, tok)]),
        ],
    )
    atomic_write_bytes(out / "index.html", render_html(report).encode("utf-8"), overwrite=args.force)
    print("vec2vec (median / mean / #>1):\n" + sv.to_string())
    print("\ntok2tok (mean (min-max) % wrong):\n" + st.to_string())
    print("\nexact backend, direct, sigma=0:\n" + exact.to_string(index=False))
    print("\n" + "\n".join(readings(vec, tok)))
    print(f"\nwrote {out}/index.html in {runtime:.0f} s")


if __name__ == "__main__":
    main()
