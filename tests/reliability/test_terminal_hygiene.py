"""Clear errors and terminal hygiene (issue 12): names and paths from files or the command line are escaped before
they are printed (control characters, ESC, newlines, lone surrogates from undecodable file names), ``info --json``
is strict JSON, and none of it ever ends in a traceback. Every case runs under time and memory caps."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from _reliability_tools import (
    REPORT_MEMORY_MB,
    assemble,
    assert_clean_error,
    cli_capped,
    cli_subprocess_capped,
    small_models,
    split,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnattn
from rnnattn.safeio import printable

SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck))
EVIL = "a\nb\x1b[2J\x1b]0;owned\x07\rc\u202ed\x00"


def _raw_free(text: str) -> None:
    """No character that can move the cursor, start an escape sequence or fail to encode."""
    assert not any(c in text for c in "\x1b\r\x07\x00\u202e\x9b"), repr(text)
    text.encode("utf-8")


@settings(max_examples=300, **SETTINGS)
@given(text=st.text() | st.binary().map(os.fsdecode))
def test_printable_is_one_encodable_line(text):
    out = printable(text)
    assert "\n" not in out and out.isprintable()
    _raw_free(out)
    assert printable(text, 20) == out if len(out) <= 20 else len(printable(text, 20)) == 20


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    model = small_models()["glrnn"][0]
    return rnnattn.save(model, tmp_path_factory.mktemp("ck") / "m.safetensors")


_NAME = st.binary(min_size=1, max_size=24).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


@settings(max_examples=30, **SETTINGS)
@given(name=_NAME, exists=st.booleans())
def test_any_file_name_is_escaped_by_info(ckpt, tmp_path_factory, name, exists):
    """Any file name (bytes, so also non-UTF-8 ones): ``info`` on the missing file is one clean line; on a copy of
    a checkpoint, every line of its output is escaped."""
    folder = tmp_path_factory.mktemp("names")
    path = Path(os.fsdecode(os.fsencode(str(folder)) + b"/" + name))
    if exists:
        shutil.copyfile(ckpt, path)
    rc, out, err = cli_capped(["info", str(path)], "file names")
    _raw_free(out + err)
    if exists:
        assert rc == 0 and out.splitlines()[0].startswith("checkpoint   "), err
    else:
        assert_clean_error(rc, err)


def test_checkpoint_error_with_newline_and_esc_in_name_is_one_line(tmp_path):
    bad = tmp_path / f"x{EVIL.replace(chr(0), '')}.safetensors"  # NUL is the one byte a file name cannot hold
    bad.write_bytes(b"not a checkpoint at all")
    for argv in (["info", str(bad)], ["info", "--json", str(bad)]):
        rc, out, err = cli_capped(argv, "escaped errors")
        assert_clean_error(rc, err, argv)
        _raw_free(err)
        assert "owned" in err  # escaped, not dropped


def test_real_process_with_undecodable_file_name(ckpt, tmp_path):
    """What a user's terminal gets from a non-UTF-8 file name (the review's UnicodeEncodeError)."""
    path = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9\x1b.safetensors"))
    shutil.copyfile(ckpt, path)
    r = cli_subprocess_capped(["info", str(path)], timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    _raw_free(r.stdout)
    assert "\\udce9" in r.stdout and "\\x1b" in r.stdout


def test_info_json_is_strict_json(ckpt, tmp_path):
    header, info, data = split(ckpt.read_bytes())
    meta = {"nan": float("nan"), "inf": float("inf"), "ninf": -math.inf, "list": [1.0, float("nan")], EVIL: EVIL}
    text = json.dumps(dict(info, metadata=meta), allow_nan=True)
    p = tmp_path / "nan.safetensors"
    p.write_bytes(assemble(header, None, data, info_text=text))

    def strict(c):
        raise AssertionError(f"non-JSON constant {c}")

    rc, out, err = cli_capped(["info", "--json", str(p)], "info json")
    assert rc == 0, err
    d = json.loads(out, parse_constant=strict)
    assert d["metadata"]["nan"] == "NaN" and d["metadata"]["inf"] == "Infinity" and d["metadata"]["ninf"] == "-Infinity"
    assert d["metadata"]["list"] == [1.0, "NaN"] and d["metadata"][EVIL] == EVIL
    _raw_free(out)
    rc, out, err = cli_capped(["info", str(p)], "info json")
    assert rc == 0 and "owned" in out
    _raw_free(out)


def test_resume_error_escapes_the_task_name_from_the_state(tmp_path):
    from safetensors.torch import save_file

    run = tmp_path / "run"
    run.mkdir()
    rnnattn.save(small_models()["glrnn"][0], run / "model.safetensors")
    info = {"format": 1, "step": 1, "polish_round": 0, "config": {}, "task": {"name": EVIL}, "engine": "fast",
            "wall_time": 1.0}
    save_file({}, str(run / "state.safetensors"), metadata={"rnnattn_train_state": json.dumps(info)})
    rc, out, err = cli_capped(["train", "teacher-student", "--out", str(run), "--resume", "--no-progress"], "resume")
    assert_clean_error(rc, err)
    _raw_free(err)
    assert "owned" in err


def test_sweep_output_escapes_grid_values(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "s", "fn": "rnnattn.sweeps.runs:train_run", "grid": {EVIL: [EVIL, 2]}}))
    rc, out, err = cli_capped(["sweep", str(spec), "--dry-run", "--out", str(tmp_path / "o")], "sweep escapes")
    assert rc == 0, err
    _raw_free(out + err)
    assert out.count("todo") == 2
    # a spec name with control characters is refused, and the refusal is escaped
    spec.write_text(json.dumps({"name": EVIL, "fn": "rnnattn.sweeps.runs:train_run"}))
    rc, out, err = cli_capped(["sweep", str(spec), "--dry-run", "--out", str(tmp_path / "o")], "sweep escapes")
    assert_clean_error(rc, err)
    _raw_free(err)


def test_report_on_an_undecodable_file_name(ckpt, tmp_path):
    """The review's case: a non-UTF-8 file name made the report fail with UnicodeEncodeError after the analysis."""
    path = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9\x1b[31m.safetensors"))
    shutil.copyfile(ckpt, path)
    out = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xff\x1b"))
    argv = ["report", str(path), "-o", str(out), "--format", "html"]
    rc, stdout, err = cli_capped(argv, "report names", seconds=300, extra_mb=REPORT_MEMORY_MB)
    assert rc == 0, err
    _raw_free(stdout + err)
    html = next(out.rglob("report.html")).read_text(encoding="utf-8")
    assert "\x1b" not in html
