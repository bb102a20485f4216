"""Pass 3 — assembly: scheduled lanes -> per-stage weight matrices with carry lanes and labels.

Stage ``k`` computes ``u_k = W_k z_{k-1} + c_k`` and then, by kind:

* ``relu``: ``z_k = max(0, u_k)``;
* ``mul``: ``z_k = u_k[:w] * u_k[w:]`` (``u_k`` has ``2w`` rows);
* ``state``: ``z_k = s_t = A_k s_{t-1} + u_k`` with ``s_0 = init_k`` (the ``B`` and ``b`` of Eq. 3 are folded
  into ``W_k, c_k``).

The output is ``y = W_out z_K + c_out``.
"""

from __future__ import annotations

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


def assemble(g: Lowered, s: Schedule, name: str = "program") -> CompiledProgram:
    """Builds the :class:`CompiledProgram` for lane graph ``g`` under schedule ``s``."""
    exact = g.mode.value == "exact"
    one: Number = 1 if exact else 1.0
    zero: Number = 0 if exact else 0.0
    K = len(s.kinds)
    last: dict[int, int] = {}
    for l in {l for e in g.outputs for l in e.coefs}:
        last[l] = K + 1
    for ui, u in enumerate(g.units):
        for l in u.deps():
            last[l] = max(last.get(l, -1), s.stage[ui])
    produced = {l: s.stage[g.lane_unit[l]] for l in last}
    rep: dict[int, Rep] = {l: [(i, one)] for i, l in enumerate(g.units[0].lanes)}
    units_at: dict[int, list[int]] = {}
    for ui in range(1, len(g.units)):
        units_at.setdefault(s.stage[ui], []).append(ui)
    stages: list[Stage] = []
    for k in range(1, K + 1):
        kind = s.kinds[k - 1]
        rows_a: list[tuple[dict[int, Number], Number]] = []  # input rows (for mul: first factors)
        rows_b: list[tuple[dict[int, Number], Number]] = []  # mul second factors
        A: list[tuple[int, int, Number]] = []
        init: list[Number] = []
        labels: list[str] = []
        new_rep: dict[int, Rep] = {}
        for ui in units_at.get(k, []):
            u = g.units[ui]
            base = len(labels)
            for j, l in enumerate(u.lanes):
                if kind == "mul":
                    a, b = u.inputs[j]
                    rows_a.append(_translate(a, rep, exact, one))
                    rows_b.append(_translate(b, rep, exact, one))
                else:
                    rows_a.append(_translate(u.inputs[j], rep, exact, one))
                labels.append(g.lane_label[l])
                new_rep[l] = [(base + j, one)]
            if kind == "state":
                A.extend((base + i, base + j, v) for (i, j), v in u.A.items())
                init.extend(u.s0)
        # relu rows by content, so a carried x+ / x- reuses an identical unit lane (e.g. ReLU(x) itself)
        relu_rows = {_row_key(r): i for i, r in enumerate(rows_a)} if kind == "relu" else {}
        for l, q in sorted(last.items()):
            if not produced[l] < k < q:
                continue
            src = _translate(Expr({l: one}, zero), rep, exact, one)
            lab = g.lane_label[l]
            if kind == "relu":
                sign = g.lane_sign[l]
                parts = (
                    [(one, src)]
                    if sign == POS
                    else [(-one, _neg(src))]
                    if sign == NEG
                    else [(one, src), (-one, _neg(src))]
                )
                r = []
                for coef, row in parts:
                    key = _row_key(row)
                    if key not in relu_rows:
                        relu_rows[key] = len(rows_a)
                        rows_a.append(row)
                        labels.append(f"carry{'+' if coef > 0 else '-'}:{lab}")
                    r.append((relu_rows[key], coef))
                new_rep[l] = r
            else:
                idx = len(labels)
                rows_a.append(src)
                if kind == "mul":
                    rows_b.append(({}, one))
                if kind == "state":
                    init.append(zero)
                labels.append(f"carry:{lab}")
                new_rep[l] = [(idx, one)]
        prev_width = g.input_dim if k == 1 else stages[-1].width
        rows = rows_a + rows_b
        W = SparseMatrix.from_entries(
            (len(rows), prev_width), [(i, j, v) for i, (r, _) in enumerate(rows) for j, v in r.items()]
        )
        c = tuple(cst for _, cst in rows)
        w = len(labels)
        stage = Stage(
            kind,
            W,
            c,
            tuple(labels),
            SparseMatrix.from_entries((w, w), A) if kind == "state" else None,
            tuple(init) if kind == "state" else None,
        )
        stages.append(stage)
        rep = new_rep
    out_rows = [_translate(e, rep, exact, one) for e in g.outputs]
    prev_width = g.input_dim if K == 0 else stages[-1].width
    W_out = SparseMatrix.from_entries(
        (len(out_rows), prev_width), [(i, j, v) for i, (r, _) in enumerate(out_rows) for j, v in r.items()]
    )
    c_out = tuple(cst for _, cst in out_rows)
    return CompiledProgram(
        g.mode,
        g.input_dim,
        stages,
        W_out,
        c_out,
        name=name,
        input_labels=tuple(g.lane_label[l] for l in g.units[0].lanes),
    )
