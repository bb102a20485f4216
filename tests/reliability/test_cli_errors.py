"""Every CLI command, given bad input, prints one clear line on stderr and exits non-zero — no traceback (``--debug``
shows one). Covers: missing paths, directories, paths under a file, unreadable files and folders (privileges dropped
with ``seteuid``, since the suite runs as root), empty/random/pickle/truncated files, unknown options and commands,
and models a command cannot analyse."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

import pytest
import torch
from _reliability_tools import assert_clean_error, available_commands, cli, cli_subprocess, small_models

import rnnattn

NOBODY = 65534


# argv builders for every command that reads a file; ``target`` is the file (or run folder) being read.
def _info(target: Path, work: Path) -> list[str]:
    return ["info", str(target)]


def _info_json(target: Path, work: Path) -> list[str]:
    return ["info", "--json", str(target)]


def _report(target: Path, work: Path) -> list[str]:
    return ["report", str(target), "-o", str(work / "reports"), "--format", "html"]


def _report_reference(target: Path, work: Path) -> list[str]:
    return [
        "report",
        str(work / "good.safetensors"),
        "--reference",
        str(target),
        "-o",
        str(work / "reports"),
        "--format",
        "html",
    ]


def _sweep(target: Path, work: Path) -> list[str]:
    return ["sweep", str(target), "--workers", "1", "--out", str(work / "sweep"), "--no-progress"]


def _resume(target: Path, work: Path) -> list[str]:
    """``train --resume`` reads ``OUT/state.safetensors`` and ``OUT/model.safetensors``: put the bad file there."""
    return ["train", "teacher-student", "--out", str(target), "--resume", "--no-progress"]


FILE_READERS = {
    "info": [_info, _info_json],
    "report": [_report, _report_reference],
    "sweep": [_sweep],
    "train": [_resume],
}


def _readers() -> list[tuple[str, object]]:
    cmds = available_commands()
    return [(c, f) for c, fs in FILE_READERS.items() if c in cmds for f in fs]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    model, extras = small_models()["glrnn"]
    rnnattn.save(model, d / "good.safetensors", extras=extras)
    return d


def _bad_files(work: Path) -> dict[str, Path]:
    """Each bad input as a file path; for ``train --resume`` the same bytes are put at OUT/state.safetensors."""
    good = (work / "good.safetensors").read_bytes()
    files = {
        "empty": b"",
        "random": os.urandom(512),
        "truncated": good[: len(good) // 2],
        "zip (torch.save)": b"PK\x03\x04" + os.urandom(64),
        "pickle": b"\x80\x04\x95" + os.urandom(64),
        "text": b"hello\n",
        "json": b'{"name": "x"}',
    }
    out = {}
    for label, data in files.items():
        p = work / "bad" / label.replace(" ", "_").replace("(", "").replace(")", "").replace(".", "_")
        p.mkdir(parents=True, exist_ok=True)
        (p / "state.safetensors").write_bytes(data)
        (p / "model.safetensors").write_bytes(data)
        f = p / "file.safetensors"
        f.write_bytes(data)
        out[label] = p
    return out


def _target(cmd: str, case_dir: Path) -> Path:
    return case_dir if cmd == "train" else case_dir / "file.safetensors"


@pytest.mark.parametrize("cmd,build", _readers(), ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_bad_paths_give_one_line(work, cmd, build):
    file = work / "good.safetensors"
    paths = {
        "missing": work / "missing.safetensors",
        "directory": work / "a_dir",
        "under a file": file / "child.safetensors",
        "NUL byte": Path(str(work) + "/a\x00b"),
    }
    (work / "a_dir").mkdir(exist_ok=True)
    if cmd == "train":
        paths.pop("directory")  # a run folder is a directory; an empty one is the "missing state" case below
        paths["empty run folder"] = work / "a_dir"
        paths["a file as run folder"] = file
    for p in paths.values():
        argv = build(p, work)
        rc, out, err = cli(argv, "cli bad path")
        assert_clean_error(rc, err, argv)


@pytest.mark.parametrize("cmd,build", _readers(), ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_bad_files_give_one_line(work, cmd, build):
    for label, case_dir in _bad_files(work).items():
        if build is _report_reference and label != "pickle":
            continue  # each case analyses the good subject first (seconds); one kind suffices here
        argv = build(_target(cmd, case_dir), work)
        rc, out, err = cli(argv, "cli bad file")
        assert_clean_error(rc, err, argv)


@contextlib.contextmanager
def as_nobody():
    """Drop the effective uid to nobody (the suite runs as root, who may read anything), restore it after."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch the effective uid")
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.mark.parametrize("cmd,build", _readers(), ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_unreadable_files_and_folders(work, cmd, build):
    base = Path(tempfile.mkdtemp(prefix="rnnattn-perm-"))
    try:
        base.chmod(0o755)
        good = (work / "good.safetensors").read_bytes()
        locked_file_dir = base / "run_locked_file"
        locked_file_dir.mkdir(mode=0o755)
        for name in ("state.safetensors", "model.safetensors", "file.safetensors"):
            (locked_file_dir / name).write_bytes(good)
            (locked_file_dir / name).chmod(0)
        locked_dir = base / "run_locked_dir"
        locked_dir.mkdir()
        for name in ("state.safetensors", "model.safetensors", "file.safetensors"):
            (locked_dir / name).write_bytes(good)
        locked_dir.chmod(0)
        (base / "out").mkdir(mode=0o755)
        # warm up the command's lazy imports as root (site-packages lives under /root, which nobody cannot read)
        cli(build(work / "missing.safetensors", work), "cli warm-up")
        for d in (locked_file_dir, locked_dir):
            argv = build(_target(cmd, d), base / "out")
            with as_nobody():
                rc, out, err = cli(argv, "cli permission")
            assert_clean_error(rc, err, argv)
            assert "denied" in err.lower() or "permission" in err.lower() or "no such" in err.lower(), err
    finally:
        for p in base.rglob("*"):
            with contextlib.suppress(OSError):
                p.chmod(stat.S_IRWXU)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_unwritable_output_folder(work):
    """Outputs that cannot be written even by root: a folder under a regular file, and inside /proc."""
    cmds = available_commands()
    cases = []
    if "report" in cmds:
        cases += [
            [
                "report",
                str(work / "good.safetensors"),
                "-o",
                str(work / "good.safetensors" / "sub"),
                "--format",
                "html",
            ],
            [
                "report",
                str(work / "good.safetensors"),
                "-o",
                "/proc/self/rnnattn-reports",
                "--format",
                "html",
            ],
        ]
    if "train" in cmds:
        cases += [
            [
                "train",
                "teacher-student",
                "--out",
                str(work / "good.safetensors" / "run"),
                "--steps",
                "1",
                "--no-progress",
            ],
            ["train", "teacher-student", "--out", "/proc/self/rnnattn-run", "--steps", "1", "--no-progress"],
        ]
    if "sweep" in cmds:
        spec = work / "spec.json"
        spec.write_text('{"name": "s", "fn": "rnnattn.sweeps.runs:train_run", "grid": {}, "seeds": [0]}')
        cases += [["sweep", str(spec), "--workers", "1", "--out", "/proc/self/rnnattn-sweep", "--no-progress"]]
    assert cases, "no command that writes files is left to test"
    for argv in cases:
        rc, out, err = cli(argv, "cli unwritable output")
        assert_clean_error(rc, err, argv)


@pytest.mark.parametrize("cmd", sorted(available_commands()))
def test_unknown_options_and_help(cmd):
    rc, out, err = cli([cmd, "--no-such-option"], "cli usage")
    assert_clean_error(rc, err, [cmd, "--no-such-option"])
    rc, out, err = cli([cmd, "--help"], "cli usage")
    assert rc == 0 and out.strip() and "Traceback" not in err


def test_unknown_command_and_no_command():
    rc, out, err = cli(["no-such-command"], "cli usage")
    assert_clean_error(rc, err, ["no-such-command"])
    rc, out, err = cli([], "cli usage")  # prints the help (several lines) and fails: nothing was asked
    assert rc != 0 and "Traceback" not in err and "COMMAND" in err
    rc, out, err = cli(["--version"], "cli usage")
    assert rc == 0 and rnnattn.__version__ in out


def test_bad_option_values(work):
    cases = [["info", str(work / "good.safetensors"), "--hi", "abc"]]
    cmds = available_commands()
    if "report" in cmds:
        cases += [
            ["report", str(work / "good.safetensors"), "--format", "docx"],
            ["report", str(work / "good.safetensors"), "--reference", "nonsense"],
            ["report", str(work / "good.safetensors"), "-o", str(work / "good.safetensors")],
        ]
    if "train" in cmds:
        cases += [
            ["train", "no-such-task", "--out", str(work / "r")],
            ["train", "teacher-student", "--out", str(work / "r"), "--steps", "many"],
            ["train", "teacher-student", "--out", str(work / "r"), "--resume", "--steps", "5"],
        ]
    if "sweep" in cmds:
        cases += [["sweep", str(work / "good.safetensors"), "--workers", "0"]]
    for argv in cases:
        rc, out, err = cli(argv, "cli bad option")
        assert_clean_error(rc, err, argv)


def test_unsupported_models_for_the_analysis(work):
    """A command asked for an analysis that does not apply to the model says so in one line."""
    lstm, _ = small_models()["lstm"]
    p = work / "lstm.safetensors"
    if not p.exists():
        rnnattn.save(lstm, p)
    cmds = available_commands()
    cases = []
    if "report" in cmds:
        # the reference must be a linear self-attention: an LSTM (or a gated RNN) cannot be one
        cases += [
            [
                "report",
                str(work / "good.safetensors"),
                "--reference",
                str(p),
                "-o",
                str(work / "r1"),
                "--format",
                "html",
            ]
        ]
        # an LSTM subject gets a partial report (what applies, and why the rest does not) or one clean line
        argv = [
            "report",
            str(p),
            "--reference",
            str(work / "good.safetensors"),
            "-o",
            str(work / "r2"),
            "--format",
            "html",
        ]
        rc, out, err = cli(argv, "cli unsupported model")
        if rc == 0:
            report = work / "r2" / "lstm" / "report.html"
            assert report.is_file() and report.stat().st_size > 0, f"exit 0 but no report at {report}: {err!r}"
        else:
            assert_clean_error(rc, err, argv)
    if "train" in cmds:
        # resuming a run folder that holds a model the task cannot continue (not a run of this task)
        run = work / "not_a_run"
        run.mkdir(exist_ok=True)
        rnnattn.save(lstm, run / "model.safetensors", overwrite=True)
        cases.append(["train", "teacher-student", "--out", str(run), "--resume", "--no-progress"])
    for argv in cases:
        rc, out, err = cli(argv, "cli unsupported model")
        assert_clean_error(rc, err, argv)
    assert cases, "no analysis command is left to test"


def test_real_process_exit_codes_and_debug(work):
    """What a user's shell sees: exit code 2, one line, no traceback (in-process runs cover the rest)."""
    missing = str(work / "missing.safetensors")
    r = cli_subprocess(["info", missing])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("rnnattn: error: ") and "no such file" in r.stderr


def test_debug_flag_shows_traceback_in_process(work):
    rc, out, err = cli(["info", "--debug", str(work / "missing.safetensors")], "cli debug")
    assert rc == 2 and "Traceback" in err and "CheckpointError" in err
    rc, out, err = cli(["--debug", "info", str(work / "missing.safetensors")], "cli debug")
    assert rc == 2 and "Traceback" in err


@pytest.mark.slow
def test_stdout_closed_early_is_not_a_traceback(work):
    """``rnnattn info X | head -1``: a closed pipe is not a crash."""
    import subprocess
    import sys

    code = (
        "import sys; sys.argv = ['rnnattn', 'info', sys.argv[1]];"
        "from rnnattn.cli.main import main; raise SystemExit(main())"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code, str(work / "good.safetensors")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    p.stdout.close()  # the reader goes away before anything is printed
    err = p.stderr.read().decode()
    p.wait(timeout=300)
    assert "Traceback" not in err, err


def test_torch_threads_untouched():
    # the CLI tests run commands in this process; none may leave torch with many threads behind
    assert torch.get_num_threads() <= int(os.environ.get("RNNATTN_TEST_THREADS", "1"))


def test_every_command_the_suite_exercises_exists():
    """The cases above are built per available command: a command that disappears must fail here, not silently
    drop its cases (issue 13)."""
    from _reliability_tools import EXPECTED_COMMANDS

    assert EXPECTED_COMMANDS <= available_commands(), sorted(EXPECTED_COMMANDS - available_commands())


@pytest.mark.parametrize(
    "option",
    [["--lr", "1e30"], ["--weight-decay", "1e39"], ["--nu-lr-mult", "1e39"], ["--l1", "1e308"], ["--l1", "nan"],
     ["--l1", "-1"], ["--freeze-zeros", "0.5"]],
)
def test_training_hyperparameters_out_of_range(tmp_path, option):
    """Rates, decays and penalties that would overflow float32 in AdamW (or make no sense) are the user's error."""
    rc, out, err = cli(["train", "teacher-student", "--out", str(tmp_path / "r"), "--steps", "5", *option],
                       "cli bad hyperparameter")
    assert rc == 2
    assert_clean_error(rc, err)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_divergence_is_the_users_error_not_a_bug(tmp_path):
    """A learning rate that is allowed but too large: one line naming the divergence, exit 2, not 'internal error'."""
    rc, out, err = cli(["train", "teacher-student", "--out", str(tmp_path / "r"), "--steps", "300", "--lr", "1e5",
                        "--hidden", "4", "--gating", "4", "--val-every", "0", "--no-progress"], "cli divergence")
    assert rc == 2 and "TrainingDiverged" in err
    assert_clean_error(rc, err)
