"""Base class shared by every rnnattn model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from rnnattn.config import Config
from rnnattn.hooks import HookedMixin


def init_param(shape: tuple[int, ...], init: Callable[[], torch.Tensor]) -> nn.Parameter:
    """A parameter of ``shape`` filled by ``init()`` — or left uninitialised when built on the ``meta`` device.

    Checkpoint loading builds models on ``meta`` to learn their shapes without allocating; arithmetic on meta
    tensors makes torch import ``torch._dynamo`` (seconds), so initialisers are skipped there, as ``nn.Linear`` does.
    """
    if torch.empty(0).is_meta:
        return nn.Parameter(torch.empty(shape))
    value = init()
    if tuple(value.shape) != tuple(shape):
        raise AssertionError(f"initialiser gave {tuple(value.shape)}, expected {tuple(shape)}")
    return nn.Parameter(value)


class Model(HookedMixin, nn.Module):
    """An ``nn.Module`` built from a frozen config, carrying JSON metadata, with named hook points.

    Forward convention (all models): ``forward(x, state=None, return_state=False)`` with ``x: [B, T, D_in]``;
    returns ``y: [B, T, D_out]``, or ``(y, final_state)`` when ``return_state``. Feeding ``final_state`` back as
    ``state`` continues the sequence: running ``x[:, :k]`` then ``x[:, k:]`` equals running ``x`` (streaming).

    Attributes:
        config: the frozen config the model was built from (``type(self).config_class``).
        metadata: JSON-serialisable provenance (what the model was built or trained from), saved with checkpoints.
    """

    config_class: ClassVar[type[Config]]

    def __init__(self, config: Config) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.metadata: dict[str, Any] = {}

    @property
    def d_input(self) -> int:
        return self.config.d_input  # type: ignore[attr-defined]

    @property
    def d_output(self) -> int:
        return self.config.d_output  # type: ignore[attr-defined]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}: input must be [batch, time, features], got {shape}")
        if x.shape[-1] != self.d_input:
            raise ValueError(
                f"{type(self).__name__}: input has {x.shape[-1]} features, the model expects {self.d_input}"
            )

    def step(self, x_t: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """One token: ``x_t [B, D_in] -> (y_t [B, D_out], new_state)``."""
        y, s = self.forward(x_t[:, None, :], state=state, return_state=True)
        return y[:, 0], s

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())
