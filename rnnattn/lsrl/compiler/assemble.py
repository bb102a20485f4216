"""Pass 3 — assembly: scheduled lanes -> per-stage weight matrices with carry lanes and labels.

Stage ``k`` computes ``u_k = W_k z_{k-1} + c_k`` and then, by kind:

* ``relu``: ``z_k = max(0, u_k)``;
* ``mul``: ``z_k = u_k[:w] * u_k[w:]`` (``u_k`` has ``2w`` rows);
* ``state``: ``z_k = s_t = A_k s_{t-1} + u_k`` with ``s_0 = init_k`` (the ``B`` and ``b`` of Eq. 3 are folded
  into ``W_k, c_k``).

The output is ``y = W_out z_K + c_out``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..numeric import Number, SparseMatrix, norm_exact
from .ir import CompiledProgram, Stage
from .lower import NEG, POS, Expr, Lowered
from .schedule import Schedule

Rep = list[tuple[int, Number]]  # a lane's value at some stage = sum coef * z[idx]


def _translate(e: Expr, rep: dict[int, Rep], exact: bool, one: Number) -> tuple[dict[int, Number], Number]:
    row: dict[int, Number] = {}
    for l, a in e.coefs.items():
        for idx, c in rep[l]:
            row[idx] = row.get(idx, 0) + a * c
    if exact:
        row = {k: norm_exact(v) for k, v in row.items() if v}
    else:
        row = {k: v for k, v in row.items() if v}
    return row, e.const


def _row_key(row: tuple[dict[int, Number], Number]) -> tuple:
    return (tuple(sorted(row[0].items())), row[1])


def _neg(row: tuple[dict[int, Number], Number]) -> tuple[dict[int, Number], Number]:
    return ({j: -v for j, v in row[0].items()}, -row[1])


def _matrix(rows: list[tuple[dict[int, Number], Number]], width: int) -> tuple[SparseMatrix, tuple[Number, ...]]:
    """Affine rows ``(coefs, const)`` over ``width`` inputs as ``(W [len(rows), width], c)``."""
    W = SparseMatrix.from_entries(
        (len(rows), width), [(i, j, v) for i, (r, _) in enumerate(rows) for j, v in r.items()]
    )
    return W, tuple(cst for _, cst in rows)


def _lifetimes(g: Lowered, s: Schedule) -> tuple[dict[int, int], dict[int, int]]:
    """``(last, produced)`` per lane that is read: the last stage reading it (``K + 1`` for the output map) and
    the stage producing it (0 for the input)."""
    last: dict[int, int] = {}
    for l in {l for e in g.outputs for l in e.coefs}:
        last[l] = len(s.kinds) + 1
    for ui, u in enumerate(g.units):
        for l in u.deps():
            last[l] = max(last.get(l, -1), s.stage[ui])
    produced = {l: s.stage[g.lane_unit[l]] for l in last}
    return last, produced


@dataclass
class _StageRows:
    """One stage under construction: rows of ``u_k = W_k z_{k-1} + c_k`` (for ``mul``, ``rows_a`` are the first
    factors ``u_k[:w]`` and ``rows_b`` the second ``u_k[w:]``), ``A_k`` entries and ``init_k`` (``state``), lane
    labels, and ``new_rep``: each live lane as a combination of this stage's outputs ``z_k``."""

    kind: str
    rows_a: list[tuple[dict[int, Number], Number]] = field(default_factory=list)
    rows_b: list[tuple[dict[int, Number], Number]] = field(default_factory=list)
    A: list[tuple[int, int, Number]] = field(default_factory=list)
    init: list[Number] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    new_rep: dict[int, Rep] = field(default_factory=dict)

    def stage(self, prev_width: int) -> Stage:
        W, c = _matrix(self.rows_a + self.rows_b, prev_width)
        w, state = len(self.labels), self.kind == "state"
        A = SparseMatrix.from_entries((w, w), self.A) if state else None
        return Stage(self.kind, W, c, tuple(self.labels), A, tuple(self.init) if state else None)


def _add_units(st: _StageRows, g: Lowered, units: list[int], rep: dict[int, Rep], exact: bool, one: Number) -> None:
    """The lanes of the units scheduled at this stage, their inputs translated to the previous stage's ``z``."""
    for ui in units:
        u = g.units[ui]
        base = len(st.labels)
        for j, l in enumerate(u.lanes):
            if st.kind == "mul":
                a, b = u.inputs[j]
                st.rows_a.append(_translate(a, rep, exact, one))
                st.rows_b.append(_translate(b, rep, exact, one))
            else:
                st.rows_a.append(_translate(u.inputs[j], rep, exact, one))
            st.labels.append(g.lane_label[l])
            st.new_rep[l] = [(base + j, one)]
        if st.kind == "state":
            st.A.extend((base + i, base + j, v) for (i, j), v in u.A.items())
            st.init.extend(u.s0)


def _add_carries(
    st: _StageRows, g: Lowered, k: int, lives: tuple[dict[int, int], dict[int, int]], rep: dict[int, Rep], exact: bool
) -> None:
    """Carry lanes produced before stage ``k`` and read after it through the stage unchanged: identity for
    ``mul`` (second factor 1) and ``state`` (``A = 0``, ``s_0 = 0``); for ``relu`` ``x = ReLU(x) − ReLU(−x)``
    (one half only when the lane's sign is known), reusing an identical row by content (e.g. ``ReLU(x)``)."""
    one: Number = 1 if exact else 1.0
    zero: Number = 0 if exact else 0.0
    last, produced = lives
    relu_rows = {_row_key(r): i for i, r in enumerate(st.rows_a)} if st.kind == "relu" else {}
    for l, q in sorted(last.items()):
        if not produced[l] < k < q:
            continue
        src = _translate(Expr({l: one}, zero), rep, exact, one)
        lab = g.lane_label[l]
        if st.kind == "relu":
            sign = g.lane_sign[l]
            parts = (
                [(one, src)] if sign == POS else [(-one, _neg(src))] if sign == NEG else [(one, src), (-one, _neg(src))]
            )
            r = []
            for coef, row in parts:
                key = _row_key(row)
                if key not in relu_rows:
                    relu_rows[key] = len(st.rows_a)
                    st.rows_a.append(row)
                    st.labels.append(f"carry{'+' if coef > 0 else '-'}:{lab}")
                r.append((relu_rows[key], coef))
            st.new_rep[l] = r
        else:
            idx = len(st.labels)
            st.rows_a.append(src)
            if st.kind == "mul":
                st.rows_b.append(({}, one))
            if st.kind == "state":
                st.init.append(zero)
            st.labels.append(f"carry:{lab}")
            st.new_rep[l] = [(idx, one)]


def assemble(g: Lowered, s: Schedule, name: str = "program") -> CompiledProgram:
    """Builds the :class:`CompiledProgram` for lane graph ``g`` under schedule ``s``: per stage ``k`` the units
    scheduled there plus carry lanes, each lane tracked as a combination ``Rep`` of the current stage's outputs;
    finally ``y = W_out z_K + c_out``."""
    exact = g.mode.value == "exact"
    one: Number = 1 if exact else 1.0
    K = len(s.kinds)
    lives = _lifetimes(g, s)
    rep: dict[int, Rep] = {l: [(i, one)] for i, l in enumerate(g.units[0].lanes)}
    units_at: dict[int, list[int]] = {}
    for ui in range(1, len(g.units)):
        units_at.setdefault(s.stage[ui], []).append(ui)
    stages: list[Stage] = []
    for k in range(1, K + 1):
        st = _StageRows(s.kinds[k - 1])
        _add_units(st, g, units_at.get(k, []), rep, exact, one)
        _add_carries(st, g, k, lives, rep, exact)
        stages.append(st.stage(g.input_dim if k == 1 else stages[-1].width))
        rep = st.new_rep
    out_rows = [_translate(e, rep, exact, one) for e in g.outputs]
    W_out, c_out = _matrix(out_rows, g.input_dim if K == 0 else stages[-1].width)
    return CompiledProgram(
        g.mode,
        g.input_dim,
        stages,
        W_out,
        c_out,
        name=name,
        input_labels=tuple(g.lane_label[l] for l in g.units[0].lanes),
    )
