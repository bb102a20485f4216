r"""Canonical form (§3.1, Fig. 2A): use the invariances of the gating to bring a model into the block form of Fig. 1/2A.

:math:`g(z) = (W_m z) \odot (W_x z)` is unchanged when a row is swapped between ``W_m`` and ``W_x``, when the
m-row is multiplied by ``c`` and the x-row by ``1/c``, and when rows (with their hidden neuron / readout
column) are permuted. The canonical form:

* input gating: the branch that reads the constant goes to ``W_x`` (query units read ``(0, .., 0, 1)`` there);
* output gating: the branch reading forget (query) neurons goes to ``W_x``, the one reading memory (KV)
  neurons to ``W_m``;
* rows normalised to ``||row_m|| = 1`` with the largest-magnitude entry of ``row_m`` positive;
* hidden neurons ordered memory (lambda ~ 1), forget (lambda ~ 0), other (by decreasing lambda), stable within
  a group; gating rows that conform to the block form first, ordered by the memory neuron their m-branch reads
  most, then by the forget neuron their x-branch reads most; non-conforming rows last (App. B.2's rows 11-13).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rnnattn.analysis._weights import GatedWeights, check_inputs, max_change
from rnnattn.analysis.errors import NotApplicable
from rnnattn.analysis.loading import ModelSource, dense_offdiag_ratio, require_gated_rnn, resolve
from rnnattn.analysis.results import CanonicalResult
from rnnattn.analysis.roles import role_of
from rnnattn.models.gated_rnn import GatedLinearRNN


def _normalise(m_rows: np.ndarray, x_rows: np.ndarray) -> np.ndarray:
    """Scale ``c`` per row so that ``||c m|| = 1`` and ``c m`` has a positive largest entry (1 for zero rows)."""
    norms = np.linalg.norm(m_rows, axis=1)
    big = (
        m_rows[np.arange(len(m_rows)), np.argmax(np.abs(m_rows), axis=1)]
        if m_rows.shape[1]
        else np.ones(len(m_rows))
    )
    return np.where(norms > 0, np.sign(np.where(big == 0, 1.0, big)) / np.where(norms > 0, norms, 1.0), 1.0)


def conforming_rows(
    W_m_out: np.ndarray, W_x_out: np.ndarray, memory: np.ndarray, forget: np.ndarray, tol: float = 1e-3
) -> np.ndarray:
    """``[M]`` bool: the m-branch reads only memory neurons and the x-branch only forget neurons (relative ``tol``),
    and each reads at least one of them."""
    sm, sx = float(np.abs(W_m_out).max() or 1.0), float(np.abs(W_x_out).max() or 1.0)
    off_m = np.abs(W_m_out[:, ~memory]).max(1, initial=0.0) <= tol * sm
    off_x = np.abs(W_x_out[:, ~forget]).max(1, initial=0.0) <= tol * sx
    on_m = np.abs(W_m_out[:, memory]).max(1, initial=0.0) > tol * sm
    on_x = np.abs(W_x_out[:, forget]).max(1, initial=0.0) > tol * sx
    return off_m & off_x & on_m & on_x


def canonicalize(
    model: ModelSource, hi: float = 0.99, lo: float = 0.01, tol: float = 1e-3, normalise: bool = True
) -> CanonicalResult:
    """Rewrite a gated RNN into canonical block form without changing its function.

    Args:
        model: a :class:`GatedLinearRNN` with diagonal recurrence (or dense ``A`` that is diagonal).
        hi, lo: lambda thresholds of the memory / forget groups.
        tol: relative magnitude counting as zero when deciding whether a gating row conforms to the block
            form.
        normalise: rescale rows to ``||row_m|| = 1`` (otherwise only swaps and permutations).
    Returns:
        :class:`CanonicalResult` with the new model and the permutations, swaps and scales applied.
    Raises:
        AnalysisNotApplicable: non-Eq. 2 models, or a dense ``A`` with off-diagonal weights (its neurons have
            no individual lambda, and a change of basis would break the bilinear gating rows).
    """
    m: GatedLinearRNN = require_gated_rnn(resolve(model).model, "canonicalize")
    res = canonicalize_gated(m, hi, lo, tol, normalise)
    if isinstance(res, NotApplicable):
        raise res.error(m)
    return res


def _orient_inputs(W_in: np.ndarray, append_one: bool, normalise: bool) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 (in place on ``W_in [2, N, p]``): the branch reading the constant becomes the x-branch; returns
    ``(swapped [N], scale [N])``."""
    N = W_in.shape[1]
    in_swap = np.zeros(N, dtype=bool)
    if append_one:
        share = np.abs(W_in[:, :, -1]) / np.maximum(np.linalg.norm(W_in, axis=2), 1e-300)  # [2, N]
        in_swap = share[0] > share[1] + 1e-12
        tie = np.abs(share[0] - share[1]) <= 1e-12
    else:
        tie = np.ones(N, dtype=bool)
    # ties (e.g. KV units: neither branch reads the constant): the lexicographically larger unit-norm,
    # sign-fixed row goes to W_m — arbitrary but deterministic, so scrambled copies get the same form
    for n in np.flatnonzero(tie):
        key_m, key_x = (tuple(np.round(r * _normalise(r[None], r[None])[0], 9)) for r in W_in[:, n])
        in_swap[n] = key_x > key_m
    W_in[:, in_swap] = W_in[::-1][:, in_swap]
    scale = _normalise(W_in[0], W_in[1]) if normalise else np.ones(N)
    W_in[0] *= scale[:, None]
    W_in[1] /= scale[:, None]
    return in_swap, scale


def _orient_outputs(
    W_out: np.ndarray, memory: np.ndarray, forget: np.ndarray, normalise: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Step 2 (in place on ``W_out [2, M, N]``): the branch reading forget neurons becomes the x-branch."""
    energy = lambda rows, mask: (rows[:, mask] ** 2).sum(1)  # noqa: E731
    fm = energy(W_out[0], forget) - energy(W_out[0], memory)
    fx = energy(W_out[1], forget) - energy(W_out[1], memory)
    out_swap = fm > fx
    W_out[:, out_swap] = W_out[::-1][:, out_swap]
    scale = _normalise(W_out[0], W_out[1]) if normalise else np.ones(W_out.shape[1])
    W_out[0] *= scale[:, None]
    W_out[1] /= scale[:, None]
    return out_swap, scale


def _block_table(new: GatedWeights, d: int, append_one: bool, n_mem: int, n_fgt: int, n_conf: int) -> pd.DataFrame:
    """One row per block of the canonical form (matrix, rows "a:b", cols "a:b", name, max |entry|)."""
    N, M = new.n_hidden, new.n_gating
    groups = [(g, a, b) for g, a, b in (("memory", 0, n_mem), ("forget", n_mem, n_mem + n_fgt),
                                        ("other", n_mem + n_fgt, N)) if b > a]
    cols = [(f"0:{d}", "x", slice(0, d))] + ([(f"{d}:{d + 1}", "1", slice(d, None))] if append_one else [])
    blocks = []
    for gname, a, b in groups:
        for mat, idx in (("W_m_in", 0), ("W_x_in", 1)):
            for span, what, sl in cols:
                blocks.append({"matrix": mat, "rows": f"{a}:{b}", "cols": span, "name": f"{gname} <- {what}",
                               "max_abs": float(np.abs(new.W_in[idx, a:b, sl]).max())})
    for rname, ra, rb in (("conforming", 0, n_conf), ("non-conforming", n_conf, M)):
        if rb <= ra:
            continue
        for mat, idx in (("W_m_out", 0), ("W_x_out", 1)):
            for gname, a, b in groups:
                blocks.append({"matrix": mat, "rows": f"{ra}:{rb}", "cols": f"{a}:{b}",
                               "name": f"{rname} rows <- {gname}",
                               "max_abs": float(np.abs(new.W_out[idx, ra:rb, a:b]).max())})
    return pd.DataFrame(blocks, columns=["matrix", "rows", "cols", "name", "max_abs"])


def canonicalize_gated(
    m: GatedLinearRNN, hi: float = 0.99, lo: float = 0.01, tol: float = 1e-3, normalise: bool = True
) -> CanonicalResult | NotApplicable:
    """:func:`canonicalize` on an already resolved float64 model (no copy); :class:`NotApplicable` for a dense
    ``A`` with off-diagonal weights."""
    ratio = dense_offdiag_ratio(m)
    if ratio > 1e-9:
        return NotApplicable(
            "canonicalize",
            f"dense A is not diagonal (max off-diagonal / max |A| = {ratio:.2g}); hidden neurons have no "
            "individual lambda to order by",
        )
    w = GatedWeights.of(m)
    N, M = w.n_hidden, w.n_gating
    W_in, W_out = w.W_in.copy(), w.W_out.copy()
    in_swap, in_scale = _orient_inputs(W_in, m.config.append_one, normalise)
    lam = w.lam
    role = role_of(lam, hi, lo)
    memory, forget = role == "memory", role == "forget"
    out_swap, out_scale = _orient_outputs(W_out, memory, forget, normalise)
    # 3. hidden order: memory, forget, other (by decreasing lambda); stable inside groups
    group = np.where(memory, 0, np.where(forget, 1, 2))
    hperm = np.lexsort((np.arange(N), np.where(group == 2, -np.abs(lam), 0.0), group))
    # 4. gating order: conforming rows by (memory neuron read most, forget neuron read most), then the rest
    conf = conforming_rows(W_out[0], W_out[1], memory, forget, tol)
    pos = np.empty(N, dtype=np.int64)
    pos[hperm] = np.arange(N)
    key_m = pos[np.argmax(np.abs(W_out[0]), axis=1)]
    key_x = pos[np.argmax(np.abs(W_out[1]), axis=1)]
    gperm = np.lexsort((np.arange(M), np.where(conf, key_x, 0), np.where(conf, key_m, 0), ~conf))
    new = GatedWeights(
        W_in[:, hperm],
        w.rec[np.ix_(hperm, hperm)] if w.dense else w.rec[hperm],
        W_out[:, gperm][:, :, hperm],
        w.D[:, gperm],
        [w.hidden_labels[i] for i in hperm],
        [w.gating_labels[k] for k in gperm],
        w.dense,
    )
    out = new.to_model(m)
    change, _ = max_change(m, out, check_inputs(m.d_input))
    blocks = _block_table(new, m.config.d_input, m.config.append_one, int(memory.sum()), int(forget.sum()),
                          int(conf.sum()))
    return CanonicalResult(
        model=out,
        hidden_perm=hperm,
        gating_perm=gperm,
        input_swapped=in_swap[hperm],
        output_swapped=out_swap[gperm],
        input_scale=in_scale[hperm],
        output_scale=out_scale[gperm],
        hidden_role=role[hperm],
        gating_conforming=conf[gperm],
        blocks=blocks,
        max_output_change=change,
    )
