"""``rnnattn lsrl``: compile LSRL programs into checkpoints and run them.

* ``rnnattn lsrl compile PROGRAM.json -o model.safetensors [--mode exact|float64]``
  ``[--target linear|elman|gru|lstm|hawk]``
* ``rnnattn lsrl compile --builtin token --n 3 --variant multiplicative -o model.safetensors`` (Lst. 2), or
  ``--builtin continuous --d-in 2 --d-out 2 --variant direct`` (Lst. 1); ``--save-program P.json`` also writes the
  program's JSON.
* ``rnnattn lsrl run model.safetensors --tokens "1 2 3 ..."`` prints one line per token with the outputs (exact
  checkpoints print exact rationals; ``--last K`` prints only the last K tokens).

The checkpoint format (and how exact weights are stored: as the program, recompiled on load) is described in
:mod:`rnnattn.lsrl.saved`. Existing files are never replaced without ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "compile LSRL programs (JSON or built-in) into checkpoints, and run compiled checkpoints"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lsrl_command", metavar="SUBCOMMAND", parser_class=type(p))
    c = sub.add_parser("compile", help="compile a program into a checkpoint")
    c.add_argument("program", nargs="?", default=None, help="program JSON file (rnnattn.lsrl format)")
    c.add_argument("--builtin", choices=("token", "continuous"), help="a paper program instead of a file")
    c.add_argument("--n", type=int, default=3, help="token program: key/value length (default 3)")
    c.add_argument("--d-in", type=int, default=1, help="continuous program: input dim (default 1)")
    c.add_argument("--d-out", type=int, default=1, help="continuous program: output dim (default 1)")
    c.add_argument("--variant", default="multiplicative", help="f_ifelse variant (default multiplicative)")
    c.add_argument("--mode", choices=("exact", "float64"), default="float64", help="compile arithmetic")
    c.add_argument("--target", choices=("linear", "elman", "gru", "lstm", "hawk"), default="linear")
    c.add_argument("--max-len", type=int, default=256, help="hawk: longest sequence (conv length, default 256)")
    c.add_argument("-o", "--out", required=True, help="output .safetensors file")
    c.add_argument("--save-program", metavar="JSON", default=None, help="also write the program's JSON here")
    c.add_argument("--force", action="store_true", help="replace existing output files")
    r = sub.add_parser("run", help="run a compiled checkpoint on tokens")
    r.add_argument("checkpoint", help="a checkpoint written by 'rnnattn lsrl compile'")
    r.add_argument("--tokens", required=True, help='"1 2 3" (one number per token) or rows "a b; c d"')
    r.add_argument("--mode", choices=("exact", "float64"), default=None, help="default: the checkpoint's mode")
    r.add_argument("--last", type=int, default=None, help="print only the last K tokens' outputs")


def _builtin(args: argparse.Namespace):
    from rnnattn.cli.main import UsageError
    from rnnattn.lsrl import IFELSE_VARIANTS, continuous_program, token_program

    if args.variant not in IFELSE_VARIANTS:
        raise UsageError(f"--variant {args.variant!r}: choose from {', '.join(IFELSE_VARIANTS)}")
    if args.builtin == "token":
        if not 1 <= args.n <= 35:  # App. F.7: the counters need 2n <= 70 at mu = 1000
            raise UsageError(f"--n {args.n}: the token program supports 1 <= n <= 35")
        return token_program(args.n, args.variant)
    for name, v in (("--d-in", args.d_in), ("--d-out", args.d_out)):
        if not 1 <= v <= 64:
            raise UsageError(f"{name} {v}: must be in 1..64")
    return continuous_program(args.d_in, args.d_out, args.variant)


def _compile(args: argparse.Namespace) -> int:
    from rnnattn.cli.main import UsageError
    from rnnattn.lsrl.saved import save_compiled
    from rnnattn.lsrl.serialize import load_program, save_program

    if (args.program is None) == (args.builtin is None):
        raise UsageError("give either PROGRAM.json or --builtin token|continuous")
    out = Path(args.out)
    targets = [out] + ([Path(args.save_program)] if args.save_program else [])
    for t in targets:
        if t.exists() and not args.force:
            raise UsageError(f"{t} exists (use --force to replace it)")
    if not 1 <= args.max_len <= 1 << 16:
        raise UsageError(f"--max-len {args.max_len}: must be in 1..65536")
    program = load_program(args.program) if args.program else _builtin(args)
    path = save_compiled(program, out, args.mode, args.target, args.max_len, overwrite=args.force)
    if args.save_program:
        save_program(program, args.save_program, overwrite=args.force)
        print(f"wrote {args.save_program}")
    print(f"wrote {path} ({program.name}, mode {args.mode}, target {args.target})")
    return 0


def _parse_tokens(text: str, width: int) -> list[list[Any]]:
    """``"1 2 3"`` (width 1: one token per number) or rows separated by ``;`` / newlines (``"0.1 0.2; 0.3 0.4"``).
    Numbers: ints, decimals (kept exact as decimal fractions) or ``p/q``. ``ValueError`` naming the bad entry."""
    import re
    from fractions import Fraction

    number = re.compile(r"[+-]?(\d{1,60}(\.\d{0,60})?|\.\d{1,60})([eE][+-]?\d{1,3})?|[+-]?\d{1,60}/\d{1,60}")
    rows = [r.split() for r in text.replace("\n", ";").split(";") if r.strip()]
    if width == 1 and len(rows) == 1:
        rows = [[v] for v in rows[0]]
    if not rows:
        raise ValueError("--tokens is empty")
    out = []
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ValueError(f"token {i} has width {len(r)}, the program expects {width}")
        vals = []
        for v in r:
            try:  # "1/3", "0.25", "1e-3": exact decimal value; bounded digits/exponent, never eval
                if not number.fullmatch(v):
                    raise ValueError
                q = Fraction(v)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"token {i}: {v[:40]!r} is not a number (int, decimal or p/q)") from None
            try:  # every mode may hand the value to float64 (the torch model, the float stages)
                float(q)
            except OverflowError:
                raise ValueError(f"token {i}: {v[:40]!r} is outside float64's range (|x| < 1.8e308)") from None
            vals.append(q.numerator if q.denominator == 1 else q)
        out.append(vals)
    return out


def _fmt(v) -> str:
    from fractions import Fraction

    if isinstance(v, int | Fraction):
        return str(v)
    if isinstance(v, float):
        return f"{v:.10g}"
    return str(v)  # sympy


def _run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from rnnattn.cli.main import UsageError
    from rnnattn.lsrl.saved import load_compiled
    from rnnattn.safeio import printable

    cc = load_compiled(args.checkpoint)
    mode = args.mode or cc.mode
    if mode == "exact" and cc.mode != "exact":
        raise UsageError("--mode exact needs a checkpoint compiled with --mode exact (float64 weights are not exact)")
    width = cc.program.input_dim
    xs = _parse_tokens(args.tokens, width)
    if mode == "exact":
        ys = cc.compiled("exact").run(xs)
    else:
        torch.set_num_threads(1)
        x = torch.tensor([[[float(v) for v in row] for row in xs]], dtype=torch.float64)
        with torch.no_grad():
            ys = cc.model(x)[0].numpy()
    ys = np.asarray(ys, dtype=object)
    start = 0 if args.last is None else max(0, len(ys) - max(args.last, 0))
    print(f"# {printable(cc.program.name, 80)}: {len(xs)} tokens, mode {mode}, target {cc.target}")
    for t in range(start, len(ys)):
        print(f"{t}: " + " ".join(_fmt(v) for v in ys[t]))
    return 0


def run(args: argparse.Namespace) -> int:
    from rnnattn.cli.main import UsageError

    if args.lsrl_command == "compile":
        return _compile(args)
    if args.lsrl_command == "run":
        return _run(args)
    raise UsageError("choose a subcommand: rnnattn lsrl compile | run")
