"""KV and Q scores of Table 1 (§3.1; regressions with scikit-learn as in App. D).

KV score: ``1 - R^2`` (uniform average over the d_v x d_k targets) of a linear regression with intercept from
    the hidden states of the *perfect memory* neurons (|lambda| > hi) to the flattened cumulative key-values
    ``S_t = sum_{t' <= t} v_t' k_t'^T`` of the reference attention layer. Q score: the same from the *perfect
    forget* neurons (|lambda| < lo) to the queries ``q_t``. Samples are pooled over batch x time;
    scikit-learn's ``LinearRegression`` and ``r2_score`` (App. D). Activations are read from the hook points
    (student ``hook_h``, reference ``hook_q``/``hook_kv``): no forward pass is re-implemented here.

For a dense non-diagonal ``A = V diag(mu) V^-1`` the regressors are the eigenmode states ``V^-1 h_t`` (real
and imaginary parts) of the modes with |mu| > hi (resp. < lo): they evolve as ``mu h + input`` like diagonal
neurons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from rnnattn.analysis.inputs import probe_inputs
from rnnattn.analysis.loading import ModelSource, hidden_lambda, require_gated_rnn, resolve
from rnnattn.analysis.references import resolve_reference
from rnnattn.analysis.results import ProbeResult
from rnnattn.models.attention import LinearSelfAttention
from rnnattn.models.gated_rnn import GatedLinearRNN


def _fit(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per-target R^2 of a linear regression with intercept (no regressors: the mean predictor, R^2 = 0)."""
    if X.shape[1] == 0:
        pred = np.broadcast_to(Y.mean(0), Y.shape)
    else:
        pred = LinearRegression(fit_intercept=True).fit(X, Y).predict(X)
    return np.atleast_1d(r2_score(Y, pred, multioutput="raw_values"))


def _detail(names: list[str], r2: np.ndarray, Y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"target": names, "r2": r2, "score": 1.0 - r2, "variance": Y.var(0)})


def probe_scores(
    model: ModelSource,
    reference: ModelSource | str | None = None,
    inputs: torch.Tensor | None = None,
    n_sequences: int = 256,
    seq_len: int | None = None,
    hi: float = 0.99,
    lo: float = 0.01,
    seed: int = 0,
) -> ProbeResult:
    """KV and Q scores of a gated RNN student against a linear-attention reference.

    Args:
        model: the student :class:`GatedLinearRNN` (model, checkpoint or path; analysed in float64).
        reference: the attention layer (default: from the checkpoint metadata, see
            :func:`~rnnattn.analysis.references.resolve_reference`), or "teacher" / "one_step_gd" /
            "construction".
        inputs: ``x [B, T, d]``; default ``n_sequences`` sequences drawn from the checkpoint's task (its own
            length unless ``seq_len`` is given), or x ~ N(0, I) with 32 steps when the metadata names no task.
        hi, lo: ``|lambda| > hi`` memory neurons, ``< lo`` forget neurons.
    Returns:
        :class:`ProbeResult` with ``kv_score``, ``q_score`` and per-target detail.
    Raises:
        AnalysisNotApplicable: the student is not a gated RNN of Eq. 2 (LSTM, GRU, LRU, stacks).
    """
    subj = resolve(model)
    m: GatedLinearRNN = require_gated_rnn(subj.model, "probe_scores")
    ref = resolve_reference(subj, reference).model
    if inputs is None:
        pin = probe_inputs(subj.metadata, m.d_input, n_sequences, seq_len, seed)
        x, described = pin.x, pin.description
    else:
        x = inputs.to(torch.float64)
        described = f"given inputs, {x.shape[0]} sequences x {x.shape[1]} steps"
    if ref.d_input != m.d_input:
        raise ValueError(f"probe_scores: student reads {m.d_input} features, the reference {ref.d_input}")
    return probe_gated(m, ref, x, described, hi, lo)


def probe_gated(
    m: GatedLinearRNN, ref: LinearSelfAttention, x: torch.Tensor, described: str, hi: float = 0.99, lo: float = 0.01
) -> ProbeResult:
    """:func:`probe_scores` on resolved float64 models and given inputs ``x [B, T, d]`` (no copy)."""
    with torch.no_grad():
        _, cs = m.run_with_cache(x, names=["hook_h"])
        _, cr = ref.run_with_cache(x, names=["hook_q", "hook_kv"])
    h = cs["hook_h"].reshape(-1, m.config.n_hidden).numpy()  # [B*T, N]
    kv = cr["hook_kv"]  # [B, T, H, dv, dk]
    q = cr["hook_q"]  # [B, T, H, dk]
    H, dv, dk = kv.shape[2:]
    Y_kv = kv.reshape(-1, H * dv * dk).numpy()
    Y_q = q.reshape(-1, H * dk).numpy()
    notes: list[str] = []
    lam = hidden_lambda(m)
    if lam is not None:
        a = lam.abs().numpy()
        mem, fgt = np.flatnonzero(a > hi), np.flatnonzero(a < lo)
        X_kv, X_q, features = h[:, mem], h[:, fgt], "neurons"
    else:
        mu, V = torch.linalg.eig(m.A.detach().to(torch.float64))
        modes = (torch.linalg.solve(V, torch.from_numpy(h).T.to(V.dtype))).T.numpy()  # [B*T, N] complex
        a = mu.abs().numpy()
        mem, fgt = np.flatnonzero(a > hi), np.flatnonzero(a < lo)
        cat = lambda z: np.concatenate([z.real, z.imag], axis=1)  # noqa: E731
        X_kv, X_q, features = cat(modes[:, mem]), cat(modes[:, fgt]), "eigenmodes"
        notes.append("dense A: regressors are eigenmode states V^-1 h (real and imaginary parts)")
    if mem.size == 0:
        notes.append(f"no memory neurons (|lambda| > {hi}): KV score is 1 (nothing to regress from)")
    if fgt.size == 0:
        notes.append(f"no forget neurons (|lambda| < {lo}): Q score is 1 (nothing to regress from)")
    r2_kv, r2_q = _fit(X_kv, Y_kv), _fit(X_q, Y_q)
    kv_names = [f"kv[h{hh},{i + 1},{j + 1}]" for hh in range(H) for i in range(dv) for j in range(dk)]
    q_names = [f"q[h{hh},{j + 1}]" for hh in range(H) for j in range(dk)]
    return ProbeResult(
        kv_score=float(1.0 - r2_kv.mean()),
        q_score=float(1.0 - r2_q.mean()),
        kv_detail=_detail(kv_names, r2_kv, Y_kv),
        q_detail=_detail(q_names, r2_q, Y_q),
        memory_neurons=mem,
        forget_neurons=fgt,
        n_points=int(h.shape[0]),
        hi=hi,
        lo=lo,
        input_distribution=described,
        features=features,
        notes=notes,
    )
