"""The report on a compiled LSRL checkpoint (``rnnattn report model.safetensors`` on a file written by ``rnnattn lsrl
compile``): the program graph, the compiled stages and their weights, sizes against the reference implementation's
(Petrov et al. 2024 §3, measured on it), compiled-vs-interpreter agreement on random prompts, and the output error
under weight noise (the Fig. 4 noise model, :mod:`rnnattn.lsrl.noise`).

Rendered through the one display layer (:mod:`rnnattn.display`): a :class:`~rnnattn.display.Report` written as
self-contained HTML and/or PDF, each file atomically.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnattn._version import __version__
from rnnattn.display import Figure, KeyValues, Report, Section, Table, format_value
from rnnattn.limits import MAX_FILE_BYTES
from rnnattn.report.files import report_targets, write_formats
from rnnattn.safeio import printable, read_regular

#: The reference implementation's compiled sizes (Petrov et al. Listings 1/2, measured): ``(program, key) ->
#: (state dim, dense params, non-zeros)``; ``key`` is ``n`` for the token program, ``d_in = d_out`` for the
#: continuous one; the reference has only the ReLU ("direct") and multiplicative forms.
REFERENCE_SIZES = {
    ("token", 3, "direct"): (296_609, 3.19e11, 4_007_120),
    ("token", 5, "direct"): (454_407, 7.50e11, 6_139_506),
    ("token", 3, "multiplicative"): (5_111, 1.11e8, 81_419),
    ("token", 5, "multiplicative"): (7_775, 2.56e8, 124_475),
    ("continuous", 1, "direct"): (52, 133_990, 1_889),
    ("continuous", 2, "direct"): (90, 386_310, 3_231),
    ("continuous", 3, "direct"): (128, 769_238, 4_573),
    ("continuous", 1, "multiplicative"): (31, 24_138, 884),
    ("continuous", 2, "multiplicative"): (53, 65_301, 1_471),
    ("continuous", 3, "multiplicative"): (75, 126_584, 2_058),
}
PROMPTS = 4  # random prompts for the agreement and noise sections (kept small: a report runs in seconds)


def builtin_key(name: str) -> tuple[str, int, int, str] | None:
    """``("token", n, n, variant)`` / ``("continuous", d_in, d_out, variant)`` from a built-in program's name."""
    m = re.fullmatch(r"token_n(\d+)_(\w+)", name)
    if m:
        return ("token", int(m[1]), int(m[1]), m[2])
    m = re.fullmatch(r"continuous_(\d+)to(\d+)_(\w+)", name)
    if m:
        return ("continuous", int(m[1]), int(m[2]), m[3])
    return None


def prompts(cc: Any, count: int = PROMPTS, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """Random prompts ``[T, D]`` suited to the program, and how they were made."""
    from rnnattn.lsrl import continuous_prompt, random_token_map, token_prompt
    from rnnattn.lsrl.compiler import probe_inputs

    rng = np.random.default_rng(seed)
    key = builtin_key(cc.program.name)
    if key and key[0] == "token" and key[1] <= 35:
        n = key[1]
        out = []
        for _ in range(count):
            table = random_token_map(n, 6, 10, rng)
            out.append(token_prompt(list(table)[int(rng.integers(len(table)))], table).astype(float))
        return out, f"{count} token prompts (n = {n}, 6 random pairs over 10 ids, query = a random key)"
    if key and key[0] == "continuous" and key[1] <= 3:
        d_in, d_out = key[1], key[2]
        W = rng.normal(size=(d_out, d_in))
        qs = rng.uniform(0, 1, size=(count, d_in))
        out = [continuous_prompt(lambda x: np.sin(W @ x), d_in, d_out, 4, q) for q in qs]
        return out, f"{count} prompts of f(x) = sin(Wx) on a 4^{d_in} grid, uniform random queries"
    return probe_inputs(cc.program, n=count, length=12, seed=seed), f"{count} random inputs within the Input bounds"


def _figure(fig: Any, title: str, caption: str = "") -> Figure:
    return Figure(fig, title=title, caption=caption, alt=title)


def summary_section(cc: Any, path: Path) -> Section:
    info = cc.info
    ps = cc.program.stats()
    kv = [
        ("file", printable(path.name, 120)),
        ("program", printable(cc.program.name, 120)),
        ("mode", cc.mode),
        ("target", cc.target + (f" (max_len {info.get('max_len')})" if cc.target == "hawk" else "")),
        ("model class", type(cc.model).__name__),
        ("input / output dims", f"{cc.program.input_dim} / {cc.program.output_dim}"),
        ("program nodes", f"{ps.nodes} ({', '.join(f'{k} {v}' for k, v in ps.by_kind.items())})"),
        ("compile time", f"{float(info.get('compile_seconds') or 0):.3f} s"),
        ("exact weights", "stored as the program; recompiled exactly on load" if cc.mode == "exact" else "n/a"),
    ]
    return Section("summary", "Compiled program", "what the checkpoint holds", [KeyValues(kv)])


def graph_section(cc: Any, cp: Any) -> Section:
    from rnnattn.lsrl import draw_compiled, draw_program

    blocks = [
        _figure(
            draw_program(cc.program, labels=len(cc.program.nodes) <= 60),
            "Program graph",
            "nodes coloured by kind; x = depth from the input",
        ),
        _figure(
            draw_compiled(cp, spy=len(cp.stages) <= 30),
            "Compiled stages",
            "In -> stages (R = ReLU, M = multiplicative, S = linear state) -> Out; sign pattern of each W",
        ),
    ]
    return Section("graph", "Program graph and compiled path", f"{len(cp.stages)} stages: {cp.stats().kinds}", blocks)


def weights_section(cp: Any) -> Section:
    from rnnattn.lsrl import stage_weights

    rows, blocks = [], []
    for k, (s, w) in enumerate(zip(cp.stages, stage_weights(cp), strict=True)):
        W = w["W"]
        rows.append(
            {
                "stage": k,
                "kind": s.kind,
                "width": s.width,
                "reads": W.shape[1],
                "nnz(W)": s.W.nnz,
                "max |W|": float(np.abs(W).max(initial=0.0)),
                "nnz(A)": s.A.nnz if s.A is not None else 0,
            }
        )
        if k < 3:
            blocks.append(Table(w["table"], title=f"stage {k} ({s.kind}): non-zero weights", max_rows=25))
    blocks.insert(0, Table(pd.DataFrame(rows), title="Stages"))
    return Section(
        "weights", "Stage weights", "per-stage sizes; the first stages' non-zero weights with lane labels", blocks
    )


def sizes_section(cc: Any, cp: Any) -> Section:
    st, ps = cp.stats(), cc.program.stats()
    key = builtin_key(cc.program.name)
    ref = None
    if key and key[1] == key[2]:
        ref_variant = "multiplicative" if key[3].startswith("multiplicative") else "direct"
        ref = REFERENCE_SIZES.get((key[0], key[1], ref_variant))
    df = pd.DataFrame(
        {
            "rnnattn": [ps.nodes, st.state_dim, st.dense_params, st.nnz, st.max_width],
            "reference": ["-"] + ([f"{ref[0]:,}", f"{ref[1]:.3g}", f"{ref[2]:,}"] if ref else ["n/a"] * 3) + ["-"],
        },
        index=["DAG nodes", "state dim", "dense params", "non-zeros", "max width"],
    )
    reading = (
        f"state {st.state_dim} vs the reference's {ref[0]:,} ({ref[0] / max(st.state_dim, 1):.0f}x smaller)"
        if ref
        else "no reference measurement for this program (the reference sizes cover the built-in programs)"
    )
    return Section("sizes", "Sizes against the reference implementation", reading, [Table(df, index=True)])


def agreement_section(cc: Any, xs_list: Sequence[np.ndarray], how: str) -> Section:
    """Compiled (the stored model; exact mode: the exact recompilation too) vs the interpreter on ``xs_list``."""
    import torch

    from rnnattn.lsrl import run

    rows = []
    exact = cc.compiled("exact") if cc.mode == "exact" else None  # compiled once, run on every prompt
    for i, xs in enumerate(xs_list):
        want = np.asarray(run(cc.program, xs, mode="float64"), float)
        with torch.no_grad():
            got = cc.model(torch.as_tensor(xs, dtype=torch.float64)[None])[0].numpy()
        row = {
            "prompt": i,
            "tokens": len(xs),
            "stored model vs interpreter (max |diff|)": float(np.abs(got - want).max()),
        }
        if exact is not None:
            ex = exact.run(xs)
            row["exact compiled == exact interpreter"] = bool((ex == run(cc.program, xs, mode="exact")).all())
        rows.append(row)
    df = pd.DataFrame(rows)
    worst = float(df.iloc[:, 2].max())
    reading = f"{how}; worst float64 disagreement {format_value(worst)}"
    if cc.mode == "exact":
        reading += "; exact: " + ("identical on every prompt" if df.iloc[:, 3].all() else "MISMATCH")
    return Section(
        "agreement",
        "Compiled vs interpreter",
        reading,
        [Table(df)],
        status="ok" if cc.mode != "exact" or df.iloc[:, 3].all() else "warn",
    )


def noise_section(cc: Any, cp: Any, xs_list: Sequence[np.ndarray]) -> Section:
    import torch

    from rnnattn.lsrl.noise import noise_error_table

    lengths = {len(x) for x in xs_list}
    xs_list = [x for x in xs_list if len(x) == max(lengths)]  # one batch needs one length
    module = cc.model if cc.target == "linear" else cp.to_module()
    X = torch.as_tensor(np.stack(xs_list), dtype=torch.float64)
    df = noise_error_table(module, X, seeds=3)
    note = "" if cc.target == "linear" else f" (on the linear compiled form; the stored model is a {cc.target})"
    return Section(
        "noise",
        "Output error under weight noise",
        "N(0, sigma^2) on every non-zero weight, teacher forcing (paper Fig. 4 setup); max |y - y_clean| "
        f"at the last token over {len(xs_list)} prompts{note}",
        [Table(df)],
    )


def build_lsrl_document(path: str | Path, name: str | None = None) -> Report:
    """Analyses the compiled checkpoint at ``path`` and returns the report (nothing written)."""
    import torch

    from rnnattn.lsrl.saved import load_compiled

    torch.set_num_threads(1)
    path = Path(path)
    cc = load_compiled(path)
    cp = cc.compiled("float64")
    xs_list, how = prompts(cc)
    name = name or path.stem
    sections = [
        summary_section(cc, path),
        graph_section(cc, cp),
        weights_section(cp),
        sizes_section(cc, cp),
        agreement_section(cc, xs_list, how),
        noise_section(cc, cp, xs_list),
    ]
    return Report(
        title=f"Compiled LSRL program: {printable(name, 80)}",
        subtitle=f"{printable(cc.program.name, 80)} · {cc.mode} · {cc.target} · rnnattn {__version__}",
        sections=sections,
        footer=f"rnnattn {__version__} · {printable(name, 80)}",
        meta={"checkpoint-sha256": hashlib.sha256(read_regular(path, MAX_FILE_BYTES, "checkpoint")).hexdigest()},
    )


def write_lsrl_report(
    path: str | Path,
    out_dir: str | Path,
    formats: Sequence[str] = ("html", "pdf"),
    force: bool = False,
    name: str | None = None,
) -> list[Path]:
    """Writes ``report.html`` / ``report.pdf`` for a compiled checkpoint into ``out_dir`` (atomically; an existing
    file is replaced only with ``force``). Returns the files written."""
    out_dir = Path(out_dir)
    targets = report_targets(out_dir, list(formats), force)
    return list(write_formats(build_lsrl_document(path, name), targets, force).values())


def is_compiled_lsrl(path: str | Path) -> bool:
    """True if ``path`` is a checkpoint written by ``rnnattn lsrl compile`` (reads only the header)."""
    from rnnattn.checkpoint import read_header
    from rnnattn.lsrl.saved import is_compiled_checkpoint

    try:
        header = read_header(path)
    except Exception:  # noqa: BLE001 - not ours to report: the ordinary report path raises the proper error
        return False
    meta = header.get("rnnattn", {}).get("metadata", {}) if isinstance(header, dict) else {}
    return is_compiled_checkpoint(meta)


__all__ = ["build_lsrl_document", "write_lsrl_report", "is_compiled_lsrl", "REFERENCE_SIZES"]
