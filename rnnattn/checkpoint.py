"""Checkpoints: tensors in safetensors, class + config + metadata as JSON in its header. Nothing is ever unpickled.

File layout: one ``.safetensors`` file whose ``__metadata__["rnnattn"]`` holds
``{"format": 1, "rnnattn_version", "class", "config", "metadata", "extras": {name: {"class", "config", "metadata"}}}``;
the main model's tensors keep their ``state_dict`` names, an extra model ``name``'s are prefixed ``extras.name.``
(e.g. the teacher saved beside a student).

Loading validates everything it can *before* allocating: the header size against the file size, every tensor entry
(dtype, shape, byte range), the class name against the registry, the config (sizes capped) and the expected
``state_dict`` shapes, derived by building the model on the ``meta`` device. Any failure is a
:class:`CheckpointError` with a one-line reason.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnattn._version import __version__
from rnnattn.models.base import Model
from rnnattn.models.registry import get_model_class

FORMAT_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_CONFIG_INT = 1 << 24  # no dimension in a config may exceed this (16.7M)
MAX_PARAMETERS = 1 << 31
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}


class CheckpointError(Exception):
    """A checkpoint cannot be read or written; ``str(err)`` is a one-line reason naming the file."""


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and rename: readers see the old file or
    the new one, never a partial one. Refuses to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True / --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
def _fail(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: {reason}")


def _sniff(path: Path, head: bytes) -> None:
    if head[:2] == b"PK":
        raise _fail(path, "this is a zip/torch.save (pickle) file; rnnattn never unpickles — convert it to .safetensors")
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        raise _fail(path, "this is a Python pickle; rnnattn never unpickles files")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and validate the safetensors header of ``path`` without reading tensor data.

    Returns ``{"tensors": {name: {"dtype", "shape", "data_offsets"}}, "rnnattn": {...}}``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise _fail(path, "not a regular file")
        with open(path, "rb") as f:
            head = f.read(8)
            _sniff(path, head)
            if len(head) < 8:
                raise _fail(path, f"file too short to be a checkpoint ({size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise _fail(path, f"corrupt or truncated: header length {n} does not fit in a {size}-byte file")
            raw = f.read(n)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a checkpoint file") from None
    except PermissionError:
        raise _fail(path, "permission denied") from None
    except OSError as e:
        raise _fail(path, f"cannot read: {e.strerror or e}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _fail(path, "corrupt header (not valid JSON)") from None
    if not isinstance(header, dict):
        raise _fail(path, "corrupt header (not a JSON object)")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not isinstance(meta.get("rnnattn"), str):
        raise _fail(path, "not an rnnattn checkpoint (no rnnattn metadata in the safetensors header)")
    try:
        info = json.loads(meta["rnnattn"])
    except (json.JSONDecodeError, RecursionError):
        raise _fail(path, "corrupt rnnattn metadata (not valid JSON)") from None
    if not isinstance(info, dict):
        raise _fail(path, "corrupt rnnattn metadata (not a JSON object)")
    data_len = size - 8 - n
    covered = 0
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, f"corrupt entry for tensor {name!r}")
        dt, shape, off = e["dtype"], e["shape"], e["data_offsets"]
        if dt not in _DTYPES:
            raise _fail(path, f"tensor {name!r} has unsupported dtype {dt!r}")
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise _fail(path, f"tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(off, list) or len(off) != 2 or not all(isinstance(o, int) and not isinstance(o, bool) for o in off)
                or not 0 <= off[0] <= off[1] <= data_len):
            raise _fail(path, f"corrupt or truncated: tensor {name!r} lies outside the file")
        nbytes = math.prod(shape) * torch.empty(0, dtype=_DTYPES[dt]).element_size()
        if off[1] - off[0] != nbytes:
            raise _fail(path, f"tensor {name!r}: {off[1] - off[0]} bytes stored for shape {shape} of {dt}")
        covered += nbytes
    if covered > data_len:
        raise _fail(path, "corrupt: tensor byte ranges overlap")
    return {"tensors": header, "rnnattn": info}


def _check_config_sizes(path: Path, obj: Any, where: str = "config", depth: int = 0) -> None:
    if depth > 20:
        raise _fail(path, f"{where} is nested too deeply")
    if isinstance(obj, dict):
        if len(obj) > 10_000:
            raise _fail(path, f"{where} has too many entries")
        for k, v in obj.items():
            _check_config_sizes(path, v, f"{where}.{k}", depth + 1)
    elif isinstance(obj, list):
        if len(obj) > 10_000:
            raise _fail(path, f"{where} is too long ({len(obj)} items)")
        for i, v in enumerate(obj):
            _check_config_sizes(path, v, f"{where}[{i}]", depth + 1)
    elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > MAX_CONFIG_INT:
        raise _fail(path, f"{where} = {obj} is absurdly large (limit {MAX_CONFIG_INT}); refusing to allocate")


def _build(path: Path, entry: Any, what: str) -> Model:
    """Validate a ``{"class", "config", "metadata"}`` entry and build the model on the meta device (no memory)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class"), str) or not isinstance(entry.get("config"), dict):
        raise _fail(path, f"{what}: missing class or config")
    try:
        cls = get_model_class(entry["class"])
    except KeyError:
        raise _fail(path, f"{what}: unknown model class {entry['class'][:80]!r}") from None
    _check_config_sizes(path, entry["config"])
    try:
        config = cls.config_class.from_dict(entry["config"])
        with torch.device("meta"):
            model = cls(config)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError, OverflowError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _fail(path, f"{what}: invalid config ({msg[:200]})") from None
    n = model.n_parameters()
    if n > MAX_PARAMETERS:
        raise _fail(path, f"{what}: config asks for {n:,} parameters (limit {MAX_PARAMETERS:,}); refusing to allocate")
    meta = entry.get("metadata", {})
    if not isinstance(meta, dict):
        raise _fail(path, f"{what}: metadata is not a JSON object")
    model.metadata = meta
    return model


def _materialise(path: Path, skeleton: Model, tensors: dict[str, torch.Tensor], prefix: str, what: str,
                 device: str | torch.device) -> Model:
    expected = skeleton.state_dict()
    got = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing or unexpected:
        raise _fail(path, f"{what}: tensors do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, t in expected.items():
        if tuple(got[k].shape) != tuple(t.shape):
            raise _fail(path, f"{what}: tensor {k!r} has shape {tuple(got[k].shape)}, its config implies {tuple(t.shape)}")
        if not got[k].dtype.is_floating_point and not got[k].dtype.is_complex:
            raise _fail(path, f"{what}: tensor {k!r} has non-float dtype {got[k].dtype}")
    with torch.device(device):
        model = type(skeleton)(skeleton.config)
    model.metadata = skeleton.metadata
    dtypes = {v.dtype for v in got.values()}
    if len(dtypes) == 1:
        model.to(next(iter(dtypes)))
    model.load_state_dict(got, strict=True)
    bad = [k for k, v in got.items() if torch.isnan(v).any()]
    if bad:
        warnings.warn(f"{path}: {what} has NaN weights in {', '.join(bad[:5])}", CheckpointWarning, stacklevel=3)
    return model


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`save`, validating it fully; raises :class:`CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    path = Path(path)
    header = read_header(path)
    info = header["rnnattn"]
    if info.get("format") != FORMAT_VERSION:
        raise _fail(path, f"unsupported checkpoint format {str(info.get('format'))[:20]!r} (this rnnattn reads {FORMAT_VERSION})")
    skeleton = _build(path, info, "model")
    extras_info = info.get("extras", {})
    if not isinstance(extras_info, dict):
        raise _fail(path, "extras is not a JSON object")
    extra_skeletons = {}
    for name, entry in extras_info.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise _fail(path, f"invalid extra name {str(name)[:40]!r}")
        extra_skeletons[name] = _build(path, entry, f"extra {name!r}")
    total = sum(m.n_parameters() for m in [skeleton, *extra_skeletons.values()])
    stored = sum(math.prod(e["shape"]) for e in header["tensors"].values())
    if stored != total:
        raise _fail(path, f"tensors hold {stored:,} values, the configs need {total:,}")
    try:
        tensors = st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise _fail(path, f"corrupt tensor data ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    main = {k: v for k, v in tensors.items() if not k.startswith("extras.")}
    model = _materialise(path, skeleton, main, "", "model", device)
    extras = {n: _materialise(path, s, tensors, f"extras.{n}.", f"extra {n!r}", device)
              for n, s in extra_skeletons.items()}
    return Checkpoint(model=model, metadata=model.metadata, extras=extras, path=path,
                      rnnattn_version=str(info.get("rnnattn_version", "")))


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Model:
    """Load the main model of a checkpoint (``model.metadata`` holds its metadata). See :func:`load_checkpoint`."""
    return load_checkpoint(path, device).model
