"""The report's first sections, each built from the typed result of one pipeline step into a
:class:`~rnnattn.display.Section` with a one-line reading of what it shows.

Every builder takes a :class:`ReportInputs`: the :class:`~rnnattn.analysis.EquivalenceResult` (one field per
step, each its result or :class:`~rnnattn.analysis.NotApplicable`) plus what the checkpoint file brings (name,
metadata, training log). A step that did not apply gives a "not applicable" section stating its reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rnnattn.analysis import (
    CanonicalResult,
    EffectiveCounts,
    EquivalenceResult,
    NotApplicable,
    ProbeResult,
    PruneResult,
    RolesResult,
    WeightsResult,
)
from rnnattn.analysis.rotate import RotationResult
from rnnattn.display import Figure, KeyValues, Section, Table, Text, format_value
from rnnattn.paper import paper_figures
from rnnattn.report import figures


@dataclass
class ReportInputs:
    """What the section builders read.

    Attributes:
        name: report name (checkpoint stem or given name).
        result: the pipeline's result (every step's result or why it did not apply).
        path: the checkpoint as the report names it (relative to the working folder, or the bare file name).
        metadata, extras: from the checkpoint.
        log, log_name, log_searched: the training log (DataFrame) if one was found, its file name, and the
            file names looked for.
    """

    name: str
    result: EquivalenceResult
    path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    log: pd.DataFrame | None = None
    log_name: str | None = None
    log_searched: list[str] = field(default_factory=list)


def not_applicable(key: str, title: str, na: NotApplicable) -> Section:
    return Section(key, title, f"Not applicable: {na.reason}", [], status="not_applicable")


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


def final_value(log: pd.DataFrame | None, col: str) -> float | None:
    """The last finite value of a training-log column (None without the column)."""
    if log is None or col not in log.columns:
        return None
    v = pd.to_numeric(log[col], errors="coerce").dropna()
    return float(v.iloc[-1]) if len(v) else None


# -- 1. model and training ---------------------------------------------------------------------------------------
def _loss_curve(src: ReportInputs) -> Figure | Text:
    paper = paper_figures(src.result.task)
    ref = final_value(src.log, "ref_val_loss")
    if not figures.loss_columns(src.log):  # type: ignore[arg-type]
        return Text(f"Training log {src.log_name} has no numeric loss column to plot.", "warning")
    fig = figures.loss_curve(
        src.log,  # type: ignore[arg-type]
        paper_loss=paper.final_loss if paper else None,
        reference_loss=ref if ref and ref > 0 else None,
        reference_label="reference (validation)",
    )
    dashed = f"dashed: the paper's final loss ({paper.name})." if paper else "the paper reports no run of this task."
    return Figure(fig, title="Training loss", alt="training loss curve (log scale)",
                  caption=f"From {src.log_name or 'the training log'}; {dashed}")


def summary_section(src: ReportInputs) -> Section:
    r, m = src.result, src.result.student
    ref = r.reference
    items = [
        ("checkpoint", src.path or "(in-memory model)"),
        ("class", type(m).__name__),
        ("parameters", f"{m.n_parameters():,}"),
        ("config", ", ".join(f"{k}={v}" for k, v in m.config.to_dict().items())),
        ("reference", f"{ref.kind}: {ref.description}" if ref else f"none ({ref.reason})"),  # type: ignore[union-attr]
        ("task", r.task or "none recorded"),
    ]
    items += [(f"extra '{n}'", f"{type(e).__name__} ({e.n_parameters():,} parameters)") for n, e in src.extras.items()]
    items += _metadata_items(src.metadata)
    blocks: list = [KeyValues(items, title="Model"), Table(r.summary, title="Student and reference")]
    if src.log is not None:
        blocks.append(_loss_curve(src))
        reading = (f"{type(m).__name__} with {m.n_parameters():,} parameters; training ended at loss "
                   f"{format_value(final_value(src.log, 'train_loss'))} after "
                   f"{format_value(final_value(src.log, 'step'))} steps.")
    else:
        looked = ", ".join(src.log_searched or ["nothing"])
        blocks.append(Text(f"No training log found (looked for {looked}); a construction or an untrained model "
                           "has none.", "note"))
        reading = f"{type(m).__name__} with {m.n_parameters():,} parameters; no training log (not trained here)."
    blocks.append(KeyValues([(k, format_value(v)) for k, v in r.settings.items()],
                            title="Analysis settings (choices the paper leaves open)"))
    return Section("summary", "Model and training", reading, blocks)


# -- 2. lambda histogram -----------------------------------------------------------------------------------------
def lambda_section(src: ReportInputs) -> Section:
    title = "Decay rates λ and neuron roles"
    roles = src.result.roles
    if not isinstance(roles, RolesResult):
        return not_applicable("lambda", title, roles)
    fig = figures.lambda_histogram(roles.lam, roles.table["role"].to_numpy(), roles.hi, roles.lo)
    n_mem, n_fgt = roles.counts["memory"], roles.counts["forget"]
    d = src.result.student.d_input
    reading = (f"{n_mem} memory neurons (|λ| > {roles.hi}), {n_fgt} forget neurons (|λ| < {roles.lo}), "
               f"{roles.counts['other']} in between; the compact attention construction for d = {d} uses "
               f"{d * (d + 1) // 2} memory and {d} forget neurons.")
    blocks: list = [Figure(fig, title="Histogram of |λ| by role", alt="histogram of decay rates by neuron role")]
    if roles.features == "neurons":
        tab = pd.crosstab(roles.table["role"], roles.table["input_kind"]).reset_index()
        blocks.append(Table(tab, title="Roles by what the neuron reads",
                            caption="quadratic: degree-2 input without degree-1 terms (KV units); linear: one "
                            "branch reads only the constant (query units)."))
    else:
        blocks.append(Text(roles.note, "note"))
    return Section("lambda", title, reading, blocks)


def _mixed_basis_note(src: ReportInputs) -> str:
    """Why zero rows can leave more units than the function needs: the measured effective counts and rotation."""
    pr, eff, rot = src.result.prune, src.result.effective, src.result.rotation
    if not isinstance(pr, PruneResult) or not isinstance(eff, EffectiveCounts):
        return ""
    need = eff.n_kv + eff.n_query
    if pr.n_hidden_after <= need:
        return ""
    note = (f" Zero rows leave {pr.n_hidden_after} hidden neurons, {pr.n_hidden_after - need} more than the "
            f"{eff.n_kv} KV + {eff.n_query} query directions the function uses (effective counts, below): neurons "
            "that mix directions within a λ group (which keeps the function and the loss) or carry small "
            "contributions have no zero rows.")
    if isinstance(rot, RotationResult):
        note += (f" Rotated to the canonical basis: {rot.n_hidden_after} hidden neurons and {rot.n_gating_after} "
                 f"gating rows (polynomial distance {format_value(rot.polynomial_distance)} to this student).")
    return note


# -- 3. pruning --------------------------------------------------------------------------------------------------
def pruning_section(src: ReportInputs) -> Section:
    title = "Pruning"
    pr = src.result.prune
    if not isinstance(pr, PruneResult):
        return not_applicable("pruning", title, pr)
    summ = pr.summary.copy()
    paper = paper_figures(src.result.task)
    if paper is not None and "hidden_removed" in paper.numbers:
        P = paper.numbers
        summ[f"paper removed ({paper.name})"] = [f"{P['hidden_removed']}/{P['hidden_before']}",
                                                 f"{P['gating_removed']}/{P['gating_before']}"]
    change = (f"the loss goes from {format_value(pr.loss_before)} to {format_value(pr.loss_after)}"
              if np.isfinite(pr.loss_before) and np.isfinite(pr.loss_after) else "no loss without a reference")
    reading = (f"{pr.n_hidden_before - pr.n_hidden_after} of {pr.n_hidden_before} hidden neurons and "
               f"{pr.n_gating_before - pr.n_gating_after} of {pr.n_gating_before} gating rows are removable; "
               f"{change} (largest output change {format_value(pr.max_output_change)})." + _mixed_basis_note(src))
    blocks: list = [
        Table(summ, title="Units before and after pruning"),
        KeyValues([("loss before", format_value(pr.loss_before)), ("loss after", format_value(pr.loss_after)),
                   ("max |Δy|", format_value(pr.max_output_change)),
                   ("zero threshold (max|row| / max|W|)", format_value(pr.threshold)),
                   ("ablation tolerance", format_value(pr.ablation_tol))], title="Function check"),
    ]
    if len(pr.removed):
        blocks.append(Table(pr.removed.groupby(["kind", "rule"]).size().reset_index(name="units"),
                            title="Why units were removed"))
    return Section("pruning", title, reading, blocks)


# -- 4. canonical weights (Fig. 2A) ------------------------------------------------------------------------------
def weights_section(src: ReportInputs) -> Section:
    title = "Canonical weights (Fig. 2A)"
    w, can = src.result.weights, src.result.canonical
    if not isinstance(w, WeightsResult):
        return not_applicable("weights", title, w)
    mats = {k.replace("_in", "^in").replace("_out", "^out"): v for k, v in w.matrices.items() if k not in ("lam", "A")}
    fig = figures.weight_heatmaps(mats, lam=w.matrices["lam"], hidden_labels=w.labels["hidden"])
    N, M = w.matrices["W_m_in"].shape[0], w.matrices["D"].shape[1]
    blocks: list = [Figure(fig, title="W_m^in, W_x^in, λ, W_m^out, W_x^out, D",
                           alt="heatmaps of the canonical weights",
                           caption="Rows: hidden neurons (input gating) and gating rows (output gating); red "
                           "positive, blue negative, λ black = 1.")]
    if isinstance(can, CanonicalResult):
        conf = int(np.sum(can.gating_conforming))
        reading = (f"After {w.stage}: {N} hidden neurons and {M} gating rows, {conf} of "
                   f"{len(can.gating_conforming)} canonical rows in the block form of Fig. 1 (m-branch on memory, "
                   "x-branch on forget neurons).")
        if len(can.blocks):
            blocks.append(Table(can.blocks, title="Blocks"))
    else:
        reading = f"Pruned weights ({N} hidden neurons, {M} gating rows); canonical form not available."
        blocks.append(Text(can.reason, "note"))  # type: ignore[union-attr]
    return Section("weights", title, reading, blocks)


# -- 5. probes (Table 1) -----------------------------------------------------------------------------------------
def probes_section(src: ReportInputs) -> Section:
    title = "Probe scores (KV and Q, §3.1)"
    pr = src.result.probes
    if not isinstance(pr, ProbeResult):
        return not_applicable("probes", title, pr)
    paper = paper_figures(src.result.task)
    P = paper.numbers if paper is not None and "kv_score" in paper.numbers else None
    tab = pd.DataFrame([
        {"score": "KV score (memory neurons → Σ v kᵀ)", "rnnattn": pr.kv_score,
         "paper": P["kv_score"] if P else None, "neurons": len(pr.memory_neurons)},
        {"score": "Q score (forget neurons → q)", "rnnattn": pr.q_score,
         "paper": P["q_score"] if P else None, "neurons": len(pr.forget_neurons)},
    ])
    reading = (f"KV score {format_value(pr.kv_score)} and Q score {format_value(pr.q_score)} (1 − R², 0 = "
               "perfectly decodable): how linearly the memory neurons hold the key-value sums and the forget "
               "neurons the queries.")
    blocks: list = [
        Table(tab, title="1 − R² of linear probes",
              caption=f"{pr.input_distribution}; {pr.n_points:,} points; features: {pr.features}."),
        Figure(figures.score_bars({"KV": pr.kv_score, "Q": pr.q_score},
                                  {"KV": P["kv_score"], "Q": P["q_score"]} if P else None),
               title="Scores (log scale)", alt="probe scores bar chart"),
    ]
    for name, df in (("KV targets (worst first)", pr.kv_detail), ("Q targets (worst first)", pr.q_detail)):
        if len(df):
            blocks.append(Table(df.sort_values("score", ascending=False, kind="stable"), title=name, max_rows=8))
    blocks += [Text(n, "note") for n in pr.notes]
    return Section("probes", title, reading, blocks)
