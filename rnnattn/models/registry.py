"""Name -> model class registry used by checkpoints (a checkpoint names its class; nothing is unpickled)."""

from __future__ import annotations

from typing import TypeVar

_REGISTRY: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register_model(cls: T) -> T:
    """Class decorator: make ``cls`` loadable from checkpoints under its ``__name__``."""
    name = cls.__name__
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"model class name {name!r} registered twice")
    _REGISTRY[name] = cls
    return cls


def get_model_class(name: str) -> type:
    if name not in _REGISTRY:
        _import_optional_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model class {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def registered_models() -> dict[str, type]:
    _import_optional_families()
    return dict(_REGISTRY)


def _import_optional_families() -> None:
    # Families that live above models/ (LSRL's compiled modules) register on import; import them lazily so that a
    # checkpoint of such a model loads without the user importing the subpackage first.
    import importlib

    for mod in ("rnnattn.lsrl",):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
