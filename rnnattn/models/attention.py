"""Causal linear self-attention (Zucchet et al., Eq. 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rnnattn.config import Config, check_positive_int
from rnnattn.hooks import HookPoint
from rnnattn.models.base import Model, init_param
from rnnattn.models.registry import register_model


@dataclass(frozen=True)
class LinearSelfAttentionConfig(Config):
    """Config of :class:`LinearSelfAttention`.

    Attributes:
        d_input: token features ``d``.
        n_heads: heads ``H``.
        d_key: per-head key/query size (default ``d_input``).
        d_value: per-head value size (default ``d_input``).
        d_output: output size; when ``None`` it is ``H * d_value`` and no output projection exists (the paper's
            single-head layer has ``W_O = I``); otherwise a projection ``W_O [d_output, H d_value]`` is added.
        init_std: std of the weight init; ``None`` uses 1/sqrt(d_input) (the teacher default W ~ N(0, 1/d)).
    """

    d_input: int
    n_heads: int = 1
    d_key: int | None = None
    d_value: int | None = None
    d_output: int | None = None
    init_std: float | None = None

    def __post_init__(self) -> None:
        check_positive_int("LinearSelfAttentionConfig", d_input=self.d_input, n_heads=self.n_heads)
        for name in ("d_key", "d_value", "d_output"):
            v = getattr(self, name)
            if v is not None:
                check_positive_int("LinearSelfAttentionConfig", **{name: v})

    @property
    def dk(self) -> int:
        return self.d_key or self.d_input

    @property
    def dv(self) -> int:
        return self.d_value or self.d_input

    @property
    def out_dim(self) -> int:
        return self.d_output if self.d_output is not None else self.n_heads * self.dv


@register_model
class LinearSelfAttention(Model):
    r"""Causal linear self-attention, Eq. 1 of Zucchet et al., attending to the current token too:

    .. math::
        y_t = \sum_{t' \le t} (W_V x_{t'}) (W_K x_{t'})^\top (W_Q x_t)

    Two equal forms: ``mode="parallel"`` (masked ``(Q K^T ⊙ M) V``, one matmul per head) and ``mode="recurrent"``
    (state ``S_t = S_{t-1} + v_t k_t^T``, ``y_t = S_t q_t``). Heads are concatenated, then ``W_O`` if configured.

    Parameters: ``W_Q, W_K [H, d_k, d]``, ``W_V [H, d_v, d]``, optional ``W_O [d_out, H d_v]``.

    Hook points: ``hook_q``, ``hook_k``, ``hook_v`` (``[B, T, H, ·]``), ``hook_kv`` (cumulative ``S_t``,
    ``[B, T, H, d_v, d_k]``; recorded only when cached, it is ``T`` times larger than the rest), ``hook_heads``
    (``[B, T, H, d_v]``), ``hook_y``. State: ``S [B, H, d_v, d_k]``.
    """

    config_class = LinearSelfAttentionConfig

    def __init__(self, config: LinearSelfAttentionConfig, mode: str = "parallel") -> None:
        super().__init__(config)
        c = config
        std = c.init_std if c.init_std is not None else 1.0 / math.sqrt(c.d_input)
        H, d = c.n_heads, c.d_input
        self.W_Q = init_param((H, c.dk, d), lambda: torch.randn(H, c.dk, d) * std)
        self.W_K = init_param((H, c.dk, d), lambda: torch.randn(H, c.dk, d) * std)
        self.W_V = init_param((H, c.dv, d), lambda: torch.randn(H, c.dv, d) * std)
        if c.d_output is not None:
            self.W_O = init_param(
                (c.d_output, H * c.dv), lambda: torch.randn(c.d_output, H * c.dv) / math.sqrt(H * c.dv)
            )
        else:
            self.register_parameter("W_O", None)
        if mode not in ("parallel", "recurrent"):
            raise ValueError(f"LinearSelfAttention: mode must be 'parallel' or 'recurrent', got {mode!r}")
        self.mode = mode
        for name in ("q", "k", "v", "kv", "heads", "y"):
            setattr(self, f"hook_{name}", HookPoint())

    @property
    def d_output(self) -> int:
        return self.config.out_dim

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False):
        """``x [B, T, d] -> y [B, T, d_out]`` (and ``S_T [B, H, d_v, d_k]`` when ``return_state``)."""
        self._check_input(x)
        q = self.hook_q(torch.einsum("btd,hkd->bthk", x, self.W_Q))
        k = self.hook_k(torch.einsum("btd,hkd->bthk", x, self.W_K))
        v = self.hook_v(torch.einsum("btd,hvd->bthv", x, self.W_V))
        need_kv = self.caching or self.mode == "recurrent"
        if need_kv:
            S = torch.cumsum(torch.einsum("bthv,bthk->bthvk", v, k), dim=1)
            if state is not None:
                S = S + state[:, None]
            S = self.hook_kv(S)
            heads = torch.einsum("bthvk,bthk->bthv", S, q)
            if x.shape[1]:
                S_T = S[:, -1]
            else:  # empty chunk: the state passes through unchanged
                S_T = state if state is not None else S.new_zeros(S.shape[0], *S.shape[2:])
        else:
            # causal mask: s > t set to 0 in place (tril_, 2x faster than masked_fill on a fresh [T, T] mask)
            scores = torch.einsum("bthk,bshk->bhts", q, k).tril_()
            heads = torch.einsum("bhts,bshv->bthv", scores, v)
            if state is not None:
                heads = heads + torch.einsum("bhvk,bthk->bthv", state, q)
            S_T = None
            if return_state:
                S_T = torch.einsum("bthv,bthk->bhvk", v, k)
                if state is not None:
                    S_T = S_T + state
        heads = self.hook_heads(heads)
        y = heads.flatten(2)  # not reshape(B, T, -1): that fails for T = 0
        if self.W_O is not None:
            y = y @ self.W_O.T
        y = self.hook_y(y)
        return (y, S_T) if return_state else y
