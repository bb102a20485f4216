"""Figure 3 of Zucchet et al. (§3.2, §4.2): identification against network size, d = 6.

(A) teacher-student: final loss of the Eq. 2 gated RNN student against its size (hidden neurons = gating
rows), normalised by the loss of the zero predictor; (B) in-context linear regression: final training loss
minus one-step GD's loss on the same samples (the paper's "loss - L*"). Both are set against the construction's
neuron counts (built by :func:`rnnattn.constructions.construction_sizes`): compact 27 hidden / 36 gating and
minimal 27 / 21 for the teacher-student task; for ICL the full construction 42 / 36 and the one-step-GD
structure 12 / 9.

Each size trains its seeds at once (batched multi-model training, ``replicas``); the sizes run through the
sweep executor (one worker process per core, or a Dask cluster with ``--scheduler``), resumable: a rerun skips
finished sizes.

* ``--tiny``: 2 sizes x 2 seeds x 20 steps (seconds; the test suite).
* ``--quick``: 5 sizes x 3 seeds, 5,000 (A) / 10,000 (B) steps: minutes.
* ``--converged`` (default): (A) 9 sizes 8-80 x 3 seeds with the fast protocol's AdamW phase (50,000 steps, lr
  2e-3 -> 1e-6, 10x on nu; its Levenberg-Marquardt polish is skipped: its cost grows as P², ~40 CPU-s per
  iteration at N = 48, d = 6); (B) 10 sizes 2-80 x 3 seeds with the paper's protocol (300,000 steps, lr 1e-3 ->
  1e-6). Measured: 5,082 CPU-s of training, 71 min wall on 2 shared cores (reports/fig3/summary.json).
* ``--full``: 11 sizes x 3 seeds, the paper's protocol for both (781,250 / 300,000 steps).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import paper_claims as pc  # noqa: E402

STUDY = "fig3"
SIZES = {
    "tiny": {"A": (4, 8), "B": (3, 6)},
    "quick": {"A": (8, 16, 32, 48, 64), "B": (3, 6, 12, 24, 48)},
    "converged": {"A": (8, 16, 24, 32, 40, 48, 56, 64, 80), "B": (2, 3, 4, 6, 9, 12, 16, 24, 48, 80)},
    "full": {"A": (8, 16, 24, 32, 40, 48, 56, 64, 80, 100, 128), "B": (2, 3, 4, 6, 9, 12, 16, 24, 32, 48, 80)},
}
SEEDS = {"tiny": 2, "quick": 3, "converged": 3, "full": 3}
#: (A) identified when the loss is below this fraction of the zero predictor's loss (~217 at d = 6)
IDENTIFIED_A = 1e-5
#: (B) at GD when loss - L* is below this fraction of L*
AT_GD_B = 0.01


def train_configs(mode: str, device: str) -> tuple[dict, str, dict, str]:
    """``(train A, protocol A, train B, protocol B)`` for the mode (TrainConfig fields over a protocol)."""
    no_polish = {"polish_rounds": 0, "device": device}
    if mode == "tiny":
        return {"steps": 20, **no_polish}, "fast", {"steps": 20, **no_polish}, "fast"
    if mode == "quick":
        return {"steps": 5000, **no_polish}, "fast", {"steps": 10_000, **no_polish}, "fast"
    if mode == "converged":
        return {"steps": 50_000, **no_polish}, "fast", {"steps": 300_000, **no_polish}, "paper"
    return {"steps": 781_250, **no_polish}, "paper", {"steps": 300_000, **no_polish}, "paper"


def specs(args):
    from rnnattn.sweeps import SweepSpec

    train_a, prot_a, train_b, prot_b = train_configs(args.mode, args.device)
    common = {"arch": "gated_diagonal", "replicas": SEEDS[args.mode], "save_dir": str(args.runs_dir / "checkpoints")}
    n_eval_a, n_eval_b = (512, 512) if args.tiny else (8192, 100_000)
    a = SweepSpec(
        name=f"fig3A_{args.label}",
        fn="rnnattn.sweeps.runs:train_run",
        grid={"size": SIZES[args.mode]["A"]},
        base={
            **common,
            "task": "teacher_student",
            "task_options": {"d": 6},
            "train": train_a,
            "protocol": prot_a,
            "eval_samples": n_eval_a,
        },
    )
    b = SweepSpec(
        name=f"fig3B_{args.label}",
        fn="rnnattn.sweeps.runs:train_run",
        grid={"size": SIZES[args.mode]["B"]},
        base={**common, "task": "icl_regression", "train": train_b, "protocol": prot_b, "eval_samples": n_eval_b},
    )
    return a, b


def transition(df, col: str, threshold: float) -> int | None:
    """Smallest size from which the median over seeds stays below ``threshold`` (None: never)."""
    med = df.groupby("size")[col].median().sort_index()
    below = med < threshold
    for s in med.index:
        if below.loc[s:].all():
            return int(s)
    return None


def zero_predictor_loss(d: int = 6, n: int = 4096) -> float:
    """Teacher-student loss of the constant-0 student: the scale (A)'s losses are normalised by."""
    import torch

    from rnnattn.sweeps.runs import make_task

    task = make_task("teacher_student", {"d": d})
    batch = task.sample(n, torch.Generator().manual_seed(0))
    return float(task.loss(torch.zeros_like(batch.y), batch.y, batch.mask))


def claim_rows(a, b, t_a, t_b, compact, full, gd) -> list[dict]:
    f = _common.fmt
    med_a = a.groupby("size")["normalised loss"].median()
    med_b = b.groupby("size")["loss - L*"].median()
    c = {x.key: x for x in pc.FIG3_CLAIMS}
    ratio = None if t_a is None else t_a / compact[0]
    drop = float(med_a.iloc[0] / max(med_a.iloc[-1], 1e-30))
    rows = [
        pc.row(
            c["ts_transition"],
            f"identified from N = M = {t_a} = {f(ratio)}x the compact construction's {compact[0]} hidden"
            if t_a
            else f"no size identified (largest {int(med_a.index[-1])})",
            t_a is not None and 1.3 <= ratio <= 3.0,
            f"identified: median normalised loss < {IDENTIFIED_A:g} from that size on; ✓ if 1.3x-3x of 27",
        ),
        pc.row(
            c["ts_drop"],
            f"median normalised loss {f(med_a.iloc[0])} -> {f(med_a.iloc[-1])} ({f(drop)}x)",
            drop >= 1e3,
            "✓ if smallest / largest size >= 1e3",
        ),
        pc.row(
            c["icl_transition"],
            f"at GD from N = M = {t_b} (full construction {full[0]}/{full[1]}, GD structure {gd[0]}/{gd[1]})"
            if t_b
            else "no size reached GD's loss",
            t_b is not None and t_b <= full[0] / 2,
            f"at GD: median loss - L* < {AT_GD_B:g} L*; ✓ if at most half the construction's {full[0]} hidden",
        ),
        pc.row(
            c["icl_gap"],
            f"smallest median loss - L*: {f(float(med_b.min()))}",
            bool(med_b.min() < AT_GD_B * float(b["reference_train_loss"].mean())),
            f"✓ if < {AT_GD_B:g} L*",
        ),
    ]
    return rows


def late_improvement(df):
    """Per run: relative drop of the training loss over the last 20% of its steps (convergence evidence)."""
    return df["loss_curve"].map(lambda c: _common.late_improvement(c) if isinstance(c, list) else float("nan"))


def main(argv=None) -> int:
    _common.setup_torch()
    args = _common.parse_args(STUDY, __doc__.split("\n")[0], argv)

    from rnnattn.constructions import construction_sizes
    from rnnattn.display import Text

    rep = _common.StudyReport(
        args,
        "Figure 3 — identification against network size (d = 6)",
        "Zucchet et al., Gated RNNs discover attention, §3.2 and §4.2, Figure 3",
    )
    sizes = construction_sizes(ds=(6,), include=("gated_rnn",))[["construction", "hidden", "gating", "parameters"]]

    def count(text: str) -> tuple[int, int]:
        row = sizes[sizes["construction"].str.contains(text, regex=False)].iloc[0]
        return int(row["hidden"]), int(row["gating"])

    compact, minimal, full = count("form='compact'"), count("form='minimal'"), count("form='full'")
    gd = count("one-step GD")
    spec_a, spec_b = specs(args)
    a = _common.explode(_common.sweep(args, spec_a))
    b = _common.explode(_common.sweep(args, spec_b))
    zero = zero_predictor_loss()
    a["loss"] = a["train_loss"]
    a["normalised loss"] = a["train_loss"] / zero
    b["loss - L*"] = b["train_loss"] - b["reference_train_loss"]
    a["late improvement"], b["late improvement"] = late_improvement(a), late_improvement(b)
    cols = ["size", "seed", "steps", "n_parameters", "n_memory", "n_forget", "late improvement", "cpu_time"]
    a = a[cols[:4] + ["loss", "normalised loss"] + cols[4:]]
    b = b[cols[:4] + ["train_loss", "reference_train_loss", "loss - L*", "val_loss", "reference_val_loss"] + cols[4:]]

    t_a = transition(a, "normalised loss", IDENTIFIED_A)
    thr_b = AT_GD_B * float(b["reference_train_loss"].mean())
    t_b = transition(b, "loss - L*", thr_b)
    rep.claims(
        claim_rows(a, b, t_a, t_b, compact, full, gd),
        "Convergence: the 'late improvement' column of the per-size tables is the relative drop of the training "
        "loss over the last 20% of each run's steps (small: the run had stopped improving).",
    )
    fig = _figure(a, b, compact, minimal, full, gd)

    train_a, prot_a, train_b, prot_b = train_configs(args.mode, args.device)
    rep.section(
        "fig3",
        "Figure 3 (ours)",
        f"(A) identified (normalised loss < {IDENTIFIED_A:g}) from size {t_a or 'none'}; "
        f"(B) at GD's loss from size {t_b or 'none'}.",
        rep.figure(
            "fig3",
            fig,
            "Figure 3 (ours)",
            "Dots: seeds; line: median. Vertical lines: construction sizes from construction_sizes(); shaded: "
            "the paper's reading (about twice the construction) for (A).",
        ),
        Text(
            f"Training: (A) protocol '{prot_a}' with {train_a['steps']:,} AdamW steps, no polishing; (B) protocol "
            f"'{prot_b}' with {train_b['steps']:,} steps. {SEEDS[args.mode]} seeds per size, trained together "
            f"(batched). (A) losses are divided by the zero predictor's loss ({_common.fmt(zero)}).",
            "note",
        ),
    )
    _data_sections(rep, a, b, sizes)
    rep.summary.update(
        transition_A=t_a,
        transition_B=t_b,
        threshold_A=IDENTIFIED_A,
        threshold_B=thr_b,
        zero_predictor_loss=zero,
        construction={"compact": compact, "minimal": minimal, "full": full, "gd": gd},
        median_A=a.groupby("size")["normalised loss"].median().to_dict(),
        median_B=b.groupby("size")["loss - L*"].median().to_dict(),
    )
    rep.write()
    return 0


def _data_sections(rep, a, b, sizes) -> None:
    """Per-size tables of (A) and (B) and the construction sizes."""

    def med_table(df, col):
        return (
            df.groupby("size")
            .agg(
                seeds=("seed", "count"),
                median=(col, "median"),
                min=(col, "min"),
                max=(col, "max"),
                late_improvement=("late improvement", "median"),
                n_memory=("n_memory", "median"),
                n_forget=("n_forget", "median"),
            )
            .reset_index()
        )

    rep.section(
        "data_a",
        "(A) teacher-student, per size",
        "Median over seeds of the normalised loss; lambda counts (>0.99 / <0.01).",
        rep.table("fig3A_by_size", med_table(a, "normalised loss"), "(A) by size"),
        rep.table("fig3A_runs", a, "(A) every run", max_rows=80),
    )
    rep.section(
        "data_b",
        "(B) in-context regression, per size",
        "Gap to one-step GD on the same samples.",
        rep.table("fig3B_by_size", med_table(b, "loss - L*"), "(B) by size"),
        rep.table("fig3B_runs", b, "(B) every run", max_rows=80),
    )
    rep.section(
        "constructions",
        "Construction sizes (d = 6)",
        "Built by rnnattn.constructions.construction_sizes().",
        rep.table("construction_sizes", sizes, "Neuron counts"),
    )


def _figure(a, b, compact, minimal, full, gd):
    fig = _common.new_figure(9.5, 3.6)
    ax_a, ax_b = fig.subplots(1, 2)
    for ax, df, col, title in (
        (ax_a, a, "normalised loss", "(A) teacher-student: loss / zero predictor's"),
        (ax_b, b, "loss - L*", "(B) ICL: loss - one-step GD loss"),
    ):
        ax.scatter(df["size"], df[col].clip(lower=1e-10), s=14, alpha=0.6, label="seeds")
        med = df.groupby("size")[col].median()
        ax.plot(med.index, med.clip(lower=1e-10), "-o", ms=3, label="median")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden neurons = gating rows")
        ax.set_title(title, fontsize=9)
    ax_a.axhline(IDENTIFIED_A, color="k", lw=0.8, ls="--", label=f"identified < {IDENTIFIED_A:g}")
    ax_a.axvline(compact[0], color="C2", ls="--", lw=1, label=f"construction hidden ({compact[0]})")
    ax_a.axvline(minimal[1], color="C3", ls=":", lw=1, label=f"minimal gating ({minimal[1]})")
    ax_a.axvline(compact[1], color="C4", ls=":", lw=1, label=f"compact gating ({compact[1]})")
    ax_a.axvspan(1.5 * compact[0], 2.5 * compact[0], color="0.85", alpha=0.5, label="paper: ~2x construction")
    ax_b.axvline(gd[0], color="C2", ls="--", lw=1, label=f"GD hidden ({gd[0]})")
    ax_b.axvline(gd[1], color="C3", ls=":", lw=1, label=f"GD gating ({gd[1]})")
    ax_b.axvline(full[0], color="C4", ls="-.", lw=1, label=f"full construction hidden ({full[0]})")
    ax_a.legend(fontsize=6)
    ax_b.legend(fontsize=6)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
