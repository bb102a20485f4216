"""The report's sections, each built from the analysis results into a
:class:`~rnnattn.report.document.Section`
with a one-line reading of what it shows.

Every builder takes a :class:`Context`: the analysed model, the :class:`~rnnattn.analysis.EquivalenceResult`
when
the whole pipeline ran, or the partial results (and the reason) when it could not (no reference, or a model
such
as an LSTM to which a step does not apply — the section then says so instead of showing numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnattn.report import figures
from rnnattn.report.document import Figure, KeyValues, Section, Table, Text, format_value
from rnnattn.report.paper import PAPER_TABLE1, PAPER_TABLE2


@dataclass
class Context:
    """What the section builders read.

    Attributes:
        name: report name (checkpoint stem or given name).
        model: the analysed model (float64 copy); metadata/extras/path: from the checkpoint.
        result: the equivalence result, or None when the full pipeline did not run (``reason`` says why).
        partial: results of the steps that could run without it (``roles``, ``lam``, ``prune``, ``canonical``,
            ``weights``, ``weight_labels``, ``merges``, ``student_polynomial``), each absent when not
            applicable;
            ``reasons`` maps a step to why it did not apply.
        log, log_path, log_searched: the training log (DataFrame) if one was found, and where it was looked
        for.
    """

    name: str
    model: Any
    metadata: dict[str, Any]
    extras: dict[str, Any]
    path: Path | None
    result: Any = None
    reason: str = ""
    partial: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    log: pd.DataFrame | None = None
    log_path: Path | None = None
    log_searched: list[str] = field(default_factory=list)

    def get(self, key: str) -> Any:
        """A result field from the full result if present, else from the partial results (None if neither)."""
        if self.result is not None and hasattr(self.result, key):
            return getattr(self.result, key)
        return self.partial.get(key)

    def why_not(self, step: str) -> str:
        return self.reasons.get(step) or self.reason or f"{step} did not run"

    @property
    def kind(self) -> str:
        return self.result.reference_kind if self.result is not None else "none"


def _na(key: str, title: str, reason: str) -> Section:
    return Section(key, title, f"Not applicable: {reason}", [], status="not_applicable")


def _short_json(v: Any, limit: int = 300) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _metadata_items(meta: dict[str, Any]) -> list[tuple[str, str]]:
    items = []
    for k, v in meta.items():
        if k == "construction" and isinstance(v, dict):  # the source's full state is in there: summarise
            v = {kk: vv for kk, vv in v.items() if kk not in ("source", "labels")}
            v["source"] = "(attention layer stored in the metadata)"
        items.append((f"metadata.{k}", _short_json(v)))
    return items


def _final(log: pd.DataFrame | None, col: str) -> float | None:
    if log is None or col not in log.columns:
        return None
    v = pd.to_numeric(log[col], errors="coerce").dropna()
    return float(v.iloc[-1]) if len(v) else None


# -- 1. model and training
# -----------------------------------------------------------------------------------------
def summary_section(ctx: Context) -> Section:
    m = ctx.model
    cfg = ", ".join(f"{k}={v}" for k, v in m.config.to_dict().items())
    items = [
        ("checkpoint", str(ctx.path) if ctx.path else "(in-memory model)"),
        ("class", type(m).__name__),
        ("parameters", f"{m.n_parameters():,}"),
        ("config", cfg),
    ]
    r = ctx.result
    if r is not None:
        desc = dict(zip(r.model_summary["item"], r.model_summary["reference"], strict=False)).get(
            "source", ""
        )
        items.append(("reference", f"{r.reference_kind}: {desc}"))
    else:
        items.append(("reference", f"none ({ctx.reason})" if ctx.reason else "none"))
    items += [
        (f"extra '{n}'", f"{type(e).__name__} ({e.n_parameters():,} parameters)")
        for n, e in ctx.extras.items()
    ]
    items += _metadata_items(ctx.metadata)
    blocks: list = [KeyValues(items, title="Model")]
    if r is not None:
        blocks.append(Table(r.model_summary, title="Student and reference"))
    final = _final(ctx.log, "train_loss")
    if ctx.log is not None:
        paper = (
            PAPER_TABLE1["loss"]
            if ctx.kind == "teacher"
            else PAPER_TABLE2["rnn_loss"]
            if ctx.kind == "one_step_gd"
            else None
        )
        ref = _final(ctx.log, "ref_val_loss")
        try:
            fig = figures.loss_curve(
                ctx.log,
                paper_loss=paper,
                reference_loss=ref if ref and ref > 0 else None,
                reference_label="reference (validation)",
            )
            blocks.append(
                Figure(
                    fig,
                    title="Training loss",
                    alt="training loss curve (log scale)",
                    caption=f"From {ctx.log_path.name if ctx.log_path else 'the training log'}; "
                    "dashed: the paper's final loss.",
                )
            )
        except ValueError as e:
            blocks.append(Text(f"Training log {ctx.log_path} could not be plotted: {e}", "warning"))
        reading = (
            f"{type(m).__name__} with {m.n_parameters():,} parameters; training ended at loss "
            f"{format_value(final)} after {format_value(_final(ctx.log, 'step'))} steps."
        )
    else:
        blocks.append(
            Text(
                "No training log found (looked for "
                + ", ".join(ctx.log_searched or ["nothing"])
                + "); a construction or an untrained model has none.",
                "note",
            )
        )
        reading = (
            f"{type(m).__name__} with {m.n_parameters():,} parameters; no training log (not trained here)."
        )
    if r is not None:
        blocks.append(
            KeyValues(
                [(k, format_value(v)) for k, v in r.settings.items()],
                title="Analysis settings (choices the paper leaves open)",
            )
        )
    return Section("summary", "Model and training", reading, blocks)


# -- 2. lambda histogram
# ---------------------------------------------------------------------------------------------
def lambda_section(ctx: Context) -> Section:
    title = "Decay rates λ and neuron roles"
    lam, roles = ctx.get("lam"), ctx.get("roles")
    if lam is None:
        return _na("lambda", title, ctx.why_not("lambda"))
    hi = ctx.result.settings.get("hi", 0.99) if ctx.result is not None else 0.99
    lo = ctx.result.settings.get("lo", 0.01) if ctx.result is not None else 0.01
    role = roles["role"].to_numpy() if isinstance(roles, pd.DataFrame) else None
    fig = figures.lambda_histogram(np.asarray(lam), role, hi, lo)
    counts = pd.Series(
        role
        if role is not None
        else np.where(np.asarray(lam) > hi, "memory", np.where(np.asarray(lam) < lo, "forget", "other"))
    ).value_counts()
    n_mem, n_fgt = int(counts.get("memory", 0)), int(counts.get("forget", 0))
    d = ctx.model.d_input
    reading = (
        f"{n_mem} memory neurons (|λ| > {hi}), {n_fgt} forget neurons (|λ| < {lo}), "
        f"{len(lam) - n_mem - n_fgt} in between; the compact attention construction for d = {d} uses "
        f"{d * (d + 1) // 2} memory and {d} forget neurons."
    )
    blocks: list = [
        Figure(fig, title="Histogram of |λ| by role", alt="histogram of decay rates by neuron role")
    ]
    if isinstance(roles, pd.DataFrame) and "input_kind" in roles.columns:
        tab = pd.crosstab(roles["role"], roles["input_kind"]).reset_index()
        blocks.append(
            Table(
                tab,
                title="Roles by what the neuron reads",
                caption="quadratic: degree-2 input without degree-1 terms (KV units); linear: one branch "
                "reads only the constant (query units).",
            )
        )
    if "lambda" in ctx.reasons:
        blocks.append(Text(ctx.reasons["lambda"], "note"))
    return Section("lambda", title, reading, blocks)


# -- 3. pruning
# ------------------------------------------------------------------------------------------------------
def pruning_section(ctx: Context) -> Section:
    title = "Pruning"
    pr = ctx.get("prune")
    if pr is None:
        return _na("pruning", title, ctx.why_not("prune"))
    summ = pr.summary.copy()
    if ctx.kind == "teacher":
        summ["paper removed"] = [
            f"{PAPER_TABLE1['hidden_removed']}/{PAPER_TABLE1['hidden_before']}",
            f"{PAPER_TABLE1['gating_removed']}/{PAPER_TABLE1['gating_before']}",
        ]
    change = (
        f"the loss goes from {format_value(pr.loss_before)} to {format_value(pr.loss_after)}"
        if np.isfinite(pr.loss_before) and np.isfinite(pr.loss_after)
        else "no loss without a reference"
    )
    reading = (
        f"{pr.n_hidden_before - pr.n_hidden_after} of {pr.n_hidden_before} hidden neurons and "
        f"{pr.n_gating_before - pr.n_gating_after} of {pr.n_gating_before} gating rows are removable; "
        f"{change} (largest output change {format_value(pr.max_output_change)})."
    )
    blocks: list = [Table(summ, title="Units before and after pruning")]
    blocks.append(
        KeyValues(
            [
                ("loss before", format_value(pr.loss_before)),
                ("loss after", format_value(pr.loss_after)),
                ("max |Δy|", format_value(pr.max_output_change)),
                ("zero threshold (max|row| / max|W|)", format_value(pr.threshold)),
                ("ablation tolerance", format_value(pr.ablation_tol)),
            ],
            title="Function check",
        )
    )
    if len(pr.removed):
        why = pr.removed.groupby(["kind", "rule"]).size().reset_index(name="units")
        blocks.append(Table(why, title="Why units were removed"))
    return Section("pruning", title, reading, blocks)


# -- 4. canonical weights (Fig. 2A)
# ----------------------------------------------------------------------------------
def weights_section(ctx: Context) -> Section:
    title = "Canonical weights (Fig. 2A)"
    w = ctx.get("weights")
    if not w:
        return _na("weights", title, ctx.why_not("canonicalize"))
    labels = ctx.get("weight_labels") or {}
    mats = {
        k.replace("_in", "^in").replace("_out", "^out"): v for k, v in w.items() if k != "lam" and k != "A"
    }
    lam = w.get("lam")
    fig = figures.weight_heatmaps(mats, lam=lam, hidden_labels=labels.get("hidden"))
    can = ctx.get("canonical")
    N, M = w["W_m_in"].shape[0], w["D"].shape[1]
    if can is not None:
        conf = int(np.sum(can.gating_conforming))
        reading = (
            f"After pruning and canonicalisation: {N} hidden neurons and {M} gating rows, {conf} of "
            f"{len(can.gating_conforming)} rows in the block form of Fig. 1 (m-branch on memory, x-branch on "
            "forget neurons)."
        )
    else:
        reading = f"Pruned weights ({N} hidden neurons, {M} gating rows); canonical form not available."
    blocks: list = [
        Figure(
            fig,
            title="W_m^in, W_x^in, λ, W_m^out, W_x^out, D",
            alt="heatmaps of the canonical weights",
            caption="Rows: hidden neurons (input gating) "
            "and gating rows (output gating); red positive, blue negative, λ black = 1.",
        )
    ]
    if can is not None and isinstance(can.blocks, pd.DataFrame) and len(can.blocks):
        blocks.append(Table(can.blocks, title="Blocks"))
    if "canonicalize" in ctx.reasons:
        blocks.append(Text(ctx.reasons["canonicalize"], "note"))
    return Section("weights", title, reading, blocks)


# -- 5. probes (Table 1)
# ---------------------------------------------------------------------------------------------
def probes_section(ctx: Context) -> Section:
    title = "Probe scores (Table 1)"
    pr = ctx.get("probes")
    if pr is None:
        return _na("probes", title, ctx.why_not("probes"))
    paper = ctx.kind == "teacher"
    tab = pd.DataFrame(
        [
            {
                "score": "KV score (memory neurons → Σ v kᵀ)",
                "rnnattn": pr.kv_score,
                "paper": PAPER_TABLE1["kv_score"] if paper else None,
                "neurons": len(pr.memory_neurons),
            },
            {
                "score": "Q score (forget neurons → q)",
                "rnnattn": pr.q_score,
                "paper": PAPER_TABLE1["q_score"] if paper else None,
                "neurons": len(pr.forget_neurons),
            },
        ]
    )
    reading = (
        f"KV score {format_value(pr.kv_score)} and Q score {format_value(pr.q_score)} (1 − R², 0 = perfectly "
        "decodable): how linearly the memory neurons hold the key-value sums and the forget neurons the "
        "queries."
    )
    blocks: list = [
        Table(
            tab,
            title="1 − R² of linear probes",
            caption=f"{pr.input_distribution}; {pr.n_points:,} points; features: {pr.features}.",
        )
    ]
    blocks.append(
        Figure(
            figures.score_bars(
                {"KV": pr.kv_score, "Q": pr.q_score},
                {"KV": PAPER_TABLE1["kv_score"], "Q": PAPER_TABLE1["q_score"]} if paper else None,
            ),
            title="Scores (log scale)",
            alt="probe scores bar chart",
        )
    )
    for name, df in (("KV targets (worst first)", pr.kv_detail), ("Q targets (worst first)", pr.q_detail)):
        if isinstance(df, pd.DataFrame) and len(df):
            blocks.append(
                Table(df.sort_values("score", ascending=False, kind="stable"), title=name, max_rows=8)
            )
    blocks += [Text(n, "note") for n in pr.notes]
    return Section("probes", title, reading, blocks)
