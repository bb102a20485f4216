"""The paper's published figures (Zucchet et al.), shown beside rnnattn's in the report's verdict.

Table 1 (teacher-student, d = 4, §3.1) comes from the analysis stage (``PAPER_TABLE1``); Table 2 (in-context
linear
regression, d_x = d_y = 3, §4 / App. C) is listed here: loss of the trained RNN vs one-step GD, the
coefficients of
``x_j^2 y_1`` in output 1 of the instantaneous polynomial vs the optimal GD learning rate ``eta* = 1/14.8``,
and the
norm of all other coefficients of output 1.
"""

from __future__ import annotations

from rnnattn.analysis.results import PAPER_TABLE1

PAPER_TABLE2: dict[str, float] = {
    "rnn_loss": 0.0945,
    "gd_loss": 0.0947,
    "x1^2*y1": 6.81e-2,
    "x2^2*y1": 6.82e-2,
    "x3^2*y1": 6.82e-2,
    "eta_star": 1 / 14.8,  # 0.067568, Table 2's "GD" column (6.76e-2)
    "residual": 1.35e-3,
}

__all__ = ["PAPER_TABLE1", "PAPER_TABLE2"]
