"""The published figures of Zucchet et al. (ICML 2024), keyed by the task they belong to.

Data only (no imports): the report reads the table of a checkpoint's task (:func:`paper_figures`), so a
teacher-student report shows Table 1 and an in-context-regression report shows Table 2; the reproduction
studies (``analysis/table1.py``, ``analysis/table2.py``) read the same numbers.

* Table 1 (teacher-student, d = 4, §3.1, one run): loss, KV and Q probe scores, polynomial distance, and the
  §3.1 pruning counts (86 of 100 hidden neurons and 87 of 100 output-gating rows removed).
* Table 2 (in-context linear regression, d_x = d_y = 3, T = 12, §4 / App. C): loss of the trained RNN and of
  one-step GD, the coefficients of ``x_j^2 y_1`` in output 1 of the instantaneous polynomial against the
  optimal GD learning rate ``eta* = 1/14.8`` (App. C.2), and the norm of all other coefficients of output 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

PAPER_TABLE1: MappingProxyType[str, float] = MappingProxyType(
    {
        "loss": 4.97e-8,
        "kv_score": 4.52e-8,
        "q_score": 2.06e-10,
        "polynomial_distance": 3.73e-4,
        "hidden_removed": 86,
        "hidden_before": 100,
        "gating_removed": 87,
        "gating_before": 100,
    }
)

PAPER_TABLE2: MappingProxyType[str, float] = MappingProxyType(
    {
        "rnn_loss": 0.0945,
        "gd_loss": 0.0947,
        "x1^2*y1": 6.81e-2,
        "x2^2*y1": 6.82e-2,
        "x3^2*y1": 6.82e-2,
        "eta_star": 1 / 14.8,  # 0.067568, Table 2's "GD" column (6.76e-2)
        "residual": 1.35e-3,
    }
)


@dataclass(frozen=True)
class PaperFigures:
    """One published table: ``name`` ("Table 1"), what it measured (``setting``), the task it belongs to, the
    numbers, and the headline training loss (for the loss-curve overlay)."""

    name: str
    setting: str
    task: str
    numbers: MappingProxyType[str, float]
    final_loss: float


PAPERS: dict[str, PaperFigures] = {
    "teacher_student": PaperFigures(
        "Table 1", "teacher-student, d = 4, one run (§3.1)", "teacher_student", PAPER_TABLE1, PAPER_TABLE1["loss"]
    ),
    "icl_regression": PaperFigures(
        "Table 2",
        "in-context linear regression, d_x = d_y = 3, T = 12, 4 seeds (§4, App. C)",
        "icl_regression",
        PAPER_TABLE2,
        PAPER_TABLE2["rnn_loss"],
    ),
}


def paper_figures(task: str | dict[str, Any] | None) -> PaperFigures | None:
    """The paper's table for a task name (or a task dict with ``"name"``); ``None`` for tasks the paper does not
    report (constructions, other tasks)."""
    name = task.get("name") if isinstance(task, dict) else task
    return PAPERS.get(name) if isinstance(name, str) else None


__all__ = ["PAPER_TABLE1", "PAPER_TABLE2", "PaperFigures", "PAPERS", "paper_figures"]
