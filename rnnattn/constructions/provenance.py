"""Provenance of constructed models: what a construction was built from, and rebuilding that source.

Every construction writes ``model.metadata["construction"] = {"function": ..., <parameters>, "source":
{...}}`` where ``source = {"class", "config", "dtype", "state": {parameter name: nested lists of floats},
"metadata"}``. Python's JSON writes floats with ``repr`` (shortest round-tripping form; infinities as
``Infinity``, which the checkpoint reader accepts), so the source is rebuilt bit-exactly by :func:`source_of`,
also from a reloaded checkpoint.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from rnnattn.limits import MAX_METADATA_ITEMS
from rnnattn.models.base import Model
from rnnattn.models.registry import get_model_class

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def describe_source(model: Model) -> dict[str, Any]:
    """JSON description of ``model`` (class, config, dtype, every tensor of its state as nested lists,
    metadata)."""
    state = {k: v.detach().cpu().tolist() for k, v in model.state_dict().items()}
    dtypes = {str(v.dtype).removeprefix("torch.") for v in model.state_dict().values()}
    out: dict[str, Any] = {
        "class": type(model).__name__,
        "config": model.config.to_dict(),
        "dtype": dtypes.pop() if len(dtypes) == 1 else "mixed",
        "state": state,
        "metadata": copy.deepcopy(model.metadata),
    }
    if hasattr(model, "mode"):  # LinearSelfAttention's evaluation mode is a constructor argument, not config
        out["mode"] = model.mode
    return out


def record(model: Model, function: str, source: Model, **parameters: Any) -> Model:
    """Write the construction provenance into ``model.metadata["construction"]`` and return ``model``."""
    model.metadata["construction"] = {"function": function, **parameters, "source": describe_source(source)}
    return model


def source_of(model: Model) -> Model | None:
    """Rebuild the model a construction was built from (``None`` if ``model`` is not a construction).

    Works on reloaded checkpoints: the source travels in ``model.metadata``. The rebuilt model carries the
    source's own metadata, so chains (LSA -> gated RNN -> LSTM) unwind with repeated calls.

    Raises:
        ValueError: the provenance record is malformed.
    """
    info = getattr(model, "metadata", {}).get("construction")
    if not isinstance(info, dict) or "source" not in info:
        return None
    src = info["source"]
    try:
        cls = get_model_class(src["class"])
        config = cls.config_class.from_dict(src["config"])
        kwargs = {"mode": src["mode"]} if "mode" in src else {}
        with torch.device("meta"):  # size first: the config comes from metadata, which holds its values as lists
            n_params = cls(config, **kwargs).n_parameters()
        if n_params > MAX_METADATA_ITEMS:
            raise ValueError(f"the source config needs {n_params:,} values, more than metadata can hold")
        rebuilt = cls(config, **kwargs)
        dtype = _DTYPES.get(src.get("dtype", ""), None)
        if dtype is not None:
            rebuilt.to(dtype)
        ref = rebuilt.state_dict()
        state = {
            k: torch.tensor(v, dtype=ref[k].dtype).reshape(ref[k].shape) for k, v in src["state"].items()
        }
        rebuilt.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"source_of: malformed construction provenance ({msg[:200]})") from None
    rebuilt.metadata = copy.deepcopy(src.get("metadata", {}))
    return rebuilt
