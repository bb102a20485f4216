"""Computational kernels (fast path beside its plain reference), layout ``[B, T, N]``."""

from rnnattn.ops.naive import dense_recurrence_ref, diagonal_recurrence_ref
from rnnattn.ops.recurrence import dense_recurrence, diagonal_recurrence

__all__ = ["diagonal_recurrence", "diagonal_recurrence_ref", "dense_recurrence", "dense_recurrence_ref"]
