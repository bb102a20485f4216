"""GRU conversion (paper App. C) with ReLU as every nonlinearity.

Layer: ``z = ReLU(W_z x + U_z h + b_z)``, ``r = ReLU(W_r x + U_r h + b_r)``, ``h~ = ReLU(W_h x + U_h (r * h) +
b_h)``, ``h_t = (1 - z) * h_{t-1} + z * h~``.

* ``relu``/``state`` stages (C.1, C.2 + Eq. 11): ``z = r = 1`` so ``h_t = ReLU(W_h x + U_h h_{t-1} + b_h)``.
* ``mul`` stage: the paper's C.3 keeps the ``(1 - z) h_{t-1}`` term (it vanishes only for ``z = 1``), so a
  product needs another route. We use three layers: (1) split ``[a+; a-; b+; b-]``; (2) *accumulate* ``H``
  with gate ``z = a^s`` and candidate ``h~ = b^t + H_{t-1}`` (``U_h = I``), giving ``H_t = H_{t-1} + a^s_t
  b^t_t``; (3) *difference* ``D_t = ReLU(H_t - P_{t-1})`` with ``P_t = H_t`` kept in the same layer. Exact in
  exact arithmetic; in float64 the error of ``D`` is ``~ eps * |H_t|`` (``H`` is a running sum over the
  sequence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...hooks import HookPoint
from ...models.registry import register_model
from . import extract, split_state
from ._base import ConvertedConfig, LayerStack, sign_combos, t64


@dataclass(frozen=True)
class GRULSRLConfig(ConvertedConfig):
    """``layers``: ``("gru", d_in, d_hidden)`` per layer."""


class ReLUGRULayer(nn.Module):
    """One GRU layer with ReLU gates. ``W [3h, in]``, ``U [3h, h]``, ``b [3h]`` (order ``z, r, h~``), ``h0 [h]``."""

    def __init__(self, d_in: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.W = nn.Parameter(torch.zeros(3 * h, d_in, dtype=torch.float64))
        self.U = nn.Parameter(torch.zeros(3 * h, h, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros(3 * h, dtype=torch.float64))
        self.h0 = nn.Parameter(torch.zeros(h, dtype=torch.float64))
        self.hook_h = HookPoint()

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> Any:
        B, T, _ = x.shape
        h = self.h0.expand(B, -1) if state is None else state
        gx = torch.nn.functional.linear(x, self.W, self.b)
        Uz, Ur, Uh = self.U.split(self.h, dim=0)
        outs = []
        for t in range(T):
            gz, gr, gh = gx[:, t].split(self.h, dim=-1)
            z = torch.relu(gz + h @ Uz.T)
            r = torch.relu(gr + h @ Ur.T)
            cand = torch.relu(gh + (r * h) @ Uh.T)
            h = (1 - z) * h + z * cand
            outs.append(h)
        return self.hook_h(torch.stack(outs, dim=1)), h


@register_model
class GRULSRL(LayerStack):
    """A stack of :class:`ReLUGRULayer` and a linear readout (converted from a compiled LSRL program)."""

    config_class = GRULSRLConfig
    layer_cls = ReLUGRULayer


def _plain(W: np.ndarray, b: np.ndarray, U: np.ndarray | None = None, h0: np.ndarray | None = None) -> tuple:
    """A layer with ``z = r = 1`` computing ``ReLU(W x + U h + b)``."""
    h, d_in = W.shape
    Wg = np.vstack([np.zeros((2 * h, d_in)), W])
    Ug = np.zeros((3 * h, h))
    if U is not None:
        Ug[2 * h :] = U
    bg = np.concatenate([np.ones(2 * h), b])
    return Wg, Ug, bg, np.zeros(h) if h0 is None else h0


def to_gru(src: Any) -> GRULSRL:
    """Converts a compiled model (``CompiledProgram`` / ``CompiledLSRL``) to an exact ReLU-gated
    :class:`GRULSRL`."""
    spec = extract(src)
    R = np.eye(spec.d_input)
    params = []
    for s in spec.stages:
        W = s.W @ R
        w = s.width
        if s.kind == "relu":
            params.append(_plain(W, s.c))
            R = np.eye(w)
        elif s.kind == "state":
            params.append(
                _plain(
                    np.vstack([W, -W]),
                    np.concatenate([s.c, -s.c]),
                    split_state(s.A),
                    np.concatenate([np.maximum(s.init, 0), np.maximum(-s.init, 0)]),
                )
            )
            R = np.hstack([np.eye(w), -np.eye(w)])
        else:
            # (1) split: [a+; a-; b+; b-]
            Wa, Wb, ca, cb = W[:w], W[w:], s.c[:w], s.c[w:]
            params.append(_plain(np.vstack([Wa, -Wa, Wb, -Wb]), np.concatenate([ca, -ca, cb, -cb])))
            sa, sb, Rm = sign_combos(w)
            h = 4 * w
            A_sel = np.hstack([sa, np.zeros((h, 2 * w))])  # picks a^s from [a+; a-; b+; b-]
            B_sel = np.hstack([np.zeros((h, 2 * w)), sb])
            # (2) accumulate H_t = H_{t-1} + a^s b^t: z = a^s, r = 1, h~ = ReLU(b^t + H_{t-1})
            Wg = np.vstack([A_sel, np.zeros((h, 4 * w)), B_sel])
            Ug = np.zeros((3 * h, h))
            Ug[2 * h :] = np.eye(h)
            bg = np.concatenate([np.zeros(h), np.ones(h), np.zeros(h)])
            params.append((Wg, Ug, bg, np.zeros(h)))
            # (3) difference: lanes [D; P], P_t = H_t, D_t = ReLU(H_t - P_{t-1})
            Wd = np.vstack([np.eye(h), np.eye(h)])
            Ud = np.zeros((2 * h, 2 * h))
            Ud[:h, h:] = -np.eye(h)
            params.append(_plain(Wd, np.zeros(2 * h), Ud))
            R = np.hstack([Rm, np.zeros((w, h))])
    layers = tuple(("gru", p[0].shape[1], p[3].shape[0]) for p in params)
    m = GRULSRL(GRULSRLConfig(d_input=spec.d_input, d_output=spec.d_output, layers=layers, name=spec.name))
    with torch.no_grad():
        for layer, (Wg, Ug, bg, h0) in zip(m.layers, params, strict=False):
            layer.W.copy_(t64(Wg))
            layer.U.copy_(t64(Ug))
            layer.b.copy_(t64(bg))
            layer.h0.copy_(t64(h0))
        m.readout.weight.copy_(t64(spec.W_out @ R))
        m.readout.bias.copy_(t64(spec.c_out))
    m.metadata = {"converted_from": spec.name, "architecture": "gru"}
    return m
