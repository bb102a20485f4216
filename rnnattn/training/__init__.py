"""Training: AdamW with a cosine-to-floor schedule, exact resume, atomic checkpoints, a fast engine for gated RNNs,
batched training of several models, and the paper / fast identification protocols.

Main entry point: :func:`train` (see :mod:`rnnattn.training.loop` for the checkpoint schema).
"""

from rnnattn.training.batched import train_batched
from rnnattn.training.config import TrainConfig, TrainResult
from rnnattn.training.loop import resolve_device, train
from rnnattn.training.optim import cosine_lr

__all__ = ["TrainConfig", "TrainResult", "train", "cosine_lr", "resolve_device", "train_batched"]
