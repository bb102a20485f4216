"""rnnattn — build, train and reverse-engineer gated RNNs that implement attention; compile LSRL programs.

A small curated API lives here; the pipeline's stages are subpackages, each importing only from those below it:

``models`` + ``ops`` (what runs) <- ``constructions`` + ``lsrl`` (what writes weights) <- ``tasks`` + ``training`` +
``sweeps`` (what learns them) <- ``analysis`` (what reads them) <- ``report`` (what shows them) <- ``cli``;
``testing`` holds the pytest helpers.

Names are imported lazily (PEP 562), so ``import rnnattn`` — which pytest does when it loads the plugin — stays cheap
and does not import torch until a model is used.

Example:
    >>> import rnnattn, torch
    >>> lsa = rnnattn.LinearSelfAttention(rnnattn.LinearSelfAttentionConfig(d_input=4)).double()
    >>> rnn = rnnattn.attention_to_gated_rnn(lsa, form="compact")
    >>> x = torch.randn(2, 16, 4, dtype=torch.float64)
    >>> bool(torch.allclose(rnn(x), lsa(x), rtol=1e-12, atol=1e-12))
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from rnnattn._version import __version__

_EXPORTS: dict[str, str] = {
    # checkpoints
    "save": "rnnattn.checkpoint", "load": "rnnattn.checkpoint", "load_checkpoint": "rnnattn.checkpoint",
    "Checkpoint": "rnnattn.checkpoint", "CheckpointError": "rnnattn.checkpoint",
    "CheckpointWarning": "rnnattn.checkpoint",
    # hooks
    "ActivationCache": "rnnattn.hooks", "HookPoint": "rnnattn.hooks",
    # models
    **{name: "rnnattn.models" for name in (
        "Model", "GatedLinearRNN", "GatedLinearRNNConfig", "LinearSelfAttention", "LinearSelfAttentionConfig",
        "LRU", "LRUConfig", "LSTM", "LSTMConfig", "GRU", "GRUConfig", "SequenceModel", "SequenceModelConfig")},
    # constructions
    **{name: "rnnattn.constructions" for name in (
        "attention_to_gated_rnn", "attention_to_lstm", "gated_rnn_to_lstm", "attention_to_lru", "gated_rnn_to_lru",
        "attention_to_gru", "ConstructionError", "construction_sizes", "source_of")},
    # analysis
    **{name: "rnnattn.analysis" for name in (
        "equivalence", "instantaneous_polynomial", "polynomial_distance", "probe_scores", "prune", "canonicalize",
        "merge_rank1", "neuron_roles", "AnalysisNotApplicable")},
    # tasks, training, sweeps
    **{name: "rnnattn.tasks" for name in (
        "TeacherStudent", "TeacherStudentConfig", "InContextRegression", "InContextRegressionConfig",
        "optimal_gd_learning_rate", "optimal_gd_loss")},
    **{name: "rnnattn.training" for name in ("train", "train_batched", "TrainConfig", "TrainResult")},
    **{name: "rnnattn.sweeps" for name in ("SweepSpec", "run_sweep")},
    # report
    "build_report": "rnnattn.report",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rnnattn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups bypass __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
