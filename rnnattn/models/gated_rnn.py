"""Gated linear RNN (Zucchet et al., Eq. 2)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from rnnattn.config import Config, check_positive_int
from rnnattn.hooks import HookPoint
from rnnattn.models.base import Model, init_param
from rnnattn.models.registry import register_model
from rnnattn.ops import dense_recurrence, diagonal_recurrence


@dataclass(frozen=True)
class GatedLinearRNNConfig(Config):
    """Config of :class:`GatedLinearRNN`.

    Attributes:
        d_input: token features ``d`` (before the constant is appended).
        n_hidden: recurrent neurons ``N``.
        n_gating: output-gating rows ``M`` (the "pre-readout" neurons), independent of ``N``.
        d_output: readout size.
        recurrence: ``"diagonal"`` (``lambda = exp(-exp(nu))``, App. B.1) or ``"dense"`` (full matrix ``A``).
        append_one: append a constant 1 to every input token (x̃ = (x, 1)); the model has no biases otherwise.
        r_min, r_max: ring initialisation of ``|lambda|`` (uniform in area on [r_min, r_max], Minimal-LRU).
    """

    d_input: int
    n_hidden: int
    n_gating: int
    d_output: int
    recurrence: str = "diagonal"
    append_one: bool = True
    r_min: float = 0.0
    r_max: float = 1.0

    def __post_init__(self) -> None:
        check_positive_int(
            "GatedLinearRNNConfig",
            d_input=self.d_input,
            n_hidden=self.n_hidden,
            n_gating=self.n_gating,
            d_output=self.d_output,
        )
        if self.recurrence not in ("diagonal", "dense"):
            raise ValueError(f"GatedLinearRNNConfig: recurrence must be 'diagonal' or 'dense', got {self.recurrence!r}")
        if not (0.0 <= self.r_min <= self.r_max <= 1.0):
            raise ValueError("GatedLinearRNNConfig: need 0 <= r_min <= r_max <= 1")


@register_model
class GatedLinearRNN(Model):
    r"""Gated diagonal (or dense) linear RNN, Eq. 2 of Zucchet et al. (§1.2), read causally (h_t reads x_t):

    .. math::
        g(z) = (W_m z) \odot (W_x z),\quad
        h_t = \lambda \odot h_{t-1} + g^{in}(\tilde x_t),\quad
        y_t = D\, g^{out}(h_t),\qquad \tilde x_t = (x_t, 1).

    Parameters (fused so each gating is one matmul):
        ``W_in [2, N, d+1]`` — ``W_in[0] = W_m^in``, ``W_in[1] = W_x^in`` (``d`` columns if ``append_one=False``);
        ``nu [N]`` with ``lambda = exp(-exp(nu))`` (diagonal) or ``A [N, N]`` (dense);
        ``W_out [2, M, N]`` — ``W_m^out``, ``W_x^out``; ``D [d_out, M]``.

    Hook points (``[B, T, ·]``): ``hook_x_in`` (x̃), ``hook_in_m``, ``hook_in_x`` (the two input branches),
    ``hook_gate_in`` (g^in), ``hook_h`` (h), ``hook_out_m``, ``hook_out_x``, ``hook_gate_out`` (g^out), ``hook_y``.

    State: ``h [B, N]``.

    Example:
        >>> m = GatedLinearRNN(GatedLinearRNNConfig(d_input=4, n_hidden=100, n_gating=100, d_output=4))
        >>> m(torch.randn(2, 32, 4)).shape
        torch.Size([2, 32, 4])
    """

    config_class = GatedLinearRNNConfig

    def __init__(self, config: GatedLinearRNNConfig) -> None:
        super().__init__(config)
        c = config
        d_aug = c.d_input + int(c.append_one)
        # LeCun-normal (Flax Dense default; the paper leaves initialisation open): std 1/sqrt(fan_in).
        N, M = c.n_hidden, c.n_gating
        self.W_in = init_param((2, N, d_aug), lambda: torch.randn(2, N, d_aug) / math.sqrt(d_aug))
        if c.recurrence == "diagonal":
            self.nu = init_param((N,), lambda: self._ring_init_nu(N, c.r_min, c.r_max))
        else:
            self.A = init_param(
                (N, N), lambda: torch.diag(torch.exp(-torch.exp(self._ring_init_nu(N, c.r_min, c.r_max))))
            )
        self.W_out = init_param((2, M, N), lambda: torch.randn(2, M, N) / math.sqrt(N))
        self.D = init_param((c.d_output, M), lambda: torch.randn(c.d_output, M) / math.sqrt(M))
        for name in ("x_in", "in_m", "in_x", "gate_in", "h", "out_m", "out_x", "gate_out", "y"):
            setattr(self, f"hook_{name}", HookPoint())

    @staticmethod
    def _ring_init_nu(n: int, r_min: float, r_max: float) -> torch.Tensor:
        # |lambda| uniform in area on the ring [r_min, r_max]; nu = log(-log|lambda|) (Minimal-LRU nu_init).
        u = torch.rand(n)
        mod = torch.sqrt(u * (r_max**2 - r_min**2) + r_min**2).clamp(1e-6, 1 - 1e-6)
        return torch.log(-torch.log(mod))

    # -- views used by constructions and analysis ------------------------------------------------------------
    @property
    def W_m_in(self) -> torch.Tensor:
        return self.W_in[0]

    @property
    def W_x_in(self) -> torch.Tensor:
        return self.W_in[1]

    @property
    def W_m_out(self) -> torch.Tensor:
        return self.W_out[0]

    @property
    def W_x_out(self) -> torch.Tensor:
        return self.W_out[1]

    @property
    def lam(self) -> torch.Tensor:
        """``lambda [N]`` (diagonal) or ``A [N, N]`` (dense)."""
        if self.config.recurrence == "diagonal":
            return torch.exp(-torch.exp(self.nu))
        return self.A

    def recurrence_parameters(self) -> list[nn.Parameter]:
        """Parameters of the recurrence (no weight decay, own learning rate in the paper's protocol)."""
        return [self.nu] if self.config.recurrence == "diagonal" else [self.A]

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.append_one:
            return x
        return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], dim=-1)

    def gate_in(self, x: torch.Tensor) -> torch.Tensor:
        """``g^in(x̃) [B, T, N]`` for raw tokens ``x [B, T, d]`` (no recurrence)."""
        xt = self.hook_x_in(self.augment(x))
        mx = xt @ self.W_in.reshape(-1, self.W_in.shape[-1]).T  # one fused matmul for both branches
        m, xb = mx.split(self.config.n_hidden, dim=-1)
        return self.hook_gate_in(self.hook_in_m(m) * self.hook_in_x(xb))

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """``y = D g^out(h)``: ``[B, T, N] -> [B, T, d_out]``."""
        mx = h @ self.W_out.reshape(-1, self.W_out.shape[-1]).T
        m, xb = mx.split(self.config.n_gating, dim=-1)
        g = self.hook_gate_out(self.hook_out_m(m) * self.hook_out_x(xb))
        return self.hook_y(g @ self.D.T)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False):
        """``x [B, T, d] -> y [B, T, d_out]`` (and ``h_T [B, N]`` when ``return_state``)."""
        self._check_input(x)
        u = self.gate_in(x)
        if self.config.recurrence == "diagonal":
            h, hT = diagonal_recurrence(u, self.lam, state, output_final_state=True)
        else:
            h, hT = dense_recurrence(u, self.A, state, output_final_state=True)
        y = self.readout(self.hook_h(h))
        return (y, hT) if return_state else y
