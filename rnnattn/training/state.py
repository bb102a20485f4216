"""Run directories: the student checkpoint, the resume state, the CSV log and the summary.

Layout of ``out_dir``:
    ``model.safetensors``  the student (an rnnattn checkpoint, see :mod:`rnnattn.training.loop` for its metadata)
    ``state.safetensors``  resume state: ``model.*`` weights, ``opt.*`` optimiser moments (tensors) and, in the
                           safetensors metadata key ``rnnattn_train_state``, JSON ``{"step", "polish_round",
                           "config", "task", "engine", "wall_time", "format"}``. Never pickled.
    ``log.csv``            one row per logging/validation point: ``step, phase, lr, train_loss, val_loss,
                           ref_val_loss, wall_s``
    ``summary.json``       the final :class:`TrainResult` summary.
All files are written atomically (temp file + rename).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import torch

from rnnattn.limits import MAX_CONFIG_INT, MAX_LOG_BYTES, MAX_LOG_COLUMNS, MAX_LOG_ROWS
from rnnattn.safeio import append_bytes, atomic_write_bytes, printable, read_regular

STATE_FORMAT = 1
_STATE_KEYS = {"format", "step", "polish_round", "config", "task", "engine", "wall_time"}
_TENSOR_PREFIXES = ("model.", "opt.")
LOG_FIELDS = ("step", "phase", "lr", "train_loss", "val_loss", "ref_val_loss", "wall_s")
RUN_FILES = ("model.safetensors", "state.safetensors", "log.csv", "summary.json")


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"{printable(self.path)} exists and is not a directory")
        self.model = self.path / "model.safetensors"
        self.state = self.path / "state.safetensors"
        self.log = self.path / "log.csv"
        self.summary = self.path / "summary.json"

    def existing(self) -> list[Path]:
        return [self.path / f for f in RUN_FILES if (self.path / f).exists()]

    def claim(self, force: bool) -> None:
        """Start a fresh run here: refuse if another run's files exist unless ``force`` (then remove them)."""
        found = self.existing()
        if found and not force:
            raise FileExistsError(
                f"{self.path} already holds a run ({found[0].name}); use --resume to continue it "
                "or --force to overwrite it"
            )
        for f in found:
            f.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.log, (",".join(LOG_FIELDS) + "\n").encode(), overwrite=True)

    # -- resume state -------------------------------------------------------------------------------------------
    def save_state(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        from safetensors.torch import save

        data = save(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            metadata={"rnnattn_train_state": json.dumps({"format": STATE_FORMAT, **info})},
        )
        atomic_write_bytes(self.state, data, overwrite=True)

    def load_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The resume state, validated whole (see :func:`check_state`) before the caller touches any file.

        Read with the checkpoint reader's bounds (regular file, bounded header and data, bounded metadata).
        Raises ``FileNotFoundError`` if there is none, ``ValueError`` (one escaped line) if it is unusable."""
        from rnnattn.checkpoint import CheckpointError, read_safetensors

        if not self.state.exists() and not self.state.is_symlink():
            raise FileNotFoundError(f"{printable(self.state)}: no resume state (was the run started with this --out?)")
        try:
            tensors, info = read_safetensors(self.state, "rnnattn_train_state", "a resume state")
        except CheckpointError as e:
            raise ValueError(f"unreadable resume state: {e}") from None
        check_state(tensors, info, printable(self.state))
        return tensors, info

    # -- log ----------------------------------------------------------------------------------------------------
    def read_log_rows(self) -> list[dict[str, str]]:
        """The rows of ``log.csv`` (``[]`` if there is none), validated: see :func:`parse_log`."""
        if not self.log.exists() and not self.log.is_symlink():
            return []
        return parse_log(read_regular(self.log, MAX_LOG_BYTES, "training log"), printable(self.log))

    def truncate_log(self, step: int) -> list[dict[str, Any]]:
        """Keep the log rows with ``step <= step`` (a resumed run rewrites what follows); returns them. The whole
        log is read and validated first: a log it cannot parse is an error, and is left as it was."""
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"truncate_log: step must be a non-negative integer, got {step!r}")
        rows = [r for r in self.read_log_rows() if int(r["step"]) <= step]
        buf = io.StringIO()
        w = csv.DictWriter(buf, LOG_FIELDS, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(self.log, buf.getvalue().encode(), overwrite=True)
        return rows

    def append_log(self, row: dict[str, Any]) -> None:
        buf = io.StringIO()
        csv.DictWriter(buf, LOG_FIELDS, lineterminator="\n").writerow(
            {k: ("" if row.get(k) is None else row[k]) for k in LOG_FIELDS}
        )
        append_bytes(self.log, buf.getvalue().encode())  # refuses a symlink or FIFO in place of the log

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_bytes(
            self.summary, (json.dumps(summary, indent=2, default=str) + "\n").encode(), overwrite=True
        )


def _nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_state(tensors: dict[str, torch.Tensor], info: Any, where: str) -> None:
    """Validate a resume state whole, so that resuming fails before any file is touched: format, ``step`` and
    ``polish_round`` non-negative integers (within the saved config's ``steps``/``polish_rounds``), ``wall_time``
    finite and >= 0, ``config`` and ``task`` JSON objects (``task["name"]`` a string), ``engine`` a string, and
    tensors named ``model.*``/``opt.*``/``lm_mu`` with floating dtypes. Raises ``ValueError`` naming the field."""

    def bad(what: str) -> ValueError:
        return ValueError(f"{where}: corrupt resume state ({what})")

    if not isinstance(info, dict):
        raise bad("metadata is not a JSON object")
    if info.get("format") != STATE_FORMAT:
        raise ValueError(f"{where}: unsupported state format {printable(repr(info.get('format')), 40)}")
    missing = sorted(_STATE_KEYS - set(info))
    if missing:
        raise bad(f"missing {', '.join(missing)}")
    config, task = info["config"], info["task"]
    if not isinstance(config, dict):
        raise bad("config is not a JSON object")
    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        raise bad("task is not a JSON object with a name")
    if not isinstance(info["engine"], str):
        raise bad("engine is not a string")
    for owner, fields in (("config", config), ("task", task)):
        for k, v in fields.items():  # sizes (val_samples, seq_len, ...) from a file: bounded like model configs
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_CONFIG_INT:
                raise bad(f"{owner}.{printable(k, 40)} = {v} exceeds {MAX_CONFIG_INT} (rnnattn.limits.MAX_CONFIG_INT)")
    for key, limit_key in (("step", "steps"), ("polish_round", "polish_rounds")):
        v, limit = info[key], config.get(limit_key)
        if not _nonneg_int(v):
            raise bad(f"{key} = {printable(repr(v), 40)} is not a non-negative integer")
        if _nonneg_int(limit) and v > limit:
            raise bad(f"{key} = {v} exceeds the config's {limit_key} = {limit}")
    wall = info["wall_time"]
    if isinstance(wall, bool) or not isinstance(wall, int | float) or not math.isfinite(wall) or wall < 0:
        raise bad(f"wall_time = {printable(repr(wall), 40)} is not a finite non-negative number")
    for name, t in tensors.items():
        if not (name.startswith(_TENSOR_PREFIXES) or name == "lm_mu"):
            raise bad(f"unexpected tensor {printable(repr(name), 80)}")
        if not t.dtype.is_floating_point:
            raise bad(f"tensor {printable(repr(name), 80)} has non-float dtype {t.dtype}")


def parse_log(data: bytes, where: str) -> list[dict[str, str]]:
    """Rows of a ``log.csv`` (bytes): the header must hold ``step``; every row's ``step`` must be a non-negative
    integer, except that a torn last line (a kill mid-append) is dropped; at most ``MAX_LOG_ROWS`` rows.
    Raises ``ValueError`` (one line) otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not a UTF-8 text file (a training log is CSV)") from None
    lines = text.splitlines(keepends=True)
    torn = bool(lines) and not lines[-1].endswith(("\n", "\r"))
    reader = csv.DictReader(lines[:-1] if torn else lines)
    if reader.fieldnames is None and not lines:
        return []
    if "step" not in (reader.fieldnames or ()):
        raise ValueError(f"{where}: not a training log (no step column)")
    rows = []
    try:
        for i, r in enumerate(reader, start=2):
            if len(rows) >= MAX_LOG_ROWS:
                raise ValueError(f"{where}: more than {MAX_LOG_ROWS:,} rows (rnnattn.limits.MAX_LOG_ROWS)")
            s = r.get("step") or ""
            if not (s.isascii() and s.isdigit() and len(s) <= 18):
                raise ValueError(f"{where}: line {i}: step {printable(repr(s), 40)} is not a non-negative integer")
            rows.append(r)
    except csv.Error as e:
        raise ValueError(f"{where}: not valid CSV ({printable(e, 100)})") from None
    return rows


def read_log(path: str | Path):
    """A training log CSV as a pandas DataFrame, bounded and validated for readers outside the trainer (the
    report): a regular file of at most ``MAX_LOG_BYTES`` in UTF-8, at most ``MAX_LOG_ROWS`` rows and
    ``MAX_LOG_COLUMNS`` columns; every column but ``phase`` numeric (garbage becomes NaN, never an object column
    that a plot would treat as categories). Logs from elsewhere may name their columns freely.
    Raises ``ValueError``/``OSError`` (one line)."""
    import pandas as pd

    path = Path(path)
    where = printable(path)
    try:
        text = read_regular(path, MAX_LOG_BYTES, "training log").decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not a UTF-8 text file (a training log is CSV)") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if not header or len(header) > MAX_LOG_COLUMNS:
            raise ValueError(f"{where}: a training log needs a header of 1 to {MAX_LOG_COLUMNS} columns")
        if len(set(header)) != len(header):
            raise ValueError(f"{where}: repeated column names in the header")
        rows = []
        for row in reader:
            if len(rows) >= MAX_LOG_ROWS:
                raise ValueError(f"{where}: more than {MAX_LOG_ROWS:,} rows (rnnattn.limits.MAX_LOG_ROWS)")
            rows.append((row + [""] * len(header))[: len(header)])
    except csv.Error as e:
        raise ValueError(f"{where}: not valid CSV ({printable(e, 100)})") from None
    df = pd.DataFrame(rows, columns=[printable(h, 80) for h in header])
    for k in df.columns:
        if k != "phase":
            df[k] = pd.to_numeric(df[k], errors="coerce")
    return df
