"""Shared pieces of the converted models: a config with per-layer sizes and a readout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...config import Config, check_positive_int
from ...models.base import Model


@dataclass(frozen=True)
class ConvertedConfig(Config):
    """Structure of a converted model.

    Attributes:
        d_input / d_output: token dims.
        layers: per layer ``(kind, d_in, d_hidden)``; the kinds are architecture specific.
        max_len: longest supported sequence (Hawk only; 0 = unbounded).
        name: program name.
    """

    d_input: int
    d_output: int
    layers: tuple[tuple, ...] = ()
    max_len: int = 0
    name: str = "lsrl"

    def __post_init__(self) -> None:
        check_positive_int(type(self).__name__, d_input=self.d_input, d_output=self.d_output)
        for layer in self.layers:
            if len(layer) != 3:
                raise ValueError(f"layer spec must be (kind, d_in, d_hidden), got {layer!r}")
            check_positive_int(type(self).__name__, d_in=layer[1], d_hidden=layer[2])


class LayerStack(Model):
    """A stack of recurrent layers of one class (``layer_cls(d_in, d_hidden)``, each returning ``(h, state)``) and a
    float64 linear readout: the shape every gated conversion shares. State: a tuple with each layer's state."""

    layer_cls: ClassVar[type[nn.Module]]

    def __init__(self, config: ConvertedConfig) -> None:
        super().__init__(config)
        self.layers = nn.ModuleList([self.layer_cls(i, h) for _, i, h in config.layers])
        last = config.layers[-1][2] if config.layers else config.d_input
        self.readout = nn.Linear(last, config.d_output, dtype=torch.float64)

    def forward(self, x: torch.Tensor, state: Any = None, return_state: bool = False) -> Any:
        self._check_input(x)
        z = x.to(self.readout.weight.dtype)
        finals = []
        for k, layer in enumerate(self.layers):
            z, st = layer(z, None if state is None else state[k])
            finals.append(st)
        y = self.readout(z)
        return (y, tuple(finals)) if return_state else y


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def sign_combos(w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``w`` products in 4 sign-split lanes each (order ``++, +-, -+, --``): the selectors of the ``a``
    and ``b`` parts (``[4w, 2w]`` over ``[a+; a-]`` / ``[b+; b-]``) and the recombination ``[w, 4w]``
    (``ab = a+b+ - a+b- - a-b+ + a-b-``)."""
    sa = np.zeros((4 * w, 2 * w))
    sb = np.zeros((4 * w, 2 * w))
    R = np.zeros((w, 4 * w))
    for q, (s, t) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for j in range(w):
            sa[q * w + j, s * w + j] = 1
            sb[q * w + j, t * w + j] = 1
            R[j, q * w + j] = 1 if s == t else -1
    return sa, sb, R
