"""Config dataclasses that serialise to JSON and rebuild the model.

Every model config is a frozen dataclass deriving from :class:`Config`. ``to_dict`` gives plain JSON values (tuples
become lists); ``from_dict`` validates field names and rebuilds, turning lists back into tuples so configs stay
hashable and compare equal after a round trip.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return _thaw(dataclasses.asdict(value))
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config: JSON round trip and checked construction."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}: config must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown config field(s) {unknown}")
        return cls(**{k: _freeze(v) for k, v in data.items()})

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


def check_positive_int(owner: str, **values: Any) -> None:
    """Raise ValueError unless every value is an int >= 1 (bools rejected)."""
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{owner}: {name} must be a positive integer, got {v!r}")
