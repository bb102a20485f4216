"""``rnnattn info``: run as a real subprocess (``python -m rnnattn``) on good and bad checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import rnnattn
from rnnattn.cli.main import main
from rnnattn.models import (
    GatedLinearRNN,
    GatedLinearRNNConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
)

LAMBDAS = [1.0, 0.999, 0.995, 0.5, 0.005, 0.0]  # 3 above 0.99, 2 below 0.01


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "rnnattn", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = GatedLinearRNN(GatedLinearRNNConfig(4, 6, 5, 4))
    with torch.no_grad():
        model.nu.copy_(torch.log(-torch.log(torch.tensor(LAMBDAS))))
    teacher = LinearSelfAttention(LinearSelfAttentionConfig(4))
    path = tmp_path_factory.mktemp("ckpt") / "student.safetensors"
    rnnattn.save(
        model,
        path,
        extras={"teacher": teacher},
        task="teacher_student",
        seed=7,
        provenance={"steps": 1000, "lr": 1e-3},
    )
    return path, model


def assert_one_line_failure(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rnnattn: error: ")
    return lines[0]


def test_info_text(checkpoint):
    path, model = checkpoint
    proc = run_cli("info", str(path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "GatedLinearRNN" in out
    assert f"{model.n_parameters():,} parameters" in out
    assert "n_hidden=6" in out and "n_gating=5" in out and "d_input=4" in out
    assert "6 neurons, 3 with lambda>0.99, 2 with lambda<0.01" in out
    assert "meta         task = teacher_student" in out and "seed = 7" in out and '"steps": 1000' in out
    assert "teacher: LinearSelfAttention" in out
    assert f"rnnattn {rnnattn.__version__}" in out


def test_info_json(checkpoint):
    path, model = checkpoint
    proc = run_cli("info", str(path), "--json", "--hi", "0.9", "--lo", "0.1")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["class"] == "GatedLinearRNN" and d["parameters"] == model.n_parameters()
    assert d["config"] == model.config.to_dict()
    (decay,) = d["decays"]
    assert decay["n"] == 6 and decay["lambda>0.9"] == 3 and decay["lambda<0.1"] == 2
    assert d["metadata"] == {"task": "teacher_student", "seed": 7, "provenance": {"steps": 1000, "lr": 1e-3}}
    assert d["extras"]["teacher"]["class"] == "LinearSelfAttention"


@pytest.mark.parametrize("kind", ["truncated", "pickle"])
def test_info_on_bad_files_is_one_line_and_nonzero(checkpoint, tmp_path, kind):
    path, _ = checkpoint
    bad = tmp_path / "bad.safetensors"
    marker = tmp_path / "MARKER"
    if kind == "truncated":
        bad.write_bytes(path.read_bytes()[:100])
    elif kind == "pickle":

        class Evil:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        torch.save({"x": Evil()}, bad)
    line = assert_one_line_failure(run_cli("info", str(bad)))
    assert str(bad) in line
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "directory", "unknown_class"])
def test_info_errors_in_process(checkpoint, tmp_path, capsys, kind):
    # the same contract through main() directly, for more kinds of bad file (cheaper than a subprocess each)
    path, _ = checkpoint
    bad = tmp_path / "bad.safetensors"
    if kind == "missing":
        pass
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "garbage":
        bad.write_bytes(b"\x07" * 300)
    elif kind == "directory":
        bad = tmp_path
    else:
        data = path.read_bytes().replace(
            b'\\"class\\": \\"GatedLinearRNN\\"', b'\\"class\\": \\"GatedLinearRNX\\"'
        )
        assert data != path.read_bytes()
        bad.write_bytes(data)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("rnnattn: error: ") and "Traceback" not in err


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["info", "--hi"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
