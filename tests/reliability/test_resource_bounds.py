"""A small file must never cost more than a bounded amount of work (issue 12): every case runs under a time limit
and a memory cap (``capped``), so a regression fails instead of hanging or swapping CI.

Classes: safetensors headers whose parse cost would grow faster than their size (many huge dims), valid files with
a huge (sparse) tail, thousands of empty tensors next to a layer bomb, deep / wide / non-Unicode metadata, special
files (FIFOs) in place of every file rnnattn reads, and analyses whose size comes from the file (polynomials, the
one-step-GD reference, construction sources, a ``--reference`` model)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from _reliability_tools import REPORT_MEMORY_MB, assemble, capped, cli_capped, load_outcome, small_models, split
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnattn
from rnnattn import limits
from rnnattn.checkpoint import CheckpointError, load_checkpoint
from rnnattn.limits import ResourceLimitError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("seeds")
    out = {}
    for name, (model, extras) in small_models().items():
        out[name] = rnnattn.save(model, d / f"{name}.safetensors", extras=extras, note="seed").read_bytes()
    return out


def _error(path: Path) -> str:
    with capped(30), pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "\n" not in msg and "\x1b" not in msg
    return msg


# -- headers ------------------------------------------------------------------------------------------------------
_BIG = st.integers(min_value=-(10**300), max_value=10**300)
_ENTRY = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F64", "I8", "BOOL", "X"]),
        "shape": st.lists(st.one_of(st.integers(0, 4), _BIG), max_size=40),
        "data_offsets": st.lists(st.one_of(st.integers(0, 64), _BIG), min_size=0, max_size=3),
    }
)


@SETTINGS
@given(entries=st.dictionaries(st.text(max_size=8), _ENTRY, max_size=30), tail=st.integers(0, 200))
def test_any_header_is_parsed_in_bounded_work(ckpts, tmp_path_factory, entries, tail):
    """Any tensor table (huge dims, many dims, bad offsets) next to valid rnnattn metadata: one-line error or a
    consistent model, within the time and memory caps."""
    _, info, _ = split(ckpts["glrnn"])
    p = tmp_path_factory.mktemp("hdr") / "h.safetensors"
    p.write_bytes(assemble(entries, info, bytes(tail)))
    with capped(30):
        assert load_outcome(p, "any header") in ("error", "ok", "warned")


def test_many_huge_dims_cost_linear_work(ckpts, tmp_path):
    """The quadratic case of the review: hundreds of entries of dozens of 300-digit dims (~3 MB of header)."""
    header, info, data = split(ckpts["glrnn"])
    big = [10**300] * 30
    hostile = {f"t{i}": {"dtype": "F32", "shape": big, "data_offsets": [0, 4]} for i in range(300)}
    p = tmp_path / "dims.safetensors"
    p.write_bytes(assemble({**header, **hostile}, info, data))
    msg = _error(p)
    assert "invalid shape" in msg and "at most" in msg, msg


def test_header_above_the_limit_is_refused_before_reading(ckpts, tmp_path):
    p = tmp_path / "big_header.safetensors"
    n = limits.MAX_HEADER_BYTES + 1
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", n) + b"{")
        f.truncate(8 + n + 16)  # sparse: the size is real, the bytes cost nothing
    assert "MAX_HEADER_BYTES" in _error(p)


@pytest.mark.parametrize("tail_gib", [0.001, 3, 64])
def test_huge_sparse_tail_is_never_read(ckpts, tmp_path, tail_gib):
    """A valid checkpoint followed by a tail (sparse, so the test costs no disk): refused from the sizes alone. The
    memory cap (2 GiB extra) would turn reading a 3 GiB tail into a MemoryError, failing the test."""
    p = tmp_path / "tail.safetensors"
    raw = ckpts["glrnn"]
    with open(p, "wb") as f:
        f.write(raw)
        f.truncate(len(raw) + int(tail_gib * 2**30))
    msg = _error(p)
    assert "after the last tensor" in msg or "MAX_FILE_BYTES" in msg or "limit" in msg, msg


@pytest.mark.parametrize("n_layers,n_empty", [(10_000, 0), (1000, 5000), (limits.MAX_CONFIG_LIST, 20_000)])
def test_empty_tensors_do_not_buy_a_layer_bomb(ckpts, tmp_path, n_layers, n_empty):
    """Thousands of zero-size tensors must not raise the module budget enough to build a 1,000+ layer config."""
    header, info, data = split(ckpts["seq+teacher"])
    info = json.loads(json.dumps(info))
    info["config"]["layers"] = [{"class": "GRU"}] * n_layers
    end = max(e["data_offsets"][1] for e in header.values())
    empties = {f"e{i}": {"dtype": "F32", "shape": [0], "data_offsets": [end, end]} for i in range(n_empty)}
    p = tmp_path / "bomb.safetensors"
    p.write_bytes(assemble({**header, **empties}, info, data))
    msg = _error(p)
    assert any(s in msg for s in ("MAX_CONFIG_LIST", "modules/parameters", "MAX_TENSORS", "MAX_METADATA_KEYS")), msg


# -- metadata -----------------------------------------------------------------------------------------------------
def _nest(depth: int) -> str:
    """JSON text of ``depth`` alternating lists and mappings around a 1 (built as text: json.dumps would recurse)."""
    opens = "".join('{"k":' if i % 2 else "[" for i in range(depth))
    closes = "".join("}" if i % 2 else "]" for i in reversed(range(depth)))
    return opens + "1" + closes


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(depth=st.integers(0, 3000))
def test_any_metadata_depth_loads_or_is_refused(ckpts, tmp_path_factory, depth):
    """Any nesting depth: at most MAX_METADATA_DEPTH loads (and info prints it), deeper is a one-line error at load;
    never a RecursionError later."""
    header, info, data = split(ckpts["glrnn"])
    text = json.dumps(dict(info, metadata={"deep": "@@"})).replace('"@@"', _nest(depth))
    p = tmp_path_factory.mktemp("deep") / "deep.safetensors"
    p.write_bytes(assemble(header, None, data, info_text=text))
    outcome = load_outcome(p, "metadata depth")
    # the leaf sits at depth + 2 (info -> metadata -> "deep" -> ...)
    assert outcome == ("ok" if depth + 2 <= limits.MAX_METADATA_DEPTH else "error"), (depth, outcome)
    for argv in (["info", str(p)], ["info", "--json", str(p)]):
        rc, out, err = cli_capped(argv, "metadata depth")
        assert "Traceback" not in err and (rc == 0) == (outcome == "ok"), err


@pytest.mark.parametrize("n_keys", [limits.MAX_METADATA_KEYS // 2, 80_000])
def test_many_metadata_keys(ckpts, tmp_path, n_keys):
    header, info, data = split(ckpts["glrnn"])
    info = dict(info, metadata={f"k{i}": i for i in range(n_keys)})
    p = tmp_path / "keys.safetensors"
    p.write_bytes(assemble(header, info, data))
    if n_keys > limits.MAX_METADATA_KEYS:
        assert "MAX_METADATA_KEYS" in _error(p)
    else:
        with capped(60):
            assert len(load_checkpoint(p).metadata) == n_keys


@pytest.mark.parametrize("where", ["key", "value", "class"])
def test_lone_surrogates_in_metadata_are_refused_at_load(ckpts, tmp_path, where):
    header, info, data = split(ckpts["glrnn"])
    bad = "x\ud800y"
    if where == "key":
        info = dict(info, metadata={bad: 1})
    elif where == "value":
        info = dict(info, metadata={"note": [bad]})
    else:
        info = dict(info, **{"class": bad})
    text = json.dumps(info)  # ensure_ascii: the surrogate travels as the escape \ud800, as in the review
    p = tmp_path / "sur.safetensors"
    p.write_bytes(assemble(header, None, data, info_text=text))
    msg = _error(p)
    msg.encode("utf-8")  # the error itself always encodes
    assert "surrogate" in msg or "unknown model class" in msg


# -- special files ------------------------------------------------------------------------------------------------
def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    rc, out, err = cli_capped(
        ["train", "teacher-student", "--out", str(run), "--steps", "2", "--no-progress", "--log-every", "1",
         "--val-every", "0", "--val-samples", "16", "--batch-size", "4", "--hidden", "3", "--gating", "3",
         "--polish-rounds", "0"],
        "fifo setup",
        seconds=120,
    )
    assert rc == 0, err
    return run


@pytest.mark.parametrize("victim", ["state.safetensors", "log.csv", "model.safetensors"])
def test_fifo_in_a_run_folder_does_not_block_resume(tmp_path, victim):
    run = _run_dir(tmp_path)
    (run / victim).unlink()
    os.mkfifo(run / victim)
    before = sorted(p.name for p in run.iterdir())
    rc, out, err = cli_capped(["train", "teacher-student", "--out", str(run), "--resume", "--no-progress"], "fifo")
    assert rc != 0 and "regular file" in err and "Traceback" not in err, err
    assert sorted(p.name for p in run.iterdir()) == before


def test_fifo_as_checkpoint_spec_or_log_does_not_block(tmp_path, ckpts):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    for argv in (["info", str(fifo)], ["info", "--json", str(fifo)]):
        rc, out, err = cli_capped(argv, "fifo", seconds=30)
        assert rc != 0 and "regular file" in err, err
    spec = tmp_path / "spec.json"
    os.mkfifo(spec)
    rc, out, err = cli_capped(["sweep", str(spec), "--dry-run", "--out", str(tmp_path / "s")], "fifo", seconds=30)
    assert rc != 0 and "regular file" in err, err
    # a FIFO companion log beside a checkpoint: the report's log reader refuses it without blocking
    from rnnattn.training.state import read_log

    os.mkfifo(tmp_path / "ck.log.csv")
    with capped(30), pytest.raises(ValueError, match="regular file"):
        read_log(tmp_path / "ck.log.csv")


def test_results_file_fifo_or_symlink_is_refused(tmp_path):
    from rnnattn.sweeps.run import append_record, read_records

    os.mkfifo(tmp_path / "r.jsonl")
    with capped(30), pytest.raises(ValueError, match="regular file"):
        read_records(tmp_path / "r.jsonl")
    with capped(30), pytest.raises(ValueError, match="regular file"):
        append_record(tmp_path / "r.jsonl", {"run_id": "x"})
    target = tmp_path / "elsewhere.txt"
    target.write_text("mine\n")
    (tmp_path / "l.jsonl").symlink_to(target)
    with pytest.raises(ValueError, match="symlink"):
        append_record(tmp_path / "l.jsonl", {"run_id": "x"})
    assert target.read_text() == "mine\n"


# -- companion logs -----------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(st.lists(st.text(max_size=12), max_size=9), max_size=60))
def test_any_log_is_read_bounded_and_numeric(tmp_path_factory, rows):
    """Any CSV rows under the trainer's header: the report's reader returns numeric columns (garbage -> NaN) or a
    one-line error; never an object column of garbage strings that a plot would turn into categories."""
    import csv
    import io

    from rnnattn.training.state import LOG_FIELDS, read_log

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(LOG_FIELDS)
    w.writerows(rows)
    p = tmp_path_factory.mktemp("log") / "log.csv"
    p.write_text(buf.getvalue(), encoding="utf-8", errors="surrogatepass")
    with capped(30):
        try:
            df = read_log(p)
        except ValueError as e:
            assert "\n" not in str(e)
            return
    assert len(df) <= limits.MAX_LOG_ROWS
    assert all(str(df[c].dtype) in ("float64", "int64") for c in df.columns if c != "phase")


def test_log_above_the_size_limit_is_refused(tmp_path):
    from rnnattn.training.state import read_log

    p = tmp_path / "log.csv"
    with open(p, "wb") as f:
        f.write(b"step,train_loss\n")
        f.truncate(limits.MAX_LOG_BYTES + 1)
    with capped(30), pytest.raises(ValueError, match="limit"):
        read_log(p)


# -- analyses sized by the file -----------------------------------------------------------------------------------
def test_polynomial_extractions_beyond_the_budget_are_refused_up_front():
    from rnnattn.analysis.polynomial import fit_polynomial, instantaneous_polynomial

    big = rnnattn.GatedLinearRNN(rnnattn.GatedLinearRNNConfig(d_input=200, n_hidden=2, n_gating=2, d_output=2))
    lsa = rnnattn.LinearSelfAttention(rnnattn.LinearSelfAttentionConfig(d_input=150))
    with capped(60):
        for call in (
            lambda: instantaneous_polynomial(big),
            lambda: instantaneous_polynomial(lsa),
            lambda: instantaneous_polynomial(big, method="lstsq"),
            lambda: fit_polynomial(lambda x: x[:, :1], 60, 4),
        ):
            with pytest.raises(ResourceLimitError, match="MAX_ANALYSIS_BYTES"):
                call()
        # within the budget the same routes still work
        small = rnnattn.GatedLinearRNN(rnnattn.GatedLinearRNNConfig(d_input=6, n_hidden=3, n_gating=3, d_output=2))
        assert instantaneous_polynomial(small).coefficients.shape == (2, 210)


@pytest.mark.parametrize("d_x,d_y", [(3000, 1000), (200, 3)])
def test_one_step_gd_reference_with_huge_d_is_refused(d_x, d_y):
    from rnnattn.analysis.references import gd_reference_from_metadata

    with capped(30), pytest.raises(ResourceLimitError, match="MAX_ANALYSIS_BYTES"):
        gd_reference_from_metadata({"task": {"d_x": d_x, "d_y": d_y, "n_context": 10}})


def test_construction_source_with_huge_d_is_refused_before_building():
    from rnnattn.constructions import source_of

    m = rnnattn.GatedLinearRNN(rnnattn.GatedLinearRNNConfig(d_input=2, n_hidden=2, n_gating=2, d_output=2))
    m.metadata = {
        "construction": {
            "source": {"class": "LinearSelfAttention", "config": {"d_input": 5000}, "state": {}},
        }
    }
    with capped(30), pytest.raises(ValueError, match="more than metadata can hold"):
        source_of(m)


def test_report_refuses_a_huge_reference_model_naming_the_limit(tmp_path):
    """End to end through the CLI: a --reference LSA with d=150 (its cubic needs ~8 GiB)."""
    student = rnnattn.save(
        rnnattn.GatedLinearRNN(rnnattn.GatedLinearRNNConfig(d_input=3, n_hidden=2, n_gating=2, d_output=3)),
        tmp_path / "s.safetensors",
    )
    ref = rnnattn.save(
        rnnattn.LinearSelfAttention(rnnattn.LinearSelfAttentionConfig(d_input=150)), tmp_path / "r.safetensors"
    )
    argv = ["report", str(student), "--reference", str(ref), "-o", str(tmp_path / "o"), "--format", "html"]
    rc, out, err = cli_capped(argv, "huge reference", seconds=120, extra_mb=REPORT_MEMORY_MB)
    assert rc != 0 and "MAX_ANALYSIS_BYTES" in err and "Traceback" not in err, err


def test_seed_checkpoints_are_far_inside_the_limits(ckpts):
    """Positive control for the caps above: every seed checkpoint loads, and is far inside them."""
    for raw in ckpts.values():
        header, info, data = split(raw)
        assert len(header) <= limits.MAX_TENSORS and len(raw) < limits.MAX_HEADER_BYTES
        assert all(len(e["shape"]) <= limits.MAX_TENSOR_RANK for e in header.values())


@pytest.mark.parametrize(
    "task",
    [
        {"name": "teacher_student", "d": 4, "seq_len": 10**7},
        {"name": "icl_regression", "d_x": 3, "d_y": 1, "n_context": 10**9},
    ],
)
def test_task_metadata_cannot_size_the_probes(tmp_path, task):
    """Probe inputs are sampled from the task in the metadata: a seq_len / n_context of 10^7+ is refused up front."""
    from rnnattn.analysis.inputs import probe_inputs

    d = 4
    with capped(30), pytest.raises(ResourceLimitError, match="MAX_ANALYSIS_BYTES"):
        probe_inputs({"task": task}, d)


def test_models_too_wide_to_analyse_are_refused_at_resolve(tmp_path):
    from rnnattn.analysis.loading import resolve

    wide = rnnattn.GatedLinearRNN(
        rnnattn.GatedLinearRNNConfig(d_input=1, n_hidden=limits.MAX_ANALYSIS_WIDTH + 1, n_gating=1, d_output=1)
    )
    p = rnnattn.save(wide, tmp_path / "wide.safetensors")
    with capped(60), pytest.raises(ResourceLimitError, match="MAX_ANALYSIS_WIDTH"):
        resolve(p)


def test_fifo_among_shipped_checkpoints_does_not_block(tmp_path, monkeypatch):
    """``report --all-shipped`` hashes every ./checkpoints/*.safetensors: a FIFO there is refused, not read."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    os.mkfifo(tmp_path / "checkpoints" / "pipe.safetensors")
    argv = ["report", "--all-shipped", "-o", str(tmp_path / "o"), "--format", "html"]
    rc, out, err = cli_capped(argv, "fifo", extra_mb=REPORT_MEMORY_MB)
    assert rc != 0 and "regular file" in err and "Traceback" not in err, err


# -- training sizes -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "option", [["--batch-size", "1000000000"], ["--val-samples", "2000000000"], ["--hidden", "4000000"]]
)
def test_absurd_training_sizes_are_refused_before_allocating(tmp_path, option):
    """Any option that would size the run past ``MAX_TRAIN_BYTES`` is one line and exit 2, under a memory cap,
    with nothing written; the paper's and the studies' sizes are far inside the limit."""
    out = tmp_path / "run"
    code, _, err = cli_capped(["train", "teacher-student", "--out", str(out), "--steps", "1", *option])
    assert code == 2 and "MAX_TRAIN_BYTES" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


@given(batch=st.integers(1, 10**12), val=st.integers(1, 10**12), width=st.integers(1, 10**5))
@SETTINGS
def test_training_budget_is_checked_before_any_allocation(batch, val, width):
    """Property: whatever the sizes, ``train`` either starts (estimate within the limit) or refuses before it
    allocates anything, the estimate growing with every size."""
    import torch

    from rnnattn.tasks import TeacherStudent, TeacherStudentConfig
    from rnnattn.training import TrainConfig
    from rnnattn.training.budget import training_bytes

    task = TeacherStudent(TeacherStudentConfig(d=2, seq_len=4))
    with torch.device("meta"):
        model = rnnattn.GatedLinearRNN(rnnattn.GatedLinearRNNConfig(2, width, width, 2))
    cfg = TrainConfig(steps=1, batch_size=batch, val_samples=val, val_every=1)
    need = training_bytes(task, model, cfg)
    assert need >= 4 * batch * 4 * 5 and need >= 4 * val * 4 * 5
    if batch > 1:
        assert need > training_bytes(task, model, cfg.replace(batch_size=batch // 2))
    if need > limits.MAX_TRAIN_BYTES:
        with capped(10), pytest.raises(ResourceLimitError, match="MAX_TRAIN_BYTES"):
            rnnattn.training.train(task, model, cfg, progress=False)


def test_paper_sizes_are_inside_the_training_budget():
    from rnnattn.tasks import InContextRegression, TeacherStudent, TeacherStudentConfig
    from rnnattn.training import TrainConfig
    from rnnattn.training.budget import training_bytes
    from rnnattn.training.protocols import protocol_defaults

    for task, name in ((TeacherStudent(TeacherStudentConfig(d=4)), "teacher_student"),
                       (InContextRegression(), "icl_regression")):
        for protocol in ("paper", "fast"):
            kw, sizes = protocol_defaults(protocol, name)
            model = rnnattn.GatedLinearRNN(rnnattn.GatedLinearRNNConfig(task.d_input, sizes["n_hidden"],
                                                                        sizes["n_gating"], task.d_output))
            assert training_bytes(task, model, TrainConfig(**kw, dtype="float64")) < limits.MAX_TRAIN_BYTES / 4


@pytest.mark.parametrize("replicas", [1, 3])
def test_sweep_run_with_a_huge_student_is_refused_before_building_it(replicas):
    from rnnattn.sweeps.runs import train_run

    params = {"task": "teacher_student", "arch": "gated_diagonal", "size": 3_000_000, "replicas": replicas,
              "train": {"steps": 1, "val_every": 0}, "seed": 0}
    with capped(20), pytest.raises(ResourceLimitError, match="MAX_TRAIN_BYTES"):
        train_run(params)
