"""The paper's figures beside ours, chosen by the checkpoint's task (the numbers live in :mod:`rnnattn.paper`).

A teacher-student report shows Table 1, an in-context-regression report Table 2, an exact construction the
float64 expectations of the construction; any other task no paper table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rnnattn.analysis import EquivalenceResult, Polynomial, PolynomialComparison, ProbeResult, PruneResult
from rnnattn.analysis.references import Reference
from rnnattn.paper import PAPER_TABLE1, PAPER_TABLE2, paper_figures


def table1(r: EquivalenceResult) -> pd.DataFrame:
    """Table 1 and the §3.1 pruning counts beside ours: ``quantity``, ``paper``, ``rnnattn`` (numbers and
    "removed/before" strings in one column; the display formats each cell on its own)."""
    P = PAPER_TABLE1
    pr = r.prune if isinstance(r.prune, PruneResult) else None
    probes = r.probes if isinstance(r.probes, ProbeResult) else None
    dist = r.comparison.distance.value if isinstance(r.comparison, PolynomialComparison) else None
    rows = [
        ("loss", P["loss"], r.loss.value if r.loss else None),  # type: ignore[union-attr]
        ("KV score", P["kv_score"], probes.kv_score if probes else None),
        ("Q score", P["q_score"], probes.q_score if probes else None),
        ("polynomial distance", P["polynomial_distance"], dist),
        ("hidden neurons removed", f"{P['hidden_removed']}/{P['hidden_before']}",
         f"{pr.n_hidden_before - pr.n_hidden_after}/{pr.n_hidden_before}" if pr else None),
        ("gating rows removed", f"{P['gating_removed']}/{P['gating_before']}",
         f"{pr.n_gating_before - pr.n_gating_after}/{pr.n_gating_before}" if pr else None),
    ]
    return pd.DataFrame([{"quantity": q, "paper": p, "rnnattn": o} for q, p, o in rows])


def _xsq_y(p: Polynomial, d_x: int, j: int) -> int:
    target = np.zeros(p.n_vars, dtype=int)
    target[j], target[d_x] = 2, 1
    return int(np.flatnonzero((p.exponents == target).all(axis=1))[0])


def table2(r: EquivalenceResult, losses: dict[str, float | None]) -> pd.DataFrame | None:
    """Table 2 from the student's polynomial: the ``x_j^2 y_1`` coefficients of the first predicted output, the
    norm of every other coefficient of that output, and the losses (``losses``: ``train``, ``val``,
    ``ref_val`` from the training log). None without the one-step-GD reference (it records d_x, d_y, eta)."""
    p = r.student_polynomial
    meta = r.reference.model.metadata if isinstance(r.reference, Reference) else {}
    d_x, d_y = meta.get("d_x"), meta.get("d_y")  # recorded by the one-step-GD reference
    if not isinstance(p, Polynomial) or d_x is None or d_y is None or p.n_vars != d_x + d_y:
        return None
    eta = meta.get("eta")
    out = 0 if p.n_outputs == d_y else d_x  # the prediction sits in the y slots when outputs = tokens
    picked = [_xsq_y(p, d_x, j) for j in range(d_x)]
    rows = [
        {"quantity": f"coefficient of x{j + 1}²·y1", "rnnattn": float(p.coefficients[out, k]), "one-step GD": eta,
         "paper RNN": PAPER_TABLE2.get(f"x{j + 1}^2*y1"), "paper GD": PAPER_TABLE2["eta_star"]}
        for j, k in enumerate(picked)
    ]
    rows.append({"quantity": "residual norm (all other coefficients)",
                 "rnnattn": float(np.linalg.norm(np.delete(p.coefficients[out], picked))), "one-step GD": 0.0,
                 "paper RNN": PAPER_TABLE2["residual"], "paper GD": 0.0})
    rows.append({"quantity": "training loss (final, log)", "rnnattn": losses.get("train"), "one-step GD": None,
                 "paper RNN": PAPER_TABLE2["rnn_loss"], "paper GD": PAPER_TABLE2["gd_loss"]})
    if losses.get("val") is not None:
        rows.append({"quantity": "validation loss vs GD on the same samples", "rnnattn": losses["val"],
                     "one-step GD": losses.get("ref_val"), "paper RNN": None, "paper GD": None})
    return pd.DataFrame(rows, dtype=object)  # None stays "—", not NaN


def construction_expectations(r: EquivalenceResult) -> pd.DataFrame:
    """What an exact construction must show: equality with its source up to float64 rounding."""
    probes = r.probes if isinstance(r.probes, ProbeResult) else None
    dist = r.comparison.distance.value if isinstance(r.comparison, PolynomialComparison) else None
    return pd.DataFrame([
        {"quantity": "loss vs source", "expected": "~1e-30 (float64 rounding)",
         "rnnattn": r.loss.value if r.loss else None},  # type: ignore[union-attr]
        {"quantity": "polynomial distance", "expected": "< 1e-12", "rnnattn": dist},
        {"quantity": "KV score", "expected": "< 1e-10", "rnnattn": probes.kv_score if probes else None},
        {"quantity": "Q score", "expected": "< 1e-10", "rnnattn": probes.q_score if probes else None},
    ])


def paper_comparison(r: EquivalenceResult, losses: dict[str, float | None]) -> tuple[pd.DataFrame, str] | None:
    """``(table, what it is)`` for the result's task: Table 1 for teacher-student, Table 2 for in-context
    regression, the exact expectations for a construction; None otherwise."""
    paper = paper_figures(r.task)
    if paper is not None and paper.task == "teacher_student":
        return table1(r), f"{paper.name} ({paper.setting})"
    if paper is not None and paper.task == "icl_regression":
        t2 = table2(r, losses)
        return (t2, f"{paper.name} ({paper.setting})") if t2 is not None else None
    if r.reference_kind == "construction":
        return construction_expectations(r), "an exact construction: equal to its source up to float64 rounding"
    return None


__all__ = ["table1", "table2", "construction_expectations", "paper_comparison"]
