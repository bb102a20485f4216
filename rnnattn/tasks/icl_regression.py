"""In-context linear regression (Zucchet et al. §4.1, Table 2, App. C).

Each sequence draws a task ``W* [d_y, d_x]`` with entries ``~ N(0, w_var)`` (training ``1/3``, validation ``2/3``)
and ``n + 1`` inputs with entries ``~ U(-sqrt(3 x_var), sqrt(3 x_var))``. Tokens ``t <= n`` are ``(x_t, W* x_t)``,
the query token is ``(x_{n+1}, 0)``; the loss is read at the query only, against ``W* x_{n+1}``, as
0.5 * squared error averaged over the ``d_y`` output coordinates (this reproduces the paper's 0.0947 for GD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from rnnattn.config import Config, check_positive_int
from rnnattn.tasks.base import Batch, Task, check_batch, check_generator
from rnnattn.tasks.gd import (
    NORMAL_KURTOSIS,
    UNIFORM_KURTOSIS,
    one_step_gd_predict,
    optimal_gd_learning_rate,
    optimal_gd_loss,
)
from rnnattn.tasks.teacher_student import INPUT_DISTS, draw_inputs, scale_inputs


@dataclass(frozen=True)
class InContextRegressionConfig(Config):
    """Distribution of the ICL task (defaults = the paper's).

    Attributes:
        d_x, d_y: input and output sizes (tokens have ``d_x + d_y`` features).
        n_context: context pairs ``n`` (paper: 12); sequences have ``n + 1`` tokens.
        w_var: variance of ``W*`` entries for training (paper: 1/3).
        val_w_var: variance of ``W*`` entries for validation (paper: 2/3).
        x_dist: ``"uniform"`` (paper) or ``"normal"``; ``x_var`` is the variance of each entry.
    """

    d_x: int = 3
    d_y: int = 3
    n_context: int = 12
    w_var: float = 1.0 / 3.0
    val_w_var: float = 2.0 / 3.0
    x_dist: str = "uniform"
    x_var: float = 1.0

    def __post_init__(self) -> None:
        check_positive_int("InContextRegressionConfig", d_x=self.d_x, d_y=self.d_y, n_context=self.n_context)
        if self.x_dist not in INPUT_DISTS:
            raise ValueError(
                f"InContextRegressionConfig: x_dist must be one of {INPUT_DISTS}, got {self.x_dist!r}"
            )
        if not (self.w_var > 0 and self.val_w_var > 0 and self.x_var > 0):
            raise ValueError("InContextRegressionConfig: w_var, val_w_var and x_var must be positive")

    @property
    def kurtosis(self) -> float:
        return UNIFORM_KURTOSIS if self.x_dist == "uniform" else NORMAL_KURTOSIS


class InContextRegression(Task):
    """In-context linear regression; the reference is one step of GD with the optimal ``eta*`` (Eq. 36).

    Example:
        >>> task = InContextRegression()
        >>> x, y, mask = task.sample(8, torch.Generator().manual_seed(0))
        >>> x.shape, y.shape, mask[0].tolist()[-2:]
        (torch.Size([8, 13, 6]), torch.Size([8, 13, 3]), [False, True])
    """

    name = "icl_regression"
    reference = "one_step_gd"

    def __init__(self, config: InContextRegressionConfig | None = None) -> None:
        self.config = config or InContextRegressionConfig()

    @property
    def d_input(self) -> int:
        return self.config.d_x + self.config.d_y

    @property
    def d_output(self) -> int:
        return self.config.d_y

    @property
    def seq_len(self) -> int:
        return self.config.n_context + 1

    @property
    def loss_positions(self) -> list[int]:
        return [self.seq_len - 1]

    @property
    def eta_star(self) -> float:
        c = self.config
        return optimal_gd_learning_rate(c.n_context, c.d_x, c.x_var, c.kurtosis)

    def optimal_gd_loss(self, validation: bool = False) -> float:
        """Analytic one-step-GD loss at ``eta*`` (0.094595 for training, 0.18919 for validation)."""
        c = self.config
        return optimal_gd_loss(
            c.n_context, c.d_x, c.val_w_var if validation else c.w_var, c.x_var, c.kurtosis
        )

    def sample(self, batch: int, generator: torch.Generator, validation: bool = False) -> Batch:
        """Draw ``batch`` sequences; ``validation=True`` uses ``W*`` entries with variance ``val_w_var``."""
        check_batch("InContextRegression.sample", batch)
        return self._assemble(*self._draw(batch, [generator], validation))

    def sample_block(self, batch: int, generators: list[torch.Generator]) -> Batch:
        """One training batch per generator, stacked (``x [S, batch, T, d]``, ...): the numbers of ``sample`` with
        each generator (bit for bit), drawn into one block, scaled and assembled once."""
        check_batch("InContextRegression.sample", batch)
        b = self._assemble(*self._draw(batch, generators, False))
        return Batch(*(t.reshape(len(generators), batch, *t.shape[1:]) for t in b))

    def _draw(
        self, batch: int, generators: list[torch.Generator], validation: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``W* [G batch, d_y, d_x]`` and ``x [G batch, n+1, d_x]``: generator ``i`` draws rows ``i batch ...``, its
        ``W*`` first, then its ``x``; the raw draws are scaled once for the whole block (elementwise, so each row
        holds the same numbers as a draw of its generator alone)."""
        c, G = self.config, len(generators)
        W = torch.empty(G * batch, c.d_y, c.d_x)
        xs = torch.empty(G * batch, c.n_context + 1, c.d_x)
        for i, g in enumerate(generators):
            check_generator("InContextRegression.sample", g)
            rows = slice(i * batch, (i + 1) * batch)
            torch.randn(W[rows].shape, generator=g, out=W[rows])
            draw_inputs(xs[rows], c.x_dist, g)
        w_std = math.sqrt(c.val_w_var if validation else c.w_var)
        return W * w_std, scale_inputs(xs, c.x_dist, math.sqrt(c.x_var))

    def _assemble(self, W: torch.Tensor, xs: torch.Tensor) -> Batch:
        """Tokens ``(x, y = W* x)`` with the query's label hidden, its target, and the query-only mask."""
        c = self.config
        batch = W.shape[0]
        ys = torch.einsum("bij,btj->bti", W, xs)
        target = torch.zeros_like(ys)
        target[:, -1] = ys[:, -1]
        ys = ys.clone()
        ys[:, -1] = 0.0  # the query token carries no label
        tokens = torch.cat([xs, ys], dim=-1)
        mask = torch.zeros(batch, c.n_context + 1, dtype=torch.bool)
        mask[:, -1] = True
        return Batch(tokens, target, mask)

    def validation_set(self, n: int, seed: int) -> Batch:
        """``n`` sequences with the validation ``W*`` distribution (use ``n >= 1e5``: smaller sets are too noisy)."""
        return self.sample(n, torch.Generator().manual_seed(int(seed)), validation=True)

    def gd_prediction(self, x: torch.Tensor, eta: float | None = None) -> torch.Tensor:
        """One-step-GD prediction ``[B, T, d_y]`` (zero except at the query) for tokens ``x [B, T, d_x + d_y]``."""
        pred = one_step_gd_predict(x, self.config.d_x, self.eta_star if eta is None else eta)
        out = x.new_zeros(*x.shape[:2], self.config.d_y)
        out[:, -1] = pred
        return out

    def reference_loss(self, batch: Batch) -> float:
        """Loss of one-step GD at ``eta*`` on the same samples (compare the RNN with this, not the analytic L*)."""
        return float(self.loss(self.gd_prediction(batch.x), batch.y, batch.mask))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.config.to_dict(),
            "eta_star": self.eta_star,
            "optimal_gd_loss_train": self.optimal_gd_loss(False),
            "optimal_gd_loss_val": self.optimal_gd_loss(True),
        }
