"""Named intermediates: hook points and the activation cache.

Every intermediate a model computes (gates, pre-activations, hidden-state sequences, gated outputs) flows through a
:class:`HookPoint`, an identity ``nn.Module`` whose qualified module name (``"hook_h"``, ``"layers.1.hook_gate_out"``)
is its stable public name. Analysis reads them through :meth:`HookedMixin.run_with_cache` instead of re-implementing
forward passes (TransformerLens's hook points); external tools (nnsight, pyvene, plain ``register_forward_hook``) see
the same modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn


class HookPoint(nn.Identity):
    """Identity module marking a named intermediate. Its name is its attribute path in the model."""


@dataclass
class ActivationCache:
    """Intermediates recorded by ``run_with_cache``, keyed by hook name (e.g. ``"hook_h"``, ``"layers.0.hook_h"``).

    Values are detached tensors, layout ``[B, T, ...]`` unless the hook's docstring says otherwise.
    """

    activations: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.activations[name]
        except KeyError:
            known = ", ".join(sorted(self.activations)) or "none"
            raise KeyError(f"no cached activation {name!r}; recorded: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.activations

    def __iter__(self) -> Iterator[str]:
        return iter(self.activations)

    def __len__(self) -> int:
        return len(self.activations)

    def keys(self) -> Iterable[str]:
        return self.activations.keys()

    def items(self) -> Iterable[tuple[str, torch.Tensor]]:
        return self.activations.items()

    def __repr__(self) -> str:
        shown = [f"{name} {list(t.shape)}" for name, t in list(self.items())[:6]]
        more = f", ... {len(self) - 6} more" if len(self) > 6 else ""
        return f"ActivationCache({len(self)} hooks: {', '.join(shown)}{more})"

    def _repr_html_(self) -> str:
        import pandas as pd

        from rnnattn.display import Table, fragment

        df = pd.DataFrame(
            [{"hook": name, "shape": str(tuple(t.shape)), "dtype": str(t.dtype)} for name, t in self.items()],
            columns=["hook", "shape", "dtype"],
        )
        return fragment("ActivationCache", f"{len(self)} cached activations", Table(df, max_rows=100))


class HookedMixin:
    """Adds ``hook_points``, ``hooks(...)`` and ``run_with_cache`` to an ``nn.Module``."""

    def hook_points(self) -> dict[str, HookPoint]:
        """All hook points of the model by qualified name."""
        return {n: m for n, m in self.named_modules() if isinstance(m, HookPoint)}  # type: ignore[attr-defined]

    @property
    def caching(self) -> bool:
        """True while any hook point has a forward hook; models may then take a slower, fully observable path."""
        return any(len(m._forward_hooks) > 0 for m in self.hook_points().values())

    @contextmanager
    def hooks(self, fns: dict[str, Callable[[torch.Tensor, str], torch.Tensor | None]]):
        """Temporarily attach ``fn(tensor, name) -> tensor|None`` to named hook points (a return value replaces the
        activation: interventions)."""
        points = self.hook_points()
        handles = []
        try:
            for name, fn in fns.items():
                if name not in points:
                    raise KeyError(f"unknown hook point {name!r}; available: {sorted(points)}")
                handles.append(points[name].register_forward_hook(lambda _m, _i, out, fn=fn, name=name: fn(out, name)))
            yield self
        finally:
            for h in handles:
                h.remove()

    def run_with_cache(
        self, *args, names: Iterable[str] | Callable[[str], bool] | None = None, **kwargs
    ) -> tuple[object, ActivationCache]:
        """Run ``forward(*args, **kwargs)`` and record every (or the selected) hook point's output.

        Returns:
            ``(output, cache)`` where ``cache[name]`` is the detached activation.
        """
        points = self.hook_points()
        if names is None:
            selected = list(points)
        elif callable(names):
            selected = [n for n in points if names(n)]
        else:
            selected = list(names)
        cache = ActivationCache()

        def record(t: torch.Tensor, name: str) -> None:
            cache.activations[name] = t.detach()

        with self.hooks({n: record for n in selected}):
            out = self(*args, **kwargs)  # type: ignore[operator]
        return out, cache
