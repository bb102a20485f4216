"""Checkpoints: bit-exact round trips for every model class, atomic writes, and one-line CheckpointErrors for
every kind of bad file — including a pickle whose unpickling would run code (refused, and the code provably
never ran)."""

from __future__ import annotations

import json
import os
import pickle
import struct
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnattn
from rnnattn import CheckpointError, CheckpointWarning
from rnnattn.checkpoint import atomic_write_bytes, read_header
from rnnattn.models import (
    GRU,
    LRU,
    LSTM,
    GatedLinearRNN,
    GatedLinearRNNConfig,
    GRUConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
    LRUConfig,
    LSTMConfig,
    SequenceModel,
    SequenceModelConfig,
)

ZOO = {
    "glr": lambda: GatedLinearRNN(GatedLinearRNNConfig(3, 6, 5, 2)),
    "glr_dense": lambda: GatedLinearRNN(
        GatedLinearRNNConfig(3, 4, 3, 2, recurrence="dense", append_one=False)
    ),
    "lsa": lambda: LinearSelfAttention(LinearSelfAttentionConfig(3)),
    "lsa_heads": lambda: LinearSelfAttention(
        LinearSelfAttentionConfig(3, n_heads=2, d_key=2, d_value=4, d_output=5)
    ),
    "lru_out": lambda: LRU(LRUConfig(3, 4)),
    "lru_in_out": lambda: LRU(LRUConfig(3, 4, "in_out", d_inner=5, d_output=2)),
    "lru_in_skip": lambda: LRU(LRUConfig(3, 4, "in_skip", d_inner=5, d_output=2, glu_bias=False)),
    "lstm": lambda: LSTM(LSTMConfig(3, 4)),
    "gru": lambda: GRU(GRUConfig(3, 4)),
    "sequence": lambda: SequenceModel(
        SequenceModelConfig(
            3,
            2,
            6,
            layers=(
                {"class": "GatedLinearRNN", "n_hidden": 5, "n_gating": 4},
                {"class": "LRU", "d_state": 4, "variant": "in_skip"},
                {"class": "LSTM"},
                {"class": "GRU"},
                {"class": "LinearSelfAttention", "d_output": 5},
                {"class": "GRU", "d_input": 5, "d_hidden": 3},
            ),
        )
    ),
}


def make(name: str, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return ZOO[name]().to(dtype)


def x_for(model, dtype=torch.float32):
    return torch.randn(2, 7, model.d_input, dtype=dtype, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def saved(tmp_path):
    model = make("glr")
    path = rnnattn.save(model, tmp_path / "m.safetensors", task="teacher_student", seed=3)
    return model, path


# -- raw file surgery
# ---------------------------------------------------------------------------------------------
def read_raw(path: Path) -> tuple[dict, dict, bytes]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    info = json.loads(header["__metadata__"]["rnnattn"])
    return header, info, data[8 + n :]


def write_raw(path: Path, header: dict, info: dict, body: bytes) -> None:
    header = dict(header)
    header["__metadata__"] = {"rnnattn": json.dumps(info)}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def load_error(path) -> str:
    with pytest.raises(CheckpointError) as e:
        rnnattn.load(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg and msg, msg
    assert str(path) in msg  # names the file
    return msg


# -- round trips
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_is_bit_exact(tmp_path, name, dtype):
    model = make(name, dtype)
    model.metadata = {"built_by": "test", "nested": {"a": [1, 2.5, None, "x"]}}
    path = rnnattn.save(model, tmp_path / f"{name}.safetensors", task="unit", steps=12)
    loaded = rnnattn.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.metadata == {
        "built_by": "test",
        "nested": {"a": [1, 2.5, None, "x"]},
        "task": "unit",
        "steps": 12,
    }
    sd, lsd = model.state_dict(), loaded.state_dict()
    assert sd.keys() == lsd.keys()
    for k in sd:
        assert lsd[k].dtype == dtype and torch.equal(lsd[k], sd[k]), k
    x = x_for(model, dtype)
    with torch.no_grad():
        y, s = model(x, return_state=True)
        y2, s2 = loaded(x, return_state=True)
    assert y2.dtype == dtype and torch.equal(y, y2)
    assert model.metadata == {
        "built_by": "test",
        "nested": {"a": [1, 2.5, None, "x"]},
    }  # save did not mutate it


def test_round_trip_of_special_values(tmp_path):
    model = make("glr", torch.float64)
    with torch.no_grad():
        model.nu[:3] = torch.tensor([float("-inf"), float("inf"), 0.0])  # lambda = 1, 0 exactly
    loaded = rnnattn.load(rnnattn.save(model, tmp_path / "m.safetensors"))
    assert torch.equal(loaded.nu, model.nu)
    assert loaded.lam[:2].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("magic", [b"\x80\x03", b"PK"])
def test_header_lengths_that_look_like_pickle_or_zip_magic_still_load(tmp_path, magic):
    """The 8-byte header length comes first: a 896-byte header starts 80 03 (pickle protocol 3), a 19280-byte
    one starts 50 4B ("PK", zip). Such legitimate checkpoints must load (regression: they were refused as
    pickles)."""
    target = int.from_bytes(magic, "little")
    model = make("glr")
    path = tmp_path / "m.safetensors"
    rnnattn.save(model, path, pad="")
    est = (
        target - struct.unpack("<Q", path.read_bytes()[:8])[0]
    )  # each padding character adds one header byte
    for pad in range(max(est - 16, 0), est + 16):
        rnnattn.save(model, path, overwrite=True, pad="x" * pad)
        if path.read_bytes()[:2] == magic:
            break
    else:
        pytest.fail("could not reach the header length")
    assert rnnattn.load(path).metadata["pad"] == "x" * pad


def test_extras_and_checkpoint_fields(tmp_path):
    student, teacher = make("glr"), make("lsa", seed=1)
    teacher.metadata = {"role": "teacher"}
    path = rnnattn.save(student, tmp_path / "s.safetensors", extras={"teacher": teacher}, note="pair")
    ck = rnnattn.load_checkpoint(path)
    assert ck.path == path and ck.rnnattn_version == rnnattn.__version__
    assert ck.metadata == {"note": "pair"} and ck.model.metadata == {"note": "pair"}
    assert set(ck.extras) == {"teacher"} and ck.extras["teacher"].metadata == {"role": "teacher"}
    x = x_for(teacher)
    with torch.no_grad():
        assert torch.equal(ck.extras["teacher"](x), teacher(x))
        assert torch.equal(ck.model(x), student(x))
    # the main model loads alone too
    assert isinstance(rnnattn.load(path), GatedLinearRNN)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    meta=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(
            lambda k: k.isidentifier() and k not in {"model", "path", "extras", "overwrite"}
        ),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(10**12), 10**12)
            | st.floats(allow_nan=False)
            | st.text(max_size=20),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_metadata_round_trips_property(tmp_path, meta):
    model = make("gru")
    path = rnnattn.save(model, tmp_path / "p.safetensors", overwrite=True, **meta)
    assert rnnattn.load(path).metadata == meta


def test_refuses_to_overwrite_without_permission(saved):
    model, path = saved
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        rnnattn.save(make("lsa"), path)
    assert path.read_bytes() == before
    rnnattn.save(make("lsa"), path, overwrite=True)
    assert isinstance(rnnattn.load(path), LinearSelfAttention)


def test_write_is_atomic_when_the_rename_fails(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        rnnattn.save(make("lstm"), path, overwrite=True)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old checkpoint is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # and no temp file is left


def test_atomic_write_bytes(tmp_path):
    p = atomic_write_bytes(tmp_path / "sub" / "report.csv", b"a,b\n")
    assert p.read_bytes() == b"a,b\n"
    with pytest.raises(FileExistsError):
        atomic_write_bytes(p, b"other")
    atomic_write_bytes(p, b"new", overwrite=True)
    assert p.read_bytes() == b"new" and sorted(x.name for x in p.parent.iterdir()) == ["report.csv"]


def test_save_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        rnnattn.save(make("glr"), tmp_path / "a.safetensors", bad=object())
    with pytest.raises(CheckpointError, match="only rnnattn models"):
        rnnattn.save(torch.nn.Linear(2, 2), tmp_path / "b.safetensors")
    with pytest.raises(CheckpointError, match="identifier"):
        rnnattn.save(make("glr"), tmp_path / "c.safetensors", extras={"not valid": make("lsa")})
    assert list(tmp_path.iterdir()) == []


# -- errors
# -------------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    assert "no such file" in load_error(tmp_path / "nope.safetensors")


def test_directory(tmp_path):
    msg = load_error(tmp_path)
    assert "not a regular file" in msg or "directory" in msg


def test_empty_file(tmp_path):
    p = tmp_path / "empty.safetensors"
    p.write_bytes(b"")
    assert "too short" in load_error(p)


def test_truncated_at_many_offsets(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    offsets = sorted(
        {1, 4, 7, 8, 9, 20, n // 2, 8 + n - 1, 8 + n, 8 + n + 1, 8 + n + 16, len(data) - 4, len(data) - 1}
    )
    for off in offsets:
        p = tmp_path / f"cut{off}.safetensors"
        p.write_bytes(data[:off])
        msg = load_error(p)
        assert any(w in msg for w in ("truncated", "too short", "corrupt")), (off, msg)


def test_corrupt_json_header(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[8:20] = b"{{{{not json"
    p = tmp_path / "bad.safetensors"
    p.write_bytes(bytes(data))
    assert "not valid JSON" in load_error(p)


def test_corrupt_rnnattn_metadata_and_foreign_safetensors(saved, tmp_path):
    _, path = saved
    header, info, body = read_raw(path)
    header["__metadata__"] = {"rnnattn": "{broken"}
    raw = json.dumps(header).encode()
    p = tmp_path / "meta.safetensors"
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    assert "corrupt rnnattn metadata" in load_error(p)
    from safetensors.torch import save_file

    q = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(q))
    assert "not an rnnattn checkpoint" in load_error(q)


def test_unknown_model_class(saved, tmp_path):
    _, path = saved
    header, info, body = read_raw(path)
    info["class"] = "NoSuchModel"
    p = tmp_path / "unknown.safetensors"
    write_raw(p, header, info, body)
    assert "unknown model class 'NoSuchModel'" in load_error(p)


def test_unsupported_format_version(saved, tmp_path):
    _, path = saved
    header, info, body = read_raw(path)
    info["format"] = 99
    p = tmp_path / "future.safetensors"
    write_raw(p, header, info, body)
    assert "unsupported checkpoint format" in load_error(p)


@pytest.mark.parametrize(
    "change, expect",
    [
        (lambda h, i: i["config"].update(n_hidden=7), "values"),  # sizes no longer add up
        (lambda h, i: i["config"].update(recurrence="dense"), "values"),  # nu [6] vs A [6, 6]
        (lambda h, i: h.update(mu=h.pop("nu")), "do not match"),  # a renamed tensor, same total size
        (lambda h, i: h["W_in"].update(shape=[6, 2, 4]), "has shape"),  # same bytes, wrong layout
        (lambda h, i: i["config"].update(n_hidden="six"), "invalid config"),
        (lambda h, i: i["config"].update(colour="red"), "invalid config"),
        (lambda h, i: i.pop("config"), "missing class or config"),
        (lambda h, i: i.update(metadata=[1, 2]), "metadata is not a JSON object"),
        (lambda h, i: h["D"].update(dtype="I32"), "non-float"),
        (lambda h, i: h["D"].update(dtype="X9"), "unsupported dtype"),
        (lambda h, i: h["D"].update(data_offsets=[0, 10**9]), "outside the file"),
    ],
)
def test_config_and_tensor_mismatches(saved, tmp_path, change, expect):
    _, path = saved
    header, info, body = read_raw(path)
    change(header, info)
    p = tmp_path / "mismatch.safetensors"
    write_raw(p, header, info, body)
    assert expect in load_error(p)


@pytest.mark.parametrize("config_change", [{"n_hidden": 10**12}, {"n_hidden": 2**20, "n_gating": 2**20}])
def test_absurd_dimensions_are_refused_before_allocating(saved, tmp_path, config_change):
    _, path = saved
    header, info, body = read_raw(path)
    info["config"].update(config_change)
    p = tmp_path / "huge.safetensors"
    write_raw(p, header, info, body)
    msg = load_error(p)
    assert "refusing to allocate" in msg


def test_absurd_dimensions_of_an_extra(tmp_path):
    path = rnnattn.save(make("glr"), tmp_path / "e.safetensors", extras={"t": make("lsa")})
    header, info, body = read_raw(path)
    info["extras"]["t"]["config"]["d_input"] = 10**15
    write_raw(path, header, info, body)
    assert "refusing to allocate" in load_error(path)


class _RunsCode:
    """Unpickling this object calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_pickle_payload_is_live(tmp_path):
    # control: prove the payload really runs code when something unpickles it
    marker = tmp_path / "control-marker"
    torch.save({"model": _RunsCode(marker)}, tmp_path / "control.pt")
    loaded = torch.load(tmp_path / "control.pt", weights_only=False)
    loaded["model"].close()  # the unpickled "object" is the file handle open() returned
    assert marker.exists()


@pytest.mark.parametrize("writer", ["torch_zip", "torch_legacy", "raw_pickle"])
def test_pickle_checkpoints_are_refused_without_running_code(tmp_path, writer):
    marker = tmp_path / "PWNED"
    payload = {"state_dict": {"w": torch.zeros(2)}, "evil": _RunsCode(marker)}
    p = tmp_path / "evil.pt"
    if writer == "torch_zip":
        torch.save(payload, p)
    elif writer == "torch_legacy":
        torch.save(payload, p, _use_new_zipfile_serialization=False)
    else:
        p.write_bytes(pickle.dumps(payload))
    msg = load_error(p)
    assert "pickle" in msg and "never" in msg
    assert not marker.exists()
    # also under a .safetensors name, and through read_header / load_checkpoint
    q = tmp_path / "evil.safetensors"
    q.write_bytes(p.read_bytes())
    load_error(q)
    with pytest.raises(CheckpointError):
        read_header(q)
    with pytest.raises(CheckpointError):
        rnnattn.load_checkpoint(q)
    assert not marker.exists()


def test_nan_weights_load_with_a_warning(tmp_path):
    model = make("lru_in_out")
    with torch.no_grad():
        model.glu_out.W_x.weight[0, 0] = float("nan")
    path = rnnattn.save(model, tmp_path / "nan.safetensors")
    with pytest.warns(CheckpointWarning, match="NaN.* weights in glu_out.W_x.weight"):
        loaded = rnnattn.load(path)
    assert torch.isnan(loaded.glu_out.W_x.weight[0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean checkpoint loads without any warning
        rnnattn.load(rnnattn.save(make("lru_in_out"), tmp_path / "clean.safetensors"))


def test_errors_are_checkpoint_errors_not_other_exceptions(tmp_path):
    # one catch-all: random garbage of many sizes never escapes as anything but CheckpointError
    g = torch.Generator().manual_seed(0)
    for size in [1, 8, 9, 64, 1000]:
        p = tmp_path / f"garbage{size}.safetensors"
        p.write_bytes(bytes(torch.randint(0, 256, (size,), generator=g, dtype=torch.uint8).tolist()))
        load_error(p)
    p = tmp_path / "hugeheader.safetensors"
    p.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    assert "header length" in load_error(p)
