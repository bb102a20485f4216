import json

import pandas as pd
import sweep_runfns as fns

from rnnattn.cli.main import main

TRUST = ["--trust-module", "sweep_runfns"]  # the test's own run functions live outside rnnattn


def write_spec(tmp_path, log, **extra):
    spec = {
        "name": "demo",
        "fn": "sweep_runfns:counted",
        "grid": {"x": [1, 2, 3]},
        "seeds": [0],
        "base": {"log": str(log)},
        **extra,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def test_sweep_command_runs_and_resumes(tmp_path, capsys):
    log = tmp_path / "calls.txt"
    spec = write_spec(tmp_path, log)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), *TRUST, "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out / "results.csv")
    assert list(table["y"]) == [1, 4, 9] and (out / "results.jsonl").exists() and (out / "spec.json").exists()
    assert "3/3 runs ok" in capsys.readouterr().out
    assert main(["sweep", str(spec), *TRUST, "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    assert len(fns.calls(log)) == 3  # nothing redone
    assert main(["sweep", str(spec), *TRUST, "--out", str(out), "--dry-run"]) == 0
    assert "3/3 runs done" in capsys.readouterr().out


def test_sweep_command_failure_is_one_line(tmp_path, capsys):
    log = tmp_path / "calls.txt"
    (tmp_path / "calls.txt.fail").write_text("2")
    spec = write_spec(tmp_path, log)
    assert main(["sweep", str(spec), *TRUST, "--workers", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x=2" in err[0] and "boom at x=2" in err[0] and "rerun to resume" in err[0]
    assert (
        main(
            [
                "sweep",
                str(spec),
                *TRUST,
                "--workers",
                "1",
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
                "--continue-on-error",
            ]
        )
        == 1
    )  # finishes the rest, reports the failure in the table


def test_sweep_command_bad_input(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "missing.json")]) == 2
    assert "no such sweep specification" in capsys.readouterr().err
    spec = write_spec(tmp_path, tmp_path / "log", fn="rnnattn.no_such_module_xyz:f")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "not a registered rnnattn run function" in capsys.readouterr().err
    spec = write_spec(tmp_path, tmp_path / "log")
    assert main(["sweep", str(spec), "--workers", "0"]) == 2
    assert main(["sweep", str(spec), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert (
        main(
            [
                "sweep",
                str(spec),
                *TRUST,
                "--scheduler",
                "tcp://127.0.0.1:1",
                "--connect-timeout",
                "0.5",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def test_spec_naming_code_outside_rnnattn_is_refused_without_trust(tmp_path, capsys):
    log = tmp_path / "calls.txt"
    spec = write_spec(tmp_path, log)
    assert main(["sweep", str(spec), "--workers", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "--trust-module sweep_runfns" in capsys.readouterr().err
    assert not log.exists()  # the function never ran
