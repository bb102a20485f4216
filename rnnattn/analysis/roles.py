"""Neuron roles (§3.1): classify hidden neurons by their decay and by what they read.

A gated RNN implementing attention has *perfect memory* neurons (lambda = 1, accumulating key-values
``sum v_i k_j``: degree-2 input with no degree-1 term, i.e. no branch reads the constant) and *perfect forget*
neurons (lambda = 0, holding the query ``q_j``: one branch reads only the constant, so the input is degree 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from rnnattn.analysis.loading import ModelSource, hidden_lambda, labels, require_gated_rnn, resolve
from rnnattn.models.gated_rnn import GatedLinearRNN


def role_of(lam: np.ndarray, hi: float = 0.99, lo: float = 0.01) -> np.ndarray:
    """ "memory" where ``|lambda| > hi``, "forget" where ``|lambda| < lo``, else "other"."""
    a = np.abs(lam)
    return np.where(a > hi, "memory", np.where(a < lo, "forget", "other"))


def _input_kind(m: np.ndarray, x: np.ndarray, const: bool, tol: float, scale_m: float, scale_x: float) -> str:
    """Polynomial kind of ``g_n(x) = (m . x̃)(x . x̃)`` with rows ``m``, ``x`` (constant last if ``const``)."""

    def parts(row: np.ndarray, scale: float) -> tuple[bool, bool]:
        lin = row[:-1] if const else row
        has_lin = bool(lin.size and np.abs(lin).max() > tol * scale)
        has_const = bool(const and abs(row[-1]) > tol * scale)
        return has_lin, has_const

    (ml, mc), (xl, xc) = parts(m, scale_m), parts(x, scale_x)
    if not (ml or mc) or not (xl or xc):
        return "dead"
    if ml and xl:
        return "quadratic" if not (mc or xc) else "quadratic+affine"
    if ml or xl:  # one branch is the constant only
        return "linear"
    return "constant"


def neuron_roles(model: ModelSource, hi: float = 0.99, lo: float = 0.01, tol: float = 1e-3) -> pd.DataFrame:
    """One row per hidden neuron (or per eigenmode of a dense, non-diagonal ``A``).

    Args:
        model: a :class:`GatedLinearRNN` (model, checkpoint or path).
        hi, lo: ``|lambda| > hi`` is "memory", ``< lo`` "forget" (§3.1's perfect-memory / perfect-forget neurons; the
        thresholds are ours).
        tol: relative magnitude (``|w| / max|W|`` of the matrix) below which a weight counts as zero.
    Returns:
        DataFrame with columns ``neuron``, ``label``, ``lam`` (|lambda|), ``role``, ``input_kind``
        ("quadratic": no degree-1 term, as KV units; "linear": one branch reads only the constant, as query
        units; "quadratic+affine"; "constant"; "dead"), ``reads_const_m``, ``reads_const_x``, ``in_m_norm``,
        ``in_x_norm``, ``out_m_norm``, ``out_x_norm`` (column norms of ``W_m^out``, ``W_x^out``: how much the
        readout uses the neuron). For a dense non-diagonal ``A`` the rows are eigenmodes (``lam`` = |eigenvalue|) and
        the reading columns are NaN/"n/a": a bilinear input row does not map to an eigenmode (``df.attrs["note"]`` says
        so). The effective KV / query counts, which see through mixing of same-λ neurons, are
        :func:`rnnattn.analysis.effective_counts` (and the ``effective`` step of :func:`rnnattn.analysis.equivalence`).
    Raises:
        AnalysisNotApplicable: for models other than :class:`GatedLinearRNN`.
    """
    return roles_gated(require_gated_rnn(resolve(model).model, "neuron_roles"), hi, lo, tol)


def _eigenmode_roles(m: GatedLinearRNN, hi: float, lo: float) -> pd.DataFrame:
    """Roles of the eigenmodes of a genuinely dense ``A``: decays but no per-mode input rows."""
    n = m.config.n_hidden
    ev = torch.linalg.eigvals(m.A.detach().to(torch.float64)).numpy()
    ev = ev[np.argsort(-np.abs(ev), kind="stable")]
    df = pd.DataFrame(
        {
            "neuron": np.arange(n),
            "label": [f"mode{i}" for i in range(n)],
            "lam": np.abs(ev),
            "lam_complex": ev,
            "role": role_of(np.abs(ev), hi, lo),
            "input_kind": "n/a",
        }
    )
    for col in ("reads_const_m", "reads_const_x", "in_m_norm", "in_x_norm", "out_m_norm", "out_x_norm"):
        df[col] = np.nan
    df.attrs["note"] = (
        "dense non-diagonal A: rows are eigenmodes of A (|eigenvalue| as lambda); what a mode "
        "reads is not defined, since V^-1 mixes the bilinear input rows"
    )
    return df


def roles_gated(m: GatedLinearRNN, hi: float = 0.99, lo: float = 0.01, tol: float = 1e-3) -> pd.DataFrame:
    """:func:`neuron_roles` of an already resolved model (no copy)."""
    lam_t = hidden_lambda(m)
    n = m.config.n_hidden
    if lam_t is None:  # genuinely dense: eigen-decomposition gives decays but no per-mode input rows
        return _eigenmode_roles(m, hi, lo)
    lam = lam_t.numpy()
    Wm_in, Wx_in = m.W_m_in.detach().numpy(), m.W_x_in.detach().numpy()
    Wm_out, Wx_out = m.W_m_out.detach().numpy(), m.W_x_out.detach().numpy()
    const = m.config.append_one
    sm, sx = float(np.abs(Wm_in).max() or 1.0), float(np.abs(Wx_in).max() or 1.0)
    kinds = [_input_kind(Wm_in[i], Wx_in[i], const, tol, sm, sx) for i in range(n)]
    reads = lambda W, s: (np.abs(W[:, -1]) > tol * s) if const else np.zeros(n, dtype=bool)  # noqa: E731
    lin = slice(None, -1) if const else slice(None)
    df = pd.DataFrame(
        {
            "neuron": np.arange(n),
            "label": labels(m, "hidden", n),
            "lam": np.abs(lam),
            "role": role_of(lam, hi, lo),
            "input_kind": kinds,
            "reads_const_m": reads(Wm_in, sm),
            "reads_const_x": reads(Wx_in, sx),
            "in_m_norm": np.linalg.norm(Wm_in[:, lin], axis=1),
            "in_x_norm": np.linalg.norm(Wx_in[:, lin], axis=1),
            "out_m_norm": np.linalg.norm(Wm_out, axis=0),
            "out_x_norm": np.linalg.norm(Wx_out, axis=0),
        }
    )
    df.attrs["note"] = f"roles by |lambda|: memory > {hi}, forget < {lo}; zero weights: |w|/max|W| <= {tol}"
    return df


def role_counts(roles: pd.DataFrame) -> dict[str, int]:
    """``{"memory": .., "forget": .., "other": ..}`` from a :func:`neuron_roles` table."""
    vc = roles["role"].value_counts()
    return {r: int(vc.get(r, 0)) for r in ("memory", "forget", "other")}
