"""Neuron counts of every construction, measured by building them (Table 3 / §2.2 / rnnattn's minimal form)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch

from rnnattn.constructions.attention_rnn import attention_to_gated_rnn
from rnnattn.constructions.lru import attention_to_lru
from rnnattn.constructions.lstm import attention_to_lstm, gated_rnn_to_lstm
from rnnattn.models.attention import LinearSelfAttention, LinearSelfAttentionConfig
from rnnattn.models.gated_rnn import GatedLinearRNN
from rnnattn.models.sequence import SequenceModel

COLUMNS = ["architecture", "construction", "d", "exact", "layers", "hidden", "gating", "widths", "parameters"]


def active_units(rnn: GatedLinearRNN) -> tuple[int, int]:
    """``(hidden, gating)`` units of a gated RNN that can affect the output: a hidden unit with both input
    branches non-zero, a gating row with ``D[:, k] ≠ 0`` whose two branches each read an active unit
    (structural zeros of a construction removed; no threshold)."""
    Wm, Wx = rnn.W_m_in.detach(), rnn.W_x_in.detach()
    hid = (Wm != 0).any(1) & (Wx != 0).any(1)
    reads = lambda W: ((W.detach() != 0) & hid[None, :]).any(1)  # noqa: E731
    gat = (rnn.D.detach() != 0).any(0) & reads(rnn.W_m_out) & reads(rnn.W_x_out)
    return int(hid.sum()), int(gat.sum())


def gd_attention(d_x: int, d_y: int, eta: float = 1.0, dtype: torch.dtype = torch.float64) -> LinearSelfAttention:
    """The linear self-attention layer computing one step of gradient descent from ``W = 0`` on in-context
    pairs ``(x_t, y_t)`` (App. C, von Oswald et al.): ``ŷ = η Σ_t y_t x_tᵀ x_query`` in the ``y`` coordinates.
    ``W_K = [I 0; 0 0]``, ``W_Q = η W_K`` read ``x``; ``W_V = [0 0; 0 I]`` reads ``y``."""
    d = d_x + d_y
    lsa = LinearSelfAttention(LinearSelfAttentionConfig(d_input=d)).to(dtype)
    with torch.no_grad():
        E = torch.zeros(d, d, dtype=dtype)
        E[:d_x, :d_x] = torch.eye(d_x, dtype=dtype)
        lsa.W_K[0].copy_(E)
        lsa.W_Q[0].copy_(eta * E)
        F = torch.zeros(d, d, dtype=dtype)
        F[d_x:, d_x:] = torch.eye(d_y, dtype=dtype)
        lsa.W_V[0].copy_(F)
    return lsa


def _random_lsa(d: int, seed: int, dtype: torch.dtype) -> LinearSelfAttention:
    g = torch.Generator().manual_seed(seed)
    lsa = LinearSelfAttention(LinearSelfAttentionConfig(d_input=d)).to(dtype)
    with torch.no_grad():
        for W in (lsa.W_Q, lsa.W_K, lsa.W_V):
            W.copy_(torch.randn(W.shape, generator=g, dtype=dtype) / d**0.5)
        # a generic (invertible) W_V: orthogonal times a diagonal in [1, 2]
        Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=dtype))
        lsa.W_V[0].copy_(Q * (1 + torch.rand(d, generator=g, dtype=dtype)))
    return lsa


def _row(architecture: str, construction: str, d: int, exact: bool, model, hidden=None, gating=None) -> dict:
    if isinstance(model, GatedLinearRNN):
        c = model.config
        h, g = (c.n_hidden, c.n_gating) if hidden is None else (hidden, gating)
        widths = f"hidden {h}, gating {g}"
        layers = 1
    else:
        assert isinstance(model, SequenceModel)
        parts, h, g = [], 0, 0
        for layer in model.layers:
            c = layer.config
            if type(layer).__name__ == "LSTM":
                parts.append(f"LSTM({c.d_hidden})")
                h += c.d_hidden
            else:
                glu_in = c.inner if c.variant != "out" else 0
                parts.append(f"LRU-{c.variant}(state {c.d_state}, in-GLU {glu_in}, out-GLU {c.out})")
                h += c.d_state
                g += glu_in + c.out
        widths, layers = " -> ".join(parts), len(model.layers)
        g = g if g else None  # LSTM gates live inside the cells
    return {
        "architecture": architecture,
        "construction": construction,
        "d": d,
        "exact": exact,
        "layers": layers,
        "hidden": h,
        "gating": g,
        "widths": widths,
        "parameters": model.n_parameters(),
    }


ARCHITECTURES = ("gated_rnn", "lstm", "lru")


def construction_sizes(
    ds: Iterable[int] = (4, 6),
    forms: Iterable[str] = ("full", "compact", "minimal"),
    icl: Iterable[tuple[int, int]] = ((3, 3),),
    include: Iterable[str] = ARCHITECTURES,
    seed: int = 0,
) -> pd.DataFrame:
    """Neuron counts of every construction for each ``d``, obtained by building it from a random attention
    layer.

    Rows: the gated RNN of Eq. 2 per form (``hidden`` = recurrent units, ``gating`` = output-gating rows); one
    LSTM layer and two LSTM layers (``hidden`` = cells over all layers; gates are inside the cells); LRU
    In+Out, In+Skip and vanilla (``hidden`` = complex states, ``gating`` = GLU units, input and output, over
    all layers). The LSTM/LRU rows count the sigmoid-linearised units (each linearised product needs a unit
    and a reference, shared where possible). For each ``(d_x, d_y)`` in ``icl`` a row gives the *active* units
    of the full construction of the one-step-GD attention layer (:func:`gd_attention`, :func:`active_units`):
    ``d_x d_y + d_x`` hidden, ``d_x d_y`` gating — 12 / 9 for the ICL task of §4 (§4.2, Fig. 3B).

    Args:
        ds: attention sizes ``d``.
        forms: gated-RNN forms to include (``"full"``, ``"compact"``, ``"minimal"``).
        icl: ``(d_x, d_y)`` of in-context regression tasks for the one-step-GD rows.
        include: subset of ``ARCHITECTURES`` (``"gated_rnn"``, ``"lstm"``, ``"lru"``).
        seed: seed of the random attention layers (sizes do not depend on it for generic weights).
    Returns:
        DataFrame with columns ``COLUMNS`` (``gating`` is missing for LSTMs, whose gates live inside the
        cells; ``parameters`` is missing for the active-unit rows).
    """
    forms, include = tuple(forms), set(include)
    unknown = include - set(ARCHITECTURES)
    if unknown:
        raise ValueError(f"construction_sizes: unknown architectures {sorted(unknown)} (known: {ARCHITECTURES})")
    rows = []
    for d in ds:
        rows += _construction_rows(_random_lsa(d, seed, torch.float64), d, forms, include)
    rows += [_icl_row(d_x, d_y) for d_x, d_y in icl]
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("hidden", "gating", "parameters", "layers", "d"):
        df[col] = df[col].astype("Int64")
    return df


def _construction_rows(lsa: LinearSelfAttention, d: int, forms: tuple[str, ...], include: set[str]) -> list[dict]:
    """The :func:`construction_sizes` rows of one attention layer ``lsa`` (``d = d_input``): gated RNN per form,
    one-layer LSTM and two-layer LSTM per form, then LRU In+Out / In+Skip / vanilla per form, each only when its
    architecture is in ``include``."""
    rows = []
    for form in forms if "gated_rnn" in include else ():
        rnn = attention_to_gated_rnn(lsa, form)
        rows.append(_row("GatedLinearRNN", f"attention_to_gated_rnn(form={form!r})", d, True, rnn))
    forms_lstm = forms if "lstm" in include else ()
    for form in forms_lstm:
        rows.append(_row("LSTM", f"attention_to_lstm(form={form!r})", d, False, attention_to_lstm(lsa, form=form)))
    for form in forms_lstm:
        rows.append(
            _row(
                "LSTM",
                f"gated_rnn_to_lstm(attention_to_gated_rnn(form={form!r}))",
                d,
                False,
                gated_rnn_to_lstm(attention_to_gated_rnn(lsa, form)),
            )
        )
    for variant in ("in_out", "in_skip", "out") if "lru" in include else ():
        name = {"in_out": "LRU In+Out", "in_skip": "LRU In+Skip", "out": "LRU"}[variant]
        for form in forms:
            rows.append(
                _row(
                    name,
                    f"attention_to_lru(variant={variant!r}, form={form!r})",
                    d,
                    False,
                    attention_to_lru(lsa, variant=variant, form=form),
                )
            )
    return rows


def _icl_row(d_x: int, d_y: int) -> dict:
    """The :func:`construction_sizes` row of the one-step-GD attention for ICL with ``(d_x, d_y)``: *active*
    units (:func:`active_units`) of its full gated-RNN construction, ``d_x d_y + d_x`` hidden and ``d_x d_y``
    gating; no parameter count."""
    rnn = attention_to_gated_rnn(gd_attention(d_x, d_y), "full")
    h, g = active_units(rnn)
    row = _row(
        "GatedLinearRNN",
        f"one-step GD, ICL d_x={d_x}, d_y={d_y} (active units of form='full')",
        d_x + d_y,
        True,
        rnn,
        h,
        g,
    )
    row["parameters"] = None  # the active units' parameters are not a model's parameter count
    return row
