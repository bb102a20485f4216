"""Training configuration and result objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnattn.config import Config, check_positive_int

ENGINES = ("auto", "fast", "autograd")
POLISH_METHODS = ("lbfgs", "lm")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything that determines a training run (saved in ``metadata["training"]["config"]``).

    Defaults are the paper's protocol (App. B.1): AdamW, cosine 1e-3 -> 1e-6, weight decay 1e-4 on every parameter
    except the recurrence (``nu``), batch 64.

    Attributes:
        steps: AdamW steps; the cosine schedule spans exactly these.
        batch_size: sequences per step (fresh data every step, drawn from a generator seeded by ``(seed, step)``).
        lr, lr_min, warmup_steps: cosine schedule ``lr_min + (lr - lr_min) (1 + cos(pi s / steps)) / 2`` after a
            linear warm-up.
        weight_decay: decoupled decay of every non-recurrence parameter.
        l1: strength of an L1 penalty ``l1 * sum |p|`` on every non-recurrence parameter during the AdamW phase
            (its subgradient ``l1 * sign(p)`` is added to the loss gradient; logged losses exclude it; polishing
            ignores it). 0 (default, the paper) disables it. Unlike L2 decay, which is invariant under orthogonal
            mixing of neurons, it favours weights aligned with the neuron axes: the ``sparse`` protocol
            (:mod:`rnnattn.training.protocols`) uses it to make trained students prunable.
        recurrence_lr_mult, recurrence_weight_decay: learning-rate multiplier and decay of
            ``model.recurrence_parameters()`` (paper: 1 and 0; the fast protocol uses a larger multiplier).
        betas, eps: Adam.
        seed: data seed (the model's init is its own business: the CLI seeds it with the same number).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (CUDA when available).
        dtype: ``"float32"`` (paper) or ``"float64"``.
        engine: ``"fast"`` (hand-written backward, diagonal GatedLinearRNN only), ``"autograd"`` (any model) or
            ``"auto"`` (fast when supported).
        log_every, val_every, checkpoint_every: intervals in steps (0 disables validation / periodic checkpoints).
        val_samples, val_seed: the fixed validation set.
        data_block: steps of data generated at once (aligned to multiples of itself so resume is exact).
        polish_rounds, polish_iters, polish_batch, polish_history: optional L-BFGS phase after AdamW: each round runs
            ``polish_iters`` strong-Wolfe L-BFGS iterations on a fixed batch of ``polish_batch`` sequences drawn for
            that round.
        polish_method: ``"lbfgs"`` (strong-Wolfe L-BFGS in the training dtype, any model) or ``"lm"``
            (Levenberg-Marquardt in float64 with an analytic Jacobian; fast engine, small students only; each round
            runs ``polish_iters`` LM iterations, every round on the same batch of ``polish_batch`` sequences; see
            :mod:`rnnattn.training.lm`).
        polish_freeze_zeros: LM polishing only: before each round, entries of ``W_in``, ``W_out`` and ``D`` with
            ``|p| <= polish_freeze_zeros * max|p|`` of their tensor are set to exactly 0 and held there, so the
            zeros an L1 phase made survive polishing (0: off; the ``sparse`` protocol uses 1e-3, the threshold of
            :func:`rnnattn.analysis.prune`).
        target_loss: stop as soon as the validation loss is <= this (None: run all steps).
        protocol: a label recorded with the run (``"paper"``, ``"fast"``, ``"custom"``).
    """

    steps: int = 10_000
    batch_size: int = 64
    lr: float = 1e-3
    lr_min: float = 1e-6
    warmup_steps: int = 0
    weight_decay: float = 1e-4
    l1: float = 0.0
    recurrence_lr_mult: float = 1.0
    recurrence_weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    engine: str = "auto"
    log_every: int = 100
    val_every: int = 1000
    val_samples: int = 4096
    val_seed: int = 999_983
    checkpoint_every: int = 5000
    data_block: int = 32
    polish_rounds: int = 0
    polish_iters: int = 50
    polish_batch: int = 512
    polish_history: int = 50
    polish_method: str = "lbfgs"
    polish_freeze_zeros: float = 0.0
    target_loss: float | None = None
    protocol: str = "custom"

    def __post_init__(self) -> None:
        check_positive_int(
            "TrainConfig",
            batch_size=self.batch_size,
            log_every=self.log_every,
            val_samples=self.val_samples,
            data_block=self.data_block,
            polish_iters=self.polish_iters,
            polish_batch=self.polish_batch,
            polish_history=self.polish_history,
        )
        for name in ("steps", "warmup_steps", "val_every", "checkpoint_every", "polish_rounds"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"TrainConfig: {name} must be a non-negative integer, got {v!r}")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise ValueError(
                f"TrainConfig: need lr > 0 and 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}"
            )
        for name in ("lr", "weight_decay", "l1", "recurrence_lr_mult", "recurrence_weight_decay"):
            v = getattr(self, name)  # the comparison also refuses NaN
            if not 0 <= v <= MAX_HYPERPARAMETER:
                raise ValueError(f"TrainConfig: {name} must be in [0, {MAX_HYPERPARAMETER:g}], got {v!r}")
        if not 0 <= self.polish_freeze_zeros < 1:
            raise ValueError(f"TrainConfig: polish_freeze_zeros must be in [0, 1), got {self.polish_freeze_zeros!r}")
        if self.polish_freeze_zeros and self.polish_method != "lm":
            raise ValueError("TrainConfig: polish_freeze_zeros needs polish_method 'lm'")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig: betas must be two numbers in [0, 1), got {self.betas}")
        if self.engine not in ENGINES:
            raise ValueError(f"TrainConfig: engine must be one of {ENGINES}, got {self.engine!r}")
        if self.polish_method not in POLISH_METHODS:
            raise ValueError(
                f"TrainConfig: polish_method must be one of {POLISH_METHODS}, got {self.polish_method!r}"
            )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"TrainConfig: dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.steps == 0 and self.polish_rounds == 0:
            raise ValueError("TrainConfig: nothing to do (steps = 0 and polish_rounds = 0)")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run's hyperparameters (learning rate, penalties), not a bug; the CLI
    reports it as the user's error (one line, exit 2)."""


#: upper bound of every rate, decay, penalty and multiplier: larger values overflow float32 in AdamW's moments
MAX_HYPERPARAMETER = 1e6


@dataclass
class TrainResult:
    """What a run returns (small: safe to ship between processes).

    Attributes:
        steps: optimisation steps done (AdamW steps + L-BFGS iterations).
        final_train_loss: mean training loss over the last logging interval.
        final_val_loss, reference_val_loss: validation loss and the reference's (one-step GD / 0 for a teacher)
            on the same samples; None without validation.
        wall_time: seconds spent in this call plus earlier (resumed) calls.
        checkpoint: path of the model checkpoint (None without ``out_dir``).
        interrupted: stopped by SIGINT (a checkpoint was written).
        reached_target: ``target_loss`` was reached (at ``target_step``, after ``target_time`` seconds).
        history: the logged rows (dicts, as in the CSV).
    """

    steps: int
    final_train_loss: float | None
    final_val_loss: float | None
    reference_val_loss: float | None
    wall_time: float
    checkpoint: Path | None = None
    interrupted: bool = False
    reached_target: bool = False
    target_step: int | None = None
    target_time: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "history"}
