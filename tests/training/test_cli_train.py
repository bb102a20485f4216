"""``rnnattn train``: options, errors, resume, and Ctrl-C in a real subprocess."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rnnattn import load_checkpoint
from rnnattn.cli.main import main

SMALL = ["--hidden", "6", "--gating", "6", "--no-progress", "--val-samples", "64", "--log-every", "5"]


def test_unknown_option_is_one_line_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "teacher-student", "--out", "x", "--bogus", "1"])
    assert e.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnattn: error:") and "--bogus" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["train", "nope"])


def test_train_then_resume_then_refuse(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "teacher-student",
        "--out",
        str(out),
        "--steps",
        "10",
        "--seq-len",
        "6",
        "--d",
        "3",
        "--teacher-seed",
        "4",
        "--nu-lr-mult",
        "10",
        "--seed",
        "3",
        *SMALL,
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 10
    ck = load_checkpoint(out / "model.safetensors")
    assert ck.metadata["task"]["d"] == 3 and ck.metadata["task"]["teacher_seed"] == 4
    assert ck.metadata["training"]["config"]["recurrence_lr_mult"] == 10 and ck.model.config.n_hidden == 6
    assert main(args) == 2  # refuses to overwrite another run
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "teacher-student", "--out", str(out), "--resume", "--steps", "20"]) == 2
    assert "drop --steps" in capsys.readouterr().err
    assert main(["train", "icl-regression", "--out", str(out), "--resume"]) == 2
    assert main(["train", "teacher-student", "--out", str(out), "--resume", "--no-progress"]) == 0


def test_icl_protocol_options(tmp_path, capsys):
    out = tmp_path / "icl"
    assert (
        main(
            [
                "train",
                "icl-regression",
                "--out",
                str(out),
                "--protocol",
                "fast",
                "--steps",
                "5",
                "--n-context",
                "4",
                "--engine",
                "autograd",
                *SMALL,
            ]
        )
        == 0
    )
    md = load_checkpoint(out / "model.safetensors").metadata
    assert md["reference"] == "one_step_gd" and md["training"]["protocol"] == "fast"
    assert md["training"]["engine"] == "autograd" and md["task"]["n_context"] == 4
    assert (
        main(
            [
                "train",
                "icl-regression",
                "--out",
                str(tmp_path / "b"),
                "--steps",
                "5",
                "--device",
                "cuda:7",
                *SMALL,
            ]
        )
        == 2
        or __import__("torch").cuda.is_available()
    )


def test_sigint_saves_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "rnnattn",
        "train",
        "teacher-student",
        "--out",
        str(out),
        "--steps",
        "1000000",
        "--val-every",
        "0",
        *SMALL,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 150
        log = out / "log.csv"
        while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 3):
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc in (0, 130), proc.stderr.read().decode()
    ck = load_checkpoint(out / "model.safetensors")
    step = ck.metadata["training"]["step"]
    assert 0 < step < 1_000_000 and not ck.metadata["training"]["completed"]
    assert (out / "state.safetensors").exists()
