"""Shared plumbing of the reproduction studies (``analysis/*.py``): arguments, executors, and the report
writer.

Every study runs in one of two modes:

* ``--quick`` (default): minutes on a 2-core CPU; short training runs that still show the qualitative result.
* ``--full``: the paper's configuration (or as close as the study states), for a workstation or a GPU
  (``--device auto``); sweeps go through ``--scheduler tcp://...`` (a Dask cluster) or ``--workers N``
  processes.

Each study writes into ``reports/<study>/`` (``--out``): ``report.html`` (self-contained; the paper's figures
beside ours; the mode that produced it), one CSV per table, one PNG per figure and ``summary.json``. Sweep
state (results file, checkpoints) lives in ``runs/<study>/<mode>/`` (``--runs-dir``), so an interrupted study
resumes where it stopped. Files in the output folder are replaced only if a previous study run wrote them
(``manifest.json``), unless ``--force``.

Only rnnattn's public API is used here.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MODES = {
    "tiny": "a smoke run of the test suite: a handful of training steps; the numbers mean nothing",
    "quick": "short runs that finish in minutes on a 2-core CPU and show the qualitative result "
    "(not the paper's "
    "numbers: far fewer training steps)",
    "full": "the paper's configuration (long runs: a workstation or a GPU)",
}


def parse_args(
    study: str,
    description: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Common options of every study (plus ``extra(parser)`` for study-specific ones)."""
    p = argparse.ArgumentParser(prog=f"analysis/{study}.py", description=description)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", dest="mode", action="store_const", const="quick", help="minutes on a 2-core CPU (default)"
    )
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="the paper's configuration")
    p.set_defaults(mode="quick")
    p.add_argument("--out", default=None, help=f"report folder (default: reports/{study})")
    p.add_argument("--runs-dir", default=None, help=f"sweep state and checkpoints (default: runs/{study}/<mode>)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address for the sweeps")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    p.add_argument(
        "--device",
        default=None,
        help="training device: cpu, cuda, auto (default: cpu for --quick, auto for --full)",
    )
    p.add_argument("--force", action="store_true", help="replace files in --out that no study run wrote")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    # Test-suite smoke runs: the whole pipeline (sweep -> analysis -> report) with a handful of steps.
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    args.study = study
    args.out = Path(args.out) if args.out else REPO / "reports" / study
    if args.tiny and args.mode != "quick":
        p.error("--tiny is a reduced --quick")
    args.label = "tiny" if args.tiny else args.mode
    args.runs_dir = Path(args.runs_dir) if args.runs_dir else REPO / "runs" / study / args.label
    args.device = args.device or ("cpu" if args.mode == "quick" else "auto")
    return args


def setup_torch() -> None:
    """One torch thread: on a small shared machine several threads per process are much slower (our measurement)."""
    import torch

    os.environ.setdefault("MPLBACKEND", "Agg")
    torch.set_num_threads(int(os.environ.get("RNNATTN_THREADS", "1")))


def executor_for(args: argparse.Namespace, n_runs: int):
    """The sweep executor the arguments ask for (Dask, a local pool, or in-process for one worker)."""
    from rnnattn.sweeps import default_workers, make_executor

    workers = args.workers
    if workers is None and not args.scheduler:
        workers = max(1, min(default_workers(), n_runs))
    return make_executor(args.scheduler, workers)


def sweep(args: argparse.Namespace, spec, fn=None):
    """Run ``spec`` through the chosen executor, resuming from ``runs_dir/<spec.name>.jsonl``."""
    from rnnattn.sweeps import run_sweep

    args.runs_dir.mkdir(parents=True, exist_ok=True)
    with executor_for(args, len(spec)) as ex:
        args.executors = sorted({*getattr(args, "executors", []), ex.describe()})
        print(f"[{args.study}] sweep {spec.name}: {len(spec)} runs on {ex.describe()}", flush=True)
        return run_sweep(
            fn,
            spec,
            ex,
            results_path=args.runs_dir / f"{spec.name}.jsonl",
            progress=not args.no_progress,
            csv_path=False,
        )


def explode(df: pd.DataFrame) -> pd.DataFrame:
    """Turn the per-replica list cells of batched runs (``seeds``, ``train_loss``, ... as JSON strings) into
    one row per replica, with ``seed`` the replica's seed."""
    if "seeds" not in df.columns or not len(df):
        return df
    df = df.copy()
    parsed = {
        c: df[c].map(lambda v: json.loads(v) if isinstance(v, str) and v.startswith("[") else None) for c in df.columns
    }
    n = parsed["seeds"].map(len)
    cols = [c for c, v in parsed.items() if v.map(lambda x: isinstance(x, list)).all() and (v.map(len) == n).all()]
    for c in cols:
        df[c] = parsed[c]
    df = df.explode(cols, ignore_index=True).drop(columns=["seed"]).rename(columns={"seeds": "seed"})
    for c in cols:
        c = "seed" if c == "seeds" else c
        if df[c].map(lambda x: isinstance(x, int | float) and not isinstance(x, bool)).all():
            df[c] = pd.to_numeric(df[c])
    return df


def fmt(v: Any, digits: int = 3) -> str:
    from rnnattn.report.document import format_value

    return format_value(v, digits)


def side_by_side(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The paper-vs-ours table: ``quantity``, ``paper``, ``rnnattn``, ``note`` (numbers formatted for
    display)."""
    out = []
    for r in rows:
        out.append(
            {
                "quantity": r["quantity"],
                "paper": r.get("paper") if isinstance(r.get("paper"), str) else fmt(r.get("paper")),
                "rnnattn": r.get("rnnattn") if isinstance(r.get("rnnattn"), str) else fmt(r.get("rnnattn")),
                "note": r.get("note", ""),
            }
        )
    return pd.DataFrame(out)


@dataclass
class StudyReport:
    """Collects the sections of one study's report and writes HTML, CSVs, PNGs and a summary."""

    args: argparse.Namespace
    title: str
    paper_ref: str
    sections: list[Any] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    verdict: str = ""
    verdict_ok: bool | None = None

    def section(self, key: str, title: str, reading: str, *blocks: Any) -> None:
        from rnnattn.report.document import Section

        self.sections.append(Section(key, title, reading, list(blocks)))

    def table(self, name: str, df: pd.DataFrame, title: str = "", caption: str = "", max_rows: int = 60):
        """A table block, also saved as ``<name>.csv``."""
        from rnnattn.report.document import Table

        self.tables[name] = df
        return Table(df, title or name, caption, max_rows=max_rows)

    def figure(self, name: str, fig: Any, title: str = "", caption: str = "", alt: str = ""):
        """A figure block, also saved as ``<name>.png``."""
        from rnnattn.report.document import Figure

        block = Figure(fig, title or name, caption, alt or title or name)
        self.figures[name] = block
        return block

    def _mode_section(self) -> None:
        import torch

        from rnnattn import __version__
        from rnnattn.report.document import KeyValues, Text

        a = self.args
        items = [
            ("mode", f"--{a.label}: {MODES[a.label]}"),
            ("device", a.device),
            ("executor", ", ".join(getattr(a, "executors", [])) or "none (nothing to train)"),
            ("wall time", f"{time.time() - self.started:.0f} s"),
            (
                "machine",
                f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                f"rnnattn {__version__}, Python {platform.python_version()}",
            ),
            ("command", " ".join(["python", f"analysis/{a.study}.py", *sys.argv[1:]]) if sys.argv else ""),
            ("generated", time.strftime("%Y-%m-%d %H:%M")),
        ]
        blocks = [KeyValues(items, "How this report was produced")]
        if a.tiny:
            blocks.append(Text("Smoke run (--tiny): a handful of training steps; the numbers mean nothing.", "warning"))
        elif a.mode == "quick":
            blocks.append(
                Text(
                    "This report was produced in --quick mode: it shows whether the paper's qualitative "
                    "result appears with short runs on a CPU. The paper's numbers need --full.",
                    "warning",
                )
            )
        self.sections.insert(0, _section("mode", "Mode", f"--{a.label} mode", blocks))

    def write(self) -> Path:
        from rnnattn.checkpoint import atomic_write_bytes
        from rnnattn.report.document import Report
        from rnnattn.report.html import render_html

        self._mode_section()
        out: Path = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        manifest_path = out / "manifest.json"
        owned = set(json.loads(manifest_path.read_text()).get("files", [])) if manifest_path.exists() else set()
        files: dict[str, bytes] = {}
        for name, df in self.tables.items():
            files[f"{_safe(name)}.csv"] = df.to_csv(index=False).encode()
        for name, block in self.figures.items():
            files[f"{_safe(name)}.png"] = block.png
        report = Report(
            self.title,
            f"{self.paper_ref} · --{self.args.label} mode",
            self.sections,
            verdict=self.verdict,
            verdict_ok=self.verdict_ok,
            footer=f"analysis/{self.args.study}.py --{self.args.label}",
        )
        files["report.html"] = render_html(report).encode()
        self.summary.update(
            study=self.args.study,
            mode=self.args.label,
            device=self.args.device,
            wall_time_s=round(time.time() - self.started, 1),
            verdict=self.verdict,
        )
        files["summary.json"] = (json.dumps(_jsonable(self.summary), indent=2, sort_keys=True) + "\n").encode()
        clash = [n for n in files if (out / n).exists() and n not in owned]
        if clash and not self.args.force:
            raise FileExistsError(f"{out / clash[0]} exists and was not written by a study (use --force)")
        for name, data in files.items():
            atomic_write_bytes(out / name, data, overwrite=True)
        stale = sorted(owned - set(files) - {"manifest.json"})
        for name in stale:  # files an earlier run of this study wrote and this one does not: remove, never others
            (out / name).unlink(missing_ok=True)
        atomic_write_bytes(manifest_path, json.dumps({"files": sorted(files)}, indent=1).encode(), overwrite=True)
        print(f"[{self.args.study}] report: {out / 'report.html'}", flush=True)
        return out / "report.html"


def _section(key: str, title: str, reading: str, blocks: list[Any]):
    from rnnattn.report.document import Section

    return Section(key, title, reading, blocks)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _jsonable(v: Any) -> Any:
    import math

    import numpy as np

    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, pd.DataFrame):
        return _jsonable(v.to_dict(orient="records"))
    return v


def new_figure(width: float = 6.4, height: float = 4.0):
    """A matplotlib Figure (object API, no pyplot global state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()
