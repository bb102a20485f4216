import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import sweep_runfns as fns

from rnnattn.sweeps import SerialExecutor, SweepError, SweepSpec, load_results, read_records, run_sweep

HERE = Path(__file__).parent


def spec_for(log, xs=(0, 1, 2, 3, 4, 5), seeds=(0,), **base):
    return SweepSpec(
        name="t",
        fn="sweep_runfns:counted",
        grid={"x": tuple(xs)},
        seeds=seeds,
        base={"log": str(log), **base},
    )


def test_serial_sweep_table_and_files(tmp_path):
    log = tmp_path / "calls.txt"
    spec = spec_for(log, xs=(3, 1), seeds=(0, 2))
    df = run_sweep(fns.counted, spec, SerialExecutor(), results_path=tmp_path / "r.jsonl", progress=False)
    assert list(df["x"]) == [3, 3, 1, 1] and list(df["seed"]) == [0, 2, 0, 2]
    assert list(df["y"]) == [9, 11, 1, 3]
    assert (df["status"] == "ok").all() and list(df["run_id"]) == [r.run_id for r in spec.runs()]
    assert df["vec"].iloc[0] == "[3,0.5]"  # non-scalar results become canonical JSON cells
    csv = pd.read_csv(tmp_path / "r.csv")
    assert list(csv["y"]) == [9, 11, 1, 3]
    recs = read_records(tmp_path / "r.jsonl")
    assert len(recs) == 4 and {r["fn"] for r in recs} == {"sweep_runfns:counted"}
    pd.testing.assert_frame_equal(load_results(tmp_path / "r.jsonl", spec), df)


def test_failure_then_resume_redoes_only_unfinished_runs(tmp_path):
    log = tmp_path / "calls.txt"
    Path(str(log) + ".fail").write_text("3")
    spec = spec_for(log)
    results = tmp_path / "r.jsonl"
    with pytest.raises(SweepError, match=r"run x=3,seed=0#\w+ failed: RuntimeError: boom at x=3") as info:
        run_sweep(fns.counted, spec, SerialExecutor(), results_path=results, progress=False)
    assert "boom" in info.value.outcome.traceback
    assert fns.calls(log) == ["0,0", "1,0", "2,0", "3,0"]  # serial: nothing after the failure started
    statuses = [r["status"] for r in read_records(results)]
    assert statuses == ["ok", "ok", "ok", "error"]

    Path(str(log) + ".fail").unlink()
    df = run_sweep(fns.counted, spec, SerialExecutor(), results_path=results, progress=False)
    assert fns.calls(log)[4:] == ["3,0", "4,0", "5,0"]  # finished runs were not redone, the failed one was
    assert list(df["y"]) == [0, 1, 4, 9, 16, 25] and (df["status"] == "ok").all()

    # A third call has nothing to do, and a bigger grid only runs its new points.
    run_sweep(fns.counted, spec, SerialExecutor(), results_path=results, progress=False)
    bigger = spec_for(log, xs=(0, 1, 2, 3, 4, 5, 6))
    df2 = run_sweep(fns.counted, bigger, SerialExecutor(), results_path=results, progress=False)
    assert fns.calls(log)[7:] == ["6,0"] and len(df2) == 7


def test_on_error_continue_records_failures(tmp_path):
    log = tmp_path / "calls.txt"
    Path(str(log) + ".fail").write_text("1 4")
    df = run_sweep(
        fns.counted,
        spec_for(log),
        SerialExecutor(),
        results_path=tmp_path / "r.jsonl",
        progress=False,
        on_error="continue",
    )
    assert list(df["status"]) == ["ok", "error", "ok", "ok", "error", "ok"]
    assert df.loc[1, "error"] == "RuntimeError: boom at x=1"


def test_results_of_another_function_are_not_reused(tmp_path):
    log = tmp_path / "calls.txt"
    spec = spec_for(log, xs=(1,))
    run_sweep(fns.counted, spec, SerialExecutor(), results_path=tmp_path / "r.jsonl", progress=False)
    with pytest.raises(ValueError, match="holds results of sweep_runfns:counted"):
        run_sweep(fns.tiny_train, spec, SerialExecutor(), results_path=tmp_path / "r.jsonl", progress=False)


def test_torn_last_line_is_dropped_and_repaired(tmp_path):
    log = tmp_path / "calls.txt"
    spec = spec_for(log, xs=(0, 1, 2))
    results = tmp_path / "r.jsonl"
    run_sweep(fns.counted, spec, SerialExecutor(), results_path=results, progress=False)
    lines = results.read_bytes().split(b"\n")
    results.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][:25])  # the machine died writing row 3
    df = run_sweep(fns.counted, spec, SerialExecutor(), results_path=results, progress=False)
    assert fns.calls(log)[3:] == ["2,0"] and list(df["y"]) == [0, 1, 4]
    assert all(json.loads(line) for line in results.read_text().splitlines())


def test_non_dict_result_and_bad_arguments(tmp_path):
    spec = SweepSpec(name="t", fn="json:dumps", grid={"x": (1,)})
    with pytest.raises(SweepError, match="must return a dict"):
        run_sweep(lambda p: 3, spec, SerialExecutor(), results_path=tmp_path / "r.jsonl", progress=False)
    with pytest.raises(ValueError, match="on_error"):
        run_sweep(fns.counted, spec, SerialExecutor(), results_path=tmp_path / "r.jsonl", on_error="ignore")


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    """SIGKILL a sweep process mid-way (no cleanup at all), then resume here and count the calls."""
    log = tmp_path / "calls.txt"
    results = tmp_path / "r.jsonl"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(HERE)!r})
        import sweep_runfns as fns
        from rnnattn.sweeps import SerialExecutor, SweepSpec, run_sweep
        spec = SweepSpec(name="t", fn="sweep_runfns:counted", grid={{"x": tuple(range(6))}},
                         base={{"log": {str(log)!r}, "sleep": 0.4}})
        run_sweep(fns.counted, spec, SerialExecutor(), results_path={str(results)!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 40
        while len(read_records(results, repair=False)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep process did not make progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    n_done = len(read_records(results))
    n_calls = len(fns.calls(log))
    assert 2 <= n_done < 6 and n_calls in (n_done, n_done + 1)  # at most the in-flight run is lost
    spec = SweepSpec(
        name="t", fn="sweep_runfns:counted", grid={"x": tuple(range(6))}, base={"log": str(log), "sleep": 0.4}
    )
    df = run_sweep(fns.counted, spec, SerialExecutor(), results_path=results, progress=False)
    assert len(fns.calls(log)) - n_calls == 6 - n_done
    assert list(df["y"]) == [x * x for x in range(6)]
