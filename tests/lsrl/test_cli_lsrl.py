"""``rnnattn lsrl compile`` / ``run`` and ``rnnattn info`` on compiled checkpoints, as subprocesses (issue 15)."""

import json
import os
import subprocess
import sys
from fractions import Fraction

import pytest

from rnnattn.lsrl import Input, LinState, Program, token_program

PROMPT = "1 2 3 1 2 3 7 8 9 3 2 1 4 5 6"  # query 1 2 3, then (1 2 3 -> 7 8 9), (3 2 1 -> 4 5 6)


def cli(*args, cwd, ok=True):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "rnnattn", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 2 and r.stderr.startswith("rnnattn: error:") and r.stderr.count("\n") == 1, r.stderr
        assert "Traceback" not in r.stderr
    return r


def inproc(*args, cwd, capsys, ok=True):
    """The same command in this process (``rnnattn.cli.main.main``): subprocesses cost ~5 s each on CI."""
    from rnnattn.cli.main import main

    old = os.getcwd()
    os.chdir(cwd)
    try:
        rc = main(list(args))
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    if ok:
        assert rc == 0, err
    else:
        assert rc == 2 and err.startswith("rnnattn: error:") and err.count("\n") == 1, err
    return out, err


def test_builtin_token_exact_compile_run_info(tmp_path, capsys):
    """Fresh processes for compile / run / a bad file (the installed entry point); info in-process."""
    cli(
        "lsrl",
        "compile",
        "--builtin",
        "token",
        "--n",
        "3",
        "--variant",
        "direct",
        "--mode",
        "exact",
        "-o",
        "tok.safetensors",
        "--save-program",
        "tok.json",
        cwd=tmp_path,
    )
    out = cli("lsrl", "run", "tok.safetensors", "--tokens", PROMPT, "--last", "3", cwd=tmp_path).stdout
    assert out.splitlines()[1:] == ["12: 7", "13: 8", "14: 9"]  # exact integers, no rounding
    cli("lsrl", "compile", "tok.safetensors", "-o", "again.safetensors", cwd=tmp_path, ok=False)  # not JSON
    info = inproc("info", "tok.safetensors", cwd=tmp_path, capsys=capsys)[0]
    assert "lsrl         program: token_n3_direct" in info and "mode: exact" in info and "state 50" in info
    d = json.loads(inproc("info", "tok.safetensors", "--json", cwd=tmp_path, capsys=capsys)[0])
    assert d["lsrl"]["mode"] == "exact" and d["lsrl"]["stats"]["state_dim"] < 5111  # reference: 5,111


@pytest.mark.parametrize("target", ["linear", "gru"])
def test_program_json_float64_targets(tmp_path, target, capsys):
    (tmp_path / "p.json").write_text(token_program(2, "multiplicative").to_json())
    inproc("lsrl", "compile", "p.json", "-o", "m.safetensors", "--target", target, cwd=tmp_path, capsys=capsys)
    out = inproc("lsrl", "run", "m.safetensors", "--tokens", "5 6 5 6 1 2 6 5 3 4", cwd=tmp_path, capsys=capsys)[0]
    last = [float(line.split(": ")[1]) for line in out.splitlines()[-2:]]
    assert [round(v) for v in last] == [1, 2] and all(abs(v - round(v)) < 1e-6 for v in last)


def test_continuous_builtin_and_multi_width_tokens(tmp_path, capsys):
    inproc(
        "lsrl",
        "compile",
        "--builtin",
        "continuous",
        "--d-in",
        "2",
        "--variant",
        "direct",
        "--mode",
        "exact",
        "-o",
        "c.safetensors",
        cwd=tmp_path,
        capsys=capsys,
    )
    rows = "0.3 0.6 0 0; 1/2 0 0 1; 1/2 0 1/2 2; 1/2 1/2 0 3; 1/2 1/2 1/2 4"
    out = inproc("lsrl", "run", "c.safetensors", "--tokens", rows, "--last", "1", cwd=tmp_path, capsys=capsys)[0]
    assert out.splitlines()[-1] == "4: 2"  # (0.3, 0.6) lies in the cell with lower corner (0, 1/2)


def test_errors_are_one_line_and_files_are_kept(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"format": "rnnattn.lsrl.program", "version": 1, "nodes": "x"}')
    inproc("lsrl", "compile", "bad.json", "-o", "m.safetensors", cwd=tmp_path, capsys=capsys, ok=False)
    (tmp_path / "evil.json").write_text('{"sym": ["__import__", "os"]}')
    inproc("lsrl", "compile", "evil.json", "-o", "m.safetensors", cwd=tmp_path, capsys=capsys, ok=False)
    assert not (tmp_path / "m.safetensors").exists()
    x = Input(1)
    (tmp_path / "p.json").write_text(Program(LinState(x, 1, 1)).to_json())
    (tmp_path / "m.safetensors").write_bytes(b"precious")
    r = inproc("lsrl", "compile", "p.json", "-o", "m.safetensors", cwd=tmp_path, capsys=capsys, ok=False)
    assert "--force" in r[1] and (tmp_path / "m.safetensors").read_bytes() == b"precious"
    inproc("lsrl", "compile", "p.json", "-o", "m.safetensors", "--force", cwd=tmp_path, capsys=capsys)
    r = inproc("lsrl", "run", "m.safetensors", "--tokens", "1; 2; 3", cwd=tmp_path, capsys=capsys)
    assert r[0].splitlines()[1:] == ["0: 1", "1: 3", "2: 6"]
    inproc("lsrl", "run", "m.safetensors", "--tokens", "1 2; 3 4", cwd=tmp_path, capsys=capsys, ok=False)  # wrong width
    inproc("lsrl", "run", "m.safetensors", "--tokens", "1e99999999", cwd=tmp_path, capsys=capsys, ok=False)
    inproc("lsrl", "run", "m.safetensors", "--tokens", "1e400", cwd=tmp_path, capsys=capsys, ok=False)  # > float64
    inproc("lsrl", "run", "m.safetensors", "--tokens=-1e309", cwd=tmp_path, capsys=capsys, ok=False)
    inproc("lsrl", "run", "m.safetensors", "--tokens", "1", "--mode", "exact", cwd=tmp_path, capsys=capsys, ok=False)
    inproc(
        "lsrl",
        "compile",
        "--builtin",
        "token",
        "--n",
        "0",
        "-o",
        "t.safetensors",
        cwd=tmp_path,
        capsys=capsys,
        ok=False,
    )
    inproc(
        "lsrl",
        "compile",
        "--builtin",
        "token",
        "--variant",
        "nope",
        "-o",
        "t.safetensors",
        cwd=tmp_path,
        capsys=capsys,
        ok=False,
    )
    inproc("lsrl", "run", "p.json", "--tokens", "1", cwd=tmp_path, capsys=capsys, ok=False)  # not a checkpoint


def test_exact_checkpoint_recompiled_and_checked_against_its_tensors(tmp_path):
    import torch

    import rnnattn
    from rnnattn.checkpoint import load_checkpoint
    from rnnattn.lsrl.saved import load_compiled, save_compiled

    x = Input(1)
    path = save_compiled(Program(LinState(x * Fraction(1, 3), 1, 1)), tmp_path / "e.safetensors", mode="exact")
    cc = load_compiled(path)
    assert cc.compiled().run([[1], [1], [1]])[-1, 0] == 1  # 1/3 + 1/3 + 1/3 exactly
    ck = load_checkpoint(path)
    with torch.no_grad():
        ck.model.stages[0].weight.add_(1e-12)  # an edited weight: no longer the program's compilation
    bad = rnnattn.save(ck.model, tmp_path / "bad.safetensors", **ck.metadata)
    with pytest.raises(ValueError, match="differ from the program"):
        load_compiled(bad)
