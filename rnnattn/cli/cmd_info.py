"""``rnnattn info CKPT``: what a checkpoint holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "summarise a checkpoint: class, parameters, dimensions, lambda statistics, metadata"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "default.safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint file (default: the shipped default)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
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
    return out


def _short(v, limit: int = 100) -> str:
    s = json.dumps(v, default=str) if not isinstance(v, str) else v
    # metadata comes from the file: escape control characters so it cannot drive the user's terminal (ESC sequences)
    s = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in s.replace("\n", " "))
    return s if len(s) <= limit else s[: limit - 3] + "..."


def run(args: argparse.Namespace) -> int:
    path = args.checkpoint or DEFAULT_CHECKPOINT
    d = info_dict(path, args.hi, args.lo)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
        return 0
    print(f"checkpoint   {d['path']}")
    print(f"class        {d['class']}  ({d['parameters']:,} parameters)")
    print("config       " + ", ".join(f"{k}={_short(v, 60)}" for k, v in d["config"].items()))
    for s in d["decays"]:
        keys = list(s)
        print(f"lambda       {s['layer']}: {s['n']} neurons, {s[keys[3]]} with {keys[3]}, {s[keys[4]]} with {keys[4]}")
    if d["nonfinite"]:
        for k, v in d["nonfinite"].items():
            print(f"WARNING      non-finite weights in {k}: {v['nan']} NaN, {v['inf']} Inf")
    for n, e in d["extras"].items():
        print(f"extra        {n}: {e['class']} ({e['parameters']:,} parameters)")
    for k, v in d["metadata"].items():
        print(f"meta         {_short(k, 60)} = {_short(v)}")
    print(f"written by   rnnattn {_short(d['rnnattn_version'], 40)}")
    return 0
