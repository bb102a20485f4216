"""Registered run functions: the only functions a sweep spec read from a file may name (without ``--trust-module``).

A spec file is data that may come from someone else, and naming a function is running it with the spec's
parameters. Checking that a dotted name lies "inside rnnattn" is not enough: rnnattn holds many callables that are
not run functions (the CLI's entry point, which turns a parameter dict into argv; standard-library functions its
modules import; anything reachable through attribute paths), and importing a module by a name from the file can
itself run code (``rnnattn.__main__``). So a spec names a function by the exact key under which rnnattn registered
it with :func:`run_function`, and the registry is filled by importing a fixed list of rnnattn modules
(:data:`PROVIDERS`), never a module named by the spec.

Example::

    @run_function(output_paths=("save_dir",))
    def train_run(params: dict) -> dict: ...
    # a spec names it as "rnnattn.sweeps.runs:train_run"
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: modules that define registered run functions; imported (and only these) before a spec's function is looked up
PROVIDERS: tuple[str, ...] = ("rnnattn.sweeps.runs",)


@dataclass(frozen=True)
class RunFunction:
    """A registered run function.

    Attributes:
        ref: ``"module:qualname"``, the name a spec uses.
        fn: the function, ``fn(params: dict) -> dict``.
        output_paths: parameters that name a folder the function writes into (e.g. ``save_dir``); the sweep
            command refuses a spec whose value for one of them lies outside the sweep's own folder.
    """

    ref: str
    fn: Callable[[dict[str, Any]], dict[str, Any]]
    output_paths: tuple[str, ...] = ()


_REGISTRY: dict[str, RunFunction] = {}


def run_function(fn: Callable | None = None, *, output_paths: tuple[str, ...] = ()) -> Any:
    """Decorator: register ``fn`` as a run function that sweep specs may name as ``"module:qualname"``.

    Use bare (``@run_function``) or with ``output_paths`` (``@run_function(output_paths=("save_dir",))``)."""

    def register(f: Callable) -> Callable:
        ref = f"{f.__module__}:{f.__qualname__}"
        if "<locals>" in ref:
            raise ValueError(f"run_function: {ref} is not a module-level function")
        _REGISTRY[ref] = RunFunction(ref, f, tuple(output_paths))
        return f

    return register(fn) if fn is not None else register


def registered_run_functions() -> dict[str, RunFunction]:
    """Every registered run function by reference (after importing :data:`PROVIDERS`)."""
    for module in PROVIDERS:
        importlib.import_module(module)
    return dict(_REGISTRY)


def lookup(ref: str) -> RunFunction | None:
    """The registered run function named ``ref``, or None. Imports only :data:`PROVIDERS`, never ``ref``'s
    module."""
    return registered_run_functions().get(ref)


def output_paths_of(fn: Callable) -> tuple[str, ...]:
    """The ``output_paths`` a registered function declared (``()`` for anything else)."""
    entry = _REGISTRY.get(f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}")
    return entry.output_paths if entry is not None and entry.fn is fn else ()
