"""Code execution and data loss (issue 12, first class): a sweep spec may name only registered run functions, its
name is never a path, nothing is written outside the sweep's folder, a grid is counted before it is expanded, and
``train --resume`` validates the whole state before touching any file. Every case runs under time and memory caps.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from _reliability_tools import assert_clean_error, capped, cli_capped
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnattn import limits
from rnnattn.sweeps import SweepSpec, registered_run_functions
from rnnattn.sweeps.spec import NAME_PATTERN, resolve_function

SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck))
TRAIN_RUN = "rnnattn.sweeps.runs:train_run"

# callables inside rnnattn that are not run functions: the CLI entry point (re-enters `rnnattn sweep` with any
# flags), a module whose import runs the CLI, stdlib functions rnnattn modules import, attribute paths
INTERNAL = [
    "rnnattn.cli.main:main",
    "rnnattn.__main__:main",
    "rnnattn.cli.cmd_sweep:run",
    "rnnattn.sweeps.runs:json.loads",
    "rnnattn.sweeps.spec:importlib.import_module",
    "rnnattn.checkpoint:os.system",
    "rnnattn.sweeps.runs:train_run.__globals__",
    "rnnattn.sweeps.runs:Path.write_text",
    "rnnattn.sweeps.runs:torch.save",
    "rnnattn.sweeps.executors:subprocess.run",
    "rnnattn:save",
    "rnnattn.checkpoint:atomic_write_bytes",
    "subprocess:run",
    "os:system",
    "builtins:exec",
]


def _spec(tmp_path: Path, name: str = "s", fn: str = TRAIN_RUN, **extra) -> Path:
    p = tmp_path / f"spec_{len(list(tmp_path.iterdir()))}.json"
    p.write_text(json.dumps({"name": name, "fn": fn, "grid": {}, "seeds": [0], **extra}))
    return p


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(root.rglob("*"))}


# -- run functions ------------------------------------------------------------------------------------------------
@settings(max_examples=60, **SETTINGS)
@given(ref=st.one_of(st.sampled_from(INTERNAL), st.from_regex(r"\A[a-z_.]{1,24}:[A-Za-z_.]{1,24}\Z")))
def test_only_registered_run_functions_resolve(ref):
    """Any reference but a registered one is refused, and resolving imports no module the reference names."""
    with capped(30):
        before = set(sys.modules)
        if ref in registered_run_functions():
            assert callable(resolve_function(ref))
            return
        with pytest.raises(ValueError, match="not a registered"):
            resolve_function(ref)
    assert set(sys.modules) - before <= {"rnnattn.sweeps.runs"}, set(sys.modules) - before


def test_registry_is_explicit():
    assert set(registered_run_functions()) == {TRAIN_RUN}


@pytest.mark.parametrize("fn", ["rnnattn.cli.main:main", "rnnattn.__main__:main", "rnnattn.cli.cmd_sweep:run"])
def test_sweep_cannot_reenter_the_cli(tmp_path, monkeypatch, fn):
    """The review's case: the CLI entry point as run function, its params turned into argv with --trust-module."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    evil = {"argv": ["sweep", "x.json", "--trust-module", "os"], "touch": str(marker)}
    spec = _spec(tmp_path, fn=fn, base=evil)
    before = set(sys.modules)
    rc, out, err = cli_capped(["sweep", str(spec), "--workers", "1", "--no-progress"], "hostile sweep spec")
    assert_clean_error(rc, err)
    assert "not a registered" in err and not marker.exists() and not (tmp_path / "sweeps").exists()
    assert "rnnattn.__main__" not in set(sys.modules) - before


# -- names and folders --------------------------------------------------------------------------------------------
@settings(max_examples=200, **SETTINGS)
@given(name=st.text(max_size=12) | st.sampled_from([".", "..", "../x", "/etc", "a/b", "a\\b", "a\x1b", "-x", "\u202e"]))
def test_any_accepted_name_is_a_plain_child_folder(name):
    try:
        spec = SweepSpec(name=name, fn=TRAIN_RUN)
    except ValueError as e:
        assert "\x1b" not in str(e) and "\n" not in str(e)
        return
    assert NAME_PATTERN.fullmatch(spec.name) and spec.name not in (".", "..")
    root = Path("sweeps").resolve()
    assert (root / spec.name).resolve().parent == root


@pytest.mark.parametrize("name", ["..", ".", "../../x", "a/../..", ""])
def test_sweep_named_dotdot_writes_nothing(tmp_path, monkeypatch, name):
    work = tmp_path / "work"
    work.mkdir()
    (work / "results.csv").write_text("my table\n")
    (work / "spec.json").write_text('{"mine": 1}')
    spec = _spec(tmp_path, name=name)
    monkeypatch.chdir(work)
    before = _snapshot(tmp_path)
    rc, out, err = cli_capped(["sweep", str(spec), "--workers", "1", "--no-progress"], "sweep names")
    assert_clean_error(rc, err)
    assert _snapshot(tmp_path) == before


def test_out_folder_with_user_files_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("precious\n")
    (mine / "notes.txt").write_text("notes\n")
    spec = _spec(tmp_path)
    before = _snapshot(tmp_path)
    for argv in (
        ["sweep", str(spec), "--out", str(mine), "--workers", "1", "--no-progress"],
        ["sweep", str(spec), "--out", str(mine / "notes.txt"), "--workers", "1", "--no-progress"],
    ):
        rc, out, err = cli_capped(argv, "sweep folders")
        assert_clean_error(rc, err, argv)
        assert _snapshot(tmp_path) == before
    # a sweep folder whose spec.json is not a spec, or whose results file is a symlink out of it
    (mine / "notes.txt").unlink()
    (mine / "results.csv").unlink()
    (mine / "spec.json").write_text('{"mine": 1}')
    rc, out, err = cli_capped(["sweep", str(spec), "--out", str(mine), "--no-progress"], "sweep folders")
    assert_clean_error(rc, err) and (mine / "spec.json").read_text() == '{"mine": 1}'
    (mine / "spec.json").unlink()
    target = tmp_path / "bashrc"
    target.write_text("mine\n")
    (mine / "results.jsonl").symlink_to(target)
    rc, out, err = cli_capped(["sweep", str(spec), "--out", str(mine), "--no-progress"], "sweep folders")
    assert_clean_error(rc, err) and target.read_text() == "mine\n"


@pytest.mark.parametrize("save_dir,ok", [("/tmp/elsewhere", False), ("../up", False), ("out/models", True)])
def test_output_paths_stay_inside_the_sweep_folder(tmp_path, monkeypatch, save_dir, ok):
    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path, base={"save_dir": save_dir})
    rc, out, err = cli_capped(["sweep", str(spec), "--out", "out", "--dry-run"], "sweep output paths")
    if ok:
        assert rc == 0, err
    else:
        assert_clean_error(rc, err)
        assert "outside the sweep's folder" in err
    grid_spec = _spec(tmp_path, grid={"save_dir": ["out/a", save_dir]})
    rc, out, err = cli_capped(["sweep", str(grid_spec), "--out", "out", "--dry-run"], "sweep output paths")
    assert (rc == 0) == ok, err


# -- grid size ----------------------------------------------------------------------------------------------------
@settings(max_examples=40, **SETTINGS)
@given(sizes=st.lists(st.integers(1, 1000), max_size=8), n_seeds=st.integers(1, 50))
def test_any_grid_is_counted_before_it_is_expanded(sizes, n_seeds):
    grid = {f"a{i}": list(range(n)) for i, n in enumerate(sizes)}
    total = n_seeds
    for n in sizes:
        total *= n
    with capped(30):
        if total > limits.MAX_SWEEP_RUNS:
            with pytest.raises(limits.ResourceLimitError, match="MAX_SWEEP_RUNS"):
                SweepSpec(name="g", fn=TRAIN_RUN, grid=grid, seeds=tuple(range(n_seeds)))
        else:
            assert len(SweepSpec(name="g", fn=TRAIN_RUN, grid=grid, seeds=tuple(range(n_seeds)))) == total


def test_trillion_run_grid_from_the_cli(tmp_path):
    spec = _spec(tmp_path, grid={f"a{i}": list(range(10)) for i in range(12)})
    rc, out, err = cli_capped(["sweep", str(spec), "--dry-run", "--out", str(tmp_path / "o")], "grid bomb")
    assert_clean_error(rc, err)
    assert "MAX_SWEEP_RUNS" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "text",
    ["[" * 5000 + "]" * 5000, '{"name": "s", "fn": "x:y", "base": ' + "[" * 100 + "]" * 100 + "}", "[]", "1", "\xff"],
)
def test_hostile_spec_files(tmp_path, text):
    p = tmp_path / "spec.json"
    p.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff" else b"\xff\xfe")
    rc, out, err = cli_capped(["sweep", str(p), "--dry-run", "--out", str(tmp_path / "o")], "hostile spec")
    assert_clean_error(rc, err)


def test_spec_file_above_the_limit(tmp_path):
    p = tmp_path / "spec.json"
    with open(p, "wb") as f:
        f.write(b"{")
        f.truncate(limits.MAX_SPEC_BYTES + 1)
    rc, out, err = cli_capped(["sweep", str(p), "--dry-run", "--out", str(tmp_path / "o")], "hostile spec")
    assert_clean_error(rc, err) and "limit" in err


# -- resume -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("resume") / "run"
    argv = ["train", "teacher-student", "--out", str(run), "--steps", "3", "--no-progress", "--log-every", "1",
            "--val-every", "0", "--val-samples", "16", "--batch-size", "4", "--hidden", "3", "--gating", "3",
            "--polish-rounds", "0", "--checkpoint-every", "2"]
    rc, out, err = cli_capped(argv, "resume setup", seconds=120)
    assert rc == 0, err
    return run


def _rewrite_state(path: Path, change) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as f:
        info = json.loads(f.metadata()["rnnattn_train_state"])
    tensors = load_file(str(path))
    change(info)
    save_file(tensors, str(path), metadata={"rnnattn_train_state": json.dumps(info)})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=6,
)
_KEYS = ["step", "polish_round", "task", "config", "engine", "wall_time", "format"]


@settings(max_examples=25, **SETTINGS)
@given(key=st.sampled_from(_KEYS), value=_JSON, drop=st.booleans())
def test_corrupt_resume_state_touches_no_file(base_run, tmp_path_factory, key, value, drop):
    """Any one field of the state replaced by any JSON value (or removed): resuming either works or fails with one
    clean line, and then every file of the run is exactly as it was (the review lost log.csv this way)."""
    run = tmp_path_factory.mktemp("r") / "run"
    shutil.copytree(base_run, run)
    _rewrite_state(run / "state.safetensors", lambda info: info.pop(key) if drop else info.__setitem__(key, value))
    before = _snapshot(run)
    rc, out, err = cli_capped(["train", "teacher-student", "--out", str(run), "--resume", "--no-progress"], "resume")
    if rc != 0:
        assert_clean_error(rc, err)
        assert _snapshot(run) == before


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("step", -5, "step"),
        ("step", 10**30, "step"),
        ("task", "teacher_student", "task"),
        ("task", ["x"], "task"),
        ("wall_time", float("nan"), "wall_time"),
        ("polish_round", 1.5, "polish_round"),
        ("config", ("val_samples", 10**12), "MAX_CONFIG_INT"),
        ("task", ("seq_len", 10**10), "MAX_CONFIG_INT"),
    ],
)
def test_review_resume_cases(base_run, tmp_path, key, value, match):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    if isinstance(value, tuple):  # (field, value): change one field of the mapping
        _rewrite_state(run / "state.safetensors", lambda info: info[key].__setitem__(*value))
    else:
        _rewrite_state(run / "state.safetensors", lambda info: info.__setitem__(key, value))
    before = _snapshot(run)
    rc, out, err = cli_capped(["train", "teacher-student", "--out", str(run), "--resume", "--no-progress"], "resume")
    assert_clean_error(rc, err)
    assert match in err and _snapshot(run) == before


def test_garbage_log_is_refused_before_truncation(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    with open(run / "log.csv", "a") as f:
        f.write("garbage,row\n1,ok\n")
    before = _snapshot(run)
    rc, out, err = cli_capped(["train", "teacher-student", "--out", str(run), "--resume", "--no-progress"], "resume")
    assert_clean_error(rc, err)
    assert "log" in err and _snapshot(run) == before


@settings(max_examples=40, **SETTINGS)
@given(lines=st.lists(st.sampled_from([b'{"run_id":"a","status":"ok"}', b"garbage", b"[1]", b'{"run_id":1}', b""]),
                      max_size=8), tail=st.sampled_from([b"", b'{"run_id":"b"', b'{"run_id":"c"}']))
def test_results_file_repair_only_touches_the_torn_tail(tmp_path_factory, lines, tail):
    """Reading a results file may drop or complete its torn last line; every other byte stays (unreadable lines too:
    they are skipped, never rewritten away)."""
    import warnings

    from rnnattn.sweeps.run import read_records

    body = b"".join(line + b"\n" for line in lines)
    p = tmp_path_factory.mktemp("res") / "results.jsonl"
    p.write_bytes(body + tail)
    with capped(30), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_records(p)
    after = p.read_bytes()
    assert after.startswith(body) and after in (body, body + tail + b"\n")


def test_big_parameters_times_many_runs_are_refused(tmp_path):
    """A 0.9 MB base in each of 100,000 runs would make the run ids hash ~90 GB: refused from the sizes alone."""
    spec = _spec(tmp_path, base={"blob": "x" * 900_000}, grid={"a": list(range(1000)), "b": list(range(100))})
    rc, out, err = cli_capped(["sweep", str(spec), "--dry-run", "--out", str(tmp_path / "o")], "param bomb", seconds=30)
    assert_clean_error(rc, err)
    assert "MAX_SWEEP_PARAM_BYTES" in err


def test_worker_count_is_bounded(tmp_path):
    """--workers 100000 would start 100,000 processes that each import torch."""
    spec = _spec(tmp_path)
    rc, out, err = cli_capped(["sweep", str(spec), "--workers", "100000", "--out", str(tmp_path / "o")], "workers")
    assert_clean_error(rc, err)
    assert "MAX_WORKERS_PER_CORE" in err and not (tmp_path / "o").exists()
