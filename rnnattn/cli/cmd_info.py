"""``rnnattn info CKPT``: what a checkpoint holds.

Text output escapes everything that comes from the file or the command line (control characters, ESC, newlines,
lone surrogates; :func:`rnnattn.safeio.printable`). ``--json`` prints strict JSON (RFC 8259): a non-finite float
anywhere (NaN or infinite metadata values, config entries) is written as the *string* ``"NaN"``, ``"Infinity"`` or
``"-Infinity"``, the names JavaScript and Python's ``json`` module use for them.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rnnattn.safeio import printable

HELP = "summarise a checkpoint: class, parameters, dimensions, lambda statistics, metadata"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "default.safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint file (default: the shipped default)")
    p.add_argument(
        "--json",
        action="store_true",
        help='print strict JSON instead of text (NaN/Inf values become the strings "NaN", "Infinity", "-Infinity")',
    )
    p.add_argument("--hi", type=float, default=0.99, help="lambda above this counts as perfect memory")
    p.add_argument("--lo", type=float, default=0.01, help="lambda below this counts as perfect forget")


def info_dict(path: str | Path, hi: float = 0.99, lo: float = 0.01) -> dict:
    import warnings

    from rnnattn.checkpoint import load_checkpoint
    from rnnattn.models.summary import decay_summaries, nonfinite

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ck = load_checkpoint(path)
    m = ck.model
    out = {
        "path": str(path),
        "class": type(m).__name__,
        "parameters": m.n_parameters(),
        "config": m.config.to_dict(),
        "decays": [
            {"layer": s.name or "(model)", "kind": s.kind, "n": s.n, f"lambda>{hi}": s.memory, f"lambda<{lo}": s.forget}
            for s in decay_summaries(m, hi, lo)
        ],
        "nonfinite": {k: {"nan": a, "inf": b} for k, b_ in nonfinite(m).items() for a, b in [b_]},
        "extras": {n: {"class": type(e).__name__, "parameters": e.n_parameters(), "config": e.config.to_dict()}
                   for n, e in ck.extras.items()},
        "metadata": ck.metadata,
        "rnnattn_version": ck.rnnattn_version,
    }
    from rnnattn.lsrl.saved import is_compiled_checkpoint, summary

    if is_compiled_checkpoint(ck.metadata):  # a compiled LSRL program (rnnattn lsrl compile)
        out["lsrl"] = summary(ck.metadata)
    return out


def json_safe(v):
    """``v`` with every non-finite float replaced by ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_safe(x) for x in v]
    return v


def _short(v, limit: int = 100) -> str:
    s = json.dumps(json_safe(v), default=str, ensure_ascii=False) if not isinstance(v, str) else v
    # metadata comes from the file: escape control characters so it cannot drive the user's terminal (ESC sequences)
    return printable(s, limit)


def run(args: argparse.Namespace) -> int:
    path = args.checkpoint or DEFAULT_CHECKPOINT
    d = info_dict(path, args.hi, args.lo)
    if args.json:
        print(json.dumps(json_safe(d), indent=2, default=str, allow_nan=False))
        return 0
    print(f"checkpoint   {printable(d['path'])}")
    print(f"class        {d['class']}  ({d['parameters']:,} parameters)")
    for k, v in d.get("lsrl", {}).items():
        print(f"lsrl         {k}: {_short(v, 120)}")
    print("config       " + ", ".join(f"{k}={_short(v, 60)}" for k, v in d["config"].items()))
    for s in d["decays"]:
        keys = list(s)
        print(
            f"lambda       {printable(s['layer'], 80)}: {s['n']} neurons, {s[keys[3]]} with {keys[3]}, "
            f"{s[keys[4]]} with {keys[4]}"
        )
    if d["nonfinite"]:
        for k, v in d["nonfinite"].items():
            print(f"WARNING      non-finite weights in {printable(k, 80)}: {v['nan']} NaN, {v['inf']} Inf")
    for n, e in d["extras"].items():
        print(f"extra        {printable(n, 80)}: {e['class']} ({e['parameters']:,} parameters)")
    for k, v in d["metadata"].items():
        print(f"meta         {_short(k, 60)} = {_short(v)}")
    print(f"written by   rnnattn {_short(d['rnnattn_version'], 40)}")
    return 0
