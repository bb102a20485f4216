"""Torch export of compiled LSRL programs: :class:`CompiledLSRL`, a stack of gated linear RNN stages.

Stage ``k`` (``kinds[k]``): ``u = z_{k-1} W_k^T + c_k`` then ``relu``: ``z_k = max(0, u)``; ``mul``: ``z_k =
u[..., :w] * u[..., w:]`` (multiplicative gating); ``state``: ``z_k[t] = A_k z_k[t-1] + u[t]`` (Eq. 3 with
``B``, ``b`` folded into ``W_k``, ``c_k``; ``z_k[-1] = init_k``). Output ``y = z_K W_out^T + c_out``. Layout
``[B, T, D]``. Hook points: ``stages.{k}.hook_in`` (``u``), ``stages.{k}.hook_out`` (``z_k``), ``hook_y``.

Precision: the compiled weights fuse constants (``lambda * mu = 1e13`` for the ReLU conditionals of Eqs. 7/9)
that are designed to cancel exactly; each stage therefore sums its large weights (``|w| >= LARGE_WEIGHT``) and
its bias before the small ones (:meth:`LSRLStage.affine`), which keeps float64 exports equal to the float64
interpreter on the universal-approximation programs. **float32 rule** (:func:`float32_issue`): a program whose
compiled weights reach ``LARGE_WEIGHT`` (every program built on the library's steps/conditionals: ``mu^2``,
``lam``) is refused in float32/16 (``allow_unsafe=True`` downgrades that to a warning), and any other program is
checked on random probe inputs against the float64 runner and warned about if they differ by more than
``FLOAT32_RTOL``. Measured (issue 15): the token program (every variant, n = 2..5, prompts of 22..405 tokens)
answers 100% of queries wrongly in float32; ``continuous_program(2, 2)`` in float32 is off by 1.2..1.7 at cell
centres with the ReLU conditionals and by 2e-8 / 2e-5 / 37 with the multiplicative ones at N = 2 / 4 / 8. For
exact results compile with ``mode="exact"`` and use :meth:`~rnnattn.lsrl.compiler.CompiledProgram.run`.

Two paths: :meth:`CompiledLSRL.forward` processes the whole sequence layer by layer (linear recurrences by
``cumsum`` where ``A`` is an identity/zero diagonal, a short time loop only over the lanes that need it), and
:meth:`CompiledLSRL.forward_sequential` steps token by token (the reference the tests compare against).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import Config, check_positive_int
from ..hooks import HookPoint
from ..models.base import Model
from ..models.registry import register_model
from .numeric import LARGE_WEIGHT, split_large


@dataclass(frozen=True)
class CompiledLSRLConfig(Config):
    """Structure of a compiled LSRL model (everything needed to rebuild it; weights live in the state_dict).

    Attributes:
        d_input / d_output: token dims.
        kinds: per stage ``"relu" | "mul" | "state"``.
        widths: per stage output width (a ``mul`` stage reads ``2 * width`` rows).
        labels: optional per-stage lane labels (e.g. ``"relu:f_step12[0]"``, ``"carry:t[0]"``).
        name: program name.
    """

    d_input: int
    d_output: int
    kinds: tuple[str, ...] = ()
    widths: tuple[int, ...] = ()
    labels: tuple[tuple[str, ...], ...] = ()
    name: str = "lsrl"

    def __post_init__(self) -> None:
        check_positive_int("CompiledLSRLConfig", d_input=self.d_input, d_output=self.d_output)
        if len(self.kinds) != len(self.widths):
            raise ValueError("kinds and widths must have the same length")
        for k, w in zip(self.kinds, self.widths, strict=False):
            if k not in ("relu", "mul", "state"):
                raise ValueError(f"unknown stage kind {k!r}")
            check_positive_int("CompiledLSRLConfig", width=w)


class LSRLStage(nn.Module):
    """One stage; parameters ``weight [in, prev]``, ``bias [in]`` and, for ``state``, ``A [w, w]``, ``init [w]``."""

    def __init__(self, kind: str, prev: int, width: int) -> None:
        super().__init__()
        self.kind, self.width = kind, width
        rows = 2 * width if kind == "mul" else width
        self.weight = nn.Parameter(torch.zeros(rows, prev, dtype=torch.float64))
        self.bias = nn.Parameter(torch.zeros(rows, dtype=torch.float64))
        if kind == "state":
            self.A = nn.Parameter(torch.zeros(width, width, dtype=torch.float64))
            self.init = nn.Parameter(torch.zeros(width, dtype=torch.float64))
        self.hook_in = HookPoint()
        self.hook_out = HookPoint()

    def affine(self, z: torch.Tensor) -> torch.Tensor:
        """``u = (z W_large^T + c) + z W_small^T``: the large weights (``|w| >= LARGE_WEIGHT``) and the bias are
        summed first so that designed cancellations (``lam c - lam = 0``) happen before O(1) terms join."""
        w_big, w_small_t = self._split()
        return torch.nn.functional.linear(z, w_big, self.bias) + z @ w_small_t

    def _split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_large, W_small^T)``; cached while the weight is unchanged (its in-place version counter, storage
        and dtype) and no gradient is being recorded (a cached tensor must not carry a stale graph)."""
        w = self.weight
        fresh = torch.is_grad_enabled() and w.requires_grad
        key = (w._version, w.data_ptr(), w.dtype)
        cache = self.__dict__.get("_split_cache")
        if fresh or cache is None or cache[0] != key:
            big, small = split_large(w)
            cache = (key, big, small.T)
            if not fresh:
                self.__dict__["_split_cache"] = cache
        return cache[1], cache[2]

    def pre(self, z: torch.Tensor) -> torch.Tensor:
        return self.hook_in(self.affine(z))

    def pointwise(self, u: torch.Tensor) -> torch.Tensor:
        if self.kind == "relu":
            return torch.relu(u)
        return u[..., : self.width] * u[..., self.width :]


def linear_scan(
    A: torch.Tensor, u: torch.Tensor, s0: torch.Tensor, teacher: torch.Tensor | None = None
) -> torch.Tensor:
    """``s_t = A s_{t-1} + u_t`` for ``u [B, T, d]``, ``s0 [B, d]``; returns ``s [B, T, d]``.

    Lanes whose ``A`` row and column are zero off the diagonal with ``a_ii in {0, 1}`` are computed in
    parallel (``u`` or ``s0 + cumsum(u)``); the rest use a log-depth (Hillis-Steele) scan with the powers
    ``A^(2^j)``. With ``teacher [B, T, d]`` the previous state is taken from it (teacher forcing, paper Fig. 4
    setup): ``s_t = A teacher_{t-1} + u_t``, fully parallel.
    """
    if teacher is not None:
        prev = torch.cat([s0[:, None], teacher[:, :-1]], dim=1)
        return prev @ A.T + u
    diag = torch.diagonal(A)
    off = A - torch.diag(diag)
    coupled = (off != 0).any(0) | (off != 0).any(1)
    zero = ~coupled & (diag == 0)
    one = ~coupled & (diag == 1)
    rest = ~(zero | one)
    out = torch.empty_like(u)
    if zero.any():
        out[..., zero] = u[..., zero]
    if one.any():
        out[..., one] = s0[:, one][:, None] + torch.cumsum(u[..., one], dim=1)
    if rest.any():
        idx = rest.nonzero().squeeze(1)
        out[..., idx] = _doubling_scan(A[idx][:, idx], u[..., idx], s0[:, idx])
    return out


def _doubling_scan(A: torch.Tensor, u: torch.Tensor, s0: torch.Tensor) -> torch.Tensor:
    """Inclusive scan of ``s_t = A s_{t-1} + u_t`` in ``ceil(log2 T)`` batched steps."""
    y = u.clone()
    y[:, 0] = y[:, 0] + s0 @ A.T
    P, shift, T = A, 1, u.shape[1]
    while shift < T:
        y = torch.cat([y[:, :shift], y[:, shift:] + y[:, :-shift] @ P.T], dim=1)
        P = P @ P
        shift *= 2
    return y


#: Relative deviation from the float64 runner above which a float32 export (of a program with only small
#: weights) is reported as imprecise.
FLOAT32_RTOL = 1e-4


class LSRLPrecisionError(ValueError):
    """The requested dtype cannot represent the compiled program's arithmetic (see the float32 rule)."""


def float32_issue(cp: Any) -> str | None:
    """Why ``cp`` (a :class:`~rnnattn.lsrl.compiler.CompiledProgram`) is unsafe in float32, or ``None``.

    Static part of the rule: a weight with ``|w| >= LARGE_WEIGHT`` multiplies a 0/1 condition and must cancel
    exactly against a bias of the same size; float32's 24-bit mantissa leaves ``t + lam - lam`` with no bits of
    ``t`` (``lam = 1e10 > 2^24``) and turns step functions' ``mu^2 = 1e6`` products into O(1) errors.
    """
    mats = [st.W for st in cp.stages] + [cp.W_out]
    wmax = max([0.0] + [abs(float(v)) for m in mats for _, _, v in m.entries()])
    if wmax >= LARGE_WEIGHT:
        return (
            f"compiled weights reach {wmax:.3g} (>= {LARGE_WEIGHT:g}): the large-constant cancellations of "
            "the step/ifelse library need float64 (use dtype=torch.float64, or mode='exact' for exact results)"
        )
    return None


def _probe_float32(m: CompiledLSRL, cp: Any) -> None:
    """Warns if the low-precision module ``m`` strays from the float64 runner on random inputs."""
    import warnings

    import numpy as np

    xs = np.random.default_rng(0).normal(size=(3, 8, cp.input_dim))
    want = cp.run(xs, mode="float64")
    with torch.no_grad():
        got = m(torch.as_tensor(xs, dtype=m.readout.weight.dtype)).double().numpy()
    err = float(np.abs(got - want).max(initial=0.0))
    if not err <= FLOAT32_RTOL * (1.0 + float(np.abs(want).max(initial=0.0))):
        warnings.warn(f"{cp.name}: the {m.readout.weight.dtype} export differs from float64 by {err:.3g} on "
                      "random inputs", stacklevel=3)


@register_model
class CompiledLSRL(Model):
    """A compiled LSRL program as a batched torch model (see module docstring).

    Example:
        >>> from rnnattn.lsrl import compile
        >>> from rnnattn.lsrl.programs import token_program, token_prompt
        >>> m = compile(token_program(3)).to_module()
        >>> y = m(torch.as_tensor(token_prompt([1, 2, 3], {(1, 2, 3): (4, 5, 6)}), dtype=torch.float64)[None])
        >>> y[0, -3:, 0].round().tolist()
        [4.0, 5.0, 6.0]
    """

    config_class = CompiledLSRLConfig

    def __init__(self, config: CompiledLSRLConfig) -> None:
        super().__init__(config)
        stages = []
        prev = config.d_input
        for kind, w in zip(config.kinds, config.widths, strict=False):
            stages.append(LSRLStage(kind, prev, w))
            prev = w
        self.stages = nn.ModuleList(stages)
        self.readout = nn.Linear(prev, config.d_output, dtype=torch.float64)
        with torch.no_grad():
            self.readout.weight.zero_()
            self.readout.bias.zero_()
        self.hook_y = HookPoint()

    @classmethod
    def from_compiled(
        cls, cp: Any, dtype: torch.dtype | None = None, allow_unsafe: bool = False
    ) -> CompiledLSRL:
        """Builds the module from a :class:`~rnnattn.lsrl.compiler.CompiledProgram` (weights as dense
        tensors).

        A floating ``dtype`` with less than float64's precision follows the float32 rule (module docstring):
        :class:`LSRLPrecisionError` where :func:`float32_issue` finds a reason (a warning with
        ``allow_unsafe=True``), else a warning if random probes disagree with float64 beyond ``FLOAT32_RTOL``.
        """
        low = dtype is not None and dtype.is_floating_point and torch.finfo(dtype).eps > 1e-15
        issue = float32_issue(cp) if low else None
        if issue is not None:
            if not allow_unsafe:
                raise LSRLPrecisionError(f"{cp.name}: {dtype} is unsafe: {issue}")
            import warnings

            warnings.warn(f"{cp.name}: {dtype} is unsafe: {issue}", stacklevel=2)
        cfg = CompiledLSRLConfig(
            d_input=cp.input_dim,
            d_output=cp.output_dim,
            kinds=tuple(s.kind for s in cp.stages),
            widths=tuple(s.width for s in cp.stages),
            labels=tuple(tuple(s.labels) for s in cp.stages),
            name=cp.name,
        )
        m = cls(cfg)
        with torch.no_grad():
            for st, mod in zip(cp.stages, m.stages, strict=False):
                mod.weight.copy_(torch.from_numpy(st.W.to_numpy()))
                mod.bias.copy_(torch.tensor([float(v) for v in st.c], dtype=torch.float64))
                if st.kind == "state":
                    mod.A.copy_(torch.from_numpy(st.A.to_numpy()))
                    mod.init.copy_(torch.tensor([float(v) for v in st.init], dtype=torch.float64))
            m.readout.weight.copy_(torch.from_numpy(cp.W_out.to_numpy()))
            m.readout.bias.copy_(torch.tensor([float(v) for v in cp.c_out], dtype=torch.float64))
        m.metadata = {"lsrl_program": cp.name, "compile_mode": cp.mode.value, "stats": cp.stats().__dict__}
        if dtype is None:
            return m
        m = m.to(dtype)
        if low and issue is None:
            _probe_float32(m, cp)
        return m

    def _check_input(self, x: torch.Tensor) -> None:
        """Same wording as :meth:`CompiledProgram.run` (issue 12): ``[B, T, D]`` with ``D = d_input``."""
        if isinstance(x, torch.Tensor) and x.dim() == 3 and x.shape[-1] != self.config.d_input:
            raise ValueError(f"input has width {x.shape[-1]}, the program expects {self.config.d_input}")
        super()._check_input(x)

    def state_stages(self) -> list[int]:
        return [k for k, s in enumerate(self.stages) if s.kind == "state"]

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        return tuple(self.stages[k].init.detach().expand(batch, -1).clone() for k in self.state_stages())

    def forward(
        self,
        x: torch.Tensor,
        state: Sequence[torch.Tensor] | None = None,
        return_state: bool = False,
        *,
        teacher_states: Sequence[torch.Tensor] | None = None,
    ) -> Any:
        """Runs ``x [B, T, d_input]`` layer by layer.

        Args:
            x: input tokens.
            state: per state stage ``[B, w]`` (default: the compiled ``init``); continue a stream with it.
            return_state: also return the final states.
            teacher_states: per state stage ``[B, T, w]``; each step starts from these states (teacher
            forcing).

        Returns:
            ``y [B, T, d_output]`` (and the final state tuple).
        """
        self._check_input(x)
        x = x.to(self.readout.weight.dtype)
        B = x.shape[0]
        state = self.initial_state(B) if state is None else tuple(state)
        finals = []
        z = x
        si = 0
        for mod in self.stages:
            u = mod.pre(z)
            if mod.kind == "state":
                teacher = None if teacher_states is None else teacher_states[si]
                z = linear_scan(mod.A, u, state[si], teacher)
                finals.append(z[:, -1])
                si += 1
            else:
                z = mod.pointwise(u)
            z = mod.hook_out(z)
        y = self.hook_y(self.readout(z))
        return (y, tuple(finals)) if return_state else y

    def forward_sequential(
        self, x: torch.Tensor, state: Sequence[torch.Tensor] | None = None, return_state: bool = False
    ) -> Any:
        """Token-by-token reference path (same results as :meth:`forward` up to float rounding)."""
        self._check_input(x)
        x = x.to(self.readout.weight.dtype)
        st = list(self.initial_state(x.shape[0]) if state is None else state)
        ys = []
        for t in range(x.shape[1]):
            z = x[:, t]
            si = 0
            for mod in self.stages:
                u = mod.affine(z)
                if mod.kind == "state":
                    st[si] = st[si] @ mod.A.T + u
                    z = st[si]
                    si += 1
                else:
                    z = mod.pointwise(u)
            ys.append(self.readout(z))
        y = torch.stack(ys, dim=1)
        return (y, tuple(st)) if return_state else y

    def nnz(self) -> int:
        """Non-zero parameters."""
        return int(sum((p != 0).sum().item() for p in self.parameters()))

    def state_dim(self) -> int:
        return sum(s.width for s in self.stages if s.kind == "state")


def perturb_nonzeros(model: nn.Module, sigma: float, generator: torch.Generator | None = None) -> nn.Module:
    """Adds ``N(0, sigma^2)`` to every *non-zero* parameter entry in place (the paper's Fig. 4 noise model).

    Returns the model for chaining. ``sigma = 0`` leaves it unchanged.
    """
    if sigma == 0:
        return model
    with torch.no_grad():
        for p in model.parameters():
            mask = p != 0
            noise = torch.randn(p.shape, generator=generator, dtype=p.dtype) * sigma
            p.add_(noise * mask)
    return model
