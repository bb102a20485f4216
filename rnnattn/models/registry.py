"""Name -> model class registry used by checkpoints (a checkpoint names its class; nothing is unpickled).

Classes register with :func:`register_model` when their module is imported. Model families that live above
``models/`` (LSRL's compiled and converted networks) or in other packages are declared as entry points of the
group ``rnnattn.models`` (``ClassName = "package.module:ClassName"`` in ``pyproject.toml``); a checkpoint naming
a class that is not registered yet loads that entry point. ``models/`` itself names no module above it.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

_REGISTRY: dict[str, type] = {}
ENTRY_POINT_GROUP = "rnnattn.models"

T = TypeVar("T", bound=type)


def register_model(cls: T) -> T:
    """Class decorator: make ``cls`` loadable from checkpoints under its ``__name__``."""
    name = cls.__name__
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"model class name {name!r} registered twice")
    _REGISTRY[name] = cls
    return cls


def _load_entry_point(name: str) -> None:
    # An import error inside a declared first-party module is a bug and propagates; only an undeclared name
    # falls through to the KeyError below.
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        cls = ep.load()
        register_model(cls)


def get_model_class(name: str) -> type:
    if name not in _REGISTRY:
        _load_entry_point(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model class {name!r} (known: {', '.join(sorted(registered_models()))})") from None


def registered_models() -> dict[str, type]:
    """Every registered class, the declared entry points included (loaded on this call)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            register_model(ep.load())
    return dict(_REGISTRY)
