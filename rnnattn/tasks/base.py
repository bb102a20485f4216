"""The task protocol shared by the teacher-student and in-context regression tasks.

A task draws batches ``(x [B, T, d_in], y [B, T, d_out], mask [B, T])`` from an explicit ``torch.Generator`` (no
global RNG), scores predictions with the paper's loss convention (0.5 * squared error, averaged over the output
coordinates and the positions where ``mask`` is True), and serialises its full distribution as JSON
(``to_dict()``, saved in every checkpoint's ``metadata["task"]``).
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import torch


class Batch(NamedTuple):
    """One batch: ``x [B, T, d_in]`` inputs, ``y [B, T, d_out]`` targets, ``mask [B, T]`` (bool) scored positions."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor


def masked_half_mse(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``0.5 * mean over (masked positions, output coordinates) of (pred - y)^2`` (a scalar).

    Args:
        pred, y: ``[B, T, d_out]``.
        mask: ``[B, T]`` bool (or broadcastable to it).
    """
    if pred.shape != y.shape:
        raise ValueError(f"loss: prediction shape {tuple(pred.shape)} != target shape {tuple(y.shape)}")
    m = mask.to(pred.dtype).expand(pred.shape[:-1])
    count = m.sum() * pred.shape[-1]
    if count == 0:
        raise ValueError("loss: the mask selects no position")
    return 0.5 * (m[..., None] * (pred - y) ** 2).sum() / count


class Task(abc.ABC):
    """A sequence-to-sequence regression task.

    Attributes:
        name: registry name (``"teacher_student"``, ``"icl_regression"``).
        d_input, d_output, seq_len: sizes of ``x``, ``y`` and the sequence length ``T``.
        loss_positions: time indices that carry loss (``None``: every position). Lets fast paths skip the readout
            elsewhere (the ICL loss reads only the query step).
        reference: what the optimum is compared with (``"teacher"`` or ``"one_step_gd"``).
    """

    name: str = ""
    reference: str = ""

    @property
    @abc.abstractmethod
    def d_input(self) -> int: ...

    @property
    @abc.abstractmethod
    def d_output(self) -> int: ...

    @property
    @abc.abstractmethod
    def seq_len(self) -> int: ...

    @property
    def loss_positions(self) -> list[int] | None:
        return None

    @abc.abstractmethod
    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        """Draw a training batch of ``batch`` sequences (everything on CPU, float32)."""

    def sample_block(self, batch: int, generators: list[torch.Generator]) -> Batch:
        """One batch per generator, stacked (``x [S, batch, T, d]``, ...): ``sample`` with each generator in turn.
        Tasks override it to draw the whole block at once (same numbers, fewer small ops per step)."""
        return Batch(*(torch.stack(t) for t in zip(*(self.sample(batch, g) for g in generators), strict=True)))

    def validation_set(self, n: int, seed: int) -> Batch:
        """A fixed validation batch of ``n`` sequences (deterministic in ``seed``); default: training distribution."""
        return self.sample(n, torch.Generator().manual_seed(int(seed)))

    def loss(self, pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Paper convention: 0.5 * squared error averaged over output coordinates and masked positions."""
        return masked_half_mse(pred, y, mask)

    def reference_loss(self, batch: Batch) -> float | None:
        """Loss of the reference solution on ``batch`` (0 for a teacher, one-step GD for ICL), or None."""
        return None

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **all distribution parameters}`` (JSON)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({args})"


def check_batch(owner: str, batch: Any) -> int:
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"{owner}: batch size must be a positive integer, got {batch!r}")
    return batch


def check_generator(owner: str, generator: Any) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{owner}: pass a torch.Generator (got {type(generator).__name__}); tasks never use global RNG"
        )
    return generator
