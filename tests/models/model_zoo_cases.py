"""One small instance of every model configuration the tests sweep over (shared by tests/models/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

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


@dataclass(frozen=True)
class Case:
    build: Callable[[], Model]
    d_in: int
    d_out: int


MIXED_LAYERS = (
    {"class": "GatedLinearRNN", "n_hidden": 5, "n_gating": 4},
    {"class": "LRU", "d_state": 4, "variant": "in_skip"},
    {"class": "LSTM"},
    {"class": "GRU"},
    {"class": "LinearSelfAttention", "n_heads": 2},
    {"class": "GatedLinearRNN", "n_hidden": 3, "n_gating": 3, "recurrence": "dense"},
)
UNEQUAL_LAYERS = (
    {"class": "LinearSelfAttention", "d_output": 5},
    {"class": "LRU", "d_state": 3, "d_input": 5, "d_output": 4, "variant": "in_out"},
    {"class": "GRU", "d_input": 4, "d_hidden": 3},
)

CASES: dict[str, Case] = {
    "glr_diagonal": Case(lambda: GatedLinearRNN(GatedLinearRNNConfig(3, 6, 5, 2)), 3, 2),
    "glr_dense": Case(lambda: GatedLinearRNN(GatedLinearRNNConfig(3, 6, 5, 2, recurrence="dense")), 3, 2),
    "glr_no_one": Case(lambda: GatedLinearRNN(GatedLinearRNNConfig(3, 4, 7, 3, append_one=False)), 3, 3),
    "lsa_1head": Case(lambda: LinearSelfAttention(LinearSelfAttentionConfig(3)), 3, 3),
    "lsa_1head_recurrent": Case(
        lambda: LinearSelfAttention(LinearSelfAttentionConfig(3), mode="recurrent"), 3, 3
    ),
    "lsa_1head_WO": Case(lambda: LinearSelfAttention(LinearSelfAttentionConfig(3, d_output=4)), 3, 4),
    "lsa_3heads": Case(
        lambda: LinearSelfAttention(LinearSelfAttentionConfig(3, n_heads=3, d_key=2, d_value=2)), 3, 6
    ),
    "lsa_2heads_WO": Case(
        lambda: LinearSelfAttention(LinearSelfAttentionConfig(3, n_heads=2, d_key=2, d_value=4, d_output=5)),
        3,
        5,
    ),
    "lsa_2heads_WO_recurrent": Case(
        lambda: LinearSelfAttention(
            LinearSelfAttentionConfig(3, n_heads=2, d_key=2, d_value=4, d_output=5), mode="recurrent"
        ),
        3,
        5,
    ),
    "lru_out": Case(lambda: LRU(LRUConfig(3, 4, "out")), 3, 3),
    "lru_in_out": Case(lambda: LRU(LRUConfig(3, 4, "in_out", d_inner=5, d_output=2)), 3, 2),
    "lru_in_skip": Case(lambda: LRU(LRUConfig(3, 4, "in_skip", d_inner=5, d_output=2)), 3, 2),
    "lstm": Case(lambda: LSTM(LSTMConfig(3, 4)), 3, 4),
    "gru": Case(lambda: GRU(GRUConfig(3, 4)), 3, 4),
    "sequence_mixed": Case(lambda: SequenceModel(SequenceModelConfig(3, 2, 6, layers=MIXED_LAYERS)), 3, 2),
    "sequence_unequal": Case(
        lambda: SequenceModel(SequenceModelConfig(3, 2, 6, layers=UNEQUAL_LAYERS, embed_bias=False)), 3, 2
    ),
}


def build(name: str, dtype: torch.dtype = torch.float64, seed: int = 0) -> Model:
    torch.manual_seed(seed)
    return CASES[name].build().to(dtype)


def tokens(
    name: str, B: int = 2, T: int = 7, dtype: torch.dtype = torch.float64, seed: int = 1
) -> torch.Tensor:
    return torch.randn(B, T, CASES[name].d_in, generator=torch.Generator().manual_seed(seed), dtype=dtype)
