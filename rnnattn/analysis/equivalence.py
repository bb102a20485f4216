"""The whole §3.1 pipeline in one call: is a trained gated RNN the reference attention layer in disguise?

``equivalence(student)`` loads the reference from the checkpoint metadata, then: loss on probe inputs → neuron
roles → prune → canonicalise → rank-1 merges (App. B.2) → KV/Q probes → instantaneous polynomials and their
distance → a verdict against stated thresholds, all in one
:class:`~rnnattn.analysis.results.EquivalenceResult`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from rnnattn.analysis.canonical import canonicalize
from rnnattn.analysis.distance import coefficient_differences, leading_terms, polynomial_distance
from rnnattn.analysis.errors import AnalysisNotApplicable
from rnnattn.analysis.inputs import probe_inputs
from rnnattn.analysis.loading import (
    ModelSource,
    hidden_lambda,
    input_names,
    labels,
    require_gated_rnn,
    resolve,
)
from rnnattn.analysis.merge import merge_rank1
from rnnattn.analysis.polynomial import instantaneous_polynomial
from rnnattn.analysis.probes import probe_scores
from rnnattn.analysis.prune import half_mse, prune
from rnnattn.analysis.references import resolve_reference
from rnnattn.analysis.results import PAPER_TABLE1, EquivalenceResult, EquivalenceThresholds
from rnnattn.analysis.roles import neuron_roles, role_counts
from rnnattn.models.gated_rnn import GatedLinearRNN


def _weights_of(m: GatedLinearRNN) -> dict[str, np.ndarray]:
    g = lambda t: t.detach().to(torch.float64).cpu().numpy().copy()  # noqa: E731
    out = {
        "W_m_in": g(m.W_m_in),
        "W_x_in": g(m.W_x_in),
        "W_m_out": g(m.W_m_out),
        "W_x_out": g(m.W_x_out),
        "D": g(m.D),
    }
    if m.config.recurrence == "dense":
        out["A"] = g(m.A)
    out["lam"] = g(m.lam) if m.config.recurrence == "diagonal" else np.abs(np.linalg.eigvals(g(m.A)))
    return out


def _summary(student: GatedLinearRNN, ref: torch.nn.Module, source: str, ref_desc: str) -> pd.DataFrame:
    c = student.config
    rows = [
        ("class", type(student).__name__, type(ref).__name__),
        ("d_input", c.d_input, ref.d_input),
        ("d_output", c.d_output, ref.d_output),
        ("hidden neurons", c.n_hidden, ""),
        ("gating rows", c.n_gating, ""),
        ("recurrence", c.recurrence, ""),
        ("parameters", student.n_parameters(), ref.n_parameters()),
        ("source", source, ref_desc),
        ("analysed in", "float64", "float64"),
    ]
    return pd.DataFrame([{"item": a, "student": str(b), "reference": str(r)} for a, b, r in rows])


def equivalence(
    student: ModelSource,
    reference: ModelSource | str | None = None,
    *,
    inputs: torch.Tensor | None = None,
    n_sequences: int = 256,
    seq_len: int | None = None,
    seed: int = 0,
    hi: float = 0.99,
    lo: float = 0.01,
    prune_threshold: float = 1e-3,
    ablation_tol: float | None = None,
    merge: bool = True,
    merge_tol: float = 1e-3,
    finetune_steps: int = 0,
    normalisation: str = "relative",
    thresholds: EquivalenceThresholds | None = None,
) -> EquivalenceResult:
    """Run the post-hoc analysis of §3.1 / App. B.2 on a gated RNN student against a linear-attention reference.

    Args:
        student: :class:`GatedLinearRNN` model, checkpoint or checkpoint path (analysed as a float64 copy).
        reference: see :func:`~rnnattn.analysis.references.resolve_reference` (default from the metadata).
        inputs: probe inputs ``[B, T, d]``; default ``n_sequences`` sequences from the checkpoint's task (see
            :func:`~rnnattn.analysis.inputs.probe_inputs`), x ~ N(0, I) without one. The loss is taken at the
            task's scored positions (all steps for teacher-student, the query step for ICL).
        hi, lo: lambda thresholds of memory / forget neurons.
        prune_threshold, ablation_tol: see :func:`~rnnattn.analysis.prune`.
        merge, merge_tol, finetune_steps: run :func:`~rnnattn.analysis.merge_rank1` on the non-conforming rows
            of the canonical model (tolerance on sigma2/sigma1; optional fine-tuning against the reference
            outputs).
        normalisation: polynomial distance variant used for ``polynomial_distance.value`` and the verdict.
        thresholds: pass thresholds (default :class:`EquivalenceThresholds`).
    Returns:
        :class:`EquivalenceResult` (see its docstring for every field).
    Raises:
        AnalysisNotApplicable: the student is not a gated RNN of Eq. 2.
    """
    thresholds = thresholds or EquivalenceThresholds()
    subj = resolve(student)
    m: GatedLinearRNN = require_gated_rnn(subj.model, "equivalence")
    ref = resolve_reference(subj, reference)
    notes: list[str] = []
    positions = None
    if inputs is None:
        pin = probe_inputs(subj.metadata, m.d_input, n_sequences, seq_len, seed)
        x, described, positions = pin.x, pin.description, pin.loss_positions
    else:
        x = inputs.to(torch.float64)
        described = f"given inputs, {x.shape[0]} sequences x {x.shape[1]} steps"
    with torch.no_grad():
        y_ref, y_s = ref.model(x), m(x)
    if y_ref.shape != y_s.shape:
        raise ValueError(f"equivalence: student outputs {tuple(y_s.shape)}, reference {tuple(y_ref.shape)}")
    sel = slice(None) if positions is None else positions

    def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # the task's scored positions only (ICL: the query step; the student is free elsewhere)
        return half_mse(pred[:, sel], target[:, sel])

    loss = float(loss_fn(y_s, y_ref))
    y_scale = float(y_ref.abs().max()) or 1.0

    roles = neuron_roles(m, hi, lo)
    if "note" in roles.attrs and "dense" in roles.attrs["note"]:
        notes.append(roles.attrs["note"])
    lam = roles["lam"].to_numpy(dtype=np.float64)

    xs, ys = x[:64], y_ref[:64]  # rewrites are checked on a subset (forward passes per unit for ablation)
    pr = prune(m, prune_threshold, data=(xs, ys), loss_fn=loss_fn, ablation_tol=ablation_tol)
    final = pr.model
    canonical = merges = None
    try:
        canonical = canonicalize(pr.model, hi, lo)
        final = canonical.model
    except AnalysisNotApplicable as e:
        notes.append(str(e))
    if merge:
        if canonical is None:
            notes.append("merge_rank1: skipped (needs the canonical form to find non-conforming rows)")
        elif not canonical.gating_conforming.any():
            notes.append(
                "merge_rank1: skipped: no gating row conforms to the block form of Fig. 1 (m-branch on memory, "
                "x-branch on forget neurons); App. B.2's merge applies once the rest of the model has that form"
            )
        elif int((~canonical.gating_conforming).sum()) >= 2:
            merges = merge_rank1(
                final, None, merge_tol, hi, lo, data=(xs, ys), loss_fn=loss_fn, finetune_steps=finetune_steps
            )
            if any(mg.merged for mg in merges.merges):
                final = merges.model
        else:
            notes.append(
                f"merge_rank1: {int((~canonical.gating_conforming).sum())} non-conforming gating row(s); "
                "nothing to merge"
            )

    probes = None
    try:
        probes = probe_scores(m, ref.model, inputs=x, hi=hi, lo=lo)
        notes += probes.notes
    except AnalysisNotApplicable as e:
        notes.append(str(e))

    p_s = instantaneous_polynomial(m)
    p_r = ref.polynomial
    if p_r.variables != p_s.variables and len(p_r.variables) == len(p_s.variables):
        p_s = type(p_s)(p_s.coefficients, p_r.variables, p_s.outputs, p_s.max_degree, p_s.source)
    dist = polynomial_distance(p_s, p_r, normalisation)

    checks = [
        ("loss (0.5 MSE vs reference)", loss, thresholds.loss),
        ("KV score", probes.kv_score if probes else np.nan, thresholds.kv_score),
        ("Q score", probes.q_score if probes else np.nan, thresholds.q_score),
        (f"polynomial distance ({normalisation})", dist.value, thresholds.polynomial_distance),
        (
            "pruning output change / max|y|",
            pr.max_output_change / y_scale,
            thresholds.prune_max_output_change,
        ),
    ]
    checks_df = pd.DataFrame(
        [
            {"check": c, "value": float(v), "threshold": t, "passed": bool(v < t)}
            for c, v, t in checks
            if np.isfinite(v)
        ]
    )
    verdict = bool(checks_df["passed"].all())
    failed = checks_df.loc[~checks_df["passed"], "check"].tolist()
    verdict_text = (
        "equivalent: every check below its threshold"
        if verdict
        else "not shown equivalent: " + ", ".join(failed) + " above threshold"
    )

    P = PAPER_TABLE1
    paper = pd.DataFrame(
        [
            {"quantity": "loss", "paper": P["loss"], "rnnattn": loss},
            {
                "quantity": "KV score",
                "paper": P["kv_score"],
                "rnnattn": probes.kv_score if probes else np.nan,
            },
            {"quantity": "Q score", "paper": P["q_score"], "rnnattn": probes.q_score if probes else np.nan},
            {"quantity": "polynomial distance", "paper": P["polynomial_distance"], "rnnattn": dist.value},
            {
                "quantity": "hidden neurons removed",
                "paper": f"{P['hidden_removed']}/{P['hidden_before']}",
                "rnnattn": f"{pr.n_hidden_before - pr.n_hidden_after}/{pr.n_hidden_before}",
            },
            {
                "quantity": "gating rows removed",
                "paper": f"{P['gating_removed']}/{P['gating_before']}",
                "rnnattn": f"{pr.n_gating_before - pr.n_gating_after}/{pr.n_gating_before}",
            },
        ]
    )
    source = str(subj.path) if subj.path else "in-memory model"
    settings = {
        "hi": hi,
        "lo": lo,
        "prune_threshold": prune_threshold,
        "ablation_tol": ablation_tol,
        "merge_tol": merge_tol,
        "finetune_steps": finetune_steps,
        "input_distribution": described,
        "n_sequences": int(x.shape[0]),
        "seq_len": int(x.shape[1]),
        "seed": seed,
        "rewrite_check_sequences": int(xs.shape[0]),
        "distance_normalisation": dist.description,
        "loss": "0.5 * mean squared error over batch, outputs and "
        + ("all time steps" if positions is None else f"time steps {positions}"),
        "dtype": "float64",
        "probe_regression": "sklearn LinearRegression with intercept, R^2 uniform average, pooled batch x time",
    }
    final_in_names = input_names(final) + (["1"] if final.config.append_one else [])
    weight_labels = {
        "hidden": labels(final, "hidden", final.config.n_hidden),
        "gating": labels(final, "gating", final.config.n_gating),
        "inputs": final_in_names,
        "outputs": [f"y{i + 1}" for i in range(final.d_output)],
    }
    return EquivalenceResult(
        student=m,
        reference=ref.model,
        reference_kind=ref.kind,
        model_summary=_summary(m, ref.model, source, ref.description),
        lam=lam,
        roles=roles,
        role_counts=role_counts(roles),
        loss=loss,
        prune=pr,
        canonical=canonical,
        weights=_weights_of(final),
        weight_labels=weight_labels,
        probes=probes,
        student_polynomial=p_s,
        reference_polynomial=p_r,
        polynomial_distance=dist,
        coefficient_differences=coefficient_differences(p_s, p_r),
        leading_terms=leading_terms(p_s, p_r),
        merges=merges,
        checks=checks_df,
        verdict=verdict,
        verdict_text=verdict_text,
        thresholds=thresholds,
        paper_table1=paper,
        settings=settings,
        notes=notes,
    )


__all__ = ["equivalence", "EquivalenceResult", "EquivalenceThresholds", "hidden_lambda"]
