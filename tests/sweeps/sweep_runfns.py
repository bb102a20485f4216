"""Run functions for the sweep tests: module-level so worker processes (local pool, Dask) import them by
name."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from rnnattn.models import (
    GatedLinearRNN,
    GatedLinearRNNConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
)


def tiny_train(params: dict) -> dict:
    """A few SGD steps of a small gated RNN imitating a linear-attention teacher (d=2, T=6): a real, seeded
    run.

    (Built from the model zoo only, so the executor tests do not depend on the training package.)
    """
    torch.manual_seed(0)
    teacher = LinearSelfAttention(LinearSelfAttentionConfig(d_input=2)).requires_grad_(False)
    torch.manual_seed(params["seed"])
    model = GatedLinearRNN(
        GatedLinearRNNConfig(d_input=2, n_hidden=params["n_hidden"], n_gating=params["n_hidden"], d_output=2)
    )

    def sample(n: int, g: torch.Generator):
        x = torch.randn(n, 6, 2, generator=g)
        return x, teacher(x)

    gen = torch.Generator().manual_seed(1000 + params["seed"])
    x_val, y_val = sample(64, torch.Generator().manual_seed(7))

    def val() -> float:
        with torch.no_grad():
            return 0.5 * ((model(x_val) - y_val) ** 2).mean().item()

    first = val()
    for _ in range(params.get("steps", 5)):
        x, y = sample(16, gen)
        loss = 0.5 * ((model(x) - y) ** 2).mean()
        model.zero_grad()
        loss.backward()
        with torch.no_grad():  # plain SGD: torch.optim would import torch._dynamo (seconds) in every worker
            for p in model.parameters():
                p -= params.get("lr", 0.01) * p.grad
    return {"loss": val(), "first_loss": first, "n_parameters": model.n_parameters(), "pid": os.getpid()}


def counted(params: dict) -> dict:
    """Record each call in ``params["log"]`` (one line per call, any process); fail while the file
    ``<log>.fail`` lists this run's x (the trigger lives outside params, so removing it does not change run ids);
    sleep."""
    with open(params["log"], "a") as f:
        f.write(f"{params['x']},{params['seed']}\n")
    trigger = Path(params["log"] + ".fail")
    if trigger.exists() and str(params["x"]) in trigger.read_text().split():
        raise RuntimeError(f"boom at x={params['x']}")
    time.sleep(params.get("sleep", 0.0))
    return {"y": params["x"] ** 2 + params["seed"], "vec": [params["x"], 0.5]}


def calls(log: str | Path) -> list[str]:
    p = Path(log)
    return p.read_text().split() if p.exists() else []
