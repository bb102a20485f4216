"""Pass 1 — lowering: program DAG -> scalar *lanes* with affine input expressions.

Every affine node (``Linear``, ``Slice``, ``Concat``, operator sugar) disappears: its output is a list of
:class:`Expr` (sparse affine combinations of lanes plus a constant). Only non-linear *units* remain:

* ``relu`` lane: ``max(0, e)`` for one expression ``e``;
* ``mul`` lane: ``a * b`` for two expressions;
* ``state`` unit: a weakly-connected block of a ``LinState`` (``s = A s + u``), one lane per state component.

While lowering we fold constants, apply exact rewrites justified by a sign analysis (``ReLU(e) = e`` when ``e
>= 0`` is provable, ``ReLU(e) = 0`` when ``e <= 0``; ``Mul`` by a constant is affine; a ``LinState`` block
with ``A = 0`` is affine) and hash-cons identical lanes (common-subexpression elimination), which is where the
sugar's many repeated ``f_larger(ctr, ...)`` calls collapse. All arithmetic happens in the chosen numeric
mode, so in exact mode every rewrite is an identity of rational functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..nodes import Concat, Input, Linear, LinState, Multiplicative, ReLU, Variable
from ..numeric import Mode, Number, norm_exact, to_mode
from ..program import Program

POS, NEG, UNK = 1, -1, 0


class Expr:
    """``sum_l coefs[l] * lane_l + const`` (coefficients are non-zero)."""

    __slots__ = ("coefs", "const")

    def __init__(self, coefs: dict[int, Number] | None = None, const: Number = 0) -> None:
        self.coefs = coefs or {}
        self.const = const

    def key(self) -> tuple:
        return (tuple(sorted(self.coefs.items())), self.const)

    def is_const(self) -> bool:
        return not self.coefs

    def scaled(self, a: Number, exact: bool) -> Expr:
        if a == 0:
            return Expr({}, 0 * a)
        n = norm_exact if exact else (lambda v: v)
        return Expr({k: n(v * a) for k, v in self.coefs.items()}, n(self.const * a))

    def __repr__(self) -> str:
        return f"Expr({self.coefs}, {self.const})"


def combine(terms: list[tuple[Number, Expr]], const: Number, exact: bool) -> Expr:
    """``sum_i a_i e_i + const`` with exact zero-dropping."""
    coefs: dict[int, Number] = {}
    for a, e in terms:
        if not a:
            continue
        for k, v in e.coefs.items():
            coefs[k] = coefs.get(k, 0) + a * v
        const = const + a * e.const
    if exact:
        return Expr({k: norm_exact(v) for k, v in coefs.items() if v}, norm_exact(const))
    return Expr({k: v for k, v in coefs.items() if v}, const)


@dataclass
class Unit:
    """A schedulable non-linear block (see module docstring). ``inputs``: one Expr per lane (relu/state) or
    one ``(a, b)`` pair per lane (mul). ``A``: ``{(i, j): a}`` local transition (state). ``s0``: initial state."""

    kind: str
    lanes: list[int]
    inputs: list[Any]
    A: dict[tuple[int, int], Number] = field(default_factory=dict)
    s0: list[Number] = field(default_factory=list)

    def deps(self) -> set[int]:
        out: set[int] = set()
        for e in self.inputs:
            for x in e if isinstance(e, tuple) else (e,):
                out.update(x.coefs)
        return out


@dataclass
class Lowered:
    """The lane graph. ``lane_unit[l]`` = index of the unit producing lane ``l`` (unit 0 is the input)."""

    mode: Mode
    input_dim: int
    units: list[Unit]
    lane_unit: list[int]
    lane_sign: list[int]
    lane_label: list[str]
    outputs: list[Expr]


class _Lowerer:
    def __init__(self, program: Program, mode: Mode) -> None:
        self.p, self.mode = program, mode
        self.exact = mode is Mode.EXACT
        self.units: list[Unit] = []
        self.lane_unit: list[int] = []
        self.lane_sign: list[int] = []
        self.lane_label: list[str] = []
        self.cse: dict[Any, list[int]] = {}

    def num(self, v: Number) -> Number:
        return to_mode(v, self.mode)

    def new_lane(self, unit: int, sign: int, label: str) -> int:
        self.lane_unit.append(unit)
        self.lane_sign.append(sign)
        self.lane_label.append(label)
        return len(self.lane_unit) - 1

    def sign(self, e: Expr) -> int:
        pos = e.const >= 0
        neg = e.const <= 0
        for k, v in e.coefs.items():
            s = self.lane_sign[k] * (1 if v > 0 else -1)
            pos = pos and s == POS
            neg = neg and s == NEG
        return POS if pos else NEG if neg else UNK

    def run(self) -> Lowered:
        inp = self.p.input
        assert inp is not None
        self.units.append(Unit("input", [], []))
        in_lanes = []
        for i in range(inp.dim):
            lo, hi = inp.lower[i], inp.upper[i]
            s = POS if lo is not None and lo >= 0 else NEG if hi is not None and hi <= 0 else UNK
            in_lanes.append(self.new_lane(0, s, f"{inp.name}[{i}]"))
        self.units[0].lanes = in_lanes
        vals: dict[Variable, list[Expr]] = {}
        zero = self.num(0)
        for n in self.p.nodes:
            if isinstance(n, Input):
                vals[n] = [Expr({l: self.num(1)}, zero) for l in in_lanes]
            elif isinstance(n, LinState):
                vals[n] = self.lower_state(n, vals[n.input])
            elif isinstance(n, Linear):
                vals[n] = self.affine(n.A, n.b, vals[n.input])
            elif isinstance(n, Concat):
                vals[n] = [e for p in n.inputs for e in vals[p]]
            elif isinstance(n, ReLU):
                vals[n] = [self.relu(e, f"{n.name}[{i}]") for i, e in enumerate(vals[n.input])]
            elif isinstance(n, Multiplicative):
                u, h = vals[n.input], n.dim
                vals[n] = [self.mul(u[i], u[h + i], f"{n.name}[{i}]") for i in range(h)]
            else:  # pragma: no cover
                raise TypeError(type(n).__name__)
        return Lowered(
            self.mode,
            inp.dim,
            self.units,
            self.lane_unit,
            self.lane_sign,
            self.lane_label,
            vals[self.p.output],
        )

    def affine(self, A: Any, b: tuple, ins: list[Expr]) -> list[Expr]:
        out = []
        for i, row in enumerate(A.rows):
            out.append(combine([(self.num(v), ins[j]) for j, v in row], self.num(b[i]), self.exact))
        return out

    def relu(self, e: Expr, label: str) -> Expr:
        if e.is_const():
            return Expr({}, e.const if e.const > 0 else self.num(0))
        s = self.sign(e)
        if s == POS:
            return e
        if s == NEG:
            return Expr({}, self.num(0))
        key = ("relu", e.key())
        if key not in self.cse:
            u = len(self.units)
            lane = self.new_lane(u, POS, f"relu:{label}")
            self.units.append(Unit("relu", [lane], [e]))
            self.cse[key] = [lane]
        return Expr({self.cse[key][0]: self.num(1)}, self.num(0))

    def mul(self, a: Expr, b: Expr, label: str) -> Expr:
        if a.is_const():
            return b.scaled(a.const, self.exact)
        if b.is_const():
            return a.scaled(b.const, self.exact)
        ka, kb = a.key(), b.key()
        if kb < ka:
            a, b, ka, kb = b, a, kb, ka
        key = ("mul", ka, kb)
        if key not in self.cse:
            sa, sb = self.sign(a), self.sign(b)
            u = len(self.units)
            lane = self.new_lane(u, sa * sb if sa and sb else UNK, f"mul:{label}")
            self.units.append(Unit("mul", [lane], [(a, b)]))
            self.cse[key] = [lane]
        return Expr({self.cse[key][0]: self.num(1)}, self.num(0))

    def lower_state(self, n: LinState, ins: list[Expr]) -> list[Expr]:
        u = self.affine(n.B, n.bias, ins)
        d = n.dim
        parent = list(range(d))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        A = {(i, j): self.num(v) for i, j, v in n.A.entries()}
        for i, j in A:
            parent[find(i)] = find(j)
        comps: dict[int, list[int]] = {}
        for i in range(d):
            comps.setdefault(find(i), []).append(i)
        out: list[Expr | None] = [None] * d
        for comp in comps.values():
            local = {g: k for k, g in enumerate(comp)}
            Aloc = {(local[i], local[j]): v for (i, j), v in A.items() if i in local}
            if not Aloc:  # A = 0 on this block: s_t = u_t, an affine value
                for g in comp:
                    out[g] = u[g]
                continue
            s0 = [self.num(n.init_state[g]) for g in comp]
            ins_c = [u[g] for g in comp]
            key = ("state", tuple(sorted(Aloc.items())), tuple(e.key() for e in ins_c), tuple(s0))
            if key not in self.cse:
                signs = [self.sign(e) for e in ins_c]
                a_pos = all(v > 0 for v in Aloc.values())
                sg = UNK
                if a_pos and all(s == POS for s in signs) and all(v >= 0 for v in s0):
                    sg = POS
                elif a_pos and all(s == NEG for s in signs) and all(v <= 0 for v in s0):
                    sg = NEG
                uid = len(self.units)
                lanes = [self.new_lane(uid, sg, f"{n.name}[{g}]") for g in comp]
                self.units.append(Unit("state", lanes, ins_c, Aloc, s0))
                self.cse[key] = lanes
            for g, lane in zip(comp, self.cse[key], strict=False):
                out[g] = Expr({lane: self.num(1)}, self.num(0))
        return out  # type: ignore[return-value]


def lower(program: Program, mode: Mode) -> Lowered:
    """Lowers ``program`` (validated) to lanes in ``mode`` arithmetic, then removes dead lanes."""
    return eliminate_dead(_Lowerer(program, mode).run())


def eliminate_dead(g: Lowered) -> Lowered:
    """Drops lanes that no output depends on (state blocks keep the lanes their live lanes read through
    ``A``)."""
    live: set[int] = set()
    work = [l for e in g.outputs for l in e.coefs]
    lane_pos: dict[int, int] = {}
    for u in g.units:
        for k, l in enumerate(u.lanes):
            lane_pos[l] = k
    rows: dict[int, dict[int, list[int]]] = {}
    for ui, u in enumerate(g.units):
        if u.kind == "state":
            r: dict[int, list[int]] = {}
            for i, j in u.A:
                r.setdefault(i, []).append(j)
            rows[ui] = r
    while work:
        l = work.pop()
        if l in live:
            continue
        live.add(l)
        u = g.units[g.lane_unit[l]]
        if u.kind == "input":
            continue
        k = lane_pos[l]
        e = u.inputs[k]
        for x in e if isinstance(e, tuple) else (e,):
            work.extend(x.coefs)
        if u.kind == "state":
            work.extend(u.lanes[j] for j in rows[g.lane_unit[l]].get(k, ()))
    new_units = [g.units[0]]
    remap_unit = {0: 0}
    for ui, u in enumerate(g.units[1:], start=1):
        keep = [k for k, l in enumerate(u.lanes) if l in live]
        if not keep:
            continue
        if len(keep) < len(u.lanes):
            pos = {k: i for i, k in enumerate(keep)}
            u = Unit(
                u.kind,
                [u.lanes[k] for k in keep],
                [u.inputs[k] for k in keep],
                {(pos[i], pos[j]): v for (i, j), v in u.A.items() if i in pos and j in pos},
                [u.s0[k] for k in keep] if u.s0 else [],
            )
        remap_unit[ui] = len(new_units)
        new_units.append(u)
    lane_unit = [remap_unit.get(ui, -1) for ui in g.lane_unit]
    return Lowered(g.mode, g.input_dim, new_units, lane_unit, g.lane_sign, g.lane_label, g.outputs)
