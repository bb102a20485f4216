"""Sweep specifications: a grid of sizes x seeds x architectures, expanded into runs with stable ids.

A :class:`SweepSpec` names the function that performs one run (``"module:function"``), the fixed parameters
every run shares (``base``), the axes of a Cartesian grid (``grid``) and the seeds. :meth:`SweepSpec.runs`
expands it, in a fixed order, into :class:`Run` objects whose ``run_id`` depends only on the run's parameters,
never on its position in the grid: adding a size or a seed to a sweep keeps every id that existed, so a resumed sweep
skips exactly the runs that are already done.

Example::

    spec = SweepSpec(name="fig3a", fn="rnnattn.sweeps.runs:train_run",
                     base={"task": "teacher_student", "task_options.d": 6, "train.steps": 2000},
                     grid={"size": (16, 32, 64)}, seeds=(0, 1))
    [r.run_id for r in spec.runs()][:2]   # ['size=16,seed=0#...', 'size=16,seed=1#...']
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnattn.config import Config
from rnnattn.limits import (
    MAX_SPEC_BYTES,
    MAX_SWEEP_NAME,
    MAX_SWEEP_PARAM_BYTES,
    MAX_SWEEP_RUNS,
    ResourceLimitError,
    check_json_shape,
)
from rnnattn.safeio import printable, read_regular
from rnnattn.sweeps.registry import lookup, registered_run_functions

#: a sweep name is a folder name: letters, digits, ``._-``, starting with a letter or digit (so never ``.``/``..``)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_SCALARS = (str, int, float, bool, type(None))


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal parameter sets give equal strings (the basis of run ids)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _check_json(owner: str, name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is plain JSON (what a results file and a remote worker can carry)."""
    if isinstance(value, bool | int | str) or value is None:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json(owner, f"{name}[{i}]", v)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{owner}: {name} has a non-string key {k!r}")
            _check_json(owner, f"{name}.{k}", v)
        return
    raise ValueError(f"{owner}: {name} must be JSON (numbers, strings, lists, mappings), got {type(value).__name__}")


def _check_count(grid: dict[str, Any], seeds: Any) -> None:
    """Refuse a sweep of more than ``MAX_SWEEP_RUNS`` runs from the axis lengths alone, before expanding or even
    copying the grid (a 10^12-run product must cost nothing)."""
    total = len(seeds) if isinstance(seeds, list | tuple) else 1
    for values in grid.values():
        total *= len(values) if isinstance(values, list | tuple) else 1
        if total > MAX_SWEEP_RUNS:
            break
    if total > MAX_SWEEP_RUNS:
        sizes = " x ".join(str(len(v)) if isinstance(v, list | tuple) else "1" for v in list(grid.values())[:20])
        raise ResourceLimitError(
            f"SweepSpec: the grid ({sizes}) x {len(seeds) if isinstance(seeds, list | tuple) else 1} seeds has more "
            f"than {MAX_SWEEP_RUNS:,} runs (rnnattn.limits.MAX_SWEEP_RUNS); split the sweep"
        )


def _check_param_bytes(grid: dict[str, tuple[Any, ...]], base: dict[str, Any], n_runs: int) -> None:
    """Every run's id hashes its parameters' JSON: refuse a sweep whose runs x largest parameter JSON exceeds
    ``MAX_SWEEP_PARAM_BYTES`` (a 1 MB ``base`` in each of 100,000 runs would hash 100 GB)."""
    per_run = len(canonical_json(base)) + sum(
        len(axis) + 4 + max(len(canonical_json(v)) for v in values) for axis, values in grid.items()
    )
    if per_run * n_runs > MAX_SWEEP_PARAM_BYTES:
        raise ResourceLimitError(
            f"SweepSpec: {n_runs:,} runs x {per_run:,} bytes of parameters each exceed {MAX_SWEEP_PARAM_BYTES:,} "
            "(rnnattn.limits.MAX_SWEEP_PARAM_BYTES); shrink the parameters or split the sweep"
        )


def _freeze(value: Any) -> Any:
    """Lists -> tuples at every depth: a spec built in Python equals the same spec read back from JSON."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def _label(value: Any) -> str:
    """Short readable form of one axis value for a run id (mappings use their ``name`` key if they have
    one)."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return value["name"]
    if isinstance(value, _SCALARS):
        return str(value)
    return hashlib.sha1(canonical_json(value).encode()).hexdigest()[:6]


def run_id_for(params: dict[str, Any], label_keys: tuple[str, ...] = ()) -> str:
    """Stable id of a run: ``"k1=v1,k2=v2#<sha1 of all params, 10 hex>"``.

    The readable prefix lists ``label_keys`` (the grid axes and the seed); the hash covers every parameter, so
    two runs that differ only in a base parameter still get different ids.
    """
    digest = hashlib.sha1(canonical_json(params).encode()).hexdigest()[:10]
    prefix = ",".join(f"{k}={_label(params[k])}" for k in label_keys if k in params)
    return f"{prefix}#{digest}" if prefix else digest


@dataclass(frozen=True)
class Run:
    """One point of a sweep.

    Attributes:
        run_id: stable id (see :func:`run_id_for`).
        index: position in the expanded grid (results tables are sorted by it).
        params: everything the run function receives: ``base`` merged with this grid point and ``seed``.
    """

    run_id: str
    index: int
    params: dict[str, Any] = field(compare=False)


@dataclass(frozen=True)
class SweepSpec(Config):
    """A sweep: ``fn(params) -> dict`` called once per point of ``grid`` x ``seeds``.

    Attributes:
        name: sweep name (output folder, report titles): a plain folder name (letters, digits, ``._-``).
        fn: the run function as ``"package.module:function"``: a function registered with
            :func:`rnnattn.sweeps.run_function` (or, with ``trusted_modules``/``--trust-module``, any public function
            of a trusted module). It must be importable on every worker, take one ``dict`` of parameters and return
            a ``dict`` of JSON values (numbers, strings, lists).
        grid: axis name -> tuple of values; the sweep is their Cartesian product, in the order given.
        seeds: seeds; each grid point runs once per seed (passed as ``params["seed"]``).
        base: parameters shared by every run (a grid axis of the same name overrides them).
    """

    name: str
    fn: str
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    base: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or len(self.name) > MAX_SWEEP_NAME
            or not NAME_PATTERN.fullmatch(self.name)
        ):
            raise ValueError(
                f"SweepSpec: name must be a plain folder name (letters, digits, '._-', starting with a letter or "
                f"digit, at most {MAX_SWEEP_NAME} characters), got {printable(repr(self.name), 120)}"
            )
        if not isinstance(self.fn, str) or self.fn.count(":") != 1 or not all(self.fn.split(":")):
            raise ValueError(
                f"SweepSpec: fn must look like 'package.module:function', got {printable(repr(self.fn), 200)}"
            )
        if not isinstance(self.grid, dict):
            raise ValueError(f"SweepSpec: grid must map axis names to lists of values, got {type(self.grid).__name__}")
        _check_count(self.grid, self.seeds)  # before anything proportional to the grid is built
        grid = {}
        for axis, values in self.grid.items():
            if axis == "seed":
                raise ValueError("SweepSpec: 'seed' is not a grid axis; use seeds=(...)")
            if not isinstance(values, list | tuple) or not values:
                raise ValueError(f"SweepSpec: grid axis {axis!r} needs a non-empty list of values, got {values!r}")
            _check_json("SweepSpec", f"grid.{axis}", list(values))
            grid[axis] = _freeze(values)
        object.__setattr__(self, "grid", grid)  # lists from JSON become tuples: the spec stays comparable
        seeds = tuple(self.seeds) if isinstance(self.seeds, list | tuple) else self.seeds
        if (
            not isinstance(seeds, tuple)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        ):
            raise ValueError(f"SweepSpec: seeds must be a non-empty list of non-negative integers, got {self.seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"SweepSpec: seeds repeat: {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        if not isinstance(self.base, dict):
            raise ValueError(f"SweepSpec: base must be a mapping, got {type(self.base).__name__}")
        if "seed" in self.base:
            raise ValueError("SweepSpec: put the seed in seeds=(...), not in base")
        _check_json("SweepSpec", "base", self.base)
        object.__setattr__(self, "base", _freeze(self.base))
        _check_param_bytes(self.grid, self.base, len(self))

    def __hash__(self) -> int:  # dict fields: hash the canonical JSON instead
        return hash(canonical_json(self.to_dict()))

    @property
    def label_keys(self) -> tuple[str, ...]:
        """Parameters that vary across runs (grid axes, then ``seed``): the readable part of run ids."""
        return (*self.grid, "seed")

    def __len__(self) -> int:  # noqa: D105 — at most MAX_SWEEP_RUNS (checked at construction)
        return math.prod(len(v) for v in self.grid.values()) * len(self.seeds)

    def runs(self) -> list[Run]:
        """Expand the grid: axes in the order given (last axis fastest), seeds innermost. Ids are unique."""
        axes = list(self.grid)
        out: list[Run] = []
        seen: dict[str, int] = {}
        for point in itertools.product(*(self.grid[a] for a in axes)):
            for seed in self.seeds:
                params = {**self.base, **dict(zip(axes, point, strict=True)), "seed": seed}
                rid = run_id_for(params, self.label_keys)
                if rid in seen:
                    raise ValueError(f"SweepSpec: grid repeats a point ({rid}); every run must be distinct")
                seen[rid] = len(out)
                out.append(Run(rid, len(out), params))
        return out

    def resolve_fn(
        self, trusted_modules: tuple[str, ...] | list[str] = ()
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """Import and return the run function named by ``fn`` (see :func:`resolve_function` for what is trusted)."""
        return resolve_function(self.fn, trusted_modules)

    @classmethod
    def from_json(cls, path: str | Path) -> SweepSpec:
        """Read a spec from a JSON file (the format written by :meth:`to_json`)."""
        path = Path(path)
        where = printable(path)
        try:
            data = json.loads(read_regular(path, MAX_SPEC_BYTES, "sweep spec").decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{where}: not a UTF-8 text file (a sweep spec is JSON)") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e.msg} at line {e.lineno})") from None
        except RecursionError:
            raise ValueError(f"{where}: JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a sweep spec is a JSON object, got {type(data).__name__}")
        check_json_shape(data, "sweep spec")
        try:
            return cls.from_dict(data)
        except TypeError as e:  # unknown or missing fields
            raise ValueError(f"{where}: not a sweep spec ({printable(e, 200)})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def _is_trusted(module_name: str, trusted: tuple[str, ...] | list[str]) -> bool:
    return any(module_name == t or module_name.startswith(t + ".") for t in trusted)


def resolve_function(ref: str, trusted_modules: tuple[str, ...] | list[str] = ()) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (a clear ValueError if it is not allowed or not found).

    A spec file is data that may come from someone else, and naming a function is running it. By default only
    the run functions rnnattn registered (:mod:`rnnattn.sweeps.registry`) can be named, looked up by their exact
    reference without importing anything the spec names. A module (or package) the caller lists in
    ``trusted_modules`` (the CLI's ``--trust-module``) is imported and any public function in it may be named.
    """
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"run function must look like 'package.module:function', got {printable(repr(ref), 200)}")
    module_name, attr = ref.split(":")
    if _is_trusted(module_name, trusted_modules):
        return _import_trusted(ref, module_name, attr)
    entry = lookup(ref)
    if entry is None:
        known = ", ".join(sorted(registered_run_functions())) or "none"
        top = module_name.split(".")[0]
        hint = (
            "register it with @rnnattn.sweeps.run_function"
            if top == "rnnattn"
            else f"if you trust that code, pass --trust-module {printable(top, 80)}"
        )
        raise ValueError(
            f"sweep spec names run function {printable(repr(ref), 200)}, which is not a registered rnnattn run "
            f"function ({known}); refusing to run it ({hint})"
        )
    return entry.fn


def _import_trusted(ref: str, module_name: str, attr: str) -> Callable[..., Any]:
    shown = printable(repr(ref), 200)
    if any(part.startswith("_") or not part.isidentifier() for part in attr.split(".")):
        raise ValueError(f"run function {shown} must be a public name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import the run function's module {printable(repr(module_name), 200)}: {e}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(f"module {printable(repr(module_name), 200)} has no {printable(repr(attr), 200)}")
    if not callable(obj):
        raise ValueError(f"{shown} is not callable")
    return obj


def function_ref(fn: Callable[..., Any]) -> str:
    """``"module:qualname"`` of a function: recorded with every result so a results file is never silently
    reused by a different run function. (Closures get a ``<locals>`` name: fine in-process, not on remote workers.)"""
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}:{qualname}"
