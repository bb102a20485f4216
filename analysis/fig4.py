"""Figures 4 and 5 of Zucchet et al. (§3.3, §4.3, App. B.1): which gated architectures learn attention.

Trains, on (A) the teacher-student task (d = 6) and (B) in-context linear regression (d_x = d_y = 3), the
construction baseline (the Eq. 2 gated RNN, diagonal and dense recurrence), LSTM and GRU (torch defaults), and
the LRU variants Out (vanilla), In+Out and In+Skip, each as linear embedding -> 1 or 2 recurrent layers ->
linear readout (no norm, dropout or skips; LRU state = width): :func:`rnnattn.sweeps.runs.build_model`.
Reports the validation loss per architecture (Fig. 4; ICL validation uses W* ~ N(0, 2/3)) and training and
validation loss against the parameter count (Fig. 5), with the paper's findings one per row beside ours.

* ``--tiny``: width 4, one layer, 5 steps (seconds; the test suite).
* ``--quick``: width 16, 1-2 layers, one seed, <= 1,500 (A) / 3,000 (B) steps with plateau stopping: minutes.
* ``--converged`` (default): widths 8, 16, 32, 1-2 layers, one seed; each model trained until its validation
  loss stops improving (no 1% improvement of the best over 8 validations = 4,000 steps, checked from a third of
  the budget on) within a budget of
  15,000 AdamW steps (lr 3e-3 -> 1e-6 cosine over the budget, 500 warm-up steps): 84 models; measured 4,727
  CPU-s of training, 43 min wall on 2 cores (reports/fig4/summary.json).
* ``--full``: widths 8-128, 3 seeds, the paper's step counts (781,250 / 300,000), lr 1e-3 -> 1e-6.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import paper_claims as pc  # noqa: E402

STUDY = "fig4"
ARCHS = ("gated_diagonal", "gated_dense", "lstm", "gru", "lru_out", "lru_in_out", "lru_in_skip")
LABELS = {
    "gated_diagonal": "gated RNN (diagonal)",
    "gated_dense": "gated RNN (dense)",
    "lstm": "LSTM",
    "gru": "GRU",
    "lru_out": "LRU Out",
    "lru_in_out": "LRU In+Out",
    "lru_in_skip": "LRU In+Skip",
}
NONLINEAR = ("lstm", "gru", "lru_out", "lru_in_out", "lru_in_skip")
#: mode -> widths, layers, seeds, (steps A, steps B), lr, plateau patience (validations), validation interval
MODES = {
    "tiny": ((4,), (1,), (0,), (5, 5), 3e-3, None, 0),
    "quick": ((16,), (1, 2), (0,), (1500, 3000), 3e-3, 4, 250),
    "converged": ((8, 16, 32), (1, 2), (0,), (15_000, 15_000), 3e-3, 8, 500),
    "full": ((8, 16, 32, 64, 128), (1, 2), (0, 1, 2), (781_250, 300_000), 1e-3, None, 10_000),
}


def specs(args):
    from rnnattn.sweeps import SweepSpec

    widths, layers, seeds, steps, lr, patience, val_every = MODES[args.mode]
    out = []
    for part, task, n_steps, opts in (
        ("A", "teacher_student", steps[0], {"d": 6}),
        ("B", "icl_regression", steps[1], {}),
    ):
        train = {"steps": n_steps, "lr": lr, "device": args.device, "val_every": val_every}
        if args.mode in ("quick", "converged"):
            train.update(warmup_steps=min(500, n_steps // 10), val_samples=2048 if part == "A" else 8192)
        base = {
            "task": task,
            "task_options": opts,
            "train": train,
            "protocol": "paper",
            "eval_samples": 256 if args.tiny else (8192 if part == "A" else 50_000),
        }
        if patience:  # never before a third of the budget: some models sit on an early plateau before they learn
            base["plateau"] = {"patience": patience, "min_rel": 0.01, "min_steps": n_steps // 3}
        out.append(
            SweepSpec(
                name=f"fig4{part}_{args.label}",
                fn="rnnattn.sweeps.runs:train_run",
                grid={"arch": ARCHS, "n_layers": layers, "size": widths},
                seeds=seeds,
                base=base,
            )
        )
    return out


def best(df, col="val_loss"):
    """Per (arch, layers): the best width's median over seeds (what a bar of Fig. 4 shows)."""
    ok = df[df[col].notna()]
    med = ok.groupby(["model", "arch", "layers", "size"], as_index=False).agg(
        val_loss=(col, "median"),
        train_loss=("train_loss", "median"),
        n_parameters=("n_parameters", "first"),
        reference_val_loss=("reference_val_loss", "median"),
        steps=("steps", "median"),
    )
    idx = med.groupby(["model"])["val_loss"].idxmin()
    return med.loc[idx].sort_values("val_loss").reset_index(drop=True)


def val(df, arch) -> float:
    """Best validation loss of an architecture (over widths and layers); nan if every run of it failed."""
    sel = df[df["arch"] == arch]
    return float(sel["val_loss"].min()) if len(sel) else float("nan")


def claim_rows(ba, bb, gd_val: float) -> list[dict]:
    f = _common.fmt
    c = {x.key: x for x in pc.FIG4_CLAIMS}
    va = {a: val(ba, a) for a in ARCHS}
    vb = {a: val(bb, a) for a in ARCHS}
    in_a, in_b = min(va["lru_in_out"], va["lru_in_skip"]), min(vb["lru_in_out"], vb["lru_in_skip"])
    lstm_gru = va["lstm"] / va["gru"]
    below = [LABELS[x] for x in NONLINEAR if vb[x] < gd_val]
    return [
        pc.row(
            c["diag_best"],
            f"best: {ba.iloc[0]['model']} ({f(ba.iloc[0]['val_loss'])})",
            ba.iloc[0]["arch"] == "gated_diagonal",
            "✓ if the diagonal gated RNN has the lowest loss",
        ),
        pc.row(
            c["dense_close"],
            f"dense {f(va['gated_dense'])} vs diagonal {f(va['gated_diagonal'])}",
            va["gated_dense"] <= 10 * va["gated_diagonal"],
            "✓ if dense <= 10x diagonal",
        ),
        pc.row(
            c["lstm_gru"],
            f"LSTM {f(va['lstm'])}, GRU {f(va['gru'])} (ratio {f(lstm_gru)}); diagonal {f(va['gated_diagonal'])}",
            1 / 3 < lstm_gru < 3 and min(va["lstm"], va["gru"]) > 10 * va["gated_diagonal"],
            "✓ if LSTM/GRU within 3x and both > 10x the diagonal gated RNN",
        ),
        pc.row(
            c["lru_gating"],
            f"Out {f(va['lru_out'])}, In+Out {f(va['lru_in_out'])}, In+Skip {f(va['lru_in_skip'])}",
            in_a < va["lru_out"] / 2,
            "✓ if the best input-gated LRU < Out / 2",
        ),
        pc.row(
            c["beat_gd"],
            f"GD {f(gd_val)}; below GD: {', '.join(below) or 'none'}",
            bool(below),
            "✓ if a nonlinear RNN's validation loss < one-step GD's (same samples)",
        ),
        pc.row(
            c["gru_best"],
            f"best: {bb.iloc[0]['model']} ({f(bb.iloc[0]['val_loss'])}); GRU {f(vb['gru'])}",
            bb.iloc[0]["arch"] == "gru",
            "✓ if the GRU has the lowest loss",
        ),
        pc.row(
            c["lru_icl"],
            f"Out {f(vb['lru_out'])}, In+Out {f(vb['lru_in_out'])}, In+Skip {f(vb['lru_in_skip'])}",
            in_b < vb["lru_out"] / 2,
            "✓ if the best input-gated LRU < Out / 2",
        ),
    ]


def main(argv=None) -> int:
    _common.setup_torch()
    args = _common.parse_args(STUDY, __doc__.split("\n")[0], argv)
    rep = _common.StudyReport(
        args,
        "Figures 4 and 5 — architecture comparison (d = 6)",
        "Zucchet et al., Gated RNNs discover attention, §3.3, §4.3, App. B.1, Figures 4-5",
    )
    tables = _run_tables(args)
    a, b = tables["A"], tables["B"]
    ba, bb = best(a), best(b)
    gd_val = float(b["reference_val_loss"].median())
    widths, layers, seeds, *_ = MODES[args.mode]
    budget = _budget_note(args.mode)
    rep.claims(
        claim_rows(ba, bb, gd_val),
        f"Each architecture at its best width and depth ({', '.join(map(str, widths))} wide, "
        f"{'/'.join(map(str, layers))} layers, {len(seeds)} seed(s)); {budget}. Failed (diverged) runs: "
        f"{int((a['stop'] == 'failed').sum() + (b['stop'] == 'failed').sum())}.",
    )
    _add_sections(rep, a, b, ba, bb, gd_val, layers, budget)
    rep.summary.update(gd_val_loss=gd_val, best_A=ba.to_dict(orient="records"), best_B=bb.to_dict(orient="records"))
    rep.write()
    return 0


def _run_tables(args) -> dict:
    """Run (or resume) the sweeps of :func:`specs`; per task letter (``"A"``, ``"B"``), its table of runs with
    the columns the report needs (``layers``, ``model``, ``late improvement``, ``stop``; missing losses NaN)."""
    tables = {}
    for spec in specs(args):
        # A diverging architecture is a result (recorded, shown as missing), not a reason to stop the study.
        df = _common.sweep(args, spec, on_error="continue")
        df["layers"] = df["n_layers"].astype(int)
        df["model"] = df["arch"].map(LABELS) + " ×" + df["layers"].astype(str)
        for col in ("train_loss", "val_loss", "reference_val_loss", "steps", "n_parameters"):
            if col not in df:
                df[col] = float("nan")
        df["late improvement"] = [_common.late_improvement(c) for c in df.get("loss_curve", [None] * len(df))]
        df["stop"] = [_stop_reason(r) for _, r in df.iterrows()]
        tables[spec.name[4]] = df
    return tables


def _budget_note(mode: str) -> str:
    """One sentence on the training budget of ``mode`` (steps, learning-rate schedule, plateau stopping)."""
    _, _, _, steps, lr, patience, val_every = MODES[mode]
    return (
        f"budget {steps[0]:,} (A) / {steps[1]:,} (B) AdamW steps per model, lr {lr:g} -> 1e-6 cosine over the "
        "budget"
        + (
            f"; stopped once {patience} validations in a row (every {val_every} steps) did not improve the best "
            "validation loss by 1% (checked from a third of the budget on)"
            if patience
            else ""
        )
    )


def _add_sections(rep, a, b, ba, bb, gd_val: float, layers, budget: str) -> None:
    """The report's Figure 4, Figure 5 and run-table sections: run tables ``a`` (A) and ``b`` (B), their
    :func:`best` rows ``ba`` / ``bb``, the one-step GD validation loss ``gd_val``."""
    from rnnattn.display import Text

    keep = [
        "model",
        "arch",
        "layers",
        "size",
        "seed",
        "n_parameters",
        "train_loss",
        "val_loss",
        "reference_val_loss",
        "steps",
        "stop",
        "late improvement",
        "cpu_time",
    ]
    rep.section(
        "fig4",
        "Figure 4 (ours)",
        "Validation loss of each architecture at its best width (median over seeds).",
        rep.figure(
            "fig4",
            _fig4(ba, bb, gd_val, layers),
            "Figure 4 (ours)",
            "Validation loss at the best width; light bars: 2 layers. The paper's figure is not reproduced; "
            "its findings are the claims above.",
        ),
        Text(budget + ".", "note"),
    )
    rep.section(
        "fig5",
        "Figure 5: loss against parameters",
        "Training (dotted) and validation (solid) loss against the parameter count, per architecture.",
        rep.figure(
            "fig5",
            _fig5(a, b, gd_val),
            "Figure 5 (ours)",
            "Teacher-student: the two losses coincide (same distribution); ICL: validation uses "
            "W* ~ N(0, 2/3), twice the training variance.",
        ),
    )
    rep.section(
        "data",
        "Runs",
        "Every run: steps done, why it stopped (plateau / budget / failed) and the relative loss drop over its last "
        "20% of steps.",
        rep.table("fig4A_best", ba, "(A) best width per architecture"),
        rep.table("fig4B_best", bb, "(B) best width per architecture"),
        rep.table("fig4A_runs", a[[c for c in keep if c in a]], "(A) every run", max_rows=120),
        rep.table("fig4B_runs", b[[c for c in keep if c in b]], "(B) every run", max_rows=120),
    )


def _stop_reason(r) -> str:
    if r.get("status") != "ok":
        return "failed"
    return "plateau" if r.get("stopped_early") is True else "budget"


def _fig4(ba, bb, gd_val, layers):
    import numpy as np

    order = [(arch, n) for arch in ARCHS for n in layers]
    fig = _common.new_figure(10, 4.6)
    axes = fig.subplots(1, 2)
    for ax, df, title in ((axes[0], ba, "(A) teacher-student"), (axes[1], bb, "(B) in-context regression")):
        d = df.set_index("model")
        names = [f"{LABELS[arch]} ×{n}" for arch, n in order]
        vals = [float(d.loc[n, "val_loss"]) if n in d.index else np.nan for n in names]
        bars = ax.barh(range(len(names)), vals, color=[f"C{ARCHS.index(arch)}" for arch, _ in order])
        for bar, (_, n) in zip(bars, order, strict=True):
            bar.set_alpha(0.9 if n == 1 else 0.45)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("validation loss (best width; light: 2 layers)")
        ax.set_title(title, fontsize=9)
    axes[1].axvline(gd_val, color="k", ls="--", lw=1, label=f"one-step GD ({_common.fmt(gd_val)})")
    axes[1].legend(fontsize=7)
    return fig


def _fig5(a, b, gd_val):
    fig = _common.new_figure(10, 4.2)
    axes = fig.subplots(1, 2)
    for ax, df, title in ((axes[0], a, "(A) teacher-student"), (axes[1], b, "(B) in-context regression")):
        for i, arch in enumerate(ARCHS):
            for n, marker in ((1, "o"), (2, "s")):
                sel = df[(df["arch"] == arch) & (df["layers"] == n) & df["val_loss"].notna()]
                if not len(sel):
                    continue
                g = sel.groupby("n_parameters")[["train_loss", "val_loss"]].median().sort_index()
                ax.plot(g.index, g["val_loss"], marker=marker, color=f"C{i}", ms=4, lw=1, label=f"{LABELS[arch]} ×{n}")
                ax.plot(g.index, g["train_loss"], marker=marker, color=f"C{i}", ms=3, lw=0.6, ls=":", mfc="none")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("loss (solid: validation, dotted: training)")
        ax.set_title(title, fontsize=9)
    axes[1].axhline(gd_val, color="k", ls="--", lw=1)
    axes[0].legend(fontsize=6, ncol=2)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
