"""Files whose unpickling would run code are refused, and the code provably never runs.

The payload's ``__reduce__`` makes unpickling create a marker file. A positive control unpickles it once in a
child process to prove that the payload *does* fire when unpickled; then every rnnattn entry point that reads a file
must refuse every disguise of it (``torch.save`` zip and legacy formats, plain pickle protocols 0-5, with
``.safetensors``/``.pt``/no extension, inside a safetensors metadata string) and the marker must not exist."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _reliability_tools import COUNTS, REPO, assert_clean_error, cli, load_outcome

import rnnattn
from rnnattn.checkpoint import CheckpointError


class Payload:
    """Unpickling this calls ``open(marker, "w")``, creating the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    evil = {"state_dict": {"W": torch.zeros(2)}, "config": Payload(marker)}
    files: dict[str, Path] = {}
    for ext in (".safetensors", ".pt", ""):
        p = tmp_path / f"torch_zip{ext}"
        torch.save(evil, p)
        files[p.name] = p
        p = tmp_path / f"torch_legacy{ext}"
        torch.save(evil, p, _use_new_zipfile_serialization=False)
        files[p.name] = p
        for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
            p = tmp_path / f"pickle{proto}{ext}"
            p.write_bytes(pickle.dumps(evil, protocol=proto))
            files[p.name] = p
    # a pickle hidden after a valid-looking safetensors length prefix, and inside the rnnattn metadata string
    import json
    import struct

    blob = pickle.dumps(evil)
    p = tmp_path / "prefixed.safetensors"
    p.write_bytes(struct.pack("<Q", len(blob)) + blob)
    files[p.name] = p
    from safetensors.torch import save as st_save

    p = tmp_path / "pickle_in_metadata.safetensors"
    p.write_bytes(
        st_save(
            {"W": torch.zeros(2)},
            metadata={"rnnattn": blob.decode("latin-1"), "pickle": json.dumps(blob.decode("latin-1"))},
        )
    )
    files[p.name] = p
    return files


@pytest.fixture
def payloads(tmp_path):
    marker = tmp_path / "PWNED"
    files = _payload_files(tmp_path, marker)
    assert not marker.exists()
    return marker, files


def test_positive_control_payload_runs_when_unpickled(payloads):
    """Without this, a broken payload would make the refusal tests pass vacuously."""
    marker, files = payloads
    plain = marker.parent / "plain.pkl"  # the payload alone: unpickling it needs no torch import (fast)
    plain.write_bytes(pickle.dumps(Payload(marker)))
    code = "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())"
    subprocess.run([sys.executable, "-c", code, str(plain)], check=True, capture_output=True, timeout=120)
    assert marker.exists()
    marker.unlink()
    plain.unlink()
    import pickletools

    assert any(op.name in ("GLOBAL", "STACK_GLOBAL") for op, _, _ in pickletools.genops(files["pickle2"].read_bytes()))
    for name, f in files.items():  # and every disguise really carries that payload
        data = f.read_bytes()
        if data[:2] == b"PK":  # torch's zip format: the pickle is the data.pkl member (possibly compressed)
            import zipfile

            with zipfile.ZipFile(f) as z:
                data = b"".join(z.read(n) for n in z.namelist() if n.endswith(".pkl"))
        assert b"open" in data and marker.name.encode() in data, name  # (io.open / builtins.open, the marker)


def test_load_refuses_pickles_and_never_runs_them(payloads):
    marker, files = payloads
    for name, p in files.items():
        with pytest.raises(CheckpointError):
            rnnattn.load(p)
        assert load_outcome(p, "pickle") == "error"
        assert not marker.exists(), f"loading {name} ran the pickle payload"
    zipped = str(files["torch_zip.safetensors"])
    with pytest.raises(CheckpointError, match="never unpickles"):
        rnnattn.load(zipped)
    with pytest.raises(CheckpointError, match="never unpickles"):
        rnnattn.load(files["pickle5.safetensors"])


def test_cli_refuses_pickles_and_never_runs_them(payloads):
    from _reliability_tools import available_commands

    marker, files = payloads
    argvs = [["info", "{}"], ["info", "--json", "{}"]]
    if "report" in available_commands():
        argvs.append(["report", "{}", "--out", str(marker.parent / "r.html")])
    for p in files.values():
        for argv in argvs:
            argv = [a.replace("{}", str(p)) for a in argv]
            rc, out, err = cli(argv, "pickle (cli)")
            assert_clean_error(rc, err, argv)
            assert not marker.exists(), f"rnnattn {' '.join(argv)} ran the pickle payload"


_UNPICKLERS = {
    ("torch", "load"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("dill", "load"),
    ("dill", "loads"),
    ("joblib", "load"),
    ("marshal", "loads"),
    ("marshal", "load"),
    ("shelve", "open"),
    ("cloudpickle", "loads"),
}


def _unpickling_calls(src: str) -> list[str]:
    """``module.function`` calls in ``src`` that can run code from data (attribute-call form), plus
    ``numpy.load(..., allow_pickle=True)`` and ``eval``/``exec``."""
    found = []
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in _UNPICKLERS:
            found.append(f"{f.value.id}.{f.attr} (line {node.lineno})")
        if isinstance(f, ast.Name) and f.id in ("eval", "exec"):
            found.append(f"{f.id} (line {node.lineno})")
        if any(
            k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
            for k in node.keywords
        ):
            found.append(f"allow_pickle (line {node.lineno})")
    return found


def test_static_no_module_unpickles():
    """No rnnattn module calls an unpickler (or eval/exec): the only file formats read are safetensors, JSON and
    CSV. (Guards against a later ``torch.load`` of optimiser state or reference data.)"""
    offenders = {}
    for py in sorted((REPO / "rnnattn").rglob("*.py")):
        calls = _unpickling_calls(py.read_text())
        if calls:
            offenders[str(py.relative_to(REPO))] = calls
        COUNTS["inputs: modules scanned for unpicklers"] += 1
    assert not offenders, offenders


def test_static_scanner_finds_what_it_should():
    # the scanner itself must be able to fail
    assert _unpickling_calls("import torch\nx = torch.load('a.pt')")
    assert _unpickling_calls("import numpy as np\nnp.load('a.npy', allow_pickle=True)")
    assert _unpickling_calls("pickle.loads(b)")
    assert not _unpickling_calls("from safetensors.torch import load\nload(b)")


def test_save_refuses_non_json_metadata_instead_of_pickling(tmp_path):
    marker = tmp_path / "PWNED"
    m = rnnattn.LSTM(rnnattn.LSTMConfig(d_input=1, d_hidden=1))
    with pytest.raises(CheckpointError, match="JSON"):
        rnnattn.save(m, tmp_path / "m.safetensors", evil=Payload(marker))
    assert not (tmp_path / "m.safetensors").exists() and not marker.exists()
    with pytest.raises(CheckpointError):
        rnnattn.save(torch.nn.Linear(1, 1), tmp_path / "lin.safetensors")  # type: ignore[arg-type]


def test_sweep_spec_cannot_run_arbitrary_code(tmp_path):
    import json

    from _reliability_tools import require_command

    require_command("sweep")
    marker = tmp_path / "PWNED"
    spec = tmp_path / "innocent.json"
    spec.write_text(
        json.dumps(
            {
                "name": "innocent",
                "fn": "subprocess:run",
                "grid": {},
                "seeds": [0],
                "base": {"touch": 1, str(marker): 2},
            }
        )
    )
    rc, out, err = cli(
        ["sweep", str(spec), "--workers", "1", "--out", str(tmp_path / "out"), "--no-progress"],
        "hostile sweep spec",
    )
    assert not marker.exists(), "a downloaded sweep spec ran a shell command"
