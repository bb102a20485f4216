"""The model zoo. Every model is a :class:`~rnnattn.models.base.Model` built from a frozen config."""

from rnnattn.models.attention import LinearSelfAttention, LinearSelfAttentionConfig
from rnnattn.models.base import Model
from rnnattn.models.classic import GRU, LSTM, GateParams, GRUConfig, LSTMConfig
from rnnattn.models.gated_rnn import GatedLinearRNN, GatedLinearRNNConfig
from rnnattn.models.lru import LRU, LRU_VARIANTS, LRUConfig
from rnnattn.models.registry import get_model_class, register_model, registered_models
from rnnattn.models.sequence import SequenceModel, SequenceModelConfig

__all__ = [
    "Model", "GatedLinearRNN", "GatedLinearRNNConfig", "LinearSelfAttention", "LinearSelfAttentionConfig",
    "LRU", "LRUConfig", "LRU_VARIANTS", "LSTM", "LSTMConfig", "GRU", "GRUConfig", "GateParams",
    "SequenceModel", "SequenceModelConfig", "register_model", "get_model_class", "registered_models",
]
