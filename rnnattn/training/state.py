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
from pathlib import Path
from typing import Any

import torch

from rnnattn.checkpoint import atomic_write_bytes

STATE_FORMAT = 1
LOG_FIELDS = ("step", "phase", "lr", "train_loss", "val_loss", "ref_val_loss", "wall_s")
RUN_FILES = ("model.safetensors", "state.safetensors", "log.csv", "summary.json")


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"{self.path} exists and is not a directory")
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
        from safetensors import safe_open

        if not self.state.exists():
            raise FileNotFoundError(f"{self.state}: no resume state (was the run started with this --out?)")
        try:
            with safe_open(str(self.state), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            info = json.loads(meta["rnnattn_train_state"])
        except Exception as e:  # noqa: BLE001 — any corruption becomes one line
            raise ValueError(
                f"{self.state}: unreadable resume state ({str(e).splitlines()[0][:120]})"
            ) from None
        if info.get("format") != STATE_FORMAT:
            raise ValueError(f"{self.state}: unsupported state format {info.get('format')!r}")
        return tensors, info

    # -- log ----------------------------------------------------------------------------------------------------
    def truncate_log(self, step: int) -> list[dict[str, Any]]:
        """Keep the log rows with ``step <= step`` (a resumed run rewrites what follows); returns them."""
        rows: list[dict[str, Any]] = []
        if self.log.exists():
            with open(self.log, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= step]
        buf = io.StringIO()
        w = csv.DictWriter(buf, LOG_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(self.log, buf.getvalue().encode(), overwrite=True)
        return rows

    def append_log(self, row: dict[str, Any]) -> None:
        with open(self.log, "a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS, lineterminator="\n").writerow(
                {k: ("" if row.get(k) is None else row[k]) for k in LOG_FIELDS}
            )

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_bytes(
            self.summary, (json.dumps(summary, indent=2, default=str) + "\n").encode(), overwrite=True
        )
