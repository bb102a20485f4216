"""Programs as JSON (issue 15): versioned, round trips give identical outputs, loading never runs code and
refuses hostile or malformed files with one line."""

import json
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn.lsrl import (
    Concat,
    Input,
    Linear,
    LinState,
    Multiplicative,
    Program,
    ReLU,
    compile,
    continuous_program,
    run,
    token_program,
)
from rnnattn.lsrl.serialize import VERSION, ProgramFormatError


def _const(rng):
    k = rng.integers(4)
    if k == 0:
        return int(rng.integers(-3, 4))
    if k == 1:
        return Fraction(int(rng.integers(-9, 10)), int(rng.integers(1, 8)))
    if k == 2:
        return float(rng.normal())
    return 0


def random_program(seed: int, size: int) -> Program:
    """A random DAG using every node kind (shapes chosen to fit)."""
    rng = np.random.default_rng(seed)
    nodes = [Input(int(rng.integers(1, 4)), lower=None)]
    for _ in range(size):
        x = nodes[int(rng.integers(len(nodes)))]
        kind = rng.integers(6)
        if kind == 0:
            m = int(rng.integers(1, 4))
            A = [[_const(rng) for _ in range(x.dim)] for _ in range(m)]
            nodes.append(Linear(x, A, [_const(rng) for _ in range(m)]))
        elif kind == 1:
            a = int(rng.integers(x.dim))
            nodes.append(x[a : int(rng.integers(a + 1, x.dim + 1))])
        elif kind == 2:
            nodes.append(Concat([x, nodes[int(rng.integers(len(nodes)))]]))
        elif kind == 3:
            nodes.append(ReLU(x))
        elif kind == 4:
            d = int(rng.integers(1, 3))
            A = [[_const(rng) / 4 for _ in range(d)] for _ in range(d)]
            B = [[_const(rng) for _ in range(x.dim)] for _ in range(d)]
            nodes.append(LinState(x, A, B, init_state=[_const(rng) for _ in range(d)]))
        else:
            nodes.append(Multiplicative(Concat([x, x])))
    out = Concat(nodes[-3:]) if len(nodes) > 3 else nodes[-1]
    return Program(out, name=f"random{seed}")


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 12))
def test_round_trip_random_programs_identical_outputs(seed, size):
    p = random_program(seed, size)
    text = p.to_json()
    q = Program.from_json(text)
    assert json.loads(text)["version"] == VERSION
    assert q.to_json() == text  # a fixed point
    xs = np.random.default_rng(seed).integers(-3, 4, size=(5, p.input_dim))
    assert (run(p, xs, mode="exact") == run(q, xs, mode="exact")).all()
    xf = xs + 0.37
    assert np.array_equal(run(p, xf), run(q, xf))  # bit-identical in float64
    assert (compile(p, mode="exact").run(xs) == compile(q, mode="exact").run(xs)).all()


def test_round_trip_universal_programs_and_symbolic_constants():
    for p in (token_program(2, "direct"), continuous_program(1, 1, "multiplicative")):
        assert Program.from_json(p.to_json()).to_json() == p.to_json()
    x = Input(1)
    p = Program(x * sympy.pi + sympy.sqrt(2) * sympy.cos(sympy.pi / 7) + Fraction(1, 3))
    q = Program.from_json(p.to_json())
    assert run(q, [[2]], mode="exact")[0, 0] == run(p, [[2]], mode="exact")[0, 0]
    assert run(q, [[2]], mode="exact")[0, 0].has(sympy.pi)


def _doc():
    return json.loads(Program(ReLU(Input(2) * 3)).to_json())


def _mut(f):
    d = _doc()
    f(d)
    return json.dumps(d)


HOSTILE = {
    "not json": "{nope",
    "not an object": "[1, 2]",
    "empty": "",
    "binary": b"\xff\xfe\x00",
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "nan": _mut(lambda d: d["nodes"][1]["A"]["entries"][0].__setitem__(2, float("nan"))),
    "infinity": _mut(lambda d: d["nodes"][1]["b"].__setitem__(0, float("inf"))),
    "huge int": _mut(lambda d: d["nodes"][1]["A"]["entries"][0].__setitem__(2, 10**4000)),
    "wrong version": _mut(lambda d: d.__setitem__("version", 99)),
    "bool version": _mut(lambda d: d.__setitem__("version", True)),
    "wrong format": _mut(lambda d: d.__setitem__("format", "pickle")),
    "extra field": _mut(lambda d: d["nodes"][0].__setitem__("__reduce__", "os.system")),
    "unknown kind": _mut(lambda d: d["nodes"][2].__setitem__("kind", "Eval")),
    "forward ref (cycle)": _mut(lambda d: d["nodes"][1].__setitem__("input", 2)),
    "self ref": _mut(lambda d: d["nodes"][1].__setitem__("input", 1)),
    "huge dim": _mut(lambda d: d["nodes"][0].__setitem__("dim", 10**9)),
    "dim mismatch": _mut(lambda d: d["nodes"][1]["A"].__setitem__("shape", [2, 5])),
    "entry out of range": _mut(lambda d: d["nodes"][1]["A"]["entries"].append([7, 0, 1])),
    "duplicate entry": _mut(lambda d: d["nodes"][1]["A"]["entries"].append([0, 0, 1])),
    "zero denominator": _mut(lambda d: d["nodes"][1]["b"].__setitem__(0, {"q": [1, 0]})),
    "sym code": _mut(lambda d: d["nodes"][1]["b"].__setitem__(0, {"sym": ["__import__", "os"]})),
    "sym string": _mut(lambda d: d["nodes"][1]["b"].__setitem__(0, {"sym": "__import__('os').system('x')"})),
    "sym pow bomb": _mut(lambda d: d["nodes"][1]["b"].__setitem__(0, {"sym": ["pow", ["int", 2], ["int", 10**9]]})),
    "sym symbol": _mut(lambda d: d["nodes"][1]["b"].__setitem__(0, {"sym": ["Symbol", "x"]})),
    "string number": _mut(lambda d: d["nodes"][1]["b"].__setitem__(0, "1/0")),
    "bool number": _mut(lambda d: d["nodes"][1]["b"].__setitem__(0, True)),
    "control chars in name": _mut(lambda d: d["nodes"][1].__setitem__("name", "a\x1b[31mb\nc")),
    "too many nodes": _mut(lambda d: d.__setitem__("nodes", [d["nodes"][0]] * 100_001)),
    "output out of range": _mut(lambda d: d.__setitem__("output", 50)),
    "two inputs": _mut(
        lambda d: (
            d["nodes"].extend([d["nodes"][0], {"kind": "Concat", "name": "c", "inputs": [2, 3]}])
            or d.__setitem__("output", 4)
        )
    ),
    "kind not a string": _mut(lambda d: d["nodes"][2].__setitem__("kind", 5)),
    "slice out of range": _mut(
        lambda d: (
            d["nodes"].append({"kind": "Slice", "name": "s", "input": 2, "start": 1, "end": 9})
            or d.__setitem__("output", 3)
        )
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_json_one_line_error(case):
    with pytest.raises(ProgramFormatError) as e:
        Program.from_json(HOSTILE[case])
    msg = str(e.value)
    assert msg.startswith("program JSON") and "\n" not in msg and len(msg) < 400, msg


def test_files_atomic_no_overwrite_and_regular_only(tmp_path):
    import os

    from rnnattn.lsrl import load_program, save_program

    p = token_program(2, "multiplicative")
    path = save_program(p, tmp_path / "p.json")
    assert load_program(path).to_json() == p.to_json()
    with pytest.raises(FileExistsError):
        save_program(p, path)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        load_program(fifo)
