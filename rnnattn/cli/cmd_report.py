"""``rnnattn report [CHECKPOINT]``: the equivalence report of a checkpoint, as self-contained HTML and PDF.

Without a checkpoint it reports on the default checkpoint shipped inside the package (``rnnattn/data/``, read
through :mod:`importlib.resources`), so ``rnnattn report`` works from any folder after ``pip install``.
``rnnattn report --all-shipped -o reports --force``, run in the repository's root, is the one command that
regenerates ``reports/`` for every checkpoint in ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

HELP = "write the equivalence report (HTML + PDF) of a checkpoint against its reference"
SHIPPED = Path("checkpoints")  # --all-shipped: the repository's checkpoints, relative to the working folder


@contextlib.contextmanager
def default_checkpoint() -> Iterator[Path]:
    """The default checkpoint shipped as package data (a real file for as long as the context is open)."""
    with resources.as_file(resources.files("rnnattn") / "data" / "default.safetensors") as path:
        yield path
REFERENCE_ALIASES = {
    "teacher": "teacher",
    "gd": "one_step_gd",
    "one_step_gd": "one_step_gd",
    "one-step-gd": "one_step_gd",
    "construction": "construction",
    "source": "construction",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="checkpoint file (default: the default checkpoint shipped with rnnattn)",
    )
    p.add_argument(
        "--reference",
        metavar="REF",
        default=None,
        help="teacher | one_step_gd | construction | a LinearSelfAttention checkpoint "
        "(default: what the checkpoint records)",
    )
    p.add_argument(
        "-o",
        "--out",
        metavar="DIR",
        default="reports",
        help="reports go to DIR/<checkpoint name>/report.{html,pdf} (default: reports)",
    )
    p.add_argument("--format", default="html,pdf", help="comma-separated formats: html, pdf (default: both)")
    p.add_argument(
        "--name", default=None, help="report name / sub-folder (default: the checkpoint's file stem)"
    )
    p.add_argument("--force", action="store_true", help="replace existing report files")
    p.add_argument(
        "--all-shipped",
        action="store_true",
        help="report on every checkpoint in ./checkpoints (run in the repository root; regenerates reports/)",
    )


def shipped_checkpoints(folder: Path = SHIPPED) -> list[Path]:
    """The shipped checkpoints, skipping byte-identical copies (``default`` is usually a copy of another
    one)."""
    from rnnattn.limits import MAX_FILE_BYTES
    from rnnattn.safeio import read_regular

    seen: dict[str, Path] = {}
    files = sorted(folder.glob("*.safetensors"), key=lambda p: (p.name == "default.safetensors", p.name))
    for f in files:
        digest = hashlib.sha256(read_regular(f, MAX_FILE_BYTES, "checkpoint")).hexdigest()  # no FIFO hang
        seen.setdefault(digest, f)
    return sorted(seen.values())


def _formats(spec: str) -> tuple[str, ...]:
    from rnnattn.cli.main import UsageError
    from rnnattn.report.files import FORMATS  # no analysis import to check a flag

    fmts = tuple(dict.fromkeys(f.strip().lower() for f in spec.split(",") if f.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise UsageError(f"--format: unknown format(s) {', '.join(bad) or repr(spec)}; choose from html, pdf")
    return fmts


def _reference(ref: str | None) -> str | None:
    from rnnattn.cli.main import UsageError

    if ref is None:
        return None
    if ref.lower() in REFERENCE_ALIASES:
        return REFERENCE_ALIASES[ref.lower()]
    if not Path(ref).is_file():
        raise UsageError(
            f"--reference {ref!r}: not teacher, one_step_gd, construction or an existing checkpoint file"
        )
    return ref


def run(args: argparse.Namespace) -> int:
    import torch

    from rnnattn.cli.main import UsageError

    torch.set_num_threads(1)  # reports are small; one thread avoids OpenMP spinning on shared CPUs
    fmts = _formats(args.format)
    reference = _reference(args.reference)
    if args.all_shipped:
        if args.checkpoint or args.reference or args.name:
            raise UsageError("--all-shipped takes no CHECKPOINT, --reference or --name (each uses its own)")
        targets = shipped_checkpoints()
        if not targets:
            raise UsageError(f"no checkpoints in ./{SHIPPED} (run --all-shipped in the repository root)")
        return _write(args, fmts, None, targets)
    if args.checkpoint:
        return _write(args, fmts, reference, [Path(args.checkpoint)])
    with default_checkpoint() as path:
        return _write(args, fmts, reference, [path])


def _write(args: argparse.Namespace, fmts: tuple[str, ...], reference: str | None, targets: list[Path]) -> int:
    from rnnattn.cli.main import UsageError
    from rnnattn.report.build import build_report, safe_name

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a directory")
    # Refuse before any analysis if something would be overwritten (fast, and nothing half-done).
    plans = []
    for ckpt in targets:
        name = safe_name(args.name or ckpt.stem)
        for f in fmts:
            path = out / name / f"report.{f}"
            if path.exists() and not args.force:
                raise UsageError(f"{path} exists (use --force to replace it)")
        plans.append((ckpt, name))
    from rnnattn.report.lsrl import is_compiled_lsrl, write_lsrl_report
    from rnnattn.safeio import printable

    for ckpt, name in plans:
        if is_compiled_lsrl(ckpt):  # written by `rnnattn lsrl compile`: its own report (rnnattn.report.lsrl)
            files = write_lsrl_report(ckpt, out / name, fmts, force=args.force, name=name)
        else:
            files = build_report(ckpt, reference, out / name, fmts, force=args.force, name=name).files()
        for p in files:
            print(f"wrote {printable(p)}")  # -o comes from the command line: escaped
    return 0
