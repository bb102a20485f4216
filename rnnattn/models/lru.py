"""Linear Recurrent Unit with GLU output gating and the input-gated variants (Zucchet et al., App. A.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from rnnattn.config import Config, check_positive_int
from rnnattn.hooks import HookPoint
from rnnattn.models.base import Model, init_param
from rnnattn.models.registry import register_model
from rnnattn.ops import diagonal_recurrence

LRU_VARIANTS = ("out", "in_out", "in_skip")


@dataclass(frozen=True)
class LRUConfig(Config):
    """Config of :class:`LRU`.

    Attributes:
        d_input: layer input size.
        d_state: complex state size ``N``.
        variant: ``"out"`` (vanilla LRU, output GLU only), ``"in_out"`` (GLU before the recurrence as well) or
            ``"in_skip"`` (input GLU; the output GLU's m-branch reads the layer input ``x_t``), App. A.1.
        d_inner: width of the recurrence input/output ``u`` and ``ỹ`` (default ``d_input``); for ``"out"`` it
            must equal ``d_input`` since ``u = x``.
        d_output: width of the output GLU (default ``d_input``).
        r_min, r_max, max_phase: ring initialisation of ``lambda`` (Minimal-LRU defaults 0, 1, 2π).
        glu_bias: biases in both GLUs (Flax ``Dense`` default) — they supply the constant the constructions need.
    """

    d_input: int
    d_state: int
    variant: str = "out"
    d_inner: int | None = None
    d_output: int | None = None
    r_min: float = 0.0
    r_max: float = 1.0
    max_phase: float = 2 * math.pi
    glu_bias: bool = True

    def __post_init__(self) -> None:
        check_positive_int("LRUConfig", d_input=self.d_input, d_state=self.d_state)
        if self.variant not in LRU_VARIANTS:
            raise ValueError(f"LRUConfig: variant must be one of {LRU_VARIANTS}, got {self.variant!r}")
        for name in ("d_inner", "d_output"):
            if getattr(self, name) is not None:
                check_positive_int("LRUConfig", **{name: getattr(self, name)})
        if self.variant == "out" and self.inner != self.d_input:
            raise ValueError("LRUConfig: variant 'out' has no input GLU, so d_inner must equal d_input")
        if not (0.0 <= self.r_min <= self.r_max <= 1.0):
            raise ValueError("LRUConfig: need 0 <= r_min <= r_max <= 1")

    @property
    def inner(self) -> int:
        return self.d_inner or self.d_input

    @property
    def out(self) -> int:
        return self.d_output or self.d_input


class GLU(nn.Module):
    r"""``σ(W_m a + b_m) ⊙ (W_x c + b_x)`` with ``a = c`` unless a separate m-input is given (In+Skip)."""

    def __init__(self, d_m: int, d_x: int, d_out: int, bias: bool) -> None:
        super().__init__()
        self.W_m = nn.Linear(d_m, d_out, bias=bias)
        self.W_x = nn.Linear(d_x, d_out, bias=bias)
        self.hook_m = HookPoint()  # sigmoid branch after the sigmoid
        self.hook_x = HookPoint()

    def forward(self, x: torch.Tensor, m_input: torch.Tensor | None = None) -> torch.Tensor:
        m = torch.sigmoid(self.W_m(x if m_input is None else m_input))
        return self.hook_m(m) * self.hook_x(self.W_x(x))


@register_model
class LRU(Model):
    r"""LRU layer, Eqs. 6-9 of Zucchet et al. (App. A.1), read causally (h_t reads x_t):

    .. math::
        u_t = \mathrm{GLU}_{in}(x_t)\ (\text{or } x_t),\quad
        h_t = \lambda \odot h_{t-1} + \gamma \odot (B u_t),\quad
        \tilde y_t = \mathrm{Re}[C h_t] + D \odot u_t,\quad
        y_t = \sigma(W_m \tilde y_t) \odot (W_x \tilde y_t)

    with ``lambda = exp(-exp(nu_log) + i exp(theta_log))``, ``gamma = exp(gamma_log)`` (Eq. 9); In+Skip uses
    ``σ(W_m x_t)`` in the last line.

    Parameters: ``nu_log, theta_log, gamma_log [N]``, ``B_re, B_im [N, d_inner]``, ``C_re, C_im [d_inner, N]``,
    ``D [d_inner]`` (elementwise skip), ``glu_out`` (and ``glu_in``) :class:`GLU`.

    Hook points: ``hook_u`` (recurrence input), ``hook_h`` (complex state ``[B, T, N]``), ``hook_y_tilde``,
    ``hook_y``, plus ``glu_in.hook_m``/``hook_x`` and ``glu_out.hook_m``/``hook_x``. State: complex ``h [B, N]``.
    """

    config_class = LRUConfig

    def __init__(self, config: LRUConfig) -> None:
        super().__init__(config)
        c = config
        N, H = c.d_state, c.inner
        init = {} if torch.empty(0).is_meta else self._initial_values(c, N, H)
        shapes = {"nu_log": (N,), "theta_log": (N,), "gamma_log": (N,), "B_re": (N, H), "B_im": (N, H),
                  "C_re": (H, N), "C_im": (H, N), "D": (H,)}
        for name, shape in shapes.items():
            setattr(self, name, init_param(shape, lambda name=name: init[name]))
        self.glu_in = GLU(c.d_input, c.d_input, H, c.glu_bias) if c.variant != "out" else None
        m_in = c.d_input if c.variant == "in_skip" else H
        self.glu_out = GLU(m_in, H, c.out, c.glu_bias)
        for name in ("u", "h", "y_tilde", "y"):
            setattr(self, f"hook_{name}", HookPoint())

    @staticmethod
    def _initial_values(c: LRUConfig, N: int, H: int) -> dict[str, torch.Tensor]:
        """Minimal-LRU initialisation: |lambda| uniform in area on [r_min, r_max], phase uniform in
        [0, max_phase], gamma = sqrt(1 - |lambda|^2), Gaussian B and C."""
        u1, u2 = torch.rand(N), torch.rand(N)
        mod2 = (u1 * (c.r_max**2 - c.r_min**2) + c.r_min**2).clamp(1e-12, 1 - 1e-7)
        return {
            "nu_log": torch.log(-0.5 * torch.log(mod2)),
            "theta_log": torch.log((c.max_phase * u2).clamp_min(1e-8)),
            "gamma_log": torch.log(torch.sqrt(1 - mod2)),
            "B_re": torch.randn(N, H) / math.sqrt(2 * H),
            "B_im": torch.randn(N, H) / math.sqrt(2 * H),
            "C_re": torch.randn(H, N) / math.sqrt(N),
            "C_im": torch.randn(H, N) / math.sqrt(N),
            "D": torch.randn(H),
        }

    @property
    def d_output(self) -> int:
        return self.config.out

    @property
    def lam(self) -> torch.Tensor:
        """Complex ``lambda [N]`` (Eq. 9)."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    @property
    def gamma(self) -> torch.Tensor:
        return torch.exp(self.gamma_log)

    def recurrence_parameters(self) -> list[nn.Parameter]:
        """Parameters given their own learning rate and no weight decay (Minimal-LRU's ``multi_transform``)."""
        return [self.nu_log, self.theta_log, self.gamma_log, self.B_re, self.B_im]

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False):
        """``x [B, T, d_input] -> y [B, T, d_output]`` (and complex ``h_T [B, N]``)."""
        self._check_input(x)
        u = self.hook_u(self.glu_in(x) if self.glu_in is not None else x)
        Bc = torch.complex(self.B_re, self.B_im) * self.gamma[:, None]
        drive = u.to(Bc.dtype) @ Bc.T
        h, hT = diagonal_recurrence(drive, self.lam, state, output_final_state=True)
        h = self.hook_h(h)
        Cc = torch.complex(self.C_re, self.C_im)
        y_tilde = self.hook_y_tilde((h @ Cc.T).real + self.D * u)
        y = self.hook_y(self.glu_out(y_tilde, m_input=x if self.config.variant == "in_skip" else None))
        return (y, hT) if return_state else y
