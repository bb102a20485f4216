"""Probe inputs: drawn from the checkpoint's task (``metadata["task"]``, rebuilt with
:func:`rnnattn.tasks.task_from_dict`) when there is one, else x ~ N(0, I).

The paper leaves the teacher-student input distribution open (§3.1, App. B.1); rnnattn's default is N(0, I). Every
result states the distribution it used. For tasks scored at some positions only (in-context regression: the
query step), :class:`ProbeInputs` carries those positions so losses are compared where the task defines them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rnnattn.limits import check_probe_inputs


@dataclass
class ProbeInputs:
    """``x [B, T, d]`` (float64), the distribution in words, and the scored time positions (None: all)."""

    x: torch.Tensor
    description: str
    loss_positions: list[int] | None = None


def _task(metadata: dict[str, Any]) -> tuple[Any, str]:
    """``(task or None, why not)``: the checkpoint's task rebuilt from its record, or why it was not."""
    spec = metadata.get("task")
    if not isinstance(spec, dict) or "name" not in spec:
        return None, "the checkpoint states no task"
    from rnnattn.tasks import task_from_dict

    try:
        return task_from_dict(spec), ""
    # Validating a record read from the file: the task configs reject bad values with ValueError, and a value of
    # the wrong type (a string where a number belongs) with TypeError from their comparisons.
    except (ValueError, TypeError) as e:
        return None, f"the checkpoint's task record cannot be rebuilt: {str(e).splitlines()[0][:200]}"


def probe_inputs(
    metadata: dict[str, Any], d: int, n_sequences: int = 256, seq_len: int | None = None, seed: int = 0
) -> ProbeInputs:
    """``n_sequences`` input sequences for the probes and the loss.

    With a task in the metadata: its own input sampler (teacher-student: its input distribution and, unless
    ``seq_len`` is given, its sequence length; in-context regression: full episodes (x, W* x) with the query
    token last). Otherwise x ~ N(0, I) with ``seq_len`` (default 32) steps.
    """
    g = torch.Generator().manual_seed(seed)
    task, why_not = _task(metadata)
    # sizes may come from the file's task metadata (seq_len, n_context of 10^9): refuse before sampling
    check_probe_inputs(n_sequences, max(task.seq_len if task is not None else 0, seq_len or 32), d)
    if task is not None and task.d_input == d:
        name = metadata["task"]["name"]
        if name == "teacher_student" and seq_len is not None and seq_len != task.seq_len:
            task = type(task)(task.config.replace(seq_len=seq_len))
        x = task.sample(n_sequences, g).x.to(torch.float64)
        args = ", ".join(f"{k}={v}" for k, v in metadata["task"].items() if k != "name")
        return ProbeInputs(
            x,
            f"task {name} ({args}): {x.shape[0]} sequences x {x.shape[1]} steps, seed {seed}",
            task.loss_positions,
        )
    T = seq_len or 32
    x = torch.randn(n_sequences, T, d, generator=g, dtype=torch.float64)
    why = f"default; {why_not}" if task is None else "default; the task's input size differs"
    return ProbeInputs(x, f"x ~ N(0, I) ({why}), {n_sequences} sequences x {T} steps, seed {seed}")
