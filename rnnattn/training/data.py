"""Per-step seeded data, generated in aligned blocks.

Step ``s`` of a run with data seed ``seed`` always sees the batch drawn from ``torch.Generator().manual_seed(
step_seed(seed, s))``, so a resumed run needs no RNG state. Blocks of ``block`` steps are generated together (one
teacher call per block) and always start at multiples of ``block``, so a resumed run regenerates bit-identical data.
"""

from __future__ import annotations

import torch

from rnnattn.tasks.base import Batch, Task

_MASK63 = (1 << 63) - 1


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed for (run seed, step, stream), mixed so nearby seeds do not share batches."""
    x = (
        int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9 + int(stream) * 0x94D049BB133111EB
    ) & _MASK63
    x ^= x >> 31
    return (x * 0xD6E8FEB86659FD93) & _MASK63


def sample_steps(task: Task, batch: int, seed: int, steps: range, stream: int = 0) -> Batch:
    """Batches of ``steps`` stacked: ``x [S, B, T, d]``, ``y [S, B, T, d_out]``, ``mask [S, B, T]``."""
    gens = [torch.Generator().manual_seed(step_seed(seed, s, stream)) for s in steps]
    return task.sample_block(batch, gens)


class BlockStream:
    """Serves the batch of any step from a cached block ``[k*block, (k+1)*block)``; ``prepare`` maps a stacked
    block to whatever layout the engine wants."""

    def __init__(self, task: Task, batch: int, seed: int, block: int, prepare=None, stream: int = 0) -> None:
        self.task, self.batch, self.seed, self.block, self.stream = task, batch, seed, block, stream
        self.prepare = prepare or (lambda b: b)
        self._k: int | None = None
        self._data = None

    def get(self, step: int):
        k = step // self.block
        if k != self._k:
            raw = sample_steps(
                self.task, self.batch, self.seed, range(k * self.block, (k + 1) * self.block), self.stream
            )
            self._data, self._k = self.prepare(raw), k
        return self._data, step - k * self.block
