r"""Rank-1 merging of output-gating rows (App. B.2, Eq. 20).

Gating rows ``S`` contribute :math:`h^\top K_i h` to output i, with kernel :math:`K_i = \sum_{j \in S}
D_{ij}\, W^{out}_{m,j} W^{out\top}_{x,j}` (kept unsymmetrised, as the paper: the symmetric part of a rank-1
kernel is rank 2). Since swapping a row's m/x branches transposes its kernel without changing the function,
each row's orientation is chosen so that the sum is closest to rank 1. If the ``K_i`` are proportional across
outputs (``K_i = c_i K``, the ``[N^2, d_out]`` stack of ``vec K_i`` has ``sigma_2 / sigma_1 ~ 0``) and ``K = s
u v^T`` is rank 1, the rows ``S`` are replaced by one row ``W_m = sqrt(s) u``, ``W_x = sqrt(s) v``, ``D[:,
new] = c`` — an exact rewrite when both ratios are 0. ``u`` is made to read memory (KV) neurons and ``v``
forget (query) neurons (swapped if reversed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rnnattn.analysis._weights import GatedWeights, max_change
from rnnattn.analysis.canonical import conforming_rows
from rnnattn.analysis.errors import NotApplicable
from rnnattn.analysis.loading import ModelSource, hidden_lambda, require_gated_rnn, resolve
from rnnattn.analysis.prune import Data, LossFn, _split, half_mse
from rnnattn.analysis.results import MergeResult, RankOneMerge
from rnnattn.analysis.roles import role_of
from rnnattn.models.gated_rnn import GatedLinearRNN


def _ratio(s: np.ndarray) -> float:
    return float(s[1] / s[0]) if s.size > 1 and s[0] > 0 else 0.0


def _stack_svd(D: np.ndarray, Wm: np.ndarray, Wx: np.ndarray, flip: np.ndarray):
    """SVD evidence for one orientation: rows with ``flip`` contribute ``x m^T`` instead of ``m x^T``."""
    A = np.where(flip[:, None], Wx, Wm)
    B = np.where(flip[:, None], Wm, Wx)
    N = Wm.shape[1]
    K_all = np.einsum("is,sa,sb->iab", D, A, B)  # K_i [o, N, N]
    U, s_out, Vt = np.linalg.svd(K_all.reshape(len(D), N * N).T, full_matrices=False)  # [N^2, o] stack
    K = (s_out[0] * U[:, 0]).reshape(N, N)
    s_K = np.linalg.svd(K, compute_uv=False)
    return max(_ratio(s_out), _ratio(s_K)), s_out, K, Vt[0].copy()


def _orient(D: np.ndarray, Wm: np.ndarray, Wx: np.ndarray, exhaustive_max: int = 10) -> np.ndarray:
    """Choose per row ``m x^T`` or its transpose (the m/x swap invariance changes the unsymmetrised kernel of a
    row into its transpose) so that the summed kernel is closest to rank 1: exhaustive over 2^(|S|-1) choices
    for small groups, else greedy row by row."""
    n = Wm.shape[0]
    best = np.zeros(n, dtype=bool)
    if n <= 1:
        return best
    if n <= exhaustive_max:
        scores = []
        for code in range(2 ** (n - 1)):
            flip = np.array([False] + [(code >> b) & 1 == 1 for b in range(n - 1)])
            scores.append((_stack_svd(D, Wm, Wx, flip)[0], code))
        code = min(scores)[1]
        return np.array([False] + [(code >> b) & 1 == 1 for b in range(n - 1)])
    for j in range(1, n):
        trial = best.copy()
        trial[j] = True
        if _stack_svd(D, Wm, Wx, trial)[0] < _stack_svd(D, Wm, Wx, best)[0]:
            best = trial
    return best


def rank1_evidence(
    w: GatedWeights, rows: Sequence[int], memory: np.ndarray | None, forget: np.ndarray | None, tol: float
) -> RankOneMerge:
    """Steps 1-4 of App. B.2 for gating rows ``rows`` of ``w`` (no model change)."""
    S = np.asarray(rows, dtype=np.int64)
    Wm, Wx, D = w.W_out[0][S], w.W_out[1][S], w.D[:, S]  # [|S|, N], [|S|, N], [o, |S|]
    flip = _orient(D, Wm, Wx)
    _, s_out, K, c = _stack_svd(D, Wm, Wx, flip)
    if c[np.argmax(np.abs(c))] < 0:  # sign convention: largest |c_i| positive
        c, K = -c, -K
    uK, s_K, vKt = np.linalg.svd(K)
    u, v = np.sqrt(s_K[0]) * uK[:, 0], np.sqrt(s_K[0]) * vKt[0]
    swapped, conforming = False, False
    if memory is not None and forget is not None:
        right = (u[memory] ** 2).sum() + (v[forget] ** 2).sum()
        wrong = (u[forget] ** 2).sum() + (v[memory] ** 2).sum()
        if wrong > right:  # K^T's factorisation reads the other way round: g = (v.h)(u.h) is the same product
            u, v, swapped = v, u, True
        conforming = bool(conforming_rows(u[None], v[None], memory, forget, tol=1e-6)[0])
    r_out, r_K = _ratio(s_out), _ratio(s_K)
    ok = r_out <= tol and r_K <= tol and len(S) >= 2
    reason = (
        f"merged {len(S)} rows into 1"
        if ok
        else "fewer than 2 rows"
        if len(S) < 2
        else f"kernels not proportional across outputs (sigma2/sigma1 = {r_out:.3g} > tol {tol:g})"
        if r_out > tol
        else f"common kernel not rank 1 (sigma2/sigma1 = {r_K:.3g} > tol {tol:g})"
    )
    return RankOneMerge(
        rows=[int(i) for i in S],
        output_singular_values=s_out,
        kernel_singular_values=s_K,
        output_ratio=r_out,
        kernel_ratio=r_K,
        kernel=K,
        c=c,
        u=u,
        v=v,
        transposed=flip,
        swapped=swapped,
        conforming=conforming,
        merged=ok,
        reason=reason,
    )


def _finetune(
    model: GatedLinearRNN, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, steps: int, lr: float
) -> float:
    # parameters holding +-inf (nu for lambda exactly 0 or 1) stay frozen: their gradient is NaN
    params = [p for p in model.parameters() if torch.isfinite(p).all()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        return float(loss_fn(model(x), y))


def merge_rank1(
    model: ModelSource,
    rows: Sequence[int] | Sequence[Sequence[int]] | None = None,
    tol: float = 1e-6,
    hi: float = 0.99,
    lo: float = 0.01,
    data: Data = None,
    loss_fn: LossFn | None = None,
    finetune_steps: int = 0,
    lr: float = 1e-6,
) -> MergeResult:
    """Merge groups of gating rows whose combined kernels are rank 1 and proportional across outputs (App. B.2).

    Args:
        model: a :class:`GatedLinearRNN` (model, checkpoint or path); a float64 copy is rewritten.
        rows: one group (list of row indices) or several groups; ``None`` auto-detects the rows that do not
            conform to the block form (m-branch on memory neurons, x-branch on forget neurons) as one group.
        tol: largest ``sigma_2 / sigma_1`` (both for the output stack and the kernel) accepted as rank 1.
        hi, lo: lambda thresholds defining memory / forget neurons (auto-detection and the u/v check).
        data: inputs ``x`` or ``(x, y)`` for the output check and losses (default random N(0, I) inputs).
        loss_fn: ``loss_fn(pred, target)`` (default 0.5 MSE); finetune_steps, lr: brief full-batch Adam
            fine-tuning of all finite weights after merging (needs targets ``y`` in ``data``; a ``nu`` holding
            +-inf, i.e. lambda exactly 0 or 1, stays frozen).
    Returns:
        :class:`MergeResult`: the new model and, per group, a :class:`RankOneMerge` with the singular values.
    """
    m: GatedLinearRNN = require_gated_rnn(resolve(model).model, "merge_rank1")
    res = merge_gated(m, rows, tol, hi, lo, data, loss_fn, finetune_steps, lr)
    if isinstance(res, NotApplicable):
        raise res.error(m)
    return res


def merge_gated(
    m: GatedLinearRNN,
    rows: Sequence[int] | Sequence[Sequence[int]] | None = None,
    tol: float = 1e-6,
    hi: float = 0.99,
    lo: float = 0.01,
    data: Data = None,
    loss_fn: LossFn | None = None,
    finetune_steps: int = 0,
    lr: float = 1e-6,
) -> MergeResult | NotApplicable:
    """:func:`merge_rank1` on an already resolved float64 model (no copy); :class:`NotApplicable` when rows are
    to be auto-detected but a dense ``A`` gives neurons no individual lambda."""
    w = GatedWeights.of(m)
    lam = hidden_lambda(m)
    memory = forget = None
    if lam is not None:
        role = role_of(lam.numpy(), hi, lo)
        memory, forget = role == "memory", role == "forget"
    if rows is None:
        if memory is None:
            return NotApplicable(
                "merge_rank1",
                "auto-detecting non-conforming rows needs per-neuron lambda, and dense A is not diagonal; "
                "pass rows=[...] explicitly",
            )
        groups = [list(np.flatnonzero(~conforming_rows(w.W_out[0], w.W_out[1], memory, forget, 1e-3)))]
    elif len(rows) and isinstance(rows[0], Sequence | np.ndarray):
        groups = [list(g) for g in rows]  # type: ignore[arg-type]
    else:
        groups = [list(rows)]  # type: ignore[arg-type]
    flat = [int(i) for g in groups for i in g]
    if any(not 0 <= i < w.n_gating for i in flat) or len(set(flat)) != len(flat):
        raise ValueError(f"merge_rank1: rows must be distinct indices in [0, {w.n_gating}), got {groups}")
    merges = [rank1_evidence(w, g, memory, forget, tol) for g in groups if len(g)]
    keep = np.ones(w.n_gating, dtype=bool)
    W_out, D, glabels = w.W_out.copy(), w.D.copy(), list(w.gating_labels)
    for mg in merges:
        if not mg.merged:
            continue
        first = min(mg.rows)
        W_out[0, first], W_out[1, first], D[:, first] = mg.u, mg.v, mg.c
        glabels[first] = "merged(" + ",".join(w.gating_labels[i] for i in mg.rows) + ")"
        keep[[i for i in mg.rows if i != first]] = False
    new = GatedWeights(w.W_in, w.rec, W_out, D, w.hidden_labels, glabels, w.dense).select_gating(
        np.flatnonzero(keep)
    )
    out = new.to_model(m)
    loss_fn = loss_fn or half_mse
    x, y = _split(data, m.d_input)
    change, _ = max_change(m, out, x)
    res = MergeResult(
        model=out,
        merges=merges,
        n_gating_before=w.n_gating,
        n_gating_after=int(keep.sum()),
        max_output_change=change,
    )
    if y is not None:
        with torch.no_grad():
            res.loss_before = float(loss_fn(m(x), y))
            res.loss_after_merge = float(loss_fn(out(x), y))
        if finetune_steps > 0:
            res.loss_after_finetune = _finetune(out, x, y, loss_fn, finetune_steps, lr)
            res.finetune_steps = finetune_steps
    elif finetune_steps > 0:
        raise ValueError("merge_rank1: fine-tuning needs targets: pass data=(x, y)")
    return res
