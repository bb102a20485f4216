"""Table 2 of Zucchet et al. (§4.2, App. C): in-context linear regression — the trained gated RNN implements one
step of gradient descent.

For each ICL student (T = 12 pairs, d_x = d_y = 3; W* ~ N(0, 1/3), x ~ U(-sqrt 3, sqrt 3); 80 hidden neurons, 80
gating rows) it reads off:

* the training loss on 100,000 fresh sequences against one-step GD at eta* on the same sequences (paper: 0.0945
  vs 0.0947; analytic L* = 0.094595);
* the coefficients of x_j^2 y_1 in output 1 of the instantaneous polynomial against eta* = 1/14.8 = 0.0676, and
  the residual (norm of every other coefficient of output 1; 0 for exact GD), split by the number of
  y-variables in each monomial: the query token's y is always 0 in this task, so terms with two or more
  y-variables (a query-side weight reading y) are not constrained by the loss;
* where the library has it (:mod:`rnnattn.analysis.context_query`), the context–query polynomial against
  one-step GD's eta* y_c x_cᵀ x_q;

as mean ± std over the seeds, beside the paper's Table 2.

What is analysed: ``--checkpoints PATH ...`` (given runs; nothing is trained), or 4 seeds trained here with
batched multi-model training (2 seeds per worker process, one process per core):

* ``--tiny``: N = M = 16, 30 steps (seconds; the test suite).
* ``--quick``: 80/80, 10,000 AdamW steps (lr 3e-3 -> 1e-6, 10x on nu): minutes.
* ``--converged`` (default) and ``--full``: the paper's protocol (App. C.1): 300,000 steps, cosine 1e-3 -> 1e-6;
  about 700 CPU-s (~6 min on 2 cores); ``--full`` defaults to ``--device auto``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import paper_claims as pc  # noqa: E402

STUDY = "table2"
N_SEEDS = 4
D_X = 3
COEFS = [f"x{j + 1}^2 y1" for j in range(D_X)]
#: residual over the terms the task constrains (<= 1 y-variable): the issue's bound
CONSTRAINED_BOUND = 5e-3


def run_base(args) -> dict:
    base = {
        "task": "icl_regression",
        "arch": "gated_diagonal",
        "size": 80,
        "replicas": 2,
        "eval_samples": 100_000,
        "train": {"device": args.device, "polish_rounds": 0},
    }
    if args.tiny:
        base.update(protocol="fast", size=16, eval_samples=2000)
        base["train"].update(steps=30, val_samples=256)
    elif args.mode == "quick":
        base["protocol"] = "fast"
        base["train"].update(steps=10_000, val_samples=4096)
    else:
        base["protocol"] = "paper"
    return base


def coefficients(path: str) -> dict[str, float]:
    """x_j^2 y_1 coefficients of output 1 and the residual (norm of the rest), from the exact polynomial."""
    import numpy as np

    from rnnattn.analysis import instantaneous_polynomial

    p = instantaneous_polynomial(path)
    e = np.asarray(p.exponents)
    picked, out = [], {}
    for j in range(D_X):
        target = np.zeros(p.n_vars, dtype=int)
        target[j], target[D_X] = 2, 1  # x_j^2 * y_1 (y_1 is token feature d_x + 1)
        k = int(np.flatnonzero((e == target).all(axis=1))[0])
        picked.append(k)
        out[COEFS[j]] = float(p.coefficients[0, k])
    out["residual"] = float(np.linalg.norm(np.delete(p.coefficients[0], picked)))
    return out


def context_query(path: str) -> dict[str, float | str]:
    """The residual split by y-degree and the context–query comparison with one-step GD
    (:func:`rnnattn.analysis.context_query.context_query`), when the library has it."""
    try:
        from rnnattn.analysis.context_query import context_query as cq
    except ImportError:
        return {"context_query": "not measured: rnnattn.analysis.context_query is not in this version"}
    r = cq(path)
    first = r.instantaneous_split.iloc[0]  # output y1: Table 2's row
    return {
        "residual (no y)": float(first["0 y"]),
        "residual (one y)": float(first["1 y"]),
        "residual (two+ y)": float(first[">=2 y"]),
        "residual (constrained)": float((first["0 y"] ** 2 + first["1 y"] ** 2) ** 0.5),
        "context-query distance (support)": r.distance_support,
        "context-query residual (support)": r.residual_support,
        "context-query residual (unconstrained)": r.residual_unconstrained,
    }


def losses(path: str, n: int) -> dict[str, float]:
    """Loss of a checkpoint on fresh training-distribution sequences and GD's on the same ones."""
    from rnnattn import load
    from rnnattn.sweeps.runs import evaluate
    from rnnattn.tasks import InContextRegression

    model = load(path).float()
    loss, ref = evaluate(model, InContextRegression(), n, seed=12345)
    return {"train_loss": loss, "gd_loss_same_samples": ref}


def analyse(paths: dict[str, str], n_eval: int):
    import pandas as pd

    rows = []
    for name, path in paths.items():
        rows.append({"student": name, **losses(path, n_eval), **coefficients(path), **context_query(path)})
    return pd.DataFrame(rows)


def ms(seeds, col: str) -> str:
    v = seeds[col].to_numpy(dtype=float)
    return f"{_common.fmt(v.mean())} ± {_common.fmt(v.std(ddof=1) if len(v) > 1 else 0.0)}"


def claim_rows(seeds, eta: float) -> list[dict]:
    f, P = _common.fmt, pc.TABLE2
    c = {x.key: x for x in pc.TABLE2_CLAIMS}
    gap = float((seeds["train_loss"] - seeds["gd_loss_same_samples"]).mean())
    rows = [
        pc.row(
            c["loss"],
            f"RNN {ms(seeds, 'train_loss')} vs GD {ms(seeds, 'gd_loss_same_samples')} (gap {f(gap)})",
            abs(gap) <= 1e-3,
            "✓ if |RNN - GD| <= 1e-3 (paper: -2e-4)",
        )
    ]
    for j, col in enumerate(COEFS):
        mean = float(seeds[col].mean())
        rel = abs(mean - P["coef"][j]) / P["coef"][j]
        rows.append(
            pc.row(
                c[f"coef{j + 1}"],
                f"{ms(seeds, col)} ({f(100 * rel)}% from the paper's; η* {eta:.4g})",
                rel <= 0.02,
                "✓ if the seed mean is within 2% of the paper's",
            )
        )
    if "residual (constrained)" not in seeds:
        why = str(seeds["context_query"].iloc[0])
        rows.append(
            pc.row(
                c["residual"],
                f"total {ms(seeds, 'residual')}; split {why}",
                None,
                "residual over the constrained terms",
            )
        )
        rows.append(pc.row(c["context_query"], why, None, "context–query polynomial vs one-step GD"))
        return rows
    cons = float(seeds["residual (constrained)"].mean())
    rows.append(
        pc.row(
            c["residual"],
            f"total {ms(seeds, 'residual')}; on the task's support (<= 1 y-variable) "
            f"{ms(seeds, 'residual (constrained)')}; terms with >= 2 y-variables {ms(seeds, 'residual (two+ y)')}",
            cons <= CONSTRAINED_BOUND,
            f"✓ if the residual over the constrained terms is <= {CONSTRAINED_BOUND:g} "
            "(terms with >= 2 y-variables need the query's y, always 0: the loss cannot see them)",
        )
    )
    d = float(seeds["context-query residual (support)"].mean())
    rows.append(
        pc.row(
            c["context_query"],
            f"residual off η* y_c x_cᵀ x_q on the support "
            f"{ms(seeds, 'context-query residual (support)')}, relative distance "
            f"{ms(seeds, 'context-query distance (support)')}; unconstrained (y_q) terms "
            f"{ms(seeds, 'context-query residual (unconstrained)')}",
            d <= CONSTRAINED_BOUND,
            f"✓ if the residual over the constrained context–query terms is <= {CONSTRAINED_BOUND:g}",
        )
    )
    return rows


def paper_table(seeds, eta: float):
    """ICL's own paper table (Table 2) with our seeds beside it."""
    import pandas as pd

    P = pc.TABLE2
    ours = f"rnnattn RNN ({len(seeds)} students)"
    rows = [
        {
            "term": "training loss",
            "paper RNN": "0.0945",
            "paper GD": "0.0947",
            ours: ms(seeds, "train_loss"),
            "rnnattn GD (same samples)": ms(seeds, "gd_loss_same_samples"),
        }
    ]
    for j, col in enumerate(COEFS):
        rows.append(
            {
                "term": col.replace("^2", "²"),
                "paper RNN": f"{P['coef'][j]:.3g} ± {P['coef_std'][j]:.3g}",
                "paper GD": f"{P['gd_coef']:.3g}",
                ours: ms(seeds, col),
                "rnnattn GD (same samples)": f"{eta:.4g} (η*)",
            }
        )
    rows.append(
        {
            "term": "residual norm",
            "paper RNN": f"{P['residual']:.3g} ± {P['residual_std']:.3g}",
            "paper GD": "0",
            ours: ms(seeds, "residual"),
            "rnnattn GD (same samples)": "0",
        }
    )
    for label in ("no y", "one y", "two+ y", "constrained"):
        if f"residual ({label})" not in seeds:
            continue
        rows.append(
            {
                "term": f"  residual ({label})",
                "paper RNN": "not reported",
                "paper GD": "0",
                ours: ms(seeds, f"residual ({label})"),
                "rnnattn GD (same samples)": "0",
            }
        )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    _common.setup_torch()
    args = _common.parse_args(STUDY, __doc__.split("\n")[0], argv, checkpoints="ICL")
    from rnnattn.display import Text
    from rnnattn.sweeps import SweepSpec
    from rnnattn.tasks import optimal_gd_learning_rate, optimal_gd_loss

    eta, L_star = optimal_gd_learning_rate(12, 3), optimal_gd_loss(12, 3)
    rep = _common.StudyReport(
        args,
        "Table 2 — in-context linear regression: gated RNN vs one-step GD",
        "Zucchet et al., Gated RNNs discover attention, §4.2, Table 2, App. C",
    )
    base = run_base(args)
    if args.checkpoints:
        paths = {_name(p_, i): str(p_) for i, p_ in enumerate(args.checkpoints)}
        origin = "given checkpoints (--checkpoints)"
    else:
        base["save_dir"] = str(args.runs_dir / "checkpoints")
        spec = SweepSpec(
            name=f"table2_{args.label}",
            fn="rnnattn.sweeps.runs:train_run",
            base=base,
            seeds=tuple(range(0, N_SEEDS, base["replicas"])),
        )
        df = _common.explode(_common.sweep(args, spec))
        paths = {f"seed {int(r['seed'])}": r["checkpoint"] for _, r in df.iterrows()}
        origin = f"trained here: protocol '{base['protocol']}', {N_SEEDS} seeds, batched {base['replicas']} per process"
    seeds = analyse(paths, base["eval_samples"])
    rep.claims(
        claim_rows(seeds, eta),
        f"Students: {origin}. Losses on {base['eval_samples']:,} fresh sequences; "
        f"η* = 1/14.8 = {eta:.6f}; analytic L* = {L_star:.6f}.",
    )
    rep.section(
        "table2",
        "Table 2: paper vs rnnattn",
        f"x_j² y1 coefficients {_common.fmt(seeds[COEFS].to_numpy().mean())} vs η* {eta:.4g} (paper 0.0681-0.0682)",
        rep.table(
            "table2",
            paper_table(seeds, eta),
            "Table 2 (paper) beside ours",
            "Losses: 0.5 x squared error averaged over output coordinates, at the query only. Residual split "
            "by the number of y-variables (x4..x6) in each monomial of output 1; 'constrained' = at most one.",
        ),
        Text(
            "Why the residual can exceed the paper's 1.35e-3: monomials with two or more y-variables come from "
            "query-side weights that read y, and the query token's y is always 0 in this task, so the loss "
            "cannot drive them to zero; only weight decay does, slowly.",
            "note",
        ),
    )
    rep.section(
        "seeds",
        "Per student",
        "Each student's losses, coefficients and residual split.",
        rep.table("seeds", seeds, "Per-student results"),
    )
    rep.section(
        "figure",
        "Coefficients and losses",
        "Our students (dots) beside the paper's values.",
        rep.figure(
            "table2",
            _figure(seeds, eta, L_star),
            "Table 2 as a figure",
            "Left: x_j² y1 coefficients vs η*; right: loss vs GD on the same samples.",
        ),
    )
    rep.summary.update(
        eta_star=eta,
        L_star=L_star,
        paper=pc.TABLE2,
        seeds=seeds,
        sources=paths,
        mean={c: float(seeds[c].mean()) for c in seeds.columns if seeds[c].dtype.kind == "f"},
    )
    rep.write()
    return 0


def _name(path, i: int) -> str:
    return f"{_common.checkpoint_label(path)} [{i}]"


def _figure(seeds, eta: float, L_star: float):
    import numpy as np

    fig = _common.new_figure(6.4, 3.4)
    ax1, ax2 = fig.subplots(1, 2)
    for j, col in enumerate(COEFS):
        ax1.scatter(
            np.full(len(seeds), j + 1) + np.linspace(-0.1, 0.1, len(seeds)),
            seeds[col],
            label="rnnattn" if j == 0 else None,
            color="C0",
        )
        ax1.scatter([j + 1.25], [pc.TABLE2["coef"][j]], marker="s", color="C3", label="paper RNN" if j == 0 else None)
    ax1.axhline(eta, color="k", ls="--", lw=1, label="GD η*")
    ax1.set_xticks([1, 2, 3], ["x1² y1", "x2² y1", "x3² y1"])
    ax1.set_title("coefficients of output 1")
    ax1.legend(fontsize=7)
    idx = np.arange(len(seeds))
    ax2.scatter(idx, seeds["train_loss"], label="rnnattn RNN")
    ax2.scatter(idx, seeds["gd_loss_same_samples"], marker="x", label="GD, same samples")
    ax2.axhline(pc.TABLE2["rnn_loss"], color="C3", ls=":", label="paper RNN 0.0945")
    ax2.axhline(L_star, color="k", ls="--", lw=1, label=f"L* = {L_star:.4f}")
    ax2.set_xlabel("student")
    ax2.set_title("training loss")
    ax2.legend(fontsize=7)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
