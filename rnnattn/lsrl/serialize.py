"""Programs as JSON files: :func:`program_to_json` / :func:`program_from_json` (``Program.to_json`` /
``Program.from_json``).

Format (``"version": 1``)::

    {"format": "rnnattn.lsrl.program", "version": 1, "name": "token_n3_direct", "output": 41,
     "nodes": [{"kind": "Input", "name": "token", "dim": 1, "lower": [0], "upper": [null]},
               {"kind": "Linear", "name": "...", "input": 0, "A": {"shape": [1, 1], "entries": [[0, 0, 2]]},
                "b": [0]},
               {"kind": "LinState", "input": 1, "A": M, "B": M, "init_state": [...], "bias": [...]},
               {"kind": "Slice", "input": 0, "start": 0, "end": 1}, {"kind": "Concat", "inputs": [0, 2]},
               {"kind": "ReLU", "input": 3}, {"kind": "Multiplicative", "input": 4}, ...]}

Nodes are listed in topological order and refer to earlier nodes by index, so a file cannot describe a cycle.
Numbers: a JSON int or a finite JSON float (floats round-trip exactly through ``repr``), ``{"q": [p, q]}`` for a
``Fraction``, ``{"sym": tree}`` for a sympy constant, where ``tree`` is built only from ``["int", n]``,
``["rat", p, q]``, ``["pi"]``, ``["E"]``, ``["add", ...]``, ``["mul", ...]``, ``["pow", base, ["int"|"rat"
...]]`` and ``["cos"|"sin"|"tan"|"exp"|"log", x]``.

Loading never runs code (no ``eval``, no ``sympify``, no pickle): every field is type-checked against this schema,
every size against :mod:`rnnattn.limits` (``MAX_LSRL_NODES``, ``MAX_LSRL_DIM``), and the nodes are rebuilt with
their ordinary constructors, which validate shapes. Any problem is one :class:`ProgramFormatError` line naming the
field (``nodes[3].A.entries[2]: ...``).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any

from ..limits import MAX_LSRL_DIM, MAX_LSRL_NODES
from .nodes import Concat, Input, Linear, LinState, LSRLValidationError, Multiplicative, ReLU, Slice, Variable
from .numeric import Number, SparseMatrix, is_symbolic
from .program import Program, as_program

FORMAT = "rnnattn.lsrl.program"
VERSION = 1
MAX_NAME = 200  # characters of a node or program name
MAX_INT_BITS = 4096  # bits of an integer (numerator/denominator) in a constant
MAX_SYM_NODES = 64  # nodes of one symbolic constant's tree
_SYM_FUNCS = ("cos", "sin", "tan", "exp", "log")


class ProgramFormatError(ValueError):
    """A program JSON that does not follow the format (one line naming the field)."""


# -- writing -----------------------------------------------------------------------------------------------------
def _num_out(v: Number) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return v
    if isinstance(v, Fraction):
        return {"q": [v.numerator, v.denominator]}
    if is_symbolic(v):
        return {"sym": _sym_out(v)}
    raise ProgramFormatError(f"cannot serialise the constant {v!r}")


def _sym_out(e: Any) -> list:
    import sympy

    if e.is_Integer:
        return ["int", int(e)]
    if e.is_Rational:
        return ["rat", int(e.p), int(e.q)]
    if e is sympy.pi:
        return ["pi"]
    if e is sympy.E:
        return ["E"]
    if e.is_Add or e.is_Mul:
        return ["add" if e.is_Add else "mul", *[_sym_out(a) for a in e.args]]
    if e.is_Pow and e.exp.is_Rational:
        return ["pow", _sym_out(e.base), _sym_out(e.exp)]
    name = type(e).__name__
    if name in _SYM_FUNCS and len(e.args) == 1:
        return [name, _sym_out(e.args[0])]
    raise ProgramFormatError(f"cannot serialise the symbolic constant {e} (allowed: {_SYM_FUNCS}, +, *, ^, pi, E)")


def _mat_out(m: SparseMatrix) -> dict:
    return {"shape": list(m.shape), "entries": [[i, j, _num_out(v)] for i, j, v in m.entries()]}


def _vec_out(v: tuple) -> list:
    return [None if x is None else _num_out(x) for x in v]


def _node_out(n: Variable, index: dict[Variable, int]) -> dict:
    d: dict[str, Any] = {"kind": n.kind, "name": n.name}
    if isinstance(n, Input):
        d.update(dim=n.dim, lower=_vec_out(n.lower), upper=_vec_out(n.upper))
    elif isinstance(n, Slice):
        d.update(input=index[n.input], start=n.start, end=n.end)
    elif isinstance(n, Linear):
        d.update(input=index[n.input], A=_mat_out(n.A), b=_vec_out(n.b))
    elif isinstance(n, Concat):
        d["inputs"] = [index[p] for p in n.inputs]
    elif isinstance(n, LinState):
        d.update(input=index[n.input], A=_mat_out(n.A), B=_mat_out(n.B))
        d.update(init_state=_vec_out(n.init_state), bias=_vec_out(n.bias))
    else:  # ReLU, Multiplicative
        d["input"] = index[n.inputs[0]]
    return d


def program_to_json(program: Program | Variable, indent: int | None = None) -> str:
    """The JSON text of ``program`` (format in the module docstring)."""
    prog = as_program(program)
    prog.validate()
    index = {n: i for i, n in enumerate(prog.nodes)}
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "name": prog.name,
        "output": index[prog.output],
        "nodes": [_node_out(n, index) for n in prog.nodes],
    }
    return json.dumps(doc, indent=indent, allow_nan=False)


# -- reading -----------------------------------------------------------------------------------------------------
def _fail(where: str, msg: str) -> ProgramFormatError:
    return ProgramFormatError(f"program JSON: {where}: {msg}")


def _int(x: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise _fail(where, f"expected an integer, got {type(x).__name__}")
    if x.bit_length() > MAX_INT_BITS:
        raise _fail(where, f"integer of {x.bit_length()} bits is above the limit of {MAX_INT_BITS}")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise _fail(where, f"{x} is outside [{lo}, {hi}]")
    return x


def _str(x: Any, where: str) -> str:
    if not isinstance(x, str) or len(x) > MAX_NAME or not x.isprintable():
        raise _fail(where, f"expected a printable string of at most {MAX_NAME} characters")
    return x


def _num_in(x: Any, where: str) -> Number:
    if isinstance(x, float):
        if not math.isfinite(x):
            raise _fail(where, "constants must be finite")
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return _int(x, where)
    if isinstance(x, dict) and set(x) == {"q"} and isinstance(x["q"], list) and len(x["q"]) == 2:
        p, q = _int(x["q"][0], f"{where}.q[0]"), _int(x["q"][1], f"{where}.q[1]", lo=1)
        return Fraction(p, q)
    if isinstance(x, dict) and set(x) == {"sym"}:
        return _sym_in(x["sym"], f"{where}.sym", [0])
    raise _fail(where, f"expected a number, {{'q': [p, q]}} or {{'sym': tree}}, got {type(x).__name__}")


def _sym_in(t: Any, where: str, count: list[int]) -> Any:
    import sympy

    count[0] += 1
    if count[0] > MAX_SYM_NODES:
        raise _fail(where, f"symbolic constant has more than {MAX_SYM_NODES} nodes")
    if not isinstance(t, list) or not t or not isinstance(t[0], str):
        raise _fail(where, "expected a list [op, ...]")
    op, args = t[0], t[1:]
    if op == "int" and len(args) == 1:
        return sympy.Integer(_int(args[0], where, -(2**64), 2**64))
    if op == "rat" and len(args) == 2:
        return sympy.Rational(_int(args[0], where, -(2**64), 2**64), _int(args[1], where, 1, 2**64))
    if op in ("pi", "E") and not args:
        return sympy.pi if op == "pi" else sympy.E
    if op in ("add", "mul") and 2 <= len(args) <= 16:
        parts = [_sym_in(a, f"{where}[{k + 1}]", count) for k, a in enumerate(args)]
        return sympy.Add(*parts) if op == "add" else sympy.Mul(*parts)
    if op == "pow" and len(args) == 2:
        base = _sym_in(args[0], f"{where}[1]", count)
        e = args[1]  # a small rational exponent only: 2 ** (10 ** 9) must not be evaluated
        if not (isinstance(e, list) and e and e[0] in ("int", "rat")):
            raise _fail(where, "pow needs an ['int'|'rat', ...] exponent")
        exp = _sym_in(e, f"{where}[2]", count)
        if abs(exp.p) > 64 or exp.q > 64:
            raise _fail(where, "pow exponents are limited to |p|, q <= 64")
        return sympy.Pow(base, exp)
    if op in _SYM_FUNCS and len(args) == 1:
        return getattr(sympy, op)(_sym_in(args[0], f"{where}[1]", count))
    raise _fail(where, f"unknown symbolic operation {str(op)[:20]!r} with {len(args)} arguments")


def _vec_in(x: Any, where: str, dim: int, nullable: bool = False) -> list:
    if not isinstance(x, list) or len(x) != dim:
        raise _fail(where, f"expected a list of {dim} numbers")
    return [None if (nullable and v is None) else _num_in(v, f"{where}[{k}]") for k, v in enumerate(x)]


def _mat_in(x: Any, where: str) -> SparseMatrix:
    if not isinstance(x, dict) or set(x) != {"shape", "entries"}:
        raise _fail(where, "expected {'shape': [rows, cols], 'entries': [[i, j, v], ...]}")
    shp = x["shape"]
    if not isinstance(shp, list) or len(shp) != 2:
        raise _fail(f"{where}.shape", "expected [rows, cols]")
    r, c = (_int(s, f"{where}.shape[{k}]", 1, MAX_LSRL_DIM) for k, s in enumerate(shp))
    ents = x["entries"]
    if not isinstance(ents, list) or len(ents) > r * c:
        raise _fail(f"{where}.entries", f"expected a list of at most {r * c} [i, j, v] triples")
    seen: dict[tuple[int, int], Number] = {}
    for k, e in enumerate(ents):
        w = f"{where}.entries[{k}]"
        if not isinstance(e, list) or len(e) != 3:
            raise _fail(w, "expected [i, j, v]")
        i, j = _int(e[0], w, 0, r - 1), _int(e[1], w, 0, c - 1)
        if (i, j) in seen:
            raise _fail(w, f"duplicate entry ({i}, {j})")
        seen[(i, j)] = _num_in(e[2], w)
    return SparseMatrix.from_entries((r, c), [(i, j, v) for (i, j), v in seen.items()])


_KEYS = {
    "Input": {"dim", "lower", "upper"},
    "Linear": {"input", "A", "b"},
    "Slice": {"input", "start", "end"},
    "Concat": {"inputs"},
    "ReLU": {"input"},
    "LinState": {"input", "A", "B", "init_state", "bias"},
    "Multiplicative": {"input"},
}


def _node_in(d: Any, k: int, built: list[Variable]) -> Variable:
    where = f"nodes[{k}]"
    if not isinstance(d, dict) or not isinstance(d.get("kind"), str) or d["kind"] not in _KEYS:
        raise _fail(where, f"expected an object with 'kind' one of {sorted(_KEYS)}")
    kind = d["kind"]
    if set(d) != _KEYS[kind] | {"kind", "name"}:
        raise _fail(where, f"a {kind} node has exactly the fields {sorted(_KEYS[kind] | {'kind', 'name'})}")
    name = _str(d["name"], f"{where}.name")

    def ref(x: Any, w: str) -> Variable:
        return built[_int(x, w, 0, k - 1)] if k > 0 else _fail_ref(w)

    if kind == "Input":
        dim = _int(d["dim"], f"{where}.dim", 1, MAX_LSRL_DIM)
        lower = _vec_in(d["lower"], f"{where}.lower", dim, nullable=True)
        return Input(dim, lower, _vec_in(d["upper"], f"{where}.upper", dim, nullable=True), name=name)
    if kind == "Concat":
        ins = d["inputs"]
        if not isinstance(ins, list) or not 1 <= len(ins) <= MAX_LSRL_NODES:
            raise _fail(f"{where}.inputs", "expected a non-empty list of node indices")
        return Concat([ref(x, f"{where}.inputs[{i}]") for i, x in enumerate(ins)], name=name)
    x = ref(d["input"], f"{where}.input")
    if kind == "Slice":
        return Slice(x, _int(d["start"], f"{where}.start"), _int(d["end"], f"{where}.end"), name=name)
    if kind == "ReLU":
        return ReLU(x, name=name)
    if kind == "Multiplicative":
        return Multiplicative(x, name=name)
    if kind == "Linear":
        A = _mat_in(d["A"], f"{where}.A")
        return Linear(x, A, _vec_in(d["b"], f"{where}.b", A.shape[0]), name=name)
    B = _mat_in(d["B"], f"{where}.B")
    n = B.shape[0]
    A = _mat_in(d["A"], f"{where}.A")
    s0, bias = _vec_in(d["init_state"], f"{where}.init_state", n), _vec_in(d["bias"], f"{where}.bias", n)
    return LinState(x, A, B, init_state=s0, bias=bias, name=name)


def _fail_ref(where: str) -> Variable:
    raise _fail(where, "the first node cannot have inputs")


def program_from_json(text: str | bytes) -> Program:
    """Rebuilds a :class:`Program` from :func:`program_to_json` text; raises :class:`ProgramFormatError`."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ProgramFormatError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise ProgramFormatError(f"program JSON: not valid JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ProgramFormatError(f'program JSON: not an LSRL program (expected "format": "{FORMAT}")')
    if set(doc) != {"format", "version", "name", "output", "nodes"}:
        raise _fail("top level", "expected exactly the fields format, version, name, output, nodes")
    if doc["version"] != VERSION or isinstance(doc["version"], bool):
        raise _fail("version", f"unsupported version {str(doc['version'])[:20]!r} (this rnnattn reads {VERSION})")
    nodes = doc["nodes"]
    if not isinstance(nodes, list) or not 1 <= len(nodes) <= MAX_LSRL_NODES:
        raise _fail("nodes", f"expected a list of 1..{MAX_LSRL_NODES} nodes (rnnattn.limits.MAX_LSRL_NODES)")
    built: list[Variable] = []
    for k, d in enumerate(nodes):
        try:
            built.append(_node_in(d, k, built))
        except (LSRLValidationError, ValueError, TypeError, IndexError) as e:
            if isinstance(e, ProgramFormatError):
                raise
            raise _fail(f"nodes[{k}]", " ".join(str(e).split())[:200]) from None
    out = built[_int(doc["output"], "output", 0, len(built) - 1)]
    prog = Program(out, name=_str(doc["name"], "name"))
    try:
        prog.validate()
    except LSRLValidationError as e:
        raise _fail("program", " ".join(str(e).split())[:200]) from None
    return prog


def _reject_constant(name: str) -> Any:
    raise ProgramFormatError(f"program JSON: {name} is not a finite number")


def load_program(path: Any) -> Program:
    """Reads a program JSON file: a regular file of at most ``MAX_LSRL_PROGRAM_BYTES`` (never a FIFO or a
    device), then :func:`program_from_json`."""
    from ..limits import MAX_LSRL_PROGRAM_BYTES
    from ..safeio import read_regular

    return program_from_json(read_regular(path, MAX_LSRL_PROGRAM_BYTES, "LSRL program"))


def save_program(program: Program | Variable, path: Any, overwrite: bool = False) -> Any:
    """Writes :func:`program_to_json` atomically; an existing file is replaced only with ``overwrite``."""
    from ..safeio import atomic_write_bytes

    return atomic_write_bytes(path, program_to_json(program, indent=1).encode(), overwrite=overwrite)
