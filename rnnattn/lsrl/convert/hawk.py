"""Hawk conversion (Griffin's recurrent block and gated MLP, paper App. E; residuals and norms omitted, ReLU
for GeLU).

Recurrent block: ``v = W_x x + b_x`` -> causal ``Conv1D`` (kernel ``K = max_len``) -> RG-LRU -> ``* ReLU(W_g x + b_g)``
-> ``W_o . + b_o``. RG-LRU: ``r = ReLU(W_a c + b_a)``, ``i = ReLU(W_i c + b_i)``, ``a_t = ReLU(Lambda)^(8 r_t)``,
``h_t = a_t h_{t-1} + sqrt(1 - a_t^2) (i_t c_t)``. Gated MLP: ``W_m ((W_e x + b_e) * ReLU(W_f x + b_f)) + b_m``.

* ``state`` stage (E.1): ``v = [u; 1]``; the conv unrolls the linear recurrence, ``M_0 = [I, A s_0]``, ``M_k =
  [A^k, A^k (A - I) s_0]`` so ``sum_{k<=t} M_k v_{t-k} = sum_k A^k u_{t-k} + A^{t+1} s_0`` (the constant
  channel telescopes the initial state). RG-LRU made the identity with ``Lambda = 0``, ``b_a = 1``, ``W_i =
  0``, ``b_i = 1`` (so ``a_t = 0``, ``i_t = 1``); gate ``W_g = 0``, ``b_g = 1``; ``W_o = I``.
  Deviation: Griffin's Conv1D is depthwise; unrolling a non-diagonal ``A`` (counters, buffers) needs a dense
  one. Sequences longer than ``max_len`` are rejected (the paper sets ``d_conv = T``).
* ``relu`` stage (E.3): gated MLP with ``W_e = 0``, ``b_e = 1``, ``W_f = W``, ``W_m = I``.
* ``mul`` stage (E.5): ``a * ReLU(b) - a * ReLU(-b) = a b`` with ``W_e = [W_a; W_a]``, ``W_f = [W_b; -W_b]``,
  ``W_m = [I, -I]``.
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
from . import extract
from ._base import ConvertedConfig, t64


@dataclass(frozen=True)
class HawkLSRLConfig(ConvertedConfig):
    """``layers``: ``("recurrent" | "mlp", d_in, d_hidden)``; ``max_len``: conv kernel length."""


class HawkRecurrentBlock(nn.Module):
    """Griffin's recurrent block (see module docstring); conv in-channels ``d + 1``, width ``d``."""

    def __init__(self, d_in: int, d: int, K: int) -> None:
        super().__init__()
        f64 = torch.float64
        self.d, self.K = d, K
        self.W_x = nn.Parameter(torch.zeros(d + 1, d_in, dtype=f64))
        self.b_x = nn.Parameter(torch.zeros(d + 1, dtype=f64))
        self.conv = nn.Parameter(torch.zeros(d, d + 1, K, dtype=f64))
        self.Lambda = nn.Parameter(torch.zeros(d, dtype=f64))
        self.W_a = nn.Parameter(torch.zeros(d, d, dtype=f64))
        self.b_a = nn.Parameter(torch.ones(d, dtype=f64))
        self.W_i = nn.Parameter(torch.zeros(d, d, dtype=f64))
        self.b_i = nn.Parameter(torch.ones(d, dtype=f64))
        self.W_g = nn.Parameter(torch.zeros(d, d_in, dtype=f64))
        self.b_g = nn.Parameter(torch.ones(d, dtype=f64))
        self.W_o = nn.Parameter(torch.eye(d, dtype=f64))
        self.b_o = nn.Parameter(torch.zeros(d, dtype=f64))
        self.hook_conv = HookPoint()
        self.hook_h = HookPoint()

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> Any:
        B, T, _ = x.shape
        if T > self.K:
            raise ValueError(f"this Hawk conversion supports sequences up to {self.K} tokens, got {T}")
        v = torch.nn.functional.linear(x, self.W_x, self.b_x).transpose(1, 2)  # [B, d+1, T]
        v = torch.nn.functional.pad(v, (self.K - 1, 0))
        c = self.hook_conv(torch.nn.functional.conv1d(v, self.conv).transpose(1, 2))  # [B, T, d]
        r = torch.relu(torch.nn.functional.linear(c, self.W_a, self.b_a))
        i = torch.relu(torch.nn.functional.linear(c, self.W_i, self.b_i))
        a = torch.relu(self.Lambda) ** (8 * r)
        h = torch.zeros(B, self.d, dtype=x.dtype) if state is None else state
        gated_in = torch.sqrt(torch.clamp(1 - a * a, min=0)) * (i * c)
        if bool((a != 0).any()):
            outs = []
            for t in range(T):
                h = a[:, t] * h + gated_in[:, t]
                outs.append(h)
            hs = torch.stack(outs, dim=1)
        else:
            hs = gated_in
            h = hs[:, -1]
        hs = self.hook_h(hs)
        g = torch.relu(torch.nn.functional.linear(x, self.W_g, self.b_g))
        return torch.nn.functional.linear(hs * g, self.W_o, self.b_o), h


class HawkMLPBlock(nn.Module):
    """Gated MLP ``W_m ((W_e x + b_e) * ReLU(W_f x + b_f)) + b_m`` (output width = ``W_m`` rows)."""

    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__()
        f64 = torch.float64
        self.W_e = nn.Parameter(torch.zeros(hidden, d_in, dtype=f64))
        self.b_e = nn.Parameter(torch.zeros(hidden, dtype=f64))
        self.W_f = nn.Parameter(torch.zeros(hidden, d_in, dtype=f64))
        self.b_f = nn.Parameter(torch.zeros(hidden, dtype=f64))
        self.W_m = nn.Parameter(torch.zeros(d_out, hidden, dtype=f64))
        self.b_m = nn.Parameter(torch.zeros(d_out, dtype=f64))
        self.hook_m = HookPoint()

    def forward(self, x: torch.Tensor, state: Any = None) -> Any:
        m = torch.nn.functional.linear(x, self.W_e, self.b_e) * torch.relu(
            torch.nn.functional.linear(x, self.W_f, self.b_f)
        )
        return torch.nn.functional.linear(self.hook_m(m), self.W_m, self.b_m), None


@register_model
class HawkLSRL(Model):
    """A stack of Hawk recurrent / gated-MLP blocks and a linear readout (converted from a compiled program).

    ``layers[k] = ("recurrent", d_in, d)`` or ``("mlp", d_in, hidden)``; every block outputs ``d``/``hidden``
    features (an MLP block's ``W_m`` is square; sign recombinations are folded into the next block's
    weights)."""

    config_class = HawkLSRLConfig

    def __init__(self, config: HawkLSRLConfig) -> None:
        super().__init__(config)
        if config.max_len < 1 and any(k == "recurrent" for k, _, _ in config.layers):
            raise ValueError("HawkLSRLConfig.max_len must be >= 1")
        blocks = []
        for kind, d_in, hid in config.layers:
            if kind == "recurrent":
                blocks.append(HawkRecurrentBlock(d_in, hid, config.max_len))
            elif kind == "mlp":
                blocks.append(HawkMLPBlock(d_in, hid, hid))
            else:
                raise ValueError(f"unknown Hawk block kind {kind!r}")
        self.blocks = nn.ModuleList(blocks)
        last = config.layers[-1][2] if config.layers else config.d_input
        self.readout = nn.Linear(last, config.d_output, dtype=torch.float64)

    def forward(self, x: torch.Tensor, state: Any = None, return_state: bool = False) -> Any:
        """``x [B, T <= max_len, d_input] -> y [B, T, d_output]``. Streaming is not supported (the conv window
        restarts), so ``state`` must be None."""
        self._check_input(x)
        if state is not None:
            raise ValueError("HawkLSRL unrolls the recurrence in a convolution and cannot continue a stream")
        z = x.to(self.readout.weight.dtype)
        finals = []
        for blk in self.blocks:
            z, st = blk(z)
            finals.append(st)
        y = self.readout(z)
        return (y, tuple(finals)) if return_state else y


def _conv_kernel(A: np.ndarray, s0: np.ndarray, K: int) -> np.ndarray:
    """``[d, d+1, K]`` torch conv weight with tap ``K-1-k`` = ``M_k`` (see module docstring)."""
    d = A.shape[0]
    out = np.zeros((d, d + 1, K))
    P = np.eye(d)
    AmI_s0 = (A - np.eye(d)) @ s0
    for k in range(K):
        out[:, :d, K - 1 - k] = P
        out[:, d, K - 1 - k] = A @ s0 if k == 0 else P @ AmI_s0
        P = P @ A
    return out


def to_hawk(src: Any, max_len: int) -> HawkLSRL:
    """Converts a compiled model to a :class:`HawkLSRL` for sequences of at most ``max_len`` tokens
    (exact)."""
    spec = extract(src)
    R = np.eye(spec.d_input)
    layers, params = [], []
    for s in spec.stages:
        W = s.W @ R
        w = s.width
        if s.kind == "state":
            layers.append(("recurrent", W.shape[1], w))
            params.append(
                (
                    "recurrent",
                    np.vstack([W, np.zeros((1, W.shape[1]))]),
                    np.concatenate([s.c, [1.0]]),
                    _conv_kernel(s.A, s.init, max_len),
                )
            )
            R = np.eye(w)
        elif s.kind == "relu":
            layers.append(("mlp", W.shape[1], w))
            params.append(("mlp", np.zeros_like(W), np.ones(w), W, s.c))
            R = np.eye(w)
        else:
            Wa, Wb, ca, cb = W[:w], W[w:], s.c[:w], s.c[w:]
            layers.append(("mlp", W.shape[1], 2 * w))
            params.append(
                (
                    "mlp",
                    np.vstack([Wa, Wa]),
                    np.concatenate([ca, ca]),
                    np.vstack([Wb, -Wb]),
                    np.concatenate([cb, -cb]),
                )
            )
            R = np.hstack([np.eye(w), -np.eye(w)])
    cfg = HawkLSRLConfig(
        d_input=spec.d_input, d_output=spec.d_output, layers=tuple(layers), max_len=max_len, name=spec.name
    )
    m = HawkLSRL(cfg)
    with torch.no_grad():
        for blk, p in zip(m.blocks, params, strict=False):
            if p[0] == "recurrent":
                blk.W_x.copy_(t64(p[1]))
                blk.b_x.copy_(t64(p[2]))
                blk.conv.copy_(t64(p[3]))
            else:
                blk.W_e.copy_(t64(p[1]))
                blk.b_e.copy_(t64(p[2]))
                blk.W_f.copy_(t64(p[3]))
                blk.b_f.copy_(t64(p[4]))
                blk.W_m.copy_(torch.eye(blk.W_m.shape[0], dtype=torch.float64))
        m.readout.weight.copy_(t64(spec.W_out @ R))
        m.readout.bias.copy_(t64(spec.c_out))
    m.metadata = {"converted_from": spec.name, "architecture": "hawk"}
    return m
