"""Linear embedding -> L recurrent layers -> linear readout (Zucchet et al. §3.3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnattn.config import Config, check_positive_int
from rnnattn.hooks import HookPoint
from rnnattn.models.base import Model
from rnnattn.models.registry import get_model_class, register_model


def _hashable(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    return v


@dataclass(frozen=True)
class SequenceModelConfig(Config):
    """Config of :class:`SequenceModel`.

    Attributes:
        d_input, d_output: token and prediction sizes.
        d_model: default width between layers (embedding output, every layer's input and output).
        layers: one mapping per layer: ``{"class": "GatedLinearRNN" | "LRU" | "LSTM" | "GRU" |
            "LinearSelfAttention", **config fields}``. A layer's input width defaults to the previous layer's
            output (``d_model`` for the first), its output width to ``d_model``; give ``d_input``/``d_output``
            (``d_hidden`` for LSTM/GRU) to build stacks of unequal widths (as the constructions do).
            Example: ``({"class": "LRU", "d_state": 64, "variant": "in_out"},)``.
        embed_bias, readout_bias: biases of the two linear maps (no LayerNorm, dropout or skips, as in the paper).
    """

    d_input: int
    d_output: int
    d_model: int
    layers: tuple[Any, ...]
    embed_bias: bool = True
    readout_bias: bool = True

    def __post_init__(self) -> None:
        check_positive_int("SequenceModelConfig", d_input=self.d_input, d_output=self.d_output, d_model=self.d_model)
        if not self.layers:
            raise ValueError("SequenceModelConfig: at least one layer is needed")
        for spec in self.layers:
            if not isinstance(spec, dict) or "class" not in spec:
                raise ValueError(f"SequenceModelConfig: each layer must be a mapping with a 'class', got {spec!r}")

    def __hash__(self) -> int:
        # the generated hash would fail on the layer dicts; hash a frozen copy so configs stay usable as keys
        return hash(tuple(_hashable(getattr(self, f.name)) for f in dataclasses.fields(self)))

    def layer_config(self, i: int, d_in: int | None = None) -> tuple[type[Model], Config]:
        """Class and config of layer ``i`` whose input width defaults to ``d_in`` (else ``d_model``)."""
        spec = dict(self.layers[i])
        cls = get_model_class(spec.pop("class"))
        if cls is SequenceModel or not issubclass(cls, Model):
            raise ValueError(f"SequenceModelConfig: layer {i} cannot be a {cls.__name__}")
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        spec.setdefault("d_input", d_in or self.d_model)
        for width in ("d_output", "d_hidden"):
            if width in fields and width not in spec:
                # single-head LSA: output is the value size unless a W_O width is given explicitly
                if width == "d_output" and cls.__name__ == "LinearSelfAttention" and spec.get("n_heads", 1) == 1:
                    continue
                spec[width] = self.d_model
        return cls, cls.config_class.from_dict(spec)


@register_model
class SequenceModel(Model):
    """``y = readout(layer_L(... layer_1(embed(x))))``. State: a list with each layer's state.

    Hook points: ``hook_embed``, ``hook_resid.{i}`` via ``layers.{i}`` (each layer's own hooks, e.g.
    ``layers.0.hook_h``), ``hook_y``.
    """

    config_class = SequenceModelConfig

    def __init__(self, config: SequenceModelConfig) -> None:
        super().__init__(config)
        layers = []
        width = config.d_model
        for i in range(len(config.layers)):
            cls, cfg = config.layer_config(i, width)
            layer = cls(cfg)
            if i and layer.d_input != width:
                raise ValueError(
                    f"SequenceModelConfig: layer {i} reads {layer.d_input} features, layer {i - 1} gives {width}"
                )
            layers.append(layer)
            width = layer.d_output
        self.embed = nn.Linear(config.d_input, layers[0].d_input, bias=config.embed_bias)
        self.layers = nn.ModuleList(layers)
        self.readout = nn.Linear(width, config.d_output, bias=config.readout_bias)
        self.hook_embed = HookPoint()
        self.hook_y = HookPoint()

    def recurrence_parameters(self) -> list[nn.Parameter]:
        out: list[nn.Parameter] = []
        for layer in self.layers:
            if hasattr(layer, "recurrence_parameters"):
                out.extend(layer.recurrence_parameters())
        return out

    def forward(self, x: torch.Tensor, state: list | None = None, return_state: bool = False):
        self._check_input(x)
        z = self.hook_embed(self.embed(x))
        states = []
        for i, layer in enumerate(self.layers):
            z, s = layer(z, state=None if state is None else state[i], return_state=True)
            states.append(s)
        y = self.hook_y(self.readout(z))
        return (y, states) if return_state else y
