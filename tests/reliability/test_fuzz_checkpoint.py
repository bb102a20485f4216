"""Hostile and damaged checkpoint files: every case ends in a one-line CheckpointError or a consistent model (with a
CheckpointWarning for non-finite weights), never another exception and never a hang.

Inputs: truncation at every offset of real small checkpoints (every zoo family), bit flips, random bytes, and
hypothesis-generated JSON in every field of the header. ``-m slow`` runs many more."""

from __future__ import annotations

import copy
import json
import random
import struct
import zlib
from pathlib import Path

import pytest
import torch
from _reliability_tools import assemble, cli, deadline, load_outcome, small_models, split, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnattn
from rnnattn.checkpoint import CheckpointError
from rnnattn.limits import MAX_CONFIG_INT
from rnnattn.models.registry import registered_models

SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
FAST = settings(max_examples=60, **SETTINGS)
SLOW = settings(max_examples=2000, **SETTINGS)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, bytes]:
    """Raw bytes of a real small checkpoint of each zoo family (the seq one carries a teacher extra)."""
    d = tmp_path_factory.mktemp("ckpts")
    out = {}
    for name, (model, extras) in small_models().items():
        p = rnnattn.save(model, d / f"{name}.safetensors", extras=extras, note="fuzz seed", step=3)
        out[name] = p.read_bytes()
    return out


@pytest.fixture
def case(tmp_path):
    """Write bytes to a fresh file; returns its path."""
    counter = iter(range(10**9))
    return lambda data: write(tmp_path / f"case{next(counter)}.safetensors", data)


def test_valid_checkpoints_load(ckpts, case):
    # positive control: the seeds themselves load cleanly, so the errors below come from the damage
    for raw in ckpts.values():
        assert load_outcome(case(raw), "valid") == "ok"


# -- truncation and bit flips ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,stride",
    [
        ("glrnn", 1),
        ("dense", 1),
        ("lstm", 1),
        ("lsrl", 1),
        ("seq+teacher", 4),
        pytest.param("seq+teacher", 1, marks=pytest.mark.slow),
    ],
)
def test_truncation_at_every_offset(ckpts, tmp_path, name, stride):
    raw = ckpts[name]
    p = tmp_path / "t.safetensors"
    for k in range(0, len(raw), stride):
        p.write_bytes(raw[:k])
        assert load_outcome(p, "truncation") == "error", f"{name} truncated to {k} of {len(raw)} bytes loaded"
    # the CLI says one line for a sample of them (every offset is covered through the API above)
    for k in list(range(0, len(raw), max(1, len(raw) // 12))) + [len(raw) - 1]:
        p.write_bytes(raw[:k])
        rc, out, err = cli(["info", str(p)], "truncation (info)")
        assert rc == 2 and err.count("\n") == 1 and err.startswith("rnnattn: error: ") and "Traceback" not in err


def _flip_cases(raw: bytes, n_sample: int | None, seed: int) -> list[int]:
    (n,) = struct.unpack("<Q", raw[:8])
    header_bits = range(0, (8 + n) * 8)
    if n_sample is None:
        return list(header_bits)
    rnd = random.Random(seed)
    return (
        list(range(64))
        + rnd.sample(range(64, (8 + n) * 8), n_sample)
        + rnd.sample(range((8 + n) * 8, len(raw) * 8), min(40, (len(raw) - 8 - n) * 8))
    )


def _run_flips(raw: bytes, bits: list[int], p: Path) -> dict[str, int]:
    outcomes = {"error": 0, "ok": 0, "warned": 0}
    for bit in bits:
        b = bytearray(raw)
        b[bit // 8] ^= 1 << (bit % 8)
        p.write_bytes(bytes(b))
        outcomes[load_outcome(p, "bit flip")] += 1
    return outcomes


@pytest.mark.parametrize("name", ["glrnn", "seq+teacher"])
def test_bit_flips_sampled(ckpts, tmp_path, name):
    outcomes = _run_flips(
        ckpts[name], _flip_cases(ckpts[name], 80, seed=zlib.crc32(name.encode())), tmp_path / "f.safetensors"
    )
    assert outcomes["error"] > 0  # the length prefix flips alone must all fail


@pytest.mark.slow
@pytest.mark.parametrize("name", ["glrnn", "seq+teacher", "dense", "lstm", "lsrl"])
def test_bit_flips_every_header_bit(ckpts, tmp_path, name):
    _run_flips(ckpts[name], _flip_cases(ckpts[name], None, 0), tmp_path / "f.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["glrnn", "seq+teacher", "dense", "lstm", "lsrl"])
def test_truncation_of_bit_flipped_files(ckpts, tmp_path, name):
    # damage upon damage: a flipped header bit then every truncation of the result
    raw = ckpts[name]
    rnd = random.Random(7)
    p = tmp_path / "ft.safetensors"
    for _ in range(4):
        b = bytearray(raw)
        bit = rnd.randrange(64, len(raw) * 8)
        b[bit // 8] ^= 1 << (bit % 8)
        for k in range(0, len(b), 3):
            p.write_bytes(bytes(b[:k]))
            assert load_outcome(p, "flip+truncation") == "error"


# -- random bytes ----------------------------------------------------------------------------------------------
_prefixed = st.builds(
    lambda n, body: struct.pack("<Q", n) + body,
    st.integers(0, 2**64 - 1) | st.integers(0, 3000),
    st.binary(max_size=3000),
)
_random_files = (
    st.binary(max_size=4096)
    | _prefixed
    | st.builds(lambda body: b"PK\x03\x04" + body, st.binary(max_size=200))
    | st.builds(lambda p, b: bytes([0x80, p]) + b, st.integers(0, 255), st.binary(max_size=100))
)


def _random_bytes_body(case, data: bytes) -> None:
    assert load_outcome(case(data), "random bytes") == "error"


@FAST
@given(data=_random_files)
def test_random_bytes(case, data):
    _random_bytes_body(case, data)


@pytest.mark.slow
@SLOW
@given(data=_random_files)
def test_random_bytes_slow(case, data):
    _random_bytes_body(case, data)


# -- hypothesis-generated JSON in every header field ------------------------------------------------------------
_ints = st.integers(-(2**70), 2**70) | st.sampled_from(
    [
        0,
        1,
        -1,
        2,
        3,
        MAX_CONFIG_INT,
        MAX_CONFIG_INT + 1,
        2**31,
        2**31 - 1,
        2**32,
        2**63,
        -(2**63),
        46341,
        10**30,
    ]
)
_scalars = (
    st.none()
    | st.booleans()
    | _ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "diagonal",
            "dense",
            "in_out",
            "out",
            "relu",
            "state",
            "mul",
            "GatedLinearRNN",
            "LRU",
            "SequenceModel",
            "CompiledLSRL",
        ]
    )
)
JSON = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=8), c, max_size=6),
    max_leaves=24,
)
_classes = st.sampled_from(sorted(registered_models())) | st.text(max_size=20) | JSON


def _layer_spec():
    fields = st.sampled_from(
        [
            "d_input",
            "d_output",
            "d_hidden",
            "d_state",
            "n_hidden",
            "n_gating",
            "n_heads",
            "d_key",
            "d_value",
            "variant",
            "recurrence",
            "d_inner",
            "kinds",
            "widths",
            "append_one",
            "bogus",
        ]
    )
    return st.builds(lambda cls, kv: {"class": cls, **kv}, _classes, st.dictionaries(fields, _ints | JSON, max_size=4))


# -- header mutations: each draws one kind of damage; the info ones edit the rnnattn JSON, the header ones the tensor
# entries, the text ones replace a JSON text outright (returning the file's bytes)
def _info_field(draw, info: dict) -> dict:
    key = draw(st.sampled_from(["class", "config", "metadata", "extras", "format", "rnnattn_version"]))
    if draw(st.booleans()):
        info[key] = draw(_classes if key == "class" else JSON)
    else:
        info.pop(key, None)
    return info


def _config_field(draw, info: dict) -> dict:
    key = draw(st.sampled_from(sorted(info["config"])))
    info["config"][key] = draw(_ints | JSON | st.lists(_ints, max_size=3))
    return info


def _config_add(draw, info: dict) -> dict:
    info["config"][draw(st.text(max_size=10))] = draw(JSON)
    return info


def _layers(draw, info: dict) -> dict:
    info["class"] = "SequenceModel"
    info["config"] = {
        "d_input": draw(_ints),
        "d_output": draw(_ints),
        "d_model": draw(_ints),
        "layers": draw(st.lists(_layer_spec(), max_size=4)),
    }
    return info


def _extras(draw, info: dict) -> dict:
    info["extras"] = draw(
        st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["teacher", "model"]),
            st.fixed_dictionaries({"class": _classes, "config": JSON}) | JSON,
            max_size=3,
        )
        | JSON
    )
    return info


def _metadata(draw, info: dict) -> dict:
    info["metadata"] = draw(JSON)
    return info


def _tensor_entry(draw, header: dict, data: bytes) -> dict:
    header = dict(header)
    header[draw(st.sampled_from(sorted(header)))] = draw(JSON)
    return header


def _tensor_field(draw, header: dict, data: bytes) -> dict:
    key = draw(st.sampled_from(sorted(header)))
    entry = dict(header[key])
    field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
    entry[field] = draw(
        {
            "dtype": st.sampled_from(
                ["F64", "F32", "F16", "BF16", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "C64", "x"]
            )
            | JSON,
            "shape": st.lists(_ints | st.integers(0, 8), max_size=4) | JSON,
            "data_offsets": st.lists(st.integers(-5, len(data) + 5) | _ints, max_size=3) | JSON,
        }[field]
    )
    header = dict(header)
    header[key] = entry
    return header


def _drop_tensor(draw, header: dict, data: bytes) -> dict:
    header = dict(header)
    header.pop(draw(st.sampled_from(sorted(header))))
    return header


def _info_text(draw, header: dict, data: bytes) -> bytes:
    return assemble(header, None, data, info_text=draw(st.text(max_size=200)))


def _header_text(draw, header: dict, data: bytes) -> bytes:
    text = draw(st.binary(max_size=300) | st.builds(lambda v: json.dumps(v).encode(), JSON))
    return assemble(header, None, data, header_text=text)


_INFO_MUTATIONS = {
    "info field": _info_field,
    "config field": _config_field,
    "config add": _config_add,
    "layers": _layers,
    "extras": _extras,
    "metadata": _metadata,
    "whole info": lambda draw, info: draw(JSON),
}
_HEADER_MUTATIONS = {"tensor entry": _tensor_entry, "tensor field": _tensor_field, "drop tensor": _drop_tensor}
_TEXT_MUTATIONS = {"info text": _info_text, "header text": _header_text}
# the order hypothesis samples from (kept: it shrinks towards the first kinds)
_MUTATION_KINDS = [
    "info field",
    "config field",
    "config add",
    "layers",
    "tensor entry",
    "tensor field",
    "extras",
    "metadata",
    "whole info",
    "info text",
    "header text",
    "drop tensor",
]


@st.composite
def mutated_files(draw, ckpts: dict[str, bytes]) -> bytes:
    """A real small checkpoint with one kind of damage (:data:`_MUTATION_KINDS`) drawn into its header."""
    name = draw(st.sampled_from(sorted(ckpts)))
    header, info, data = split(ckpts[name])
    how = draw(st.sampled_from(_MUTATION_KINDS))
    if how in _TEXT_MUTATIONS:
        return _TEXT_MUTATIONS[how](draw, header, data)
    if how in _HEADER_MUTATIONS:
        return assemble(_HEADER_MUTATIONS[how](draw, header, data), info, data)
    return assemble(header, _INFO_MUTATIONS[how](draw, copy.deepcopy(info)), data)


def _mutated_body(case, raw: bytes) -> None:
    p = case(raw)
    outcome = load_outcome(p, "mutated header")
    rc, out, err = cli(["info", str(p)], "mutated header (info)")
    if outcome == "error":
        assert rc == 2 and err.count("\n") == 1 and err.startswith("rnnattn: error: "), err
    else:
        assert rc == 0, err
        # text from the file never reaches the terminal raw: no ESC/CR/BEL/NUL... (control characters escaped)
        assert all(c.isprintable() for line in out.splitlines() for c in line), out


def test_mutated_headers(case, ckpts):
    @FAST
    @given(raw=mutated_files(ckpts))
    def run(raw):
        _mutated_body(case, raw)

    run()


@pytest.mark.slow
def test_mutated_headers_slow(case, ckpts):
    @settings(max_examples=4000, **SETTINGS)
    @given(raw=mutated_files(ckpts))
    def run(raw):
        _mutated_body(case, raw)

    run()


# -- targeted damage -------------------------------------------------------------------------------------------
def _reencode(raw: bytes, change) -> bytes:
    """Rewrite a checkpoint's tensors with ``change(name, tensor) -> tensor | None`` (None drops it), keeping its
    rnnattn metadata: a well-formed safetensors file whose contents disagree with the config."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    (n,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(raw[8 : 8 + n])["__metadata__"]
    tensors = {}
    for k, v in st_load(raw).items():
        v2 = change(k, v)
        if v2 is not None:
            tensors[k] = v2.contiguous()
    return st_save(tensors, metadata=meta)


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int8,
        torch.uint8,
        torch.bool,
    ],
)
def test_wrong_dtypes(ckpts, case, dtype):
    for name in ("glrnn", "seq+teacher"):
        first = sorted(split(ckpts[name])[0])[0]
        one = _reencode(ckpts[name], lambda k, v, first=first: v.to(dtype) if k == first else v)
        every = _reencode(ckpts[name], lambda k, v: v.to(dtype))
        for raw in (one, every):
            outcome = load_outcome(case(raw), "wrong dtype")
            # float dtypes are converted (mixed) or adopted (uniform); integers and bools are not weights
            assert outcome == ("ok" if dtype.is_floating_point else "error"), (name, dtype, outcome)
    m = rnnattn.load(case(_reencode(ckpts["glrnn"], lambda k, v: v.to(torch.float64))))
    assert next(m.parameters()).dtype == torch.float64


_SHAPE_CHANGES = {
    "transposed": lambda v: v.t() if v.dim() == 2 and v.shape[0] != v.shape[1] else None,
    "flattened": lambda v: v.reshape(-1) if v.dim() > 1 else None,
    "extra dim": lambda v: v[None],
    "grown": lambda v: torch.cat([v.reshape(-1), v.reshape(-1)[:1]]),
    "shrunk": lambda v: v.reshape(-1)[:-1] if v.numel() > 1 else None,
    "empty": lambda v: v.reshape(-1)[:0],
    "scalar": lambda v: v.reshape(-1)[0],
}


@pytest.mark.parametrize("change", sorted(_SHAPE_CHANGES))
def test_shapes_that_disagree_with_the_config(ckpts, case, change):
    tried = 0
    for name, raw in ckpts.items():
        for target in sorted(split(raw)[0]):
            new = _SHAPE_CHANGES[change](torch.zeros(split(raw)[0][target]["shape"]))
            if new is None:
                continue
            bad = _reencode(raw, lambda k, v, target=target: _SHAPE_CHANGES[change](v) if k == target else v)
            assert load_outcome(case(bad), "wrong shape") == "error", (name, target, change)
            tried += 1
    assert tried > 0
    # a missing tensor and an unexpected one
    for raw in ckpts.values():
        victim = sorted(split(raw)[0])[0]
        assert (
            load_outcome(case(_reencode(raw, lambda k, v, victim=victim: None if k == victim else v)), "wrong shape")
            == "error"
        )
        assert (
            load_outcome(
                case(_reencode(raw, lambda k, v, victim=victim: v if k != victim else v.clone())),
                "wrong shape",
            )
            == "ok"
        )


def test_header_edge_cases(ckpts, case):
    header, info, data = split(ckpts["glrnn"])
    big = "9" * 5000  # beyond Python's 4300-digit int conversion limit: json raises ValueError, not JSONDecodeError
    cases = {
        "huge int in info": assemble(header, None, data, info_text='{"format": 1, "x": ' + big + "}"),
        "huge int in header": assemble(header, None, data, header_text=b'{"a": ' + big.encode() + b"}"),
        "deep info": assemble(header, None, data, info_text="[" * 100_000 + "]" * 100_000),
        "deep header": assemble(header, None, data, header_text=b"[" * 100_000 + b"]" * 100_000),
        "deep config": assemble(
            header, dict(info, config=dict(info["config"], r_min=json.loads("[" * 60 + "]" * 60))), data
        ),
        "huge list": assemble(header, dict(info, config=dict(info["config"], r_min=[0] * 200_000)), data),
        "long string": assemble(header, dict(info, config=dict(info["config"], recurrence="x" * 1_000_000)), data),
        "non utf-8": assemble(header, None, data, header_text=b'{"\xff\xfe": 1}'),
        "utf-8 BOM": assemble(header, None, data, header_text=b"\xef\xbb\xbf" + json.dumps(header).encode()),
        "NUL in header": assemble(header, None, data, header_text=b'{"a\x00": 1}'),
        "NaN format": assemble(header, dict(info, format=float("nan")), data),
        "metadata not a string": assemble(
            header, None, data, header_text=json.dumps(dict(header, __metadata__={"rnnattn": info})).encode()
        ),
        "metadata missing": assemble(header, None, data, header_text=json.dumps(header).encode()),
        "empty header": assemble({}, None, b"", header_text=b""),
        "header length 2**64-1": struct.pack("<Q", 2**64 - 1) + b"{}",
        "header claims 64 MiB+": struct.pack("<Q", 64 * 2**20 + 1) + b"{}" * 100,
        "overlapping tensors": assemble(
            {k: dict(v, data_offsets=[0, v["data_offsets"][1] - v["data_offsets"][0]]) for k, v in header.items()},
            info,
            data,
        ),
        "extras non-identifier": assemble(header, dict(info, extras={"a b": {"class": "LSTM", "config": {}}}), data),
        "class is a dotted path": assemble(header, dict(info, **{"class": "os.system"}), data),
        "class __reduce__": assemble(header, dict(info, **{"class": "__reduce__"}), data),
        "format 2": assemble(header, dict(info, format=2), data),
        # found by the slow fuzz run: a config key with a newline made the error message two lines
        "newline in a config key": assemble(header, dict(info, config=dict(info["config"], **{"\n": [2**25]})), data),
        "escapes in the class name": assemble(header, dict(info, **{"class": "\x1b[2J\r\nfake"}), data),
    }
    for label, raw in cases.items():
        assert load_outcome(case(raw), "edge case") == "error", label


# -- absurd dimensions: rejected before any allocation, and quickly ---------------------------------------------
def _absurd_dims() -> list[tuple[str, dict]]:
    """Configs asking for up to 1e15 parameters, several just below the 2**31 parameter cap (8 GB of float32)."""
    big = MAX_CONFIG_INT
    return [
        ("GatedLinearRNN", {"d_input": 1, "n_hidden": big, "n_gating": big, "d_output": 1}),
        (
            "GatedLinearRNN",
            {"d_input": 1, "n_hidden": 32000, "n_gating": 32000, "d_output": 1},
        ),  # 2.05e9 < cap
        (
            "GatedLinearRNN",
            {"d_input": 1, "n_hidden": 46000, "n_gating": 1, "d_output": 1, "recurrence": "dense"},
        ),
        ("GatedLinearRNN", {"d_input": big + 1, "n_hidden": 1, "n_gating": 1, "d_output": 1}),
        ("GatedLinearRNN", {"d_input": 10**30, "n_hidden": 1, "n_gating": 1, "d_output": 1}),
        ("LRU", {"d_input": big, "d_state": big}),
        ("LRU", {"d_input": 20000, "d_state": 20000, "variant": "in_out"}),
        ("LSTM", {"d_input": 1, "d_hidden": 16000}),
        ("GRU", {"d_input": big, "d_hidden": big}),
        ("LinearSelfAttention", {"d_input": big, "n_heads": big, "d_key": big}),
        ("LinearSelfAttention", {"d_input": 40000, "n_heads": 1, "d_key": 20000, "d_value": 20000}),
        ("SequenceModel", {"d_input": 1, "d_output": 1, "d_model": 40000, "layers": [{"class": "LSTM"}]}),
        ("SequenceModel", {"d_input": 1, "d_output": 1, "d_model": 15000, "layers": [{"class": "GRU"}]}),
        ("CompiledLSRL", {"d_input": 1, "d_output": 1, "kinds": ["relu"], "widths": [big]}),
        ("CompiledLSRL", {"d_input": 40000, "d_output": 1, "kinds": ["relu"], "widths": [40000]}),
    ]


def _layer_bombs() -> list[tuple[str, dict]]:
    """Tiny files whose configs list 10,000s of layers/stages (minutes of meta-device building if not capped)."""
    return [
        (
            "SequenceModel",
            {"d_input": 1, "d_output": 1, "d_model": 2, "layers": [{"class": "LRU", "d_state": 2}] * 10_000},
        ),
        ("CompiledLSRL", {"d_input": 1, "d_output": 1, "kinds": ["state"] * 10_000, "widths": [1] * 10_000}),
        (
            "SequenceModel",
            {
                "d_input": 1,
                "d_output": 1,
                "d_model": 2,
                "layers": [{"class": "CompiledLSRL", "kinds": ["relu"] * 5000, "widths": [1] * 5000}] * 64,
            },
        ),
    ]


def _files(ckpts, configs) -> list[bytes]:
    header, info, data = split(ckpts["glrnn"])
    return [assemble(header, dict(info, **{"class": c, "config": cfg}), data) for c, cfg in configs]


def test_absurd_dimensions_are_refused(ckpts, case):
    for raw in _files(ckpts, _absurd_dims()):
        assert load_outcome(case(raw), "absurd dims") == "error"


def test_layer_bombs_are_refused_quickly(ckpts, case):
    header, info, data = split(ckpts["glrnn"])
    many = {f"e{i}": {"class": "GRU", "config": {"d_input": 1, "d_hidden": 1}} for i in range(20_000)}
    for raw in [*_files(ckpts, _layer_bombs()), assemble(header, dict(info, extras=many), data)]:
        with deadline(60):  # 10,000 LRU layers took 3 minutes before the build budget; now well under a second
            assert load_outcome(case(raw), "layer bomb") == "error"


_RSS_SCRIPT = r"""
import json, resource, sys, warnings
import torch
torch.set_num_threads(1)
import rnnattn
from rnnattn.checkpoint import CheckpointError
paths = json.loads(sys.argv[1])
rnnattn.load(paths[0])  # warm up: imports, meta kernels
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = 0
for p in paths[1:]:
    try:
        rnnattn.load(p)
    except CheckpointError:
        errors += 1
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kib": before, "after_kib": after, "errors": errors}))
"""


def test_absurd_dimensions_allocate_nothing(ckpts, tmp_path):
    """Peak RSS of a fresh process loading every absurd file stays where a tiny load leaves it: the configs (up to
    2e9 parameters = 8 GB, all below the parameter cap) are refused before any tensor is allocated. The process runs
    under an address-space limit so that a regression fails fast instead of swapping the machine."""
    import subprocess
    import sys

    paths = [str(write(tmp_path / "warm.safetensors", ckpts["glrnn"]))]
    for i, raw in enumerate(_files(ckpts, _absurd_dims())):
        paths.append(str(write(tmp_path / f"absurd{i}.safetensors", raw)))
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))\n"
    r = subprocess.run(
        [sys.executable, "-c", limit + _RSS_SCRIPT, json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["errors"] == len(paths) - 1
    grew_mib = (res["after_kib"] - res["before_kib"]) / 1024
    assert grew_mib < 64, f"peak RSS grew by {grew_mib:.0f} MiB while refusing absurd configs"


# -- non-finite weights: loaded, flagged ------------------------------------------------------------------------
def test_nan_and_inf_weights_are_loaded_and_flagged(ckpts, case):
    nan_w = case(_reencode(ckpts["glrnn"], lambda k, v: v.clone().fill_(float("nan")) if k == "W_in" else v))
    with pytest.warns(rnnattn.CheckpointWarning, match="W_in"):
        m = rnnattn.load(nan_w)
    assert torch.isnan(m.W_in).all()
    rc, out, err = cli(["info", str(nan_w)])
    assert rc == 0 and "WARNING" in out and "W_in" in out and "NaN" in out

    inf_d = case(_reencode(ckpts["glrnn"], lambda k, v: torch.full_like(v, float("inf")) if k == "D" else v))
    with pytest.warns(rnnattn.CheckpointWarning, match="D"):
        rnnattn.load(inf_d)
    rc, out, err = cli(["info", "--json", str(inf_d)])
    assert rc == 0 and json.loads(out)["nonfinite"]["D"]["inf"] == 6

    teacher = case(
        _reencode(
            ckpts["seq+teacher"],
            lambda k, v: v.clone().fill_(float("nan")) if k.startswith("extras.teacher.") else v,
        )
    )
    with pytest.warns(rnnattn.CheckpointWarning, match="teacher"):
        rnnattn.load_checkpoint(teacher)

    # nu = -inf is the documented exact lambda = 1: loaded silently, and `info` does not call it suspicious
    import warnings

    lam1 = case(_reencode(ckpts["glrnn"], lambda k, v: torch.full_like(v, -float("inf")) if k == "nu" else v))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = rnnattn.load(lam1)
    assert torch.equal(m.lam, torch.ones(3))
    rc, out, err = cli(["info", str(lam1)])
    assert rc == 0 and "WARNING" not in out
    # ... but NaN there is flagged like anywhere else
    nan_nu = case(_reencode(ckpts["glrnn"], lambda k, v: torch.full_like(v, float("nan")) if k == "nu" else v))
    with pytest.warns(rnnattn.CheckpointWarning, match="nu"):
        rnnattn.load(nan_nu)
    rc, out, err = cli(["info", str(nan_nu)])
    assert rc == 0 and "non-finite weights in nu: 3 NaN" in out


def test_load_errors_are_checkpoint_errors_for_bad_paths(tmp_path):
    f = write(tmp_path / "file", b"x" * 100)
    for bad in [
        tmp_path / "missing.safetensors",
        tmp_path,
        f / "child",
        Path("/dev/null"),
        Path("/proc/self/mem"),
        tmp_path / ("x" * 5000),
        Path(str(tmp_path) + "/a\x00b"),
    ]:
        with pytest.raises(CheckpointError) as e:
            rnnattn.load(bad)
        assert "\n" not in str(e.value)


def test_fifo_does_not_hang(tmp_path):
    import os

    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with deadline(20), pytest.raises(CheckpointError, match="not a regular file"):
        rnnattn.load(fifo)


def test_report_flags_nan_weights(ckpts, case, tmp_path):
    from _reliability_tools import require_command

    require_command("report")
    p = case(_reencode(ckpts["glrnn"], lambda k, v: v.clone().fill_(float("nan")) if k == "W_in" else v))
    rc, out, err = cli(["report", str(p), "-o", str(tmp_path / "r"), "--format", "html"], "nan report")
    if rc == 0:
        html = next((tmp_path / "r").rglob("report.html")).read_text()
        assert "NaN" in html or "non-finite" in html
    else:
        assert "nan" in err.lower() or "non-finite" in err.lower(), err


def test_info_escapes_terminal_control_characters(ckpts, case):
    """Metadata is free text from whoever wrote the file: ``info`` must not pass escape sequences to the terminal."""
    header, info, data = split(ckpts["glrnn"])
    evil = "\x1b]0;owned\x07\x1b[2J\rfake line\x00\u202e"
    info = dict(info, metadata={"note": evil, evil: "key too"}, rnnattn_version=evil)
    p = case(assemble(header, info, data))
    rc, out, err = cli(["info", str(p)], "terminal escapes")
    assert rc == 0 and "\x1b" not in out and "\r" not in out and "\x07" not in out and "\u202e" not in out
    assert "owned" in out  # escaped, not dropped
    rc, out, err = cli(["info", "--json", str(p)], "terminal escapes")
    assert rc == 0 and "\x1b" not in out and json.loads(out)["metadata"]["note"] == evil
