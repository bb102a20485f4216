"""Exact and approximate constructions: weights that make gated RNNs, LSTMs and LRUs compute linear attention.

* :func:`attention_to_gated_rnn` — Eq. 2 gated RNN, exact (forms ``"full"``, ``"compact"``, ``"minimal"``);
* :func:`attention_to_lstm`, :func:`gated_rnn_to_lstm` — LSTM (App. A.2, Table 4), sigmoid/tanh linearised;
* :func:`attention_to_lru`, :func:`gated_rnn_to_lru` — LRU variants (App. A.1), sigmoid linearised;
* :func:`attention_to_gru` — always a :class:`ConstructionError` (App. A.3);
* :func:`construction_sizes` — neuron counts, measured by building the constructions;
* :func:`source_of` — the source model, rebuilt from a construction's metadata (also after a checkpoint
round trip).
"""

from rnnattn.constructions.attention_rnn import attention_to_gated_rnn
from rnnattn.constructions.counts import active_units, construction_sizes, gd_attention
from rnnattn.constructions.errors import ConstructionError
from rnnattn.constructions.gru import attention_to_gru, gated_rnn_to_gru
from rnnattn.constructions.lru import attention_to_lru, gated_rnn_to_lru
from rnnattn.constructions.lstm import attention_to_lstm, gated_rnn_to_lstm, lsa_terms
from rnnattn.constructions.provenance import source_of

__all__ = [
    "attention_to_gated_rnn",
    "attention_to_lstm",
    "gated_rnn_to_lstm",
    "attention_to_lru",
    "gated_rnn_to_lru",
    "attention_to_gru",
    "gated_rnn_to_gru",
    "ConstructionError",
    "construction_sizes",
    "active_units",
    "gd_attention",
    "lsa_terms",
    "source_of",
]
