"""rnnattn — build, train and reverse-engineer gated RNNs that implement attention; compile LSRL programs.

Curated public API; subpackages (``rnnattn.models``, ``rnnattn.ops``, ``rnnattn.constructions``, ``rnnattn.lsrl``,
``rnnattn.tasks``, ``rnnattn.training``, ``rnnattn.analysis``, ``rnnattn.report``, ``rnnattn.testing``) hold the rest.
"""

from rnnattn._version import __version__
from rnnattn.checkpoint import Checkpoint, CheckpointError, CheckpointWarning, load, load_checkpoint, save
from rnnattn.hooks import ActivationCache, HookPoint
from rnnattn.models import (
    GRU,
    LRU,
    LSTM,
    GatedLinearRNN,
    GatedLinearRNNConfig,
    GRUConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
    LRUConfig,
    LSTMConfig,
    Model,
    SequenceModel,
    SequenceModelConfig,
)

__all__ = [
    "__version__", "save", "load", "load_checkpoint", "Checkpoint", "CheckpointError", "CheckpointWarning",
    "ActivationCache", "HookPoint", "Model",
    "GatedLinearRNN", "GatedLinearRNNConfig", "LinearSelfAttention", "LinearSelfAttentionConfig",
    "LRU", "LRUConfig", "LSTM", "LSTMConfig", "GRU", "GRUConfig", "SequenceModel", "SequenceModelConfig",
]
