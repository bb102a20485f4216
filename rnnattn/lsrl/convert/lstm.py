"""LSTM conversion (paper App. D) with ReLU as every nonlinearity (the paper's assumption ``sigma = ReLU``).

Layer: ``[i; f; c~; o] = ReLU(W x_t + U h_{t-1} + b)``, ``c_t = f * c_{t-1} + i * c~``, ``h_t = o * ReLU(c_t)``.

* ``state`` stage (D.1 + Eq. 11): ``f = 0``, ``i = c~ = 1`` so ``h_t = o_t = ReLU([u; -u] + [[A,-A],[-A,A]] h_{t-1})``.
* ``relu`` stage (D.2): the same with ``U = 0``.
* ``mul`` stage (D.3): ``f = 0``, ``o = 1``, ``i = a^s``, ``c~ = b^t`` for the four sign pairs, so ``h = a^s
  b^t >= 0`` and ``a b = h++ - h+- - h-+ + h--`` (the paper writes the product of non-negative factors;
  splitting signs makes it exact for any factors, at 4 lanes per product).

With sigmoid gates instead, ``f = sigmoid(-K)``, ``i = sigmoid(K)`` leak ``e^{-K}`` per step; we keep ReLU
gates, so the conversion is exact.
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
class LSTMLSRLConfig(ConvertedConfig):
    """``layers``: ``("lstm", d_in, d_hidden)`` per layer."""


class ReLULSTMLayer(nn.Module):
    """One LSTM layer with ReLU gates. Parameters ``W [4h, in]``, ``U [4h, h]``, ``b [4h]`` (gate order
    ``i, f, c~, o``), initial ``h0 [h]``, ``c0 [h]``."""

    def __init__(self, d_in: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.W = nn.Parameter(torch.zeros(4 * h, d_in, dtype=torch.float64))
        self.U = nn.Parameter(torch.zeros(4 * h, h, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros(4 * h, dtype=torch.float64))
        self.h0 = nn.Parameter(torch.zeros(h, dtype=torch.float64))
        self.c0 = nn.Parameter(torch.zeros(h, dtype=torch.float64))
        self.hook_h = HookPoint()

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None) -> Any:
        B, T, _ = x.shape
        h, c = (self.h0.expand(B, -1), self.c0.expand(B, -1)) if state is None else state
        gx = torch.nn.functional.linear(x, self.W, self.b)
        recurrent = bool((self.U != 0).any())
        outs = []
        for t in range(T):
            g = gx[:, t] + (h @ self.U.T if recurrent else 0)
            i, f, cc, o = torch.relu(g).split(self.h, dim=-1)
            c = f * c + i * cc
            h = o * torch.relu(c)
            outs.append(h)
        return self.hook_h(torch.stack(outs, dim=1)), (h, c)


@register_model
class LSTMLSRL(LayerStack):
    """A stack of :class:`ReLULSTMLayer` and a linear readout (converted from a compiled LSRL program)."""

    config_class = LSTMLSRLConfig
    layer_cls = ReLULSTMLayer


def to_lstm(src: Any) -> LSTMLSRL:
    """Converts a compiled model (``CompiledProgram`` / ``CompiledLSRL``) to an exact ReLU-gated
    :class:`LSTMLSRL`."""
    spec = extract(src)
    R = np.eye(spec.d_input)
    params = []
    for s in spec.stages:
        W = s.W @ R
        w = s.width
        if s.kind in ("relu", "state"):
            state = s.kind == "state"
            Wo = np.vstack([W, -W]) if state else W
            bo = np.concatenate([s.c, -s.c]) if state else s.c
            h = Wo.shape[0]
            Wg = np.vstack([np.zeros((3 * h, W.shape[1])), Wo])
            bg = np.concatenate([np.ones(h), np.zeros(h), np.ones(h), bo])
            Ug = np.zeros((4 * h, h))
            if state:
                Ug[3 * h :] = split_state(s.A)
                h0 = np.concatenate([np.maximum(s.init, 0), np.maximum(-s.init, 0)])
                R = np.hstack([np.eye(w), -np.eye(w)])
            else:
                h0 = np.zeros(h)
                R = np.eye(w)
            params.append((Wg, Ug, bg, h0))
        else:  # mul
            sa, sb, Rm = sign_combos(w)
            Wa, Wb, ca, cb = W[:w], W[w:], s.c[:w], s.c[w:]
            a_pm, b_pm = np.vstack([Wa, -Wa]), np.vstack([Wb, -Wb])
            ca_pm, cb_pm = np.concatenate([ca, -ca]), np.concatenate([cb, -cb])
            h = 4 * w
            Wg = np.vstack([sa @ a_pm, np.zeros((h, W.shape[1])), sb @ b_pm, np.zeros((h, W.shape[1]))])
            bg = np.concatenate([sa @ ca_pm, np.zeros(h), sb @ cb_pm, np.ones(h)])
            params.append((Wg, np.zeros((4 * h, h)), bg, np.zeros(h)))
            R = Rm
    layers = tuple(("lstm", p[0].shape[1], p[3].shape[0]) for p in params)
    m = LSTMLSRL(LSTMLSRLConfig(d_input=spec.d_input, d_output=spec.d_output, layers=layers, name=spec.name))
    with torch.no_grad():
        for layer, (Wg, Ug, bg, h0) in zip(m.layers, params, strict=False):
            layer.W.copy_(t64(Wg))
            layer.U.copy_(t64(Ug))
            layer.b.copy_(t64(bg))
            layer.h0.copy_(t64(h0))
            layer.c0.fill_(1.0)
        m.readout.weight.copy_(t64(spec.W_out @ R))
        m.readout.bias.copy_(t64(spec.c_out))
    m.metadata = {"converted_from": spec.name, "architecture": "lstm"}
    return m
