"""The paper's numbers and claims that the reproduction studies check (Zucchet et al., "Gated recurrent neural
networks discover attention", ICML 2024; the text is in ``/work/shared/seeds/``).

The published table numbers have one source, :mod:`rnnattn.paper` (the report shows the same ones); the
claims, and the numbers only the studies use (seed spreads, unit counts), live here beside the studies; the
LSRL noise study's claims are Petrov et al.'s (Fig. 4). Each
study turns its measurements into rows of a claims table (:func:`row`): the paper's claim, the paper's number,
ours, ✓/✗ and the criterion with the numbers behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnattn import paper


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: what it says, the number it gives, and where."""

    key: str
    text: str
    paper: str
    source: str


# -- Table 1 (§3.1, Fig. 2, App. B.2): d = 4, N = M = 100 student, 781,250 AdamW steps
_T1 = paper.PAPER_TABLE1
TABLE1 = {
    **{k: _T1[k] for k in ("loss", "kv_score", "q_score", "polynomial_distance", "hidden_removed", "gating_removed")},
    "n_before": _T1["hidden_before"],
    "kv_units": 10,  # d(d+1)/2 perfect-memory (lambda = 1) units: the compact construction's key-value count
    "query_units": 4,  # d perfect-forget (lambda = 0) units
    "merged_rows": 3,  # output-gating rows 11-13 merge into one (rank-1 kernel, App. B.2)
}
TABLE1_CLAIMS = (
    Claim("loss", "the student matches the teacher in distribution", "loss 4.97e-8", "Table 1"),
    Claim("kv_score", "key-values are a linear read-out of the λ = 1 neurons", "KV score 4.52e-8", "Table 1"),
    Claim("q_score", "queries are a linear read-out of the λ = 0 neurons", "Q score 2.06e-10", "Table 1"),
    Claim("poly", "the instantaneous polynomial is the teacher's", "distance 3.73e-4", "Table 1, §3.1"),
    Claim("prune", "pruning removes most neurons", "86/100 hidden, 87/100 gating removed", "§3.1"),
    Claim("roles", "only λ = 1 (KV) and λ = 0 (query) units contribute", "10 KV + 4 query", "Fig. 2A, §3.1"),
    Claim("effective", "the student stores d(d+1)/2 key-values and d queries", "10 KV, 4 query", "§3.1"),
    Claim("kv_degree", "KV units receive a degree-2 input with no degree-1 term", "last column of W^in = 0", "Fig. 2A"),
    Claim("merge", "a rank-1 group of gating rows merges into one row", "rows 11-13 -> 1", "Fig. 2C, App. B.2"),
    Claim(
        "rotated",
        "the student is the compact construction up to an equivalent rewrite",
        "14 hidden units left",
        "§3.1, Fig. 2A",
    ),
)

# -- Table 2 (§4.2, App. C): in-context linear regression, T = 12, d_x = d_y = 3, 80/80, 300,000 steps, 4 seeds
_T2 = paper.PAPER_TABLE2
TABLE2 = {
    "rnn_loss": _T2["rnn_loss"],
    "gd_loss": _T2["gd_loss"],
    "coef": tuple(_T2[f"x{j}^2*y1"] for j in (1, 2, 3)),
    "coef_std": (8.52e-5, 6.40e-5, 5.56e-5),
    "gd_coef": _T2["eta_star"],  # 1/14.8, printed 6.76e-2 in Table 2
    "residual": _T2["residual"],
    "residual_std": 1.97e-4,
    "seeds": 4,
}
TABLE2_CLAIMS = (
    Claim("loss", "the RNN's training loss equals one-step GD's", "0.0945 vs GD 0.0947", "§4.2"),
    Claim("coef1", "x1² y1 coefficient = GD's η*", "6.81e-2 ± 8.52e-5 (η* 6.76e-2)", "Table 2"),
    Claim("coef2", "x2² y1 coefficient = GD's η*", "6.82e-2 ± 6.40e-5", "Table 2"),
    Claim("coef3", "x3² y1 coefficient = GD's η*", "6.82e-2 ± 5.56e-5", "Table 2"),
    Claim("residual", "all other coefficients vanish", "residual norm 1.35e-3 ± 1.97e-4", "Table 2"),
    Claim("context_query", "the output is one GD step η* y_c x_cᵀ x_q on the task's support", "exact GD", "§4.1 Eq. 4"),
)

# -- Figure 3 (§3.2, §4.2): identification against size, d = 6
FIG3_CLAIMS = (
    Claim(
        "ts_transition",
        "teacher-student: identification needs mild over-parametrisation, about twice the neurons required",
        "transition ≈ 2x the construction",
        "§3.2, Fig. 3A",
    ),
    Claim("ts_drop", "teacher-student: the loss drops by orders of magnitude across the transition", "yes", "Fig. 3A"),
    Claim(
        "icl_transition",
        "ICL: the transition happens for far fewer neurons than the construction specifies",
        "far below 42 hidden / 36 gating",
        "§4.2, Fig. 3B",
    ),
    Claim("icl_gap", "ICL: above the transition the RNN reaches one-step GD's loss", "loss - L* ≈ 0", "Fig. 3B"),
)

# -- Figures 4 and 5 (§3.3, §4.3, App. B.1): architectures, d = 6
FIG4_CLAIMS = (
    Claim("diag_best", "teacher-student: diagonal connectivity is the best inductive bias", "best", "§3.3, Fig. 4A"),
    Claim("dense_close", "teacher-student: dense recurrence is close to diagonal", "close", "§3.3, Fig. 4A"),
    Claim("lstm_gru", "teacher-student: LSTM ≈ GRU, both far from the gated RNN", "LSTM ≈ GRU, poor", "§3.3"),
    Claim(
        "lru_gating", "teacher-student: input gating significantly improves the LRU", "In+Out, In+Skip < Out", "§3.3"
    ),
    Claim("beat_gd", "ICL: nonlinear RNNs beat one-step GD given enough parameters", "below GD", "§4.3, Fig. 4B"),
    Claim("gru_best", "ICL: the GRU is the best architecture", "GRU best", "§4.3, Fig. 4B"),
    Claim("lru_icl", "ICL: massive improvement from LRU Out to input-gated LRUs", "In+* << Out", "§4.3, Fig. 5"),
)

# -- Petrov et al. 2024, Fig. 4 (§6): the f_ifelse forms of LSRL under weight noise (analysis/lsrl_noise.py)
LSRL_NOISE_CLAIMS = (
    Claim(
        "direct_clean",
        "tok2tok: the original f_ifelse (Eq. 7) has precision errors even without noise",
        "89.2% wrong (72-96), every sample",
        "Petrov et al. Fig. 4",
    ),
    Claim(
        "others_clean",
        "tok2tok: the optimized, step and multiplicative forms are exact without noise",
        "0%",
        "Petrov et al. Fig. 4",
    ),
    Claim(
        "direct_low",
        "the original f_ifelse fails at the lowest noise magnitude",
        "89.8% wrong at 1e-9",
        "Petrov et al. Fig. 4",
    ),
    Claim(
        "mult_robust",
        "the forms with multiplicative gating are the most robust",
        "most robust",
        "Petrov et al. Fig. 4, §6",
    ),
    Claim(
        "vec_clean",
        "vec2vec: every form approximates the target without noise (discretisation error)",
        "median 0.025-0.045",
        "Petrov et al. Fig. 4",
    ),
)


def mark(ok: bool | None) -> str:
    """✓ reproduced, ✗ not reproduced, – not measured (the reason is in the row)."""
    return "–" if ok is None else ("✓" if ok else "✗")


def row(claim: Claim, ours: str, ok: bool | None, criterion: str) -> dict[str, Any]:
    """One row of a claims table."""
    return {
        "claim (paper)": claim.text,
        "source": claim.source,
        "paper": claim.paper,
        "ours": ours,
        "reproduced": mark(ok),
        "criterion": criterion,
    }
