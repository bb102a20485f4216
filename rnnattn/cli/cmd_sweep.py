"""``rnnattn sweep SPEC.json``: run a grid of runs locally or on a Dask cluster, resumably.

SPEC.json holds a :class:`rnnattn.sweeps.SweepSpec`::

    {"name": "fig3a", "fn": "rnnattn.sweeps.runs:train_run",
     "base": {"task": "teacher_student", "task_options.d": 6, "arch": "gated_diagonal", "train.steps": 2000},
     "grid": {"size": [8, 16, 32, 64]}, "seeds": [0, 1, 2]}

Results go to ``OUT/results.jsonl`` (one line per finished run) and ``OUT/results.csv``; rerunning the same
command skips every run already finished. ``--scheduler tcp://host:8786`` sends runs to an existing Dask
cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
        help="allow the spec to name run functions from MODULE (repeatable); only rnnattn's own are allowed "
        "otherwise, since naming a function in a spec file runs it",
    )


def run(args: argparse.Namespace) -> int:
    from rnnattn.checkpoint import atomic_write_bytes
    from rnnattn.cli.main import UsageError
    from rnnattn.sweeps import SweepSpec, load_results, make_executor, run_sweep

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.scheduler and args.workers is not None:
        raise UsageError("--workers applies to local runs; a Dask cluster has its own workers")
    spec_path = Path(args.spec)
    if not spec_path.is_file():
        raise UsageError(f"{spec_path}: no such sweep specification")
    spec = SweepSpec.from_json(spec_path)
    fn = spec.resolve_fn(
        tuple(args.trust_module)
    )  # fail here, before any worker starts, if the function cannot be imported
    out = Path(args.out) if args.out else Path("sweeps") / spec.name
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"

    if args.dry_run:
        done = load_results(results, spec) if results.exists() else None
        ok = set(done.loc[done["status"] == "ok", "run_id"]) if done is not None and len(done) else set()
        for r in spec.runs():
            print(f"{'done' if r.run_id in ok else 'todo'}  {r.run_id}")
        print(f"{len(ok)}/{len(spec)} runs done in {results}")
        return 0

    # Keep a copy of the spec beside the results (refuse to mix two different specs under one name silently).
    saved = out / "spec.json"
    if saved.exists() and SweepSpec.from_json(saved).to_dict() != spec.to_dict():
        print(f"note: {saved} differs from {spec_path}; finished runs with identical parameters are still reused")
    atomic_write_bytes(saved, spec.to_json().encode(), overwrite=True)

    with make_executor(args.scheduler, args.workers, args.connect_timeout) as executor:
        print(f"sweep {spec.name}: {len(spec)} runs on {executor.describe()} -> {results}")
        df = run_sweep(
            fn,
            spec,
            executor,
            results_path=results,
            progress=not args.no_progress,
            on_error="continue" if args.continue_on_error else "raise",
        )
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    print(f"{n_ok}/{len(spec)} runs ok; table: {results.with_suffix('.csv')}")
    return 0 if n_ok == len(spec) else 1
