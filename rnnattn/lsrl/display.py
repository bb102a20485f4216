"""Pictures of programs and compiled models (matplotlib only; no graphviz/networkx), and per-stage weight
tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from .compiler.ir import CompiledProgram
from .program import Program, as_program

KIND_COLORS = {
    "Input": "#8dd3c7",
    "Linear": "#ffffb3",
    "Slice": "#fdfdcf",
    "Concat": "#bebada",
    "ReLU": "#fb8072",
    "LinState": "#80b1d3",
    "Multiplicative": "#fdb462",
    "relu": "#fb8072",
    "state": "#80b1d3",
    "mul": "#fdb462",
}


def program_layout(program: Any) -> dict[Any, tuple[float, float]]:
    """``{node: (x, y)}`` with ``x`` = longest path from the input (layered drawing)."""
    prog = as_program(program)
    depth: dict[Any, int] = {}
    for n in prog.nodes:
        depth[n] = 1 + max((depth[p] for p in n.inputs), default=-1)
    cols: dict[int, list[Any]] = {}
    for n in prog.nodes:
        cols.setdefault(depth[n], []).append(n)
    pos = {}
    for x, ns in cols.items():
        for i, n in enumerate(ns):
            pos[n] = (float(x), (i - (len(ns) - 1) / 2.0))
    return pos


def draw_program(program: Any, ax: Any = None, labels: bool = True) -> Any:
    """Draws the program DAG (nodes coloured by kind, edges input -> consumer). Returns the figure."""
    from matplotlib.figure import Figure  # not pyplot: no global figure state is left behind

    prog: Program = as_program(program)
    pos = program_layout(prog)
    if ax is None:
        width = max(6.0, 0.6 * (max(x for x, _ in pos.values()) + 1))
        height = max(4.0, 0.35 * max(1, max(abs(y) for _, y in pos.values()) * 2 + 1))
        ax = Figure(figsize=(min(width, 40), min(height, 40))).add_subplot(1, 1, 1)
    for n in prog.nodes:
        for p in dict.fromkeys(n.inputs):
            (x0, y0), (x1, y1) = pos[p], pos[n]
            ax.plot([x0, x1], [y0, y1], color="0.7", lw=0.6, zorder=1)
    for kind in dict.fromkeys(n.kind for n in prog.nodes):
        pts = np.array([pos[n] for n in prog.nodes if n.kind == kind])
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=120,
            c=KIND_COLORS.get(kind, "#cccccc"),
            edgecolors="k",
            linewidths=0.5,
            label=kind,
            zorder=2,
        )
    if labels and len(prog.nodes) <= 120:
        for n in prog.nodes:
            x, y = pos[n]
            ax.annotate(
                f"{n.name}\n({n.dim})",
                (x, y),
                fontsize=5,
                ha="center",
                va="bottom",
                xytext=(0, 6),
                textcoords="offset points",
            )
    ax.set_title(f"{prog.name}: {len(prog.nodes)} nodes")
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.axis("off")
    return ax.figure


def draw_compiled(cp: CompiledProgram, spy: bool = True) -> Any:
    """Draws the compiled path ``In -> stages -> Out`` (box height ~ width) and, with ``spy``, the sign
    pattern of every stage's ``W`` (and ``A`` for state stages). Returns the figure."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    K = len(cp.stages)
    ncols = max(K, 1)
    fig = Figure(figsize=(min(40, max(6, 1.3 * (K + 2))), 5.5 if spy else 2.2))
    ax = fig.add_subplot(2 if spy else 1, 1, 1)
    widths = [cp.input_dim] + [s.width for s in cp.stages] + [cp.output_dim]
    kinds = ["Input"] + [s.kind for s in cp.stages] + ["Linear"]
    names = ["In"] + [s.kind[0].upper() for s in cp.stages] + ["Out"]
    top = max(widths)
    for i, (w, k, nm) in enumerate(zip(widths, kinds, names, strict=False)):
        h = 0.2 + 0.8 * np.sqrt(w / top)
        ax.add_patch(Rectangle((i - 0.35, -h / 2), 0.7, h, color=KIND_COLORS.get(k, "#ccc"), ec="k"))
        ax.text(i, 0, f"{nm}\n{w}", ha="center", va="center", fontsize=7)
        if i:
            ax.annotate("", (i - 0.35, 0), (i - 0.65, 0), arrowprops={"arrowstyle": "->", "lw": 0.8})
    st = cp.stats()
    ax.set_xlim(-0.6, len(widths) - 0.4)
    ax.set_ylim(-0.6, 0.6)
    ax.axis("off")
    ax.set_title(f"{cp.name}: state {st.state_dim}, params {st.dense_params:,}, nnz {st.nnz:,}", fontsize=9)
    if spy:
        for k, s in enumerate(cp.stages):
            a = fig.add_subplot(2, ncols, ncols + k + 1)
            W = s.W.to_numpy()
            a.imshow(np.sign(W), cmap="coolwarm", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
            a.set_title(f"{k}:{s.kind} W", fontsize=6)
            a.set_xticks([])
            a.set_yticks([])
    fig.tight_layout()
    return fig


def stage_weights(cp: CompiledProgram) -> list[dict[str, Any]]:
    """Per stage: ``{"kind", "W", "c", "A", "init"}`` as float64 arrays plus ``"labels"`` (lane names) and a
    pandas ``"table"`` of the non-zero entries of ``W`` (``row_label, col_label, value``)."""
    import pandas as pd

    out = []
    prev = list(cp.input_labels) or [f"x[{i}]" for i in range(cp.input_dim)]
    for s in cp.stages:
        rows = (
            list(s.labels) if s.kind != "mul" else [f"{l}.a" for l in s.labels] + [f"{l}.b" for l in s.labels]
        )
        table = pd.DataFrame(
            [(rows[i], prev[j], float(v)) for i, j, v in s.W.entries()], columns=["row", "col", "value"]
        )
        out.append(
            {
                "kind": s.kind,
                "W": s.W.to_numpy(),
                "c": np.array([float(v) for v in s.c]),
                "A": s.A.to_numpy() if s.A is not None else None,
                "init": np.array([float(v) for v in s.init]) if s.init is not None else None,
                "labels": list(s.labels),
                "table": table,
            }
        )
        prev = list(s.labels)
    return out
