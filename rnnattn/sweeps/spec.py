"""Sweep specifications: a grid of sizes x seeds x architectures, expanded into runs with stable ids.

A :class:`SweepSpec` names the function that performs one run (``"module:function"``), the fixed parameters
every run shares (``base``), the axes of a Cartesian grid (``grid``) and the seeds. :meth:`SweepSpec.runs`
expands it, in a fixed order, into :class:`Run` objects whose ``run_id`` depends only on the run's parameters,
never on its position
in the grid: adding a size or a seed to a sweep keeps every id that existed, so a resumed sweep skips exactly
the runs that are already done.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnattn.config import Config

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
        name: sweep name (output folder, report titles).
        fn: the run function as ``"package.module:function"``. It must be importable on every worker, take one
            ``dict`` of parameters and return a ``dict`` of JSON values (numbers, strings, lists).
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
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in "/\\\0"):
            raise ValueError(f"SweepSpec: name must be a non-empty string without slashes, got {self.name!r}")
        if not isinstance(self.fn, str) or self.fn.count(":") != 1 or not all(self.fn.split(":")):
            raise ValueError(f"SweepSpec: fn must look like 'package.module:function', got {self.fn!r}")
        if not isinstance(self.grid, dict):
            raise ValueError(f"SweepSpec: grid must map axis names to lists of values, got {type(self.grid).__name__}")
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

    def __hash__(self) -> int:  # dict fields: hash the canonical JSON instead
        return hash(canonical_json(self.to_dict()))

    @property
    def label_keys(self) -> tuple[str, ...]:
        """Parameters that vary across runs (grid axes, then ``seed``): the readable part of run ids."""
        return (*self.grid, "seed")

    def __len__(self) -> int:
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
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a UTF-8 text file (a sweep spec is JSON)") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        return cls.from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


TRUSTED_BY_DEFAULT = ("rnnattn",)


def _is_trusted(module_name: str, trusted: tuple[str, ...]) -> bool:
    return any(module_name == t or module_name.startswith(t + ".") for t in trusted)


def resolve_function(ref: str, trusted_modules: tuple[str, ...] | list[str] = ()) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (a clear ValueError if it cannot be imported).

    A spec file is data that may come from someone else, and naming a function is running it: only functions in
    ``rnnattn`` itself, or in a module (or package) the caller lists in ``trusted_modules`` (the CLI's
    ``--trust-module``), are imported. ``subprocess:run`` in a downloaded spec is refused before any import.
    """
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"run function must look like 'package.module:function', got {ref!r}")
    module_name, attr = ref.split(":")
    trusted = (*TRUSTED_BY_DEFAULT, *trusted_modules)
    if not _is_trusted(module_name, trusted):
        raise ValueError(
            f"sweep spec names run function {ref!r} outside rnnattn; refusing to import it "
            f"(if you trust that code, pass --trust-module {module_name.split('.')[0]})"
        )
    if attr.startswith("_") or any(part.startswith("_") for part in attr.split(".")):
        raise ValueError(f"run function {ref!r} must be a public name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import the run function's module {module_name!r}: {e}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(f"module {module_name!r} has no {attr!r}")
    if not callable(obj):
        raise ValueError(f"{ref} is not callable")
    return obj


def function_ref(fn: Callable[..., Any]) -> str:
    """``"module:qualname"`` of a function: recorded with every result so a results file is never silently
    reused
    by a different run function. (Closures get a ``<locals>`` name: fine in-process, not on remote
    workers.)"""
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}:{qualname}"
