"""Provenance in metadata, checkpoint round trips and ``source_of``."""

from __future__ import annotations

import json

import pytest
import torch
from _construction_tools import random_lsa, unit_inputs

import rnnattn
from rnnattn.constructions import (
    attention_to_gated_rnn,
    attention_to_lru,
    attention_to_lstm,
    gated_rnn_to_lru,
    gated_rnn_to_lstm,
    source_of,
)
from rnnattn.models import LinearSelfAttention

LSA = random_lsa(3, 11, cond=3.0)
BUILD = {
    "rnn-full": lambda: attention_to_gated_rnn(LSA, "full"),
    "rnn-minimal": lambda: attention_to_gated_rnn(LSA, "minimal"),
    "lstm-1": lambda: attention_to_lstm(LSA, form="minimal"),
    "lstm-2": lambda: gated_rnn_to_lstm(attention_to_gated_rnn(LSA)),
    "lru-in_out": lambda: attention_to_lru(LSA),
    "lru-in_skip": lambda: attention_to_lru(LSA, variant="in_skip"),
    "lru-2": lambda: gated_rnn_to_lru(attention_to_gated_rnn(LSA, "compact")),
}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa
    )


@pytest.mark.filterwarnings("error::rnnattn.CheckpointWarning")  # constructions hold no suspicious weights
@pytest.mark.parametrize("name", list(BUILD))
def test_save_load_bit_identical_and_source(name, tmp_path):
    model = BUILD[name]()
    info = model.metadata["construction"]
    assert info["function"] and info["source"]["class"] in ("LinearSelfAttention", "GatedLinearRNN")
    path = rnnattn.save(model, tmp_path / "c.safetensors")
    loaded = rnnattn.load(path)
    x = unit_inputs(2, 20, 3, 0)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))  # bit-identical
    assert loaded.metadata["construction"] == json.loads(json.dumps(info))
    src = source_of(loaded)
    assert src is not None and _same_weights(src, source_of(model))
    # unwind the chain back to the attention layer
    while not isinstance(src, LinearSelfAttention):
        src = source_of(src)
        assert src is not None
    assert _same_weights(src, LSA)


def test_json_floats_round_trip_exactly():
    lsa = random_lsa(4, 3, dtype=torch.float32)
    rnn = attention_to_gated_rnn(lsa)
    text = json.dumps(rnn.metadata, allow_nan=True)
    rnn.metadata = json.loads(text)
    rebuilt = source_of(rnn)
    assert rebuilt.W_Q.dtype == torch.float32 and _same_weights(rebuilt, lsa)


def test_source_of_plain_models_and_malformed_records():
    assert source_of(LSA) is None
    rnn = attention_to_gated_rnn(LSA)
    rnn.metadata["construction"]["source"]["state"]["W_Q"] = [[1.0]]
    with pytest.raises(ValueError, match="malformed"):
        source_of(rnn)


def test_metadata_records_parameters():
    m = attention_to_lru(LSA, 1e-4, variant="out", form="minimal")
    info = m.metadata["construction"]
    assert (info["function"], info["variant"], info["form"], info["eps"]) == (
        "attention_to_lru",
        "out",
        "minimal",
        1e-4,
    )
    assert info["source"]["config"] == LSA.config.to_dict()
    assert attention_to_gated_rnn(LSA, "compact").metadata["construction"]["W_V_condition"] <= 3.0 + 1e-9
