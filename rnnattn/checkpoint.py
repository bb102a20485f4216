"""Checkpoints: tensors in safetensors, class + config + metadata as JSON in its header. Nothing is ever unpickled.

File layout: one ``.safetensors`` file whose ``__metadata__["rnnattn"]`` holds
``{"format": 1, "rnnattn_version", "class", "config", "metadata", "extras": {name: {"class", "config", "metadata"}}}``;
the main model's tensors keep their ``state_dict`` names, an extra model ``name``'s are prefixed ``extras.name.``
(e.g. the teacher saved beside a student).

Loading validates everything it can *before* allocating: the file and its header (bounded, see
:mod:`rnnattn.safetensors_file`), the class name against the registry, the config (sizes capped by
:mod:`rnnattn.limits`) and the expected ``state_dict`` shapes, derived by building the model on the ``meta`` device
under a module budget. Any failure is a :class:`CheckpointError` with a one-line reason.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnattn._version import __version__
from rnnattn.limits import MAX_BUILD_MODULES, MAX_CONFIG_INT, MAX_CONFIG_LIST, MAX_PARAMETERS
from rnnattn.models.base import Model
from rnnattn.models.registry import get_model_class
from rnnattn.models.summary import nonfinite
from rnnattn.safeio import atomic_write_bytes, printable
from rnnattn.safetensors_file import (
    CheckpointError,
    _fail,
    _open,
    _parse_header,
    _read_data,
    read_header,
    read_safetensors,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointWarning",
    "save",
    "load",
    "load_checkpoint",
    "read_header",
    "read_safetensors",
    "atomic_write_bytes",
]
FORMAT_VERSION = 1


class CheckpointWarning(UserWarning):
    """A checkpoint loaded, but something in it deserves attention (e.g. NaN weights)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model, its metadata, extra models saved beside it, and file provenance."""

    model: Model
    metadata: dict[str, Any]
    extras: dict[str, Model] = field(default_factory=dict)
    path: Path | None = None
    rnnattn_version: str = ""


# -- writing -----------------------------------------------------------------------------------------------------
def _entry(model: Model) -> dict[str, Any]:
    if not isinstance(model, Model):
        raise CheckpointError(f"only rnnattn models can be saved, got {type(model).__name__}")
    get_model_class(type(model).__name__)  # must be registered to be loadable
    return {"class": type(model).__name__, "config": model.config.to_dict(), "metadata": dict(model.metadata)}


def save(
    model: Model,
    path: str | os.PathLike,
    *,
    extras: dict[str, Model] | None = None,
    overwrite: bool = False,
    **metadata: Any,
) -> Path:
    """Save ``model`` (and ``extras``) atomically to ``path`` (a ``.safetensors`` file).

    Args:
        model: any registered rnnattn model; ``model.metadata`` is saved and ``metadata`` keywords are merged in.
        extras: further models stored in the same file (e.g. ``{"teacher": lsa}``).
        overwrite: replace an existing file (never done silently).
    Returns:
        The path written.
    """
    from safetensors.torch import save as st_save

    header = _entry(model)
    header["metadata"].update(metadata)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    header_extras = {}
    for name, extra in (extras or {}).items():
        if not name.isidentifier():
            raise CheckpointError(f"extra name {name!r} must be an identifier")
        header_extras[name] = _entry(extra)
        for k, v in extra.state_dict().items():
            tensors[f"extras.{name}.{k}"] = v.detach().cpu().contiguous().clone()
    header["extras"] = header_extras
    header.update(format=FORMAT_VERSION, rnnattn_version=__version__)
    try:
        meta_json = json.dumps(header, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"metadata is not JSON-serialisable: {e}") from None
    data = st_save(tensors, metadata={"rnnattn": meta_json})
    return atomic_write_bytes(path, data, overwrite=overwrite)


# -- reading -----------------------------------------------------------------------------------------------------
def _check_config_sizes(path: Path, obj: Any, where: str = "config", depth: int = 0) -> None:
    """Reject configs that would allocate absurd memory, or spend minutes building, before building anything:
    every integer at most ``MAX_CONFIG_INT``, every list or mapping (layers, LSRL stages) at most
    ``MAX_CONFIG_LIST`` entries. (Depth is already bounded by ``MAX_METADATA_DEPTH``.)"""
    if depth > 20:
        raise _fail(path, f"{where} is nested too deeply")
    if isinstance(obj, dict | list) and len(obj) > MAX_CONFIG_LIST:
        raise _fail(path, f"{where} has {len(obj):,} entries, above the limit of {MAX_CONFIG_LIST} (MAX_CONFIG_LIST)")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_config_sizes(path, v, f"{where}.{k}", depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_config_sizes(path, v, f"{where}[{i}]", depth + 1)
    elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > MAX_CONFIG_INT:
        raise _fail(
            path, f"{where} = {obj} is absurdly large (limit {MAX_CONFIG_INT}, MAX_CONFIG_INT); refusing to allocate"
        )


@contextmanager
def _build_budget(path: Path, shapes: list[list[int]]):
    """Cap the modules/parameters/buffers registered while building skeletons at a multiple of the tensors stored.

    Every parameter ends up as a stored tensor and zoo models register fewer than 3 modules per tensor, so honest
    files stay far below the cap; a tiny hostile file whose config lists 1,000 layers or LSRL stages would
    otherwise keep the loader building meta modules for a long time. Empty tensors cost a file nothing, so only
    64 of them count (thousands of them must not raise the budget), and ``MAX_BUILD_MODULES`` caps it outright.
    Only the loading thread is counted."""
    n_full = sum(1 for s in shapes if math.prod(s) > 0)
    n_tensors = n_full + min(len(shapes) - n_full, 64)
    limit = min(8 * n_tensors + 64, MAX_BUILD_MODULES)
    count = 0
    me = threading.get_ident()

    def hook(*_: Any) -> None:
        nonlocal count
        if threading.get_ident() == me:
            count += 1
            if count > limit:
                raise _fail(
                    path,
                    f"the configs build more than {limit} modules/parameters, far more than the "
                    f"{n_tensors} tensors stored; refusing",
                )

    from torch.nn.modules import module as nn_module

    handles = [
        nn_module.register_module_module_registration_hook(hook),
        nn_module.register_module_parameter_registration_hook(hook),
        nn_module.register_module_buffer_registration_hook(hook),
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _check_entry(path: Path, entry: Any, what: str) -> type[Model]:
    """Validate a ``{"class", "config", "metadata"}`` entry without building anything; returns the model class."""
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("class"), str)
        or not isinstance(entry.get("config"), dict)
    ):
        raise _fail(path, f"{what}: missing class or config")
    try:
        cls = get_model_class(entry["class"])
    except KeyError:
        raise _fail(path, f"{what}: unknown model class {entry['class'][:80]!r}") from None
    _check_config_sizes(path, entry["config"])
    if not isinstance(entry.get("metadata", {}), dict):
        raise _fail(path, f"{what}: metadata is not a JSON object")
    return cls


def _build(path: Path, cls: type[Model], entry: dict[str, Any], what: str) -> Model:
    """Build a checked entry's model on the meta device (no memory) and cap its size."""
    try:
        config = cls.config_class.from_dict(entry["config"])
        with torch.device("meta"):
            model = cls(config)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 — whatever a hostile config makes a constructor raise, the file is at fault
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _fail(path, f"{what}: invalid config ({msg[:200]})") from None
    n = model.n_parameters()
    if n > MAX_PARAMETERS:
        raise _fail(path, f"{what}: config asks for {n:,} parameters (limit {MAX_PARAMETERS:,}); refusing to allocate")
    model.metadata = entry.get("metadata", {})
    return model


def _materialise(
    path: Path, skeleton: Model, tensors: dict[str, torch.Tensor], prefix: str, what: str, device: str | torch.device
) -> Model:
    expected = skeleton.state_dict()
    got = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing or unexpected:
        raise _fail(
            path, f"{what}: tensors do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for k, t in expected.items():
        if tuple(got[k].shape) != tuple(t.shape):
            raise _fail(
                path, f"{what}: tensor {k!r} has shape {tuple(got[k].shape)}, its config implies {tuple(t.shape)}"
            )
        if not got[k].dtype.is_floating_point and not got[k].dtype.is_complex:
            raise _fail(path, f"{what}: tensor {k!r} has non-float dtype {got[k].dtype}")
    try:
        with torch.device(device):
            model = type(skeleton)(skeleton.config)
        dtypes = {v.dtype for v in got.values()}
        if len(dtypes) == 1:
            model.to(next(iter(dtypes)))
        model.load_state_dict(got, strict=True)
    except (RuntimeError, ValueError, TypeError) as e:
        raise _fail(
            path, f"{what}: cannot load tensors ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})"
        ) from None
    model.metadata = skeleton.metadata
    bad = list(nonfinite(model))
    if bad:
        warnings.warn(
            printable(f"{os.fspath(path)}: {what} has non-finite (NaN/Inf) weights in {', '.join(bad[:5])}", 600),
            CheckpointWarning,
            stacklevel=3,
        )
    return model


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`save`, validating it fully; raises :class:`CheckpointError`."""
    path = Path(path)
    with _open(path) as f:
        # One open file for header and data: a checkpoint atomically replaced meanwhile (a trainer saving while
        # ``info`` reads) cannot pair one file's config and metadata with another file's weights.
        size = os.fstat(f.fileno()).st_size
        header = _parse_header(path, f, size)
        info = header["rnnattn"]
        skeleton, extra_skeletons = _skeletons(path, header)
        tensors = _read_data(path, f, size)  # exactly the bytes the validated header declares
    main = {k: v for k, v in tensors.items() if not k.startswith("extras.")}
    model = _materialise(path, skeleton, main, "", "model", device)
    extras = {
        n: _materialise(path, s, tensors, f"extras.{n}.", f"extra {n!r}", device) for n, s in extra_skeletons.items()
    }
    return Checkpoint(
        model=model,
        metadata=model.metadata,
        extras=extras,
        path=path,
        rnnattn_version=str(info.get("rnnattn_version", "")),
    )


def _skeletons(path: Path, header: dict[str, Any]) -> tuple[Model, dict[str, Model]]:
    """Meta-device models for the main entry and every extra, checked against the stored tensor sizes."""
    info = header["rnnattn"]
    if info.get("format") != FORMAT_VERSION:
        raise _fail(
            path,
            f"unsupported checkpoint format {str(info.get('format'))[:20]!r} (this rnnattn reads {FORMAT_VERSION})",
        )
    extras_info = info.get("extras", {})
    if not isinstance(extras_info, dict):
        raise _fail(path, "extras is not a JSON object")
    main_cls = _check_entry(path, info, "model")
    entries = {}
    for name, entry in extras_info.items():
        if not name.isidentifier():
            raise _fail(path, f"invalid extra name {name[:40]!r}")
        entries[name] = (entry, _check_entry(path, entry, f"extra {name!r}"))
    with _build_budget(path, [e["shape"] for e in header["tensors"].values()]):
        skeleton = _build(path, main_cls, info, "model")
        extra_skeletons = {name: _build(path, cls, entry, f"extra {name!r}") for name, (entry, cls) in entries.items()}
    total = sum(m.n_parameters() for m in [skeleton, *extra_skeletons.values()])
    stored = sum(math.prod(e["shape"]) for e in header["tensors"].values())
    if stored != total:
        raise _fail(path, f"tensors hold {stored:,} values, the configs need {total:,}")
    return skeleton, extra_skeletons


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Model:
    """Load the main model of a checkpoint (``model.metadata`` holds its metadata). See :func:`load_checkpoint`."""
    return load_checkpoint(path, device).model
