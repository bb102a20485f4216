"""Shared plumbing of the reproduction studies (``analysis/*.py``): arguments, executors, and the report
writer.

Every study runs in one of four modes:

* ``--tiny``: seconds; a smoke run of the whole pipeline for the default test suite (numbers mean nothing).
* ``--quick``: minutes on a 2-core CPU (CI, slow-marked tests); short runs that show the qualitative result.
* ``--converged`` (default; what ``reports/`` holds): every model trained until its loss stops improving within
  a stated budget, each study <= 2 h on a 2-core CPU (both cores: one worker process per core; several seeds
  per process through batched training where the model allows it).
* ``--full``: the paper's configuration (or as close as the study states), for a workstation or a GPU
  (``--device auto``); sweeps go through ``--scheduler tcp://...`` (a Dask cluster) or ``--workers N``
  processes.

Every report opens with the paper's claims beside ours (✓/✗ per claim, the numbers behind each) and the wall
and CPU time the study took (CPU: the sum over training runs, including runs an earlier, interrupted invocation
finished, plus this process's own analysis time).

Each study writes into ``reports/<study>/`` (``--out``): ``report.html`` (self-contained; the paper's figures
beside ours; the mode that produced it), one CSV per table, one PNG per figure and ``summary.json``. Sweep
state (results file, checkpoints) lives in ``runs/<study>/<mode>/`` (``--runs-dir``), so an interrupted study
resumes where it stopped. Files in the output folder are replaced only if a previous study run wrote them
(``manifest.json``), unless ``--force``.

Only rnnattn's public API is used here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MODES = {
    "tiny": "a smoke run of the test suite: a handful of training steps; the numbers mean nothing",
    "quick": "short runs that finish in minutes on a 2-core CPU and show the qualitative result "
    "(not the paper's numbers: far fewer training steps)",
    "converged": "every model trained until its loss stops improving, within the per-model budget the report "
    "states; at most 2 h on a 2-core CPU",
    "full": "the paper's configuration (long runs: a workstation or a GPU)",
}


def parse_args(
    study: str,
    description: str,
    argv: Sequence[str] | None = None,
    checkpoints: str | None = None,
) -> argparse.Namespace:
    """Common options of every study; with ``checkpoints`` (the kind of model, e.g. ``"ICL"``) also
    ``--checkpoints PATH ...``: analyse those instead of training (each must be an existing file)."""
    p = argparse.ArgumentParser(prog=f"analysis/{study}.py", description=description)
    mode = p.add_mutually_exclusive_group()
    for name, help_ in (
        ("tiny", "seconds: a smoke run (the default test suite)"),
        ("quick", "minutes on a 2-core CPU (CI)"),
        ("converged", "trained to a plateau, <= 2 h on a 2-core CPU (default; what reports/ holds)"),
        ("full", "the paper's configuration"),
    ):
        mode.add_argument(f"--{name}", dest="mode", action="store_const", const=name, help=help_)
    p.set_defaults(mode="converged")
    p.add_argument("--out", default=None, help=f"report folder (default: reports/{study})")
    p.add_argument("--runs-dir", default=None, help=f"sweep state and checkpoints (default: runs/{study}/<mode>)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address for the sweeps")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    p.add_argument(
        "--device",
        default=None,
        help="training device: cpu, cuda, auto (default: auto for --full, else cpu)",
    )
    p.add_argument("--force", action="store_true", help="replace files in --out that no study run wrote")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if checkpoints is not None:
        p.add_argument(
            "--checkpoints",
            nargs="+",
            metavar="PATH",
            default=None,
            help=f"analyse these {checkpoints} checkpoints instead of training (nothing is trained)",
        )
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    for path in getattr(args, "checkpoints", None) or []:
        if not Path(path).is_file():
            p.error(f"checkpoint {path} does not exist")
    args.study = study
    args.out = Path(args.out) if args.out else REPO / "reports" / study
    args.tiny = args.mode == "tiny"
    args.label = args.mode
    args.runs_dir = Path(args.runs_dir) if args.runs_dir else REPO / "runs" / study / args.label
    args.device = args.device or ("auto" if args.mode == "full" else "cpu")
    args.timing = {"runs_cpu_s": 0.0, "runs_wall_s": 0.0, "new_runs": 0, "old_runs": 0, "inprocess_cpu_s": 0.0}
    return args


def checkpoint_label(path: str | os.PathLike) -> str:
    """A checkpoint's name in a report: its file stem, or its folder's name for a run's ``model.*`` file."""
    p = Path(path)
    return p.parent.name if p.stem == "model" else p.stem


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


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


def sweep(args: argparse.Namespace, spec, fn=None, on_error: str = "raise") -> pd.DataFrame:
    """Run ``spec`` through the chosen executor, resuming from ``runs_dir/<spec.name>.jsonl`` (finished runs are
    skipped); adds the runs' CPU and wall seconds to ``args.timing``."""
    from rnnattn.sweeps import read_records, run_sweep

    args.runs_dir.mkdir(parents=True, exist_ok=True)
    path = args.runs_dir / f"{spec.name}.jsonl"
    before = {r["run_id"] for r in read_records(path) if r.get("status") == "ok"}
    with executor_for(args, len(spec)) as ex:
        args.executors = sorted({*getattr(args, "executors", []), ex.describe()})
        print(f"[{args.study}] sweep {spec.name}: {len(spec)} runs on {ex.describe()}", flush=True)
        df = run_sweep(
            fn, spec, ex, results_path=path, progress=not args.no_progress, csv_path=False, on_error=on_error
        )
        kind = ex.kind
    new = ~df["run_id"].isin(before)
    t = args.timing
    cpu_new = _sum_cells(df.loc[new, "cpu_time"]) if "cpu_time" in df else 0.0
    t["runs_cpu_s"] += _sum_cells(df["cpu_time"]) if "cpu_time" in df else 0.0
    t["runs_wall_s"] += float(df["elapsed_s"].sum()) if "elapsed_s" in df else 0.0
    t["new_runs"] += int(new.sum())
    t["old_runs"] += int((~new).sum())
    if kind == "serial":  # those runs ran in this process: their CPU is in cpu_seconds() too
        t["inprocess_cpu_s"] += cpu_new
    return df


def late_improvement(curve: Any, frac: float = 0.2) -> float:
    """Relative drop of a run's loss over the last ``frac`` of its steps, from its ``loss_curve`` rows ``[step,
    train_loss, val_loss]`` (validation loss where recorded): ~0 once a run has stopped improving."""
    rows = json.loads(curve) if isinstance(curve, str) else curve
    if not isinstance(rows, list) or len(rows) < 2:
        return float("nan")
    col = 2 if all(r[2] is not None for r in rows) else 1
    rows = [r for r in rows if r[col] is not None]
    if len(rows) < 2:
        return float("nan")
    start = next(r for r in rows if r[0] >= (1.0 - frac) * rows[-1][0])
    return (start[col] - rows[-1][col]) / start[col] if start[col] else float("nan")


def _sum_cells(col: pd.Series) -> float:
    """Sum of a results column whose cells are numbers or JSON lists of numbers (batched runs)."""
    total = 0.0
    for v in col:
        if isinstance(v, str) and v.startswith("["):
            total += sum(float(x) for x in json.loads(v) if x is not None)
        elif isinstance(v, int | float) and v == v:
            total += float(v)
    return total


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
    from rnnattn.display import format_value

    return format_value(v, digits)


@dataclass
class StudyReport:
    """Collects the sections of one study's report and writes HTML, CSVs, PNGs and a summary.

    The page opens with the claims table (:meth:`claims`: the paper's claims beside ours, ✓/✗, and the time the
    study took), then how it was produced (mode, machine, command), then the study's own sections."""

    args: argparse.Namespace
    title: str
    paper_ref: str
    sections: list[Any] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    cpu_started: float = field(default_factory=cpu_seconds)
    verdict: str = ""
    verdict_ok: bool | None = None
    claim_rows: list[dict[str, Any]] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=lambda: dict(MODES))  # what each mode means for this study

    def section(self, key: str, title: str, reading: str, *blocks: Any) -> None:
        from rnnattn.display import Section

        self.sections.append(Section(key, title, reading, list(blocks)))

    def table(self, name: str, df: pd.DataFrame, title: str = "", caption: str = "", max_rows: int = 60):
        """A table block, also saved as ``<name>.csv``."""
        from rnnattn.display import Table

        self.tables[name] = df
        return Table(df, title or name, caption, max_rows=max_rows)

    def figure(self, name: str, fig: Any, title: str = "", caption: str = "", alt: str = ""):
        """A figure block, also saved as ``<name>.png``."""
        from rnnattn.display import Figure

        block = Figure(fig, title or name, caption, alt or title or name)
        self.figures[name] = block
        return block

    def claims(self, rows: list[dict[str, Any]], note: str = "") -> None:
        """The paper's claims beside ours (rows from :func:`paper_claims.row`); the verdict counts the ✓."""
        self.claim_rows = list(rows)
        self._claims_note = note
        n_ok = sum(r["reproduced"] == "✓" for r in rows)
        n_checked = sum(r["reproduced"] in ("✓", "✗") for r in rows)
        self.verdict = f"{n_ok}/{n_checked} of the paper's claims reproduced (--{self.args.label} mode)"
        self.verdict_ok = n_checked > 0 and n_ok == n_checked

    def timing(self) -> dict[str, float]:
        """Wall and CPU seconds: this invocation, and the training runs behind the report."""
        t = self.args.timing
        analysis = max(0.0, cpu_seconds() - self.cpu_started - t["inprocess_cpu_s"])
        return {
            "wall_s": round(time.time() - self.started, 1),
            "cpu_s": round(t["runs_cpu_s"] + analysis, 1),
            "training_cpu_s": round(t["runs_cpu_s"], 1),
            "training_run_wall_s": round(t["runs_wall_s"], 1),
            "analysis_cpu_s": round(analysis, 1),
            "runs_trained_now": t["new_runs"],
            "runs_reused": t["old_runs"],
        }

    def _head_sections(self) -> list[Any]:
        import torch

        from rnnattn import __version__
        from rnnattn.display import KeyValues, Section, Text

        a, tm = self.args, self.timing()
        self.summary["timing"] = tm
        time_items = [
            ("wall time", f"{tm['wall_s']:.0f} s (this invocation)"),
            (
                "CPU time",
                f"{tm['cpu_s']:.0f} s = training {tm['training_cpu_s']:.0f} s (sum over "
                f"{tm['runs_trained_now'] + tm['runs_reused']} runs, {tm['runs_reused']} of them finished by an "
                f"earlier invocation) + analysis {tm['analysis_cpu_s']:.0f} s",
            ),
        ]
        blocks: list[Any] = []
        if self.claim_rows:
            blocks.append(
                self.table("claims", pd.DataFrame(self.claim_rows), "The paper's claims beside ours", max_rows=40)
            )
        if getattr(self, "_claims_note", ""):
            blocks.append(Text(self._claims_note, "note"))
        blocks.append(KeyValues(time_items, "Time this study took"))
        head = [Section("claims", "Claims: paper vs rnnattn", self.verdict or "no claims checked", blocks)]
        items = [
            ("mode", f"--{a.label}: {self.modes[a.label]}"),
            ("device", a.device),
            ("executor", ", ".join(getattr(a, "executors", [])) or "none (nothing to train)"),
            (
                "machine",
                f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                f"rnnattn {__version__}, Python {platform.python_version()}",
            ),
            ("command", " ".join(["python", f"analysis/{a.study}.py", *sys.argv[1:]]) if sys.argv else ""),
            ("generated", time.strftime("%Y-%m-%d %H:%M")),
        ]
        if getattr(a, "checkpoints", None):  # nothing was trained: the mode's training settings did not apply
            items.insert(
                1, ("students", "given checkpoints, analysed as they are: " + ", ".join(map(str, a.checkpoints)))
            )
        mode_blocks: list[Any] = [KeyValues(items, "How this report was produced")]
        if a.tiny:
            mode_blocks.append(
                Text("Smoke run (--tiny): a handful of training steps; the numbers mean nothing.", "warning")
            )
        elif a.mode == "quick":
            mode_blocks.append(
                Text(
                    "This report was produced in --quick mode: it shows whether the paper's qualitative "
                    "result appears with short runs on a CPU. Converged numbers need the default (--converged) "
                    "mode, the paper's scale --full.",
                    "warning",
                )
            )
        head.append(Section("mode", "Mode", f"--{a.label} mode", mode_blocks))
        return head

    def write(self) -> Path:
        """Writes the report folder (refusing files no study run wrote, unless ``--force``) and prints the
        claims table."""
        from rnnattn.checkpoint import atomic_write_bytes
        from rnnattn.display import Report, render_html

        self.sections[:0] = self._head_sections()
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
        self.summary.update(study=self.args.study, mode=self.args.label, device=self.args.device, verdict=self.verdict)
        self.summary["claims"] = self.claim_rows
        from rnnattn.analysis.results import jsonable

        files["summary.json"] = (json.dumps(jsonable(self.summary), indent=2, sort_keys=True) + "\n").encode()
        clash = [n for n in files if (out / n).exists() and n not in owned]
        if clash and not self.args.force:
            raise SystemExit(
                f"{self.args.study}: {out / clash[0]} exists and was not written by a study (use --force to replace it)"
            )
        for name, data in files.items():
            atomic_write_bytes(out / name, data, overwrite=True)
        stale = sorted(owned - set(files) - {"manifest.json"})
        for name in stale:  # files an earlier run of this study wrote and this one does not: remove, never others
            (out / name).unlink(missing_ok=True)
        atomic_write_bytes(manifest_path, json.dumps({"files": sorted(files)}, indent=1).encode(), overwrite=True)
        print(f"[{self.args.study}] report: {out / 'report.html'}", flush=True)
        if "claims" in self.tables:
            print(self.tables["claims"].to_string(index=False))
        return out / "report.html"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def new_figure(width: float = 6.4, height: float = 4.0):
    """A matplotlib Figure (object API, no pyplot global state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")
