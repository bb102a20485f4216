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
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnattn._version import __version__
from rnnattn.models.base import Model
from rnnattn.models.registry import get_model_class
from rnnattn.models.summary import nonfinite

FORMAT_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_CONFIG_INT = 1 << 24  # no dimension in a config may exceed this (16.7M)
MAX_PARAMETERS = 1 << 31
_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
_ITEMSIZE = {k: torch.empty(0, dtype=v).element_size() for k, v in _DTYPES.items()}


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
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable (power loss), not only the bytes
    return path


def _link_no_replace(tmp: str, path: Path) -> None:
    # The exists() check above is only a fast path: another process may create ``path`` while we write. link(2)
    # fails with EEXIST instead of replacing, so a file that appeared meanwhile is never clobbered.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists (pass overwrite=True / --force to replace it)") from None
    except OSError:  # no hard links on this file system (FAT, some FUSE mounts): best effort
        if path.exists():
            raise FileExistsError(f"{path} exists (pass overwrite=True / --force to replace it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(dfd)


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
    # Reasons quote text from the file (config keys, class names): escape control characters so the message stays
    # one line and cannot drive the user's terminal, and cap its length.
    reason = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in reason)
    return CheckpointError(f"{path}: {reason if len(reason) <= 400 else reason[:397] + '...'}")


def _sniff(path: Path, head: bytes) -> None:
    """Refuse zip/pickle files by their magic bytes. ``head`` is the first 9 bytes: in a safetensors file the 8-byte
    header length is followed by ``{``, and then its length bytes may look like anything (a 896-byte header starts
    ``80 03``, the pickle protocol-3 magic), so only files without that ``{`` are sniffed."""
    if head[8:9] == b"{":
        return
    if head[:2] == b"PK":
        raise _fail(
            path, "this is a zip/torch.save (pickle) file; rnnattn never unpickles — convert it to .safetensors"
        )
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        raise _fail(path, "this is a Python pickle; rnnattn never unpickles files")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and validate the safetensors header of ``path`` without reading tensor data.

    Returns ``{"tensors": {name: {"dtype", "shape", "data_offsets"}}, "rnnattn": {...}}``.
    """
    path = Path(path)
    with _open(path) as f:
        return _parse_header(path, f, os.fstat(f.fileno()).st_size)


def _open(path: Path):
    try:
        if not path.is_file():  # stat first: never open (and block on) a FIFO or device
            if not path.exists():
                raise FileNotFoundError(path)
            raise _fail(path, "is a directory, not a checkpoint file" if path.is_dir() else "not a regular file")
        return open(path, "rb")
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except PermissionError:
        raise _fail(path, "permission denied") from None
    except OSError as e:
        raise _fail(path, f"cannot read: {e.strerror or e}") from None
    except ValueError as e:  # e.g. a NUL byte in the path
        raise _fail(path, f"invalid path ({e})") from None


def _parse_header(path: Path, f, size: int) -> dict[str, Any]:
    try:
        head = f.read(9)
        _sniff(path, head)
        if len(head) < 8:
            raise _fail(path, f"file too short to be a checkpoint ({size} bytes)")
        (n,) = struct.unpack("<Q", head[:8])
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise _fail(path, f"corrupt or truncated: header length {n} does not fit in a {size}-byte file")
        raw = (head[8:] + f.read(max(n - 1, 0)))[:n]
    except CheckpointError:
        raise
    except OSError as e:
        raise _fail(path, f"cannot read: {e.strerror or e}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    # ValueError covers JSONDecodeError and ints longer than Python's 4300-digit conversion limit
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _fail(path, "corrupt header (not valid JSON)") from None
    if not isinstance(header, dict):
        raise _fail(path, "corrupt header (not a JSON object)")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not isinstance(meta.get("rnnattn"), str):
        raise _fail(path, "not an rnnattn checkpoint (no rnnattn metadata in the safetensors header)")
    try:
        info = json.loads(meta["rnnattn"])
    except (ValueError, RecursionError):
        raise _fail(path, "corrupt rnnattn metadata (not valid JSON)") from None
    if not isinstance(info, dict):
        raise _fail(path, "corrupt rnnattn metadata (not a JSON object)")
    data_len = size - 8 - n
    covered = 0
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, f"corrupt entry for tensor {name[:80]!r}")
        dt, shape, off = e["dtype"], e["shape"], e["data_offsets"]
        if not isinstance(dt, str) or dt not in _DTYPES:
            raise _fail(path, f"tensor {name[:80]!r} has unsupported dtype {str(dt)[:20]!r}")
        if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise _fail(path, f"tensor {name[:80]!r} has an invalid shape {str(shape)[:80]}")
        if (
            not isinstance(off, list)
            or len(off) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in off)
            or not 0 <= off[0] <= off[1] <= data_len
        ):
            raise _fail(path, f"corrupt or truncated: tensor {name[:80]!r} lies outside the file")
        nbytes = math.prod(shape) * _ITEMSIZE[dt]
        if off[1] - off[0] != nbytes:
            raise _fail(path, f"tensor {name[:80]!r}: {off[1] - off[0]} bytes stored for shape {shape} of {dt}")
        covered += nbytes
    if covered > data_len:
        raise _fail(path, "corrupt: tensor byte ranges overlap")
    return {"tensors": header, "rnnattn": info}


def _check_config_sizes(path: Path, obj: Any, where: str = "config", depth: int = 0) -> None:
    """Reject configs that would allocate absurd memory, or spend minutes building, before building anything."""
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


@contextmanager
def _build_budget(path: Path, n_tensors: int):
    """Cap the modules/parameters/buffers registered while building skeletons at a multiple of the tensors stored.

    Every parameter ends up as a stored tensor and zoo models register fewer than 3 modules per tensor, so honest
    files stay far below the cap; a tiny hostile file whose config lists 10,000 layers or LSRL stages would
    otherwise keep the loader building meta modules for minutes. Only the loading thread is counted."""
    limit = 8 * n_tensors + 64
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
            f"{path}: {what} has non-finite (NaN/Inf) weights in {', '.join(bad[:5])}", CheckpointWarning, stacklevel=3
        )
    return model


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`save`, validating it fully; raises :class:`CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    path = Path(path)
    with _open(path) as f:
        # One open file for header and data: a checkpoint atomically replaced meanwhile (a trainer saving while
        # ``info`` reads) cannot pair one file's config and metadata with another file's weights.
        size = os.fstat(f.fileno()).st_size
        header = _parse_header(path, f, size)
        info = header["rnnattn"]
        skeleton, extra_skeletons = _skeletons(path, header)
        try:
            f.seek(0)
            data = f.read()
        except OSError as e:
            raise _fail(path, f"cannot read: {e.strerror or e}") from None
    if len(data) != size:
        raise _fail(path, "the file changed while it was being read")
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise _fail(
            path, f"corrupt tensor data ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})"
        ) from None
    del data
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
    with _build_budget(path, len(header["tensors"])):
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
