"""A training run's working memory, estimated from its sizes before anything is allocated, so an absurd option
(``--batch-size 10**9``, ``val_samples``, a huge student) is refused with one line instead of exhausting the machine.

The estimate is deliberately generous (activations and their gradients at 8 floats per unit per token):

    bytes = itemsize * K * (5 * P                                   # weights, gradients, Adam's moments, a copy
                            + data_block * B * T * io               # the block of generated batches
                            + B * T * a                             # one step's activations + gradients
                            + V * T * io + min(V, 8192) * T * a     # validation set, evaluated in chunks
                            + P_b * T * a * (d + 2))                # LM polishing: per-neuron Jacobian rows

with ``io = d_in + d_out + 1``, ``a = io + 8 * width`` (``width = n_hidden + n_gating`` for the gated RNN,
else ``sqrt(P)``), ``P`` the model's parameters, ``V`` validation sequences, ``P_b`` the polishing batch and
``K`` models trained at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rnnattn.limits import check_at_most
from rnnattn.tasks.base import Task
from rnnattn.training.config import TrainConfig


def _width(model: torch.nn.Module, n_params: int) -> int:
    cfg = getattr(model, "config", None)
    w = sum(int(getattr(cfg, a, 0) or 0) for a in ("n_hidden", "n_gating"))
    return w or math.isqrt(n_params)


def training_bytes(task: Task, model: torch.nn.Module, config: TrainConfig, k: int = 1) -> int:
    """The estimate of the module docstring, in bytes."""
    T, io = task.seq_len, task.d_input + task.d_output + 1
    n_params = sum(p.numel() for p in model.parameters())
    act = io + 8 * _width(model, n_params)
    n = 5 * n_params + config.data_block * config.batch_size * T * io + config.batch_size * T * act
    if config.val_every or config.target_loss is not None:
        n += config.val_samples * T * io + min(config.val_samples, 8192) * T * act
    if config.polish_rounds:
        n += config.polish_batch * T * act * (task.d_input + 2)
    return (8 if config.dtype == "float64" else 4) * k * n


def check_before_building(build: Callable[[], torch.nn.Module], task: Task, config: TrainConfig, k: int = 1) -> None:
    """:func:`check_training_memory` on ``build()`` run on the meta device (no memory): a student too large for the
    budget is refused before its weights are allocated; ``k`` models of that build are trained at once."""
    with torch.device("meta"):
        check_training_memory(task, build(), config, k)


def build_within_budget(build: Callable[[], torch.nn.Module], task: Task, config: TrainConfig):
    """:func:`check_before_building`, then ``build()`` for real."""
    check_before_building(build, task, config)
    return build()


def check_training_memory(task: Task, model: torch.nn.Module, config: TrainConfig, k: int = 1) -> None:
    """Raise :class:`~rnnattn.limits.ResourceLimitError` when the estimate exceeds ``MAX_TRAIN_BYTES``."""
    check_at_most("estimated training memory (bytes)", training_bytes(task, model, config, k), "MAX_TRAIN_BYTES")
