"""Pruning (§3.1, Table 1): remove hidden neurons and output-gating rows whose weights are zero.

Weight rules, applied until nothing changes (zero means ``max|row| / max|W| < threshold`` for the whole matrix
``W`` the row belongs to; our choice, as the paper leaves it open, since AdamW's decay alone cannot produce exact
zeros):

* gating row k goes if row k of ``W_m^out`` or of ``W_x^out`` is zero, or column k of ``D`` is zero;
* hidden neuron n goes if row n of ``W_m^in`` or of ``W_x^in`` is zero (it never receives input), or if both
  columns n of ``W_m^out`` and ``W_x^out`` are zero (nothing reads it). With dense ``A`` the neuron must also
  have no recurrent input (row n of ``A`` off the diagonal), resp. feed no other neuron (column n).

Then, optionally, ablation pruning: remove a unit if the loss moves by less than ``ablation_tol``
(cumulatively, from the loss before ablation, so the total change stays below the tolerance).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from rnnattn.analysis._weights import GatedWeights, check_inputs, max_change
from rnnattn.analysis.errors import NotApplicable
from rnnattn.analysis.loading import ModelSource, require_gated_rnn, resolve
from rnnattn.analysis.results import PruneResult
from rnnattn.models.gated_rnn import GatedLinearRNN

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Data = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


def half_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's loss: 0.5 x mean squared error over batch, time and outputs (the normalisation that reproduces App.
    C.2's optimal loss)."""
    return 0.5 * ((pred - target) ** 2).mean()


def _split(data: Data, d: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    if data is None:
        return check_inputs(d), None
    if isinstance(data, torch.Tensor):
        return data.to(torch.float64), None
    if isinstance(data, tuple | list) and len(data) == 2:
        return data[0].to(torch.float64), data[1].to(torch.float64)
    raise TypeError("data must be inputs x [B, T, d] or a pair (x, y_target)")


def _rel(row_max: np.ndarray, scale: float) -> np.ndarray:
    return row_max / scale if scale > 0 else np.zeros_like(row_max)


def _weight_round(
    w: GatedWeights, thr: float, scales: dict[str, float], rnd: int
) -> tuple[list[dict], list[dict]]:
    """One pass of the weight rules on the current (already reduced) weights; returns removal records."""
    Wm_in, Wx_in = np.abs(w.W_in[0]), np.abs(w.W_in[1])
    Wm_out, Wx_out, D = np.abs(w.W_out[0]), np.abs(w.W_out[1]), np.abs(w.D)
    gating, hidden = [], []
    g_tests = {
        "W_m_out row ~ 0": _rel(Wm_out.max(1), scales["mo"]),
        "W_x_out row ~ 0": _rel(Wx_out.max(1), scales["xo"]),
        "D column ~ 0": _rel(D.max(0), scales["D"]),
    }
    for k in range(w.n_gating):
        hits = [(r, s[k]) for r, s in g_tests.items() if s[k] < thr]
        if hits:
            gating.append(
                {
                    "kind": "gating",
                    "pos": k,
                    "label": w.gating_labels[k],
                    "rule": hits[0][0],
                    "score": float(hits[0][1]),
                    "round": rnd,
                }
            )
    no_rec_in = no_rec_out = np.ones(w.n_hidden, dtype=bool)
    if w.dense:
        off = np.abs(w.rec - np.diag(np.diag(w.rec)))
        no_rec_in = _rel(off.max(1), scales["A"]) < thr
        no_rec_out = _rel(off.max(0), scales["A"]) < thr
    in_m, in_x = _rel(Wm_in.max(1), scales["mi"]), _rel(Wx_in.max(1), scales["xi"])
    out = np.maximum(_rel(Wm_out.max(0), scales["mo"]), _rel(Wx_out.max(0), scales["xo"]))
    for n in range(w.n_hidden):
        rule = None
        if in_m[n] < thr and no_rec_in[n]:
            rule, score = "W_m_in row ~ 0", in_m[n]
        elif in_x[n] < thr and no_rec_in[n]:
            rule, score = "W_x_in row ~ 0", in_x[n]
        elif out[n] < thr and no_rec_out[n]:
            rule, score = "W_out columns ~ 0", out[n]
        if rule:
            hidden.append(
                {
                    "kind": "hidden",
                    "pos": n,
                    "label": w.hidden_labels[n],
                    "rule": rule,
                    "score": float(score),
                    "round": rnd,
                }
            )
    return hidden, gating


def prune(
    model: ModelSource,
    threshold: float = 1e-3,
    data: Data = None,
    loss_fn: LossFn | None = None,
    ablation_tol: float | None = None,
) -> PruneResult:
    """Remove dead hidden neurons and gating rows (weight rules until stable, then optional ablation).

    Args:
        model: a :class:`GatedLinearRNN` (model, checkpoint or path); a float64 copy is pruned.
        threshold: relative magnitude ``max|row| / max|W|`` below which a row counts as zero.
        data: inputs ``x [B, T, d]`` or ``(x, y_target)`` to measure loss and output change on; default: 16
            random N(0, I) sequences of 32 steps.
        loss_fn: ``loss_fn(pred, target) -> scalar``; default 0.5 * MSE. Without targets, the loss is measured
            against the unpruned model's own outputs (so it measures the function change).
        ablation_tol: if given, after the weight rules remove further units one at a time (smallest individual
            loss change first) while ``|loss - loss_before_ablation| <= ablation_tol``.
    Returns:
        :class:`PruneResult` (new model, removed-units table, counts, losses, max output change).
    Raises:
        AnalysisNotApplicable: not an Eq. 2 gated RNN, or the threshold removes every unit.

    Example:
        >>> res = prune(student, threshold=1e-3)
        >>> res.summary  # hidden/gating before, after, removed
    """
    m: GatedLinearRNN = require_gated_rnn(resolve(model).model, "prune")
    res = prune_gated(m, threshold, data, loss_fn, ablation_tol)
    if isinstance(res, NotApplicable):
        raise res.error(m)
    return res


def _scales(w: GatedWeights) -> dict[str, float]:
    amax = lambda a: float(np.abs(a).max()) if a.size else 0.0  # noqa: E731
    return {
        "mi": amax(w.W_in[0]),
        "xi": amax(w.W_in[1]),
        "mo": amax(w.W_out[0]),
        "xo": amax(w.W_out[1]),
        "D": amax(w.D),
        "A": amax(w.rec) if w.dense else 0.0,
    }


def _weight_rules(w0: GatedWeights, threshold: float) -> tuple[np.ndarray, np.ndarray, list[dict], int]:
    """Apply the weight rules until nothing changes: ``(hidden kept, gating kept, removal records, rounds)``."""
    scales = _scales(w0)
    hid, gat = np.arange(w0.n_hidden), np.arange(w0.n_gating)
    records: list[dict] = []
    rnd = 0
    while hid.size and gat.size:
        w = w0.select_hidden(hid).select_gating(gat)
        hidden, gating = _weight_round(w, threshold, scales, rnd)
        if not hidden and not gating:
            break
        for r in hidden:
            r["index"] = int(hid[r.pop("pos")])
        for r in gating:
            r["index"] = int(gat[r.pop("pos")])
        records += hidden + gating
        hid = np.setdiff1d(hid, [r["index"] for r in hidden])
        gat = np.setdiff1d(gat, [r["index"] for r in gating])
        rnd += 1
    return hid, gat, records, rnd


def _ablate(
    w0: GatedWeights, hid: np.ndarray, gat: np.ndarray, loss_of: Callable, tol: float, rnd: int
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Remove units one at a time, smallest single-unit loss change first, while the cumulative change from the
    loss before ablation stays within ``tol``."""
    base = loss_of(hid, gat)
    units = [("hidden", int(i)) for i in hid] + [("gating", int(k)) for k in gat]

    def without(kind: str, i: int, h: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (h[h != i], g) if kind == "hidden" else (h, g[g != i])

    single = []
    for kind, i in units:
        h2, g2 = without(kind, i, hid, gat)
        single.append(abs(loss_of(h2, g2) - base) if h2.size and g2.size else np.inf)
    records = []
    for j in np.argsort(single, kind="stable"):
        kind, i = units[j]
        if single[j] > tol:
            break
        h2, g2 = without(kind, i, hid, gat)
        if h2.size == 0 or g2.size == 0:
            continue
        delta = abs(loss_of(h2, g2) - base)
        if delta <= tol:
            label = (w0.hidden_labels if kind == "hidden" else w0.gating_labels)[i]
            records.append(
                {"kind": kind, "index": i, "label": label, "rule": "ablation", "score": float(delta), "round": rnd}
            )
            hid, gat = h2, g2
    return hid, gat, records


def prune_gated(
    m: GatedLinearRNN,
    threshold: float = 1e-3,
    data: Data = None,
    loss_fn: LossFn | None = None,
    ablation_tol: float | None = None,
) -> PruneResult | NotApplicable:
    """:func:`prune` on an already resolved float64 model (no copy); :class:`NotApplicable` when the threshold
    would remove every hidden neuron or every gating row (the model computes ~0)."""
    if not threshold >= 0:
        raise ValueError(f"prune: threshold must be >= 0, got {threshold}")
    loss_fn = loss_fn or half_mse
    x, y = _split(data, m.d_input)
    with torch.no_grad():
        y_ref = m(x)
    target = y if y is not None else y_ref
    w0 = GatedWeights.of(m)
    hid, gat, records, rnd = _weight_rules(w0, threshold)
    if hid.size == 0 or gat.size == 0:
        what = "hidden neuron" if hid.size == 0 else "gating row"
        return NotApplicable("prune", f"threshold {threshold} removes every {what} (the model computes ~0)")

    def build(h: np.ndarray, g: np.ndarray) -> GatedLinearRNN:
        return w0.select_hidden(h).select_gating(g).to_model(m)

    def loss_of(h: np.ndarray, g: np.ndarray) -> float:
        with torch.no_grad():
            return float(loss_fn(build(h, g)(x), target))

    if ablation_tol is not None:
        hid, gat, more = _ablate(w0, hid, gat, loss_of, ablation_tol, rnd)
        records += more
    pruned = build(hid, gat)
    with torch.no_grad():
        loss_before = float(loss_fn(y_ref, y)) if y is not None else float("nan")
        loss_after = float(loss_fn(pruned(x), y)) if y is not None else float("nan")
    change, _ = max_change(m, pruned, x)
    return PruneResult(
        model=pruned,
        removed=pd.DataFrame(records, columns=["kind", "index", "label", "rule", "score", "round"]),
        hidden_kept=hid,
        gating_kept=gat,
        n_hidden_before=w0.n_hidden,
        n_hidden_after=int(hid.size),
        n_gating_before=w0.n_gating,
        n_gating_after=int(gat.size),
        loss_before=loss_before,
        loss_after=loss_after,
        max_output_change=change,
        threshold=threshold,
        ablation_tol=ablation_tol,
    )
