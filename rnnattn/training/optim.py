"""Optimiser pieces: the cosine-to-floor schedule and AdamW parameter groups (App. B.1; Minimal-LRU's conventions, App.
D)."""

from __future__ import annotations

import math

import torch
from torch import nn

from rnnattn.training.config import TrainConfig


def cosine_lr(step: int, config: TrainConfig) -> float:
    """Learning rate of AdamW step ``step`` (0-based): linear warm-up, then
    ``lr_min + (lr - lr_min) * (1 + cos(pi * s / S)) / 2`` reaching ``lr_min`` at the last step."""
    c = config
    if c.warmup_steps and step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    span = max(c.steps - c.warmup_steps - 1, 1)
    s = min(max(step - c.warmup_steps, 0), span)
    return c.lr_min + (c.lr - c.lr_min) * 0.5 * (1.0 + math.cos(math.pi * s / span))


def recurrence_params(model: nn.Module) -> list[nn.Parameter]:
    fn = getattr(model, "recurrence_parameters", None)
    return list(fn()) if callable(fn) else []


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Two AdamW groups: recurrence parameters (``lr_mult = recurrence_lr_mult``, decay ``recurrence_weight_decay``)
    and the rest (``lr_mult = 1``, decay ``weight_decay``). Each group's lr is ``schedule * lr_mult``."""
    rec = recurrence_params(model)
    rec_ids = {id(p) for p in rec}
    rest = [p for p in model.parameters() if id(p) not in rec_ids]
    groups = [{"params": rest, "weight_decay": config.weight_decay, "lr_mult": 1.0}]
    if rec:
        groups.append(
            {
                "params": rec,
                "weight_decay": config.recurrence_weight_decay,
                "lr_mult": config.recurrence_lr_mult,
            }
        )
    return groups


def make_adamw(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        param_groups(model, config), lr=config.lr, betas=tuple(config.betas), eps=config.eps, foreach=True
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)


def flat_multipliers(
    slices: dict[str, slice], P: int, recurrence: set[str], config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-entry ``(lr_mult [P], weight_decay [P], l1 [P] or None)`` for a flat parameter buffer (see
    ``FlatAdamW``); ``l1`` is None when ``config.l1`` is 0."""
    mult = torch.ones(P)
    wd = torch.full((P,), float(config.weight_decay))
    l1 = torch.full((P,), float(config.l1))
    for name, sl in slices.items():
        if name in recurrence:
            mult[sl] = config.recurrence_lr_mult
            wd[sl] = config.recurrence_weight_decay
            l1[sl] = 0.0
    return mult, wd, (l1 if config.l1 else None)


def add_l1_subgradient(params: list[torch.Tensor], l1: float) -> None:
    """``p.grad += l1 * sign(p)`` for each parameter with a gradient: the penalty ``l1 * sum |p|`` (sign(0) = 0,
    so exact zeros stay a fixed point of the penalty)."""
    for p in params:
        if p.grad is not None:
            p.grad.add_(torch.sign(p), alpha=l1)
