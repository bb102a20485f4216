"""Run a sweep: results stream into one table as runs finish, are saved row by row, and resume after
interruption.

The results file is JSON Lines: one object per finished run (``run_id``, ``status``, ``params``, ``result``,
timing, worker), each appended with a single ``write`` and ``fsync`` as the run completes, so a crash, a
Ctrl-C or a killed cluster loses at most the runs that were still executing. :func:`run_sweep` reads the file
first and skips every run id already recorded as ``ok``; failed runs are retried. A torn last line (the
machine died mid-write) is dropped. A CSV of the same table is rewritten atomically beside it when the sweep
ends.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rnnattn.limits import MAX_RESULTS_BYTES, check_json_shape
from rnnattn.safeio import append_bytes, atomic_write_bytes, printable, read_regular
from rnnattn.sweeps.executors import Executor, LocalExecutor, Outcome, RunFn, default_workers
from rnnattn.sweeps.spec import Run, SweepSpec, canonical_json, function_ref

ON_ERROR = ("raise", "continue")
_META = ("run_id", "index", "status", "elapsed_s", "worker", "error")


class SweepError(RuntimeError):
    """A run of a sweep failed (``on_error="raise"``). ``outcome`` holds the failed run and its worker
    traceback."""

    def __init__(self, message: str, outcome: Outcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


# -- the results file
# -------------------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    """JSON-safe copy of a result value: tensors/arrays become lists, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if hasattr(value, "tolist"):  # numpy/torch scalars and arrays
        return _encode(value.tolist())
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def outcome_record(outcome: Outcome, sweep: str, fn_ref: str) -> dict[str, Any]:
    """The JSON object stored for one finished run."""
    return {
        "run_id": outcome.run.run_id,
        "index": outcome.run.index,
        "sweep": sweep,
        "fn": fn_ref,
        "status": "ok" if outcome.ok else "error",
        "params": outcome.run.params,
        "result": _encode(outcome.result),
        "error": outcome.error,
        "traceback": outcome.traceback,
        "elapsed_s": round(outcome.elapsed_s, 6),
        "worker": outcome.worker,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def append_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as one line with a single ``write`` + ``fsync`` (readers never see half a row unless
    the machine dies mid-write, and :func:`read_records` drops such a torn tail)."""
    line = (json.dumps(record, allow_nan=True, separators=(",", ":")) + "\n").encode()
    append_bytes(path, line, fsync=True)  # refuses a symlink or FIFO in place of the results file


def read_records(path: str | os.PathLike, repair: bool = True) -> list[dict[str, Any]]:
    """All records of a results file (empty if it does not exist; at most ``MAX_RESULTS_BYTES``, a regular file).
    Unreadable lines are skipped with a warning and left in the file. With ``repair``, a torn last line is removed
    from the file (or completed, if it parses) so later appends start on a fresh line."""
    path = Path(path)
    if not path.exists():
        return []
    data = read_regular(path, MAX_RESULTS_BYTES, "sweep results file")
    lines = data.split(b"\n")
    records, bad = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if (
                not isinstance(rec, dict)
                or not isinstance(rec.get("run_id"), str)
                or not isinstance(rec.get("params", {}), dict)
                or not isinstance(rec.get("result") or {}, dict)
            ):
                raise ValueError("not a run record")
            check_json_shape(rec, "run record")
            records.append(rec)
        except (ValueError, RecursionError):
            bad.append(i)
    torn_tail = bool(data) and not data.endswith(b"\n")
    if bad and bad != [len(lines) - 1]:
        where = printable(path)
        warnings.warn(f"{where}: skipped {len(bad)} unreadable line(s) {[b + 1 for b in bad][:5]}", stacklevel=2)
    if repair and torn_tail:
        # Only the torn tail is repaired (dropped if unreadable, else completed with its newline): any other line,
        # readable or not, stays byte for byte - a results file is never rewritten from what could be parsed.
        tail_ok = (len(lines) - 1) not in bad
        atomic_write_bytes(path, data + b"\n" if tail_ok else data[: data.rfind(b"\n") + 1], overwrite=True)
    return records


def latest_by_run(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per run id, the record that counts: the last ``ok`` one, else the last attempt."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        prev = out.get(rec["run_id"])
        if prev is None or rec.get("status") == "ok" or prev.get("status") != "ok":
            out[rec["run_id"]] = rec
    return out


def _cell(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) or value is None else canonical_json(value)


def records_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per record: run_id, index, status, every parameter, every result (a result named like a
    parameter becomes ``<name>_result``), elapsed_s, worker, error. Non-scalar values become canonical JSON strings."""
    rows = []
    for rec in records:
        row: dict[str, Any] = {
            "run_id": rec["run_id"],
            "index": rec.get("index"),
            "status": rec.get("status"),
        }
        params = rec.get("params", {})
        row.update({k: _cell(v) for k, v in params.items()})
        for k, v in (rec.get("result") or {}).items():
            row[f"{k}_result" if k in row or k in _META else k] = _cell(v)
        row.update(elapsed_s=rec.get("elapsed_s"), worker=rec.get("worker"), error=rec.get("error") or "")
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values("index", kind="stable").reset_index(drop=True)
    return df


def load_results(path: str | os.PathLike, spec: SweepSpec | None = None) -> pd.DataFrame:
    """The results table of a (possibly unfinished) sweep; with ``spec``, only that spec's runs."""
    latest = latest_by_run(read_records(path, repair=False))
    if spec is not None:
        ids = {r.run_id: r.index for r in spec.runs()}
        latest = {k: {**v, "index": ids[k]} for k, v in latest.items() if k in ids}
    return records_table(list(latest.values()))


# -- running
# ----------------------------------------------------------------------------------------------------------
def default_results_path(spec: SweepSpec) -> Path:
    return Path("sweeps") / spec.name / "results.jsonl"


def run_sweep(
    fn: RunFn | None,
    spec: SweepSpec,
    executor: Executor | None = None,
    results_path: str | os.PathLike | None = None,
    progress: bool = True,
    on_error: str = "raise",
    csv_path: str | os.PathLike | None | bool = None,
    callback: Callable[[Outcome], None] | None = None,
    trusted_modules: tuple[str, ...] | list[str] = (),
) -> pd.DataFrame:
    """Run every run of ``spec`` not already finished in ``results_path``, streaming results back as they
    complete.

    Args:
        fn: the run function ``fn(params: dict) -> dict`` (module-level, so workers can import it); ``None`` uses
            ``spec.fn``.
        spec: the sweep.
        executor: where runs execute; default a :class:`LocalExecutor` with one worker per core (at most one per
            remaining run), created and closed here. An executor you pass stays open.
        results_path: the JSON Lines results file (default ``sweeps/<name>/results.jsonl``); created if missing. Runs it
            records as ``ok`` are skipped, so rerunning an interrupted sweep resumes it.
        progress: show a tqdm progress bar.
        on_error: ``"raise"``: on the first failed run, cancel runs not yet started, record those still running as they
            finish, then raise :class:`SweepError`; ``"continue"``: record failures and go on (they appear with
            ``status == "error"`` and are retried by the next call).
        csv_path: where to write the final table as CSV (default: ``results_path`` with ``.csv``; ``False``:
        none).
        callback: called with each :class:`Outcome` in the main process as it arrives (live plots, logging).
        trusted_modules: modules besides ``rnnattn`` whose functions ``spec.fn`` may name when ``fn`` is None
            (a spec read from a file must not make rnnattn import arbitrary code).

    Returns:
        The table of this spec's runs (those finished before and now), sorted by grid position: ``run_id``,
        ``index``, ``status``, the parameters, the results, ``elapsed_s``, ``worker``, ``error``.
    """
    fn, fn_ref, results_path = _prepare_sweep(fn, spec, results_path, on_error, trusted_modules)
    runs = spec.runs()
    latest = _previous_records(results_path, runs, fn_ref)
    done = {k for k, v in latest.items() if v.get("status") == "ok"}
    todo = [r for r in runs if r.run_id not in done]

    failure: Outcome | None = None
    if todo:
        n_done = len(runs) - len(todo)
        failure = _run_pending(
            fn, fn_ref, spec, todo, n_done, executor, results_path, latest, progress, on_error, callback
        )

    table = records_table([{**latest[r.run_id], "index": r.index} for r in runs if r.run_id in latest])
    if csv_path is not False:
        csv = Path(csv_path) if csv_path else results_path.with_suffix(".csv")
        atomic_write_bytes(csv, table.to_csv(index=False).encode(), overwrite=True)
    if failure is not None:
        raise _sweep_error(failure, latest, len(runs), results_path)
    return table


def _prepare_sweep(
    fn: RunFn | None,
    spec: SweepSpec,
    results_path: str | os.PathLike | None,
    on_error: str,
    trusted_modules: tuple[str, ...] | list[str],
) -> tuple[RunFn, str, Path]:
    """:func:`run_sweep`'s checked arguments: ``(run function, its reference, results path)``; the results
    file's folder is created."""
    if on_error not in ON_ERROR:
        raise ValueError(f"run_sweep: on_error must be one of {ON_ERROR}, got {on_error!r}")
    if not isinstance(spec, SweepSpec):
        raise TypeError(f"run_sweep: spec must be a SweepSpec, got {type(spec).__name__}")
    fn = spec.resolve_fn(trusted_modules) if fn is None else fn
    fn_ref = function_ref(fn)
    results_path = Path(results_path) if results_path is not None else default_results_path(spec)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    return fn, fn_ref, results_path


def _previous_records(results_path: Path, runs: list[Run], fn_ref: str) -> dict[str, dict[str, Any]]:
    """Per run id of ``runs``, the record already in ``results_path`` that counts (:func:`latest_by_run`).
    Raises ValueError if its finished runs were made by another function than ``fn_ref`` (resuming would mix
    two functions' results in one table)."""
    ids = {r.run_id for r in runs}
    latest = {k: v for k, v in latest_by_run(read_records(results_path)).items() if k in ids}
    done = {k for k, v in latest.items() if v.get("status") == "ok"}
    other_fn = sorted({v.get("fn") for k, v in latest.items() if k in done} - {fn_ref})
    if other_fn:
        raise ValueError(
            f"{results_path} holds results of {other_fn[0]}, not {fn_ref}: use another results path for a new function"
        )
    return latest


def _run_pending(
    fn,
    fn_ref,
    spec,
    todo: list[Run],
    n_done: int,
    executor: Executor | None,
    results_path: Path,
    latest: dict,
    progress: bool,
    on_error: str,
    callback,
) -> Outcome | None:
    """:func:`_stream` ``todo`` on ``executor``, or on a :class:`LocalExecutor` created (one worker per core, at
    most one per run) and closed here when ``executor`` is None; returns the failure that stops the sweep."""
    own = executor is None
    if own:
        executor = LocalExecutor(min(default_workers(), len(todo)))
    try:
        return _stream(fn, fn_ref, spec, todo, n_done, executor, results_path, latest, progress, on_error, callback)
    finally:
        if own:
            executor.close()


def _sweep_error(failure: Outcome, latest: dict, n_runs: int, results_path: Path) -> SweepError:
    """The :class:`SweepError` raised for ``failure`` (``on_error="raise"``), saying how far the sweep got."""
    n_ok = sum(1 for v in latest.values() if v.get("status") == "ok")
    return SweepError(
        f"run {failure.run.run_id} failed: {failure.error} (worker {failure.worker or '?'}; "
        f"{n_ok}/{n_runs} "
        f"runs done in {results_path}; rerun to resume)",
        failure,
    )


def _stream(
    fn,
    fn_ref,
    spec,
    todo: list[Run],
    n_done: int,
    executor: Executor,
    results_path: Path,
    latest: dict,
    progress: bool,
    on_error: str,
    callback,
) -> Outcome | None:
    from tqdm.auto import tqdm

    failure: Outcome | None = None
    n_failed = 0
    bar = tqdm(
        total=n_done + len(todo),
        initial=n_done,
        disable=not progress,
        unit="run",
        desc=f"{spec.name} [{executor.kind}]",
        dynamic_ncols=True,
    )
    batch = executor.submit(fn, todo)
    try:
        for outcome in batch:
            rec = outcome_record(outcome, spec.name, fn_ref)
            append_record(results_path, rec)
            prev = latest.get(rec["run_id"])
            if outcome.ok or prev is None or prev.get("status") != "ok":
                latest[rec["run_id"]] = rec
            if callback is not None:
                callback(outcome)
            bar.update(1)
            if not outcome.ok:
                n_failed += 1
                bar.set_postfix(failed=n_failed, refresh=False)
                if on_error == "raise" and failure is None:
                    failure = outcome
                    batch.cancel()
            else:
                loss = outcome.result.get("loss")
                if isinstance(loss, float) and math.isfinite(loss):
                    bar.set_postfix(last=outcome.run.run_id.split("#")[0], loss=f"{loss:.3g}", refresh=False)
    except BaseException:
        batch.cancel()
        raise
    finally:
        bar.close()
    return failure
