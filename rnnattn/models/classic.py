"""LSTM and GRU layers with per-gate parameters (Zucchet et al., App. A.2-A.3, Eqs. 10-19)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from rnnattn.config import Config, check_positive_int
from rnnattn.hooks import HookPoint
from rnnattn.models.base import Model
from rnnattn.models.registry import register_model


@dataclass(frozen=True)
class RNNCellConfig(Config):
    """Config of :class:`LSTM` / :class:`GRU`: ``d_input`` features in, ``d_hidden`` units (also the output)."""

    d_input: int
    d_hidden: int

    def __post_init__(self) -> None:
        check_positive_int(type(self).__name__, d_input=self.d_input, d_hidden=self.d_hidden)


@dataclass(frozen=True)
class LSTMConfig(RNNCellConfig):
    pass


@dataclass(frozen=True)
class GRUConfig(RNNCellConfig):
    pass


class GateParams(NamedTuple):
    """Views into one gate's weights: ``U [H, d]`` (input), ``V [H, H]`` (recurrent), ``b [H]`` input bias and
    ``b_h [H]`` recurrent bias (torch keeps two; only the GRU candidate gives them different roles). Writing into
    the views (``with torch.no_grad(): g.U.copy_(...)``) sets the model's weights."""

    U: torch.Tensor
    V: torch.Tensor
    b: torch.Tensor
    b_h: torch.Tensor


class _TorchBacked(Model):
    """A single recurrent layer whose weights live in a ``torch.nn.LSTM``/``GRU`` (the fast path) with per-gate
    views, and an explicit per-step path that records every gate through hook points."""

    _torch_cls: type[nn.RNNBase]
    GATES: tuple[str, ...]  # paper names, in torch's row order

    def __init__(self, config: RNNCellConfig) -> None:
        super().__init__(config)
        self.cell = self._torch_cls(config.d_input, config.d_hidden, batch_first=True)
        for g in self.GATES:
            setattr(self, f"hook_{g}", HookPoint())
        self.hook_h = HookPoint()
        self.hook_y = HookPoint()

    @property
    def d_output(self) -> int:
        return self.config.d_hidden

    def gate(self, name: str) -> GateParams:
        """Per-gate parameter views by the paper's gate name (see ``GATES``)."""
        if name not in self.GATES:
            raise KeyError(f"{type(self).__name__} has gates {self.GATES}, not {name!r}")
        H = self.config.d_hidden
        i = self.GATES.index(name)
        sl = slice(i * H, (i + 1) * H)
        c = self.cell
        return GateParams(c.weight_ih_l0[sl], c.weight_hh_l0[sl], c.bias_ih_l0[sl], c.bias_hh_l0[sl])

    def _initial(self, x: torch.Tensor, state):
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        self._check_input(x)
        # torch's RNNs reject T = 0; the explicit path handles it (and any dtype, and records gates)
        if self.caching or x.dtype != self.cell.weight_ih_l0.dtype or x.shape[1] == 0:
            y, s = self._explicit(x, state)
        else:
            y, s = self._fast(x, state)
        y = self.hook_y(y)
        return (y, s) if return_state else y


@register_model
class LSTM(_TorchBacked):
    r"""One LSTM layer, Eqs. 10-15 of Zucchet et al. (paper gate names):

    .. math::
        f = \sigma(U_f x + V_f h + b_f),\ \tilde c = \tanh(U_c x + V_c h + b_c),\ g = \sigma(U_g x + V_g h + b_g),\\
        c_t = f \odot c_{t-1} + g \odot \tilde c,\quad o = \sigma(U_o x + V_o h + b_o),\quad h_t = o \odot \tanh(c_t)

    Same function as ``torch.nn.LSTM`` (whose weights it holds in ``self.cell``): torch's gates ``i, f, g, o`` are
    the paper's ``g, f, c̃, o``; each gate's bias is ``b + b_h``. Output ``y = h``. State ``(h [B, H], c [B, H])``.
    Hook points ``hook_f``, ``hook_c`` (c̃), ``hook_g``, ``hook_o``, ``hook_cell`` (c), ``hook_h``.
    """

    config_class = LSTMConfig
    _torch_cls = nn.LSTM
    GATES = ("g", "f", "c", "o")

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__(config)
        self.hook_cell = HookPoint()

    def _zeros(self, x):
        return x.new_zeros(x.shape[0], self.config.d_hidden)

    def _fast(self, x, state):
        h0, c0 = state if state is not None else (self._zeros(x), self._zeros(x))
        y, (hT, cT) = self.cell(x, (h0[None], c0[None]))
        h = self.hook_h(y)
        return h, (hT[0], cT[0])

    def _explicit(self, x, state):
        h, c = state if state is not None else (self._zeros(x), self._zeros(x))
        h, c = h.to(x.dtype), c.to(x.dtype)
        W_ih, W_hh = self.cell.weight_ih_l0.to(x.dtype), self.cell.weight_hh_l0.to(x.dtype)
        b = (self.cell.bias_ih_l0 + self.cell.bias_hh_l0).to(x.dtype)
        pre_x = x @ W_ih.T + b
        rec = {k: [] for k in ("g", "f", "c", "o", "cell", "h")}
        for t in range(x.shape[1]):
            gi, gf, gc, go = (pre_x[:, t] + h @ W_hh.T).chunk(4, dim=-1)
            g, f, ct, o = torch.sigmoid(gi), torch.sigmoid(gf), torch.tanh(gc), torch.sigmoid(go)
            c = f * c + g * ct
            h = o * torch.tanh(c)
            for k, v in zip(("g", "f", "c", "o", "cell", "h"), (g, f, ct, o, c, h), strict=True):
                rec[k].append(v)
        st = {k: (torch.stack(v, 1) if v else x.new_zeros(x.shape[0], 0, self.config.d_hidden)) for k, v in rec.items()}
        for k in ("g", "f", "c", "o"):
            getattr(self, f"hook_{k}")(st[k])
        self.hook_cell(st["cell"])
        return self.hook_h(st["h"]), (h, c)


@register_model
class GRU(_TorchBacked):
    r"""One GRU layer with ``torch.nn.GRU`` semantics (whose weights it holds in ``self.cell``):

    .. math::
        r = \sigma(U_r x + b_r + V_r h + b_{hr}),\ z = \sigma(U_z x + b_z + V_z h + b_{hz}),\\
        n = \tanh(U_n x + b_n + r \odot (V_n h + b_{hn})),\quad h_t = (1 - z) \odot n + z \odot h_{t-1}

    Relation to the paper's Eqs. 16-19: the paper's update gate is ``1 - z`` (negate ``U_z, V_z, b_z``) and it
    applies the reset before ``V_h`` (``V_h (r ⊙ h)``) where torch applies it after (``r ⊙ (V_n h)``); the two
    agree whenever ``V_n`` is diagonal or zero, which covers the App. A.3 argument. State ``h [B, H]``.
    Hook points ``hook_r``, ``hook_z``, ``hook_n``, ``hook_h``.
    """

    config_class = GRUConfig
    _torch_cls = nn.GRU
    GATES = ("r", "z", "n")

    def _fast(self, x, state):
        h0 = state if state is not None else x.new_zeros(x.shape[0], self.config.d_hidden)
        y, hT = self.cell(x, h0[None])
        return self.hook_h(y), hT[0]

    def _explicit(self, x, state):
        h = state if state is not None else x.new_zeros(x.shape[0], self.config.d_hidden)
        h = h.to(x.dtype)
        W_ih, W_hh = self.cell.weight_ih_l0.to(x.dtype), self.cell.weight_hh_l0.to(x.dtype)
        b_ih, b_hh = self.cell.bias_ih_l0.to(x.dtype), self.cell.bias_hh_l0.to(x.dtype)
        pre_x = x @ W_ih.T + b_ih
        rec = {k: [] for k in ("r", "z", "n", "h")}
        for t in range(x.shape[1]):
            xr, xz, xn = pre_x[:, t].chunk(3, dim=-1)
            hr, hz, hn = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            for k, v in zip(("r", "z", "n", "h"), (r, z, n, h), strict=True):
                rec[k].append(v)
        st = {k: (torch.stack(v, 1) if v else x.new_zeros(x.shape[0], 0, self.config.d_hidden)) for k, v in rec.items()}
        for k in ("r", "z", "n"):
            getattr(self, f"hook_{k}")(st[k])
        return self.hook_h(st["h"]), h
