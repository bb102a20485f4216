"""Teacher-student task (Zucchet et al. §3.1, App. B.1): a gated RNN student imitates a linear self-attention teacher.

Defaults for what the paper leaves open (§3.1, App. B.1 do not fix them), all configurable and saved with every
checkpoint: teacher weights ``W_Q, W_K, W_V ~ N(0, teacher_std^2)`` with ``teacher_std = 1/sqrt(d)``, inputs
``x ~ N(0, I)``, sequences of length 32, a fresh batch every step. The teacher is seeded (``teacher_seed``) so the same
config always rebuilds the same teacher; it is also saved beside the student (``extras={"teacher": lsa}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from rnnattn.config import Config, check_positive_int
from rnnattn.models.attention import LinearSelfAttention, LinearSelfAttentionConfig
from rnnattn.tasks.base import Batch, Task, check_batch, check_generator

INPUT_DISTS = ("normal", "uniform")
PARALLEL_MAX_T = 64  # longest sequence labelled by the teacher's parallel form (see TeacherStudent.label)


@dataclass(frozen=True)
class TeacherStudentConfig(Config):
    """Distribution of the teacher-student task.

    Attributes:
        d: token size (input = output = ``d``; the student appends the constant 1 itself).
        seq_len: sequence length ``T`` (paper: 32).
        teacher_std: std of the teacher's ``W_Q, W_K, W_V`` entries; ``None`` means ``1/sqrt(d)``.
        input_dist: ``"normal"`` (default) or ``"uniform"`` (zero mean, variance ``input_std**2``).
        input_std: std of each input entry.
        teacher_seed: seed of the teacher's weights.
    """

    d: int = 4
    seq_len: int = 32
    teacher_std: float | None = None
    input_dist: str = "normal"
    input_std: float = 1.0
    teacher_seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int("TeacherStudentConfig", d=self.d, seq_len=self.seq_len)
        if self.input_dist not in INPUT_DISTS:
            raise ValueError(
                f"TeacherStudentConfig: input_dist must be one of {INPUT_DISTS}, got {self.input_dist!r}"
            )
        if not self.input_std > 0 or (self.teacher_std is not None and not self.teacher_std > 0):
            raise ValueError("TeacherStudentConfig: input_std and teacher_std must be positive")

    @property
    def std(self) -> float:
        return self.teacher_std if self.teacher_std is not None else 1.0 / math.sqrt(self.d)


def draw_inputs(out: torch.Tensor, dist: str, generator: torch.Generator) -> torch.Tensor:
    """Fill ``out`` with raw i.i.d. draws (standard normal, or uniform on ``[0, 1)``) for :func:`scale_inputs`, so
    that the draws of many generators can land in one block and be scaled once (bit for bit the same numbers as
    scaling each draw on its own: the scaling is elementwise)."""
    if dist == "normal":
        return torch.randn(out.shape, generator=generator, out=out)
    if dist == "uniform":
        return torch.rand(out.shape, generator=generator, out=out)
    raise ValueError(f"unknown input distribution {dist!r} (choose from {INPUT_DISTS})")


def scale_inputs(raw: torch.Tensor, dist: str, std: float) -> torch.Tensor:
    """The draws of :func:`draw_inputs` mapped to zero mean and variance ``std**2``: normal, or uniform on
    ``±sqrt(3) std``."""
    if dist == "normal":
        return raw * std
    return (raw * 2 - 1) * (math.sqrt(3.0) * std)


def make_teacher(config: TeacherStudentConfig) -> LinearSelfAttention:
    """The seeded single-head LSA teacher (Eq. 1), weights ``~ N(0, std^2)`` drawn from ``teacher_seed`` only."""
    g = torch.Generator().manual_seed(int(config.teacher_seed))
    with torch.device("meta"):
        skeleton = LinearSelfAttention(LinearSelfAttentionConfig(d_input=config.d, init_std=config.std))
    teacher = skeleton.to_empty(device="cpu")
    with torch.no_grad():
        for name in ("W_Q", "W_K", "W_V"):
            getattr(teacher, name).copy_(torch.randn(1, config.d, config.d, generator=g) * config.std)
    teacher.requires_grad_(False)
    teacher.metadata = {"role": "teacher", "teacher_seed": config.teacher_seed}
    return teacher


class TeacherStudent(Task):
    """Regress the outputs of a linear self-attention teacher at every time step (loss on all positions).

    Args:
        config: the task distribution.
        teacher: an existing teacher (e.g. loaded from a checkpoint's extras); default: built from the config.

    Example:
        >>> task = TeacherStudent(TeacherStudentConfig(d=4))
        >>> x, y, mask = task.sample(64, torch.Generator().manual_seed(0))
        >>> x.shape, y.shape, mask.shape
        (torch.Size([64, 32, 4]), torch.Size([64, 32, 4]), torch.Size([64, 32]))
    """

    name = "teacher_student"
    reference = "teacher"

    def __init__(
        self, config: TeacherStudentConfig | None = None, teacher: LinearSelfAttention | None = None
    ) -> None:
        self.config = config or TeacherStudentConfig()
        if teacher is None:
            teacher = make_teacher(self.config)
        elif not isinstance(teacher, LinearSelfAttention) or teacher.d_input != self.config.d:
            raise ValueError(
                f"TeacherStudent: teacher must be a LinearSelfAttention on d={self.config.d} tokens"
            )
        self.teacher = teacher.float().requires_grad_(False)

    @property
    def d_input(self) -> int:
        return self.config.d

    @property
    def d_output(self) -> int:
        return self.teacher.d_output

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    def inputs(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``x [batch, T, d]`` only (the trainer draws per-step inputs, then runs the teacher once per block)."""
        check_batch("TeacherStudent.sample", batch)
        return self._draw(batch, [generator])

    def _draw(self, batch: int, generators: list[torch.Generator]) -> torch.Tensor:
        """``x [G batch, T, d]``: generator ``i`` draws rows ``i batch ...``; the raw draws are scaled once for the
        whole block (elementwise, so each row holds the same numbers as a draw of its generator alone)."""
        c = self.config
        raw = torch.empty(len(generators) * batch, c.seq_len, c.d)
        for i, g in enumerate(generators):
            check_generator("TeacherStudent.sample", g)
            draw_inputs(raw[i * batch : (i + 1) * batch], c.input_dist, g)
        return scale_inputs(raw, c.input_dist, c.input_std)

    def label(self, x: torch.Tensor) -> Batch:
        """Teacher targets and the all-True mask for inputs ``x [B, T, d]``.

        Up to ``PARALLEL_MAX_T`` steps the teacher runs in its parallel form (``(Q K^T ⊙ M) V``: what every run
        so far was trained on, so those labels stay bit-identical); longer sequences use its recurrent form
        (``S_t = S_{t-1} + v_t k_t^T``, ``y_t = S_t q_t``, Eq. 1), whose cost is linear in ``T`` — the parallel
        form builds a ``[B, T, T]`` matrix (measured at B = 16, T = 1024: 191 ms per step vs 3.5 ms).
        """
        with torch.no_grad():
            if x.shape[1] <= PARALLEL_MAX_T:
                y = self.teacher(x)
            else:
                y = self._recurrent_teacher()(x)
        return Batch(x, y, torch.ones(x.shape[:2], dtype=torch.bool))

    def _recurrent_teacher(self) -> LinearSelfAttention:
        """The teacher in recurrent mode, sharing its weight tensors (built once)."""
        rec = getattr(self, "_recurrent", None)
        if rec is None or rec.W_Q is not self.teacher.W_Q:
            with torch.device("meta"):
                rec = LinearSelfAttention(self.teacher.config, mode="recurrent")
            for name, p in self.teacher.named_parameters():
                setattr(rec, name, p)
            self._recurrent = rec
        return rec

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        return self.label(self.inputs(batch, generator))

    def sample_block(self, batch: int, generators: list[torch.Generator]) -> Batch:
        """One batch per generator, stacked (``x [S, batch, T, d]``, ...): the numbers of ``sample`` with each
        generator (inputs bit for bit), drawn into one block, scaled and labelled by one teacher call."""
        check_batch("TeacherStudent.sample", batch)
        b = self.label(self._draw(batch, generators))
        return Batch(*(t.reshape(len(generators), batch, *t.shape[1:]) for t in b))

    def reference_loss(self, batch: Batch) -> float:
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, **self.config.to_dict()}
        d["teacher_std_effective"] = self.config.std
        return d
