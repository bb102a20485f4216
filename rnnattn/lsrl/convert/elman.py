"""Elman ReLU RNN conversion (paper Eq. 2 via the state split of Eq. 11).

A ``state`` stage ``s_t = A s_{t-1} + u_t`` becomes the Elman layer ``[s+; s-]_t = ReLU([[A, -A], [-A, A]]
[s+; s-]_{t-1} + [u_t; -u_t])`` (ReLU is the identity on the non-negative halves, so ``s = s+ - s-`` exactly;
``[I, -I]`` is folded into the next layer's input weights; the state doubles). A ``relu`` stage is an Elman
layer with zero recurrence. ``mul`` stages cannot be expressed: an Elman RNN has no multiplicative
interaction, so programs must use a multiplication-free conditional (direct/optimized/step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...hooks import HookPoint
from ...models.base import Model
from ...models.registry import register_model
from . import ConversionError, extract, split_state
from ._base import ConvertedConfig, t64


@dataclass(frozen=True)
class ElmanLSRLConfig(ConvertedConfig):
    """``layers``: ``("elman", d_in, d_hidden)`` per layer."""


@register_model
class ElmanLSRL(Model):
    """A stack of Elman ReLU RNN layers ``h_t = ReLU(W_ih x_t + W_hh h_{t-1} + b)`` (``torch.nn.RNN``) with
    learned initial states ``h0`` and a linear readout. Hook points: ``hook_h.{k}`` (``[B, T, d_hidden]``)."""

    config_class = ElmanLSRLConfig

    def __init__(self, config: ElmanLSRLConfig) -> None:
        super().__init__(config)
        self.rnns = nn.ModuleList(
            [
                nn.RNN(i, h, nonlinearity="relu", batch_first=True, dtype=torch.float64)
                for _, i, h in config.layers
            ]
        )
        self.h0 = nn.ParameterList(
            [nn.Parameter(torch.zeros(h, dtype=torch.float64)) for _, _, h in config.layers]
        )
        last = config.layers[-1][2] if config.layers else config.d_input
        self.readout = nn.Linear(last, config.d_output, dtype=torch.float64)
        self.hook_h = nn.ModuleList([HookPoint() for _ in config.layers])

    def forward(self, x: torch.Tensor, state: Any = None, return_state: bool = False) -> Any:
        """``x [B, T, d_input] -> y [B, T, d_output]``; ``state``: per layer ``[B, d_hidden]``."""
        self._check_input(x)
        z = x.to(self.readout.weight.dtype)
        finals = []
        for k, rnn in enumerate(self.rnns):
            h0 = self.h0[k].expand(z.shape[0], -1) if state is None else state[k]
            z, hn = rnn(z, h0[None].contiguous())
            z = self.hook_h[k](z)
            finals.append(hn[0])
        y = self.readout(z)
        return (y, tuple(finals)) if return_state else y


def to_elman(src: Any) -> ElmanLSRL:
    """Converts a compiled model (``CompiledProgram`` / ``CompiledLSRL``) to an :class:`ElmanLSRL`.

    Raises:
        ConversionError: the model has multiplicative (``mul``) stages.
    """
    spec = extract(src)
    if any(s.kind == "mul" for s in spec.stages):
        raise ConversionError(
            "an Elman RNN has no multiplicative gating, so 'mul' stages (from f_ifelse_mul / Multiplicative) "
            "cannot be converted; compile a multiplication-free variant (direct/optimized/step) or use "
            "to_gru/to_lstm/to_hawk"
        )
    R = np.eye(spec.d_input)
    layers, weights = [], []
    for s in spec.stages:
        W = s.W @ R
        if s.kind == "relu":
            w = s.width
            weights.append((W, np.zeros((w, w)), s.c, np.zeros(w)))
            R = np.eye(w)
        else:
            w = s.width
            weights.append(
                (
                    np.vstack([W, -W]),
                    split_state(s.A),
                    np.concatenate([s.c, -s.c]),
                    np.concatenate([np.maximum(s.init, 0), np.maximum(-s.init, 0)]),
                )
            )
            R = np.hstack([np.eye(w), -np.eye(w)])
        layers.append(("elman", W.shape[1], weights[-1][0].shape[0]))
    cfg = ElmanLSRLConfig(d_input=spec.d_input, d_output=spec.d_output, layers=tuple(layers), name=spec.name)
    m = ElmanLSRL(cfg)
    with torch.no_grad():
        for rnn, h0, (Wih, Whh, b, init) in zip(m.rnns, m.h0, weights, strict=False):
            rnn.weight_ih_l0.copy_(t64(Wih))
            rnn.weight_hh_l0.copy_(t64(Whh))
            rnn.bias_ih_l0.copy_(t64(b))
            rnn.bias_hh_l0.zero_()
            h0.copy_(t64(init))
        m.readout.weight.copy_(t64(spec.W_out @ R))
        m.readout.bias.copy_(t64(spec.c_out))
    m.metadata = {"converted_from": spec.name, "architecture": "elman"}
    return m
