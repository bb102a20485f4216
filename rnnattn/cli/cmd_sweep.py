"""``rnnattn sweep SPEC.json``: run a grid of runs locally or on a Dask cluster, resumably.

SPEC.json holds a :class:`rnnattn.sweeps.SweepSpec`::

    {"name": "fig3a", "fn": "rnnattn.sweeps.runs:train_run",
     "base": {"task": "teacher_student", "task_options.d": 6, "arch": "gated_diagonal", "train.steps": 2000},
     "grid": {"size": [8, 16, 32, 64]}, "seeds": [0, 1, 2]}

Results go to ``OUT/results.jsonl`` (one line per finished run) and ``OUT/results.csv``; rerunning the same
command skips every run already finished. The spec is data: its ``fn`` must be a registered run function (see
:mod:`rnnattn.sweeps.registry`) unless ``--trust-module`` says otherwise, its name is a plain folder name, and the
sweep writes only ``spec.json``, ``results.jsonl`` and ``results.csv`` in OUT (a folder holding anything else is
refused). ``--scheduler tcp://host:8786`` sends runs to an existing Dask
cluster.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rnnattn.limits import MAX_WORKERS_PER_CORE

HELP = "run a sweep (grid x seeds) locally or on a Dask cluster; rerun to resume"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep specification (JSON: name, fn, grid, seeds, base)")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running Dask scheduler (e.g. tcp://host:8786); default: local processes",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for the Dask scheduler (default 30)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="local worker processes (default: one per core; 1 runs in this process)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: sweeps/<name>)")
    p.add_argument(
        "--continue-on-error",
        action="store_true",
        help="record failed runs and go on (default: stop at the first failure)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the runs and which are done, run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--trust-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="allow the spec to name any public function of MODULE (repeatable); otherwise only run functions "
        "rnnattn registered (@rnnattn.sweeps.run_function) may be named, since naming a function in a spec runs it",
    )


SWEEP_FILES = ("spec.json", "results.jsonl", "results.csv")


def _check_folder(out: Path, spec_name: str) -> None:
    """The sweep writes only ``spec.json``, ``results.jsonl``, ``results.csv`` (and their temp files) in ``out``.
    Refuse a folder that holds other things unless it already is a sweep's folder, and any of these three that is
    not a regular file (a symlink out of the folder, a FIFO): a spec must never make the sweep overwrite a user's
    files (``--out .``)."""
    from rnnattn.cli.main import UsageError
    from rnnattn.safeio import printable

    if out.exists() and not out.is_dir():
        raise UsageError(f"{printable(out)} exists and is not a folder")
    for name in SWEEP_FILES:
        f = out / name
        if f.is_symlink() or (f.exists() and not f.is_file()):
            raise UsageError(f"{printable(f)} is not a regular file; refusing to write the sweep there")
    saved = out / "spec.json"
    if saved.exists() and _read_saved(saved) is None:
        raise UsageError(f"{printable(saved)} is not a sweep spec; refusing to overwrite it (choose another --out)")
    if out.is_dir() and any(out.iterdir()) and not (saved.is_file() or (out / "results.jsonl").is_file()):
        raise UsageError(
            f"{printable(out)} holds files but no sweep (no spec.json or results.jsonl); refusing to write "
            f"sweep {spec_name} there (choose an empty or new --out)"
        )


def _check_output_paths(spec, fn, out: Path) -> None:
    """Parameters a run function writes into (its ``output_paths``, e.g. ``save_dir``) must lie inside ``out``."""
    from rnnattn.cli.main import UsageError
    from rnnattn.safeio import printable
    from rnnattn.sweeps.registry import output_paths_of

    root = out.resolve()
    for key in output_paths_of(fn):
        values = [spec.base.get(key), *spec.grid.get(key, ())]
        for v in values:
            if v is None or v == "":
                continue
            target = (Path.cwd() / v).resolve() if isinstance(v, str) else None
            if target is None or (target != root and root not in target.parents):
                raise UsageError(
                    f"{key}={printable(repr(v), 120)} lies outside the sweep's folder {printable(out)}; "
                    "a sweep writes only inside its own folder"
                )


def run(args: argparse.Namespace) -> int:
    from rnnattn.cli.main import UsageError
    from rnnattn.safeio import atomic_write_bytes, printable
    from rnnattn.sweeps import SweepSpec, load_results, make_executor, run_sweep

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    if args.workers is not None and args.workers > most:
        raise UsageError(
            f"--workers {args.workers} is more than {most} ({MAX_WORKERS_PER_CORE} per core, "
            "rnnattn.limits.MAX_WORKERS_PER_CORE): every worker is a process importing torch"
        )
    if args.scheduler and args.workers is not None:
        raise UsageError("--workers applies to local runs; a Dask cluster has its own workers")
    spec_path = Path(args.spec)
    if not spec_path.exists():
        raise UsageError(f"{printable(spec_path)}: no such sweep specification")
    spec = SweepSpec.from_json(spec_path)  # refuses FIFOs, huge or deep files, bad names, grids over the limit
    fn = spec.resolve_fn(tuple(args.trust_module))  # fail here, before any worker starts or any file is written
    out = Path(args.out) if args.out else Path("sweeps") / spec.name
    _check_folder(out, spec.name)
    _check_output_paths(spec, fn, out)
    results = out / "results.jsonl"

    if args.dry_run:
        done = load_results(results, spec) if results.exists() else None
        ok = set(done.loc[done["status"] == "ok", "run_id"]) if done is not None and len(done) else set()
        for r in spec.runs():
            print(f"{'done' if r.run_id in ok else 'todo'}  {printable(r.run_id)}")
        print(f"{len(ok)}/{len(spec)} runs done in {printable(results)}")
        return 0

    out.mkdir(parents=True, exist_ok=True)
    # Keep a copy of the spec beside the results (refuse to mix two different specs under one name silently).
    saved = out / "spec.json"
    if saved.exists() and _read_saved(saved) != spec.to_dict():
        print(
            f"note: {printable(saved)} differs from {printable(spec_path)}; finished runs with identical "
            "parameters are still reused"
        )
    atomic_write_bytes(saved, spec.to_json().encode(), overwrite=True)

    workers = None if args.workers is None else min(args.workers, len(spec))  # never more processes than runs
    with make_executor(args.scheduler, workers, args.connect_timeout) as executor:
        print(f"sweep {spec.name}: {len(spec)} runs on {printable(executor.describe())} -> {printable(results)}")
        df = run_sweep(
            fn,
            spec,
            executor,
            results_path=results,
            progress=not args.no_progress,
            on_error="continue" if args.continue_on_error else "raise",
        )
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    print(f"{n_ok}/{len(spec)} runs ok; table: {printable(results.with_suffix('.csv'))}")
    return 0 if n_ok == len(spec) else 1


def _read_saved(saved: Path) -> dict | None:
    """The spec saved by an earlier run of this sweep (None if it no longer parses)."""
    from rnnattn.sweeps import SweepSpec

    try:
        return SweepSpec.from_json(saved).to_dict()
    except (ValueError, OSError):
        return None
