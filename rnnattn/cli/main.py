"""Entry point of the ``rnnattn`` command.

Subcommands are discovered from the ``rnnattn.cli.cmd_*`` modules; each provides ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Expected failures print one line ``rnnattn: error: ...`` on
stderr and exit 2: the project's own errors (:class:`UsageError`, ``CheckpointError``, ``SweepError``,
``TrainingDiverged``, the analysis/construction/LSRL ``ValueError`` subclasses), ``ValueError`` (rnnattn validates
every user value with it: configs, specs, options) and ``OSError`` (files). Anything else — ``TypeError``,
``KeyError``, ``RuntimeError``, ... — is a bug: it is reported as an internal error with a hint to rerun with
``--debug``, and exits 1.
``--debug`` always shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

import rnnattn.cli as cli_pkg

EXIT_ERROR = 2


class UsageError(Exception):
    """A user error detected by a command (shown as one line, exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump, exit 2
        self.exit(EXIT_ERROR, f"rnnattn: error: {message} (see --help)\n")


def _commands() -> dict[str, object]:
    mods = {}
    for info in pkgutil.iter_modules(cli_pkg.__path__):
        if info.name.startswith("cmd_"):
            mods[info.name[4:].replace("_", "-")] = importlib.import_module(f"rnnattn.cli.{info.name}")
    return dict(sorted(mods.items()))


def build_parser() -> argparse.ArgumentParser:
    from rnnattn import __version__

    p = _Parser(prog="rnnattn", description="Mechanistic interpretability of gated RNNs.")
    p.add_argument("--version", action="version", version=f"rnnattn {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, mod in _commands().items():
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    text = msg[0] if msg else type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{e.filename}: {e.strerror or text}"
    from rnnattn.safeio import printable  # names and paths in messages come from outside: escape them

    return printable(text, 2000)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception classes reported as a user's error (one line, exit 2); see the module docstring."""
    from rnnattn.checkpoint import CheckpointError

    errors: list[type[BaseException]] = [UsageError, CheckpointError, ValueError, OSError]
    sweeps = sys.modules.get("rnnattn.sweeps.run")  # SweepError can only have been raised if its module is loaded
    if sweeps is not None:
        errors.append(sweeps.SweepError)
    training = sys.modules.get("rnnattn.training.config")  # likewise TrainingDiverged: the user's hyperparameters
    if training is not None:
        errors.append(training.TrainingDiverged)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    from rnnattn.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("rnnattn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except _user_errors() as e:
        if getattr(args, "debug", False):
            traceback.print_exc()
        else:
            kind = "" if isinstance(e, CheckpointError | UsageError) else f"{type(e).__name__}: "
            print(f"rnnattn: error: {kind}{_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 — last line of defence: never a traceback without --debug
        if getattr(args, "debug", False):
            traceback.print_exc()
        else:
            print(f"rnnattn: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
