"""Compact notebook rendering of an :class:`EquivalenceResult` (the full report lives in ``rnnattn.report``)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from rnnattn.analysis.results import EquivalenceResult


def _table(df: pd.DataFrame | None, max_rows: int = 20) -> str:
    if df is None or len(df) == 0:
        return "<p><i>none</i></p>"
    return df.head(max_rows).to_html(index=False, escape=True, float_format=lambda v: f"{v:.4g}", border=0)


def equivalence_html(r: EquivalenceResult) -> str:
    colour = "#1a7f37" if r.verdict else "#cf222e"
    parts = [
        f"<div class='rnnattn-equivalence'><h3 style='color:{colour}'>{html.escape(r.verdict_text)}</h3>",
        f"<p>reference: {html.escape(r.reference_kind)}</p>",
        "<h4>Checks</h4>",
        _table(r.checks),
        "<h4>Table 1 (paper vs rnnattn)</h4>",
        _table(r.paper_table1),
        "<h4>Model</h4>",
        _table(r.model_summary),
        "<h4>Roles</h4>",
        f"<p>{html.escape(str(r.role_counts))}</p>",
    ]
    if r.prune is not None:
        parts += ["<h4>Pruning</h4>", _table(r.prune.summary)]
    if r.probes is not None:
        parts += [
            "<h4>Probes</h4>",
            f"<p>KV score {r.probes.kv_score:.3g}, Q score {r.probes.q_score:.3g} "
            f"({html.escape(r.probes.input_distribution)})</p>",
        ]
    parts += [
        "<h4>Polynomial distance</h4>",
        f"<p>{html.escape(r.polynomial_distance.description)}: {r.polynomial_distance.value:.3g}</p>",
        _table(r.polynomial_distance.table),
        "<h4>Largest coefficient differences</h4>",
        _table(r.coefficient_differences, 10),
    ]
    if r.merges is not None:
        rows = pd.DataFrame(
            [
                {
                    "rows": str(m.rows),
                    "merged": m.merged,
                    "sigma2/sigma1 (outputs)": m.output_ratio,
                    "sigma2/sigma1 (kernel)": m.kernel_ratio,
                    "conforming": m.conforming,
                    "reason": m.reason,
                }
                for m in r.merges.merges
            ]
        )
        parts += ["<h4>Rank-1 merges (App. B.2)</h4>", _table(rows)]
    if r.notes:
        parts += ["<h4>Notes</h4><ul>"] + [f"<li>{html.escape(n)}</li>" for n in r.notes] + ["</ul>"]
    parts.append("</div>")
    return "".join(parts)
