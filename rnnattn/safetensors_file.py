"""Bounded reading of safetensors files (checkpoints and the trainer's resume state). Nothing is ever unpickled.

A reader here costs time and memory linear in, and bounded by, what :mod:`rnnattn.limits` allows, whatever the
file claims: the file must be a regular file (a FIFO or device is refused without blocking) of at most
``MAX_FILE_BYTES``; the header length is checked against ``MAX_HEADER_BYTES`` and the file size before it is read;
at most ``MAX_TENSORS`` entries, each of rank at most ``MAX_TENSOR_RANK`` with dims at most ``MAX_CONFIG_INT``
(checked before any product is taken); the entries must tile the data section exactly, so no byte beyond what the
header declares is ever read; the JSON metadata must be at most ``MAX_METADATA_DEPTH`` deep with at most
``MAX_METADATA_ITEMS`` entries and valid Unicode. Any failure is a :class:`CheckpointError` with one escaped line.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import torch

from rnnattn.limits import (
    MAX_CONFIG_INT,
    MAX_FILE_BYTES,
    MAX_HEADER_BYTES,
    MAX_TENSOR_RANK,
    MAX_TENSORS,
    check_json_shape,
)
from rnnattn.safeio import UnsafeFileError, open_regular, printable

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




def _fail(path: Path, reason: str) -> CheckpointError:
    # Paths and reasons quote text from outside (file names, config keys, class names): escape control characters
    # and lone surrogates so the message stays one line, cannot drive the user's terminal and always encodes.
    return CheckpointError(printable(f"{os.fspath(path)}: {reason}", 600))


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
    """Open a regular file of at most ``MAX_FILE_BYTES`` (never blocks on a FIFO or device)."""
    try:
        return open_regular(path, MAX_FILE_BYTES, "checkpoint file")
    except UnsafeFileError as e:
        reason = str(e).split(": ", 1)[-1] if str(e).startswith(printable(path)) else str(e)
        raise _fail(path, "is a directory, not a checkpoint file" if path.is_dir() else reason) from None
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except PermissionError:
        raise _fail(path, "permission denied") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a checkpoint file") from None
    except OSError as e:
        raise _fail(path, f"cannot read: {e.strerror or e}") from None
    except ValueError as e:  # e.g. a NUL byte in the path
        raise _fail(path, f"invalid path ({e})") from None


def _read_raw_header(path: Path, f, size: int) -> tuple[dict[str, Any], dict[str, Any], int]:
    """``(tensor entries, __metadata__, header length)`` of a safetensors file, every entry validated.

    Cost is linear in the header and bounded: the header length is checked against ``MAX_HEADER_BYTES`` and the
    file size before it is read, the entry count against ``MAX_TENSORS``, every shape's rank and dims before any
    product is taken, and the entries must tile the data section exactly (no gap, overlap or trailing bytes), so
    the data that :func:`load_checkpoint` later reads is exactly what the header declares."""
    try:
        head = f.read(9)
        _sniff(path, head)
        if len(head) < 8:
            raise _fail(path, f"file too short to be a checkpoint ({size} bytes)")
        (n,) = struct.unpack("<Q", head[:8])
        if n > size - 8:
            raise _fail(path, f"corrupt or truncated: header length {n} does not fit in a {size}-byte file")
        if n > MAX_HEADER_BYTES:
            raise _fail(path, f"header length {n:,} exceeds the limit of {MAX_HEADER_BYTES:,} (MAX_HEADER_BYTES)")
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
    if len(header) > MAX_TENSORS + 1:
        raise _fail(path, f"{len(header) - 1:,} tensor entries exceed the limit of {MAX_TENSORS:,} (MAX_TENSORS)")
    meta = header.pop("__metadata__", None)
    data_len = size - 8 - n
    spans = sorted((_entry_span(path, name, e, data_len), name) for name, e in header.items())
    end = 0
    for (start, stop), name in spans:
        if start != end:
            what = "overlaps another" if start < end else "leaves a gap before it"
            raise _fail(path, f"corrupt: tensor {name[:80]!r} {what} (byte ranges must tile the data)")
        end = stop
    if end != data_len:
        raise _fail(path, f"corrupt: {data_len - end:,} bytes after the last tensor (the header declares {end:,})")
    return header, meta if isinstance(meta, dict) else {}, n


def _entry_span(path: Path, name: str, e: Any, data_len: int) -> tuple[int, int]:
    if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
        raise _fail(path, f"corrupt entry for tensor {name[:80]!r}")
    dt, shape, off = e["dtype"], e["shape"], e["data_offsets"]
    if not isinstance(dt, str) or dt not in _DTYPES:
        raise _fail(path, f"tensor {name[:80]!r} has unsupported dtype {str(dt)[:20]!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_TENSOR_RANK
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_CONFIG_INT for s in shape)
    ):
        raise _fail(
            path,
            f"tensor {name[:80]!r} has an invalid shape {str(shape)[:80]} (at most {MAX_TENSOR_RANK} dims, "
            f"each <= {MAX_CONFIG_INT})",
        )
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
    return off[0], off[1]


def _metadata_json(path: Path, meta: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    """Parse the JSON string ``meta[key]`` and check its depth, size and text (see ``check_json_shape``)."""
    if not isinstance(meta.get(key), str):
        raise _fail(path, f"not {what} (no {key} metadata in the safetensors header)")
    try:
        info = json.loads(meta[key])
    except (ValueError, RecursionError):
        raise _fail(path, f"corrupt {key} metadata (not valid JSON)") from None
    if not isinstance(info, dict):
        raise _fail(path, f"corrupt {key} metadata (not a JSON object)")
    try:
        check_json_shape(info, f"{key} metadata")
    except ValueError as e:
        raise _fail(path, str(e)) from None
    return info


def _parse_header(path: Path, f, size: int) -> dict[str, Any]:
    header, meta, _ = _read_raw_header(path, f, size)
    info = _metadata_json(path, meta, "rnnattn", "an rnnattn checkpoint")
    return {"tensors": header, "rnnattn": info}


def _read_data(path: Path, f, size: int) -> dict[str, torch.Tensor]:
    """All tensors of an open, header-validated file (``size`` bytes, at most ``MAX_FILE_BYTES``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    try:
        f.seek(0)
        data = f.read(size + 1)
    except OSError as e:
        raise _fail(path, f"cannot read: {e.strerror or e}") from None
    if len(data) != size:
        raise _fail(path, "the file changed while it was being read")
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise _fail(
            path, f"corrupt tensor data ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})"
        ) from None


def read_safetensors(path: str | os.PathLike, key: str, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, JSON of metadata key)`` of any rnnattn safetensors file (e.g. the trainer's resume state), with
    the same bounds and checks as a checkpoint: regular file, bounded header, tiled data, bounded metadata."""
    path = Path(path)
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        header, meta, _ = _read_raw_header(path, f, size)
        info = _metadata_json(path, meta, key, what)
        return _read_data(path, f, size), info
