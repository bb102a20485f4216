"""Conversions of compiled LSRL models to the architectures of the paper's §6 and appendices.

All conversions take a :class:`~rnnattn.lsrl.compiler.CompiledProgram` or a :class:`~rnnattn.lsrl.CompiledLSRL` (e.g.
one with perturbed weights) and return a runnable, registered rnnattn model. With the paper's assumption that every
nonlinearity (gates included) is a ReLU, all four are *exact* rewrites: in exact arithmetic they compute the same
outputs; in floating point they differ from the compiled model only by rounding (the GRU product accumulates a running
sum, so its rounding error grows like ``eps * sum_t |a_t b_t|``).

| target | per ``state`` stage | per ``relu`` stage | per ``mul`` stage |
|---|---|---|---|
| Elman ReLU RNN (Eq. 2, 11) | 1 layer, state split ``[s+; s-]`` | 1 layer | unsupported (no gating) |
| GRU (App. C) | 1 layer (``z = r = 1``) | 1 layer | 3 layers (split, accumulate, difference) |
| LSTM (App. D) | 1 layer (``f = 0``, ``i = c~ = 1``) | 1 layer | 1 layer (``i = a+-``, ``c~ = b+-``) |
| Hawk (App. E) | 1 recurrent block (conv kernel = ``T_max``) | 1 gated-MLP block | 1 gated-MLP block |

Mamba: the paper claims the result for "linear gated architectures such as Mamba" but gives no conversion
recipe (its Apps. C-E cover GRU, LSTM and Hawk/Griffin only), so :func:`to_mamba` raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class ConversionError(ValueError):
    """The model cannot be converted to the requested architecture."""


@dataclass
class StageSpec:
    """A compiled stage as float64 arrays: ``W [in, prev]``, ``c [in]``, ``A [w, w]``, ``init [w]``."""

    kind: str
    W: np.ndarray
    c: np.ndarray
    A: np.ndarray | None = None
    init: np.ndarray | None = None

    @property
    def width(self) -> int:
        return self.W.shape[0] // 2 if self.kind == "mul" else self.W.shape[0]


@dataclass
class ModelSpec:
    d_input: int
    d_output: int
    stages: list[StageSpec]
    W_out: np.ndarray
    c_out: np.ndarray
    name: str = "lsrl"


def extract(src: Any) -> ModelSpec:
    """Reads the stages of a ``CompiledProgram`` or ``CompiledLSRL`` as float64 arrays."""
    from ..compiler.ir import CompiledProgram
    from ..modules import CompiledLSRL

    if isinstance(src, CompiledProgram):
        stages = [
            StageSpec(
                s.kind,
                s.W.to_numpy(),
                np.array([float(v) for v in s.c]),
                s.A.to_numpy() if s.kind == "state" else None,
                np.array([float(v) for v in s.init]) if s.kind == "state" else None,
            )
            for s in src.stages
        ]
        return ModelSpec(
            src.input_dim,
            src.output_dim,
            stages,
            src.W_out.to_numpy(),
            np.array([float(v) for v in src.c_out]),
            src.name,
        )
    if isinstance(src, CompiledLSRL):

        def npy(t: Any) -> np.ndarray:
            return t.detach().to("cpu").double().numpy().copy()

        stages = [
            StageSpec(
                m.kind,
                npy(m.weight),
                npy(m.bias),
                npy(m.A) if m.kind == "state" else None,
                npy(m.init) if m.kind == "state" else None,
            )
            for m in src.stages
        ]
        return ModelSpec(
            src.config.d_input,
            src.config.d_output,
            stages,
            npy(src.readout.weight),
            npy(src.readout.bias),
            src.config.name,
        )
    raise TypeError(f"expected a CompiledProgram or CompiledLSRL, got {type(src).__name__}")


def split_state(A: np.ndarray) -> np.ndarray:
    """Eq. (11): the recurrence of ``[s+; s-]``: ``[[A, -A], [-A, A]]``."""
    return np.block([[A, -A], [-A, A]])


def to_elman(src: Any) -> Any:
    """Elman ReLU RNN (paper Eqs. 2 and 11). See :mod:`.elman`."""
    from .elman import to_elman as f

    return f(src)


def to_gru(src: Any) -> Any:
    """ReLU-gated GRU (App. C). See :mod:`.gru`."""
    from .gru import to_gru as f

    return f(src)


def to_lstm(src: Any) -> Any:
    """ReLU-gated LSTM (App. D). See :mod:`.lstm`."""
    from .lstm import to_lstm as f

    return f(src)


def to_hawk(src: Any, max_len: int) -> Any:
    """Hawk (Griffin's recurrent blocks, App. E) for sequences up to ``max_len``. See :mod:`.hawk`."""
    from .hawk import to_hawk as f

    return f(src, max_len)


def to_mamba(src: Any) -> Any:
    """Not available: the paper gives no Mamba recipe.

    Raises:
        NotImplementedError: always.
    """
    raise NotImplementedError(
        "no Mamba conversion: Petrov et al. only claim that 'linear gated architectures such as Mamba' are "
        "covered "
        "and give recipes for GRU, LSTM and Hawk/Griffin (Apps. C-E) but none for Mamba's selective SSM; use "
        "to_hawk, to_gru or to_lstm"
    )


def convert(src: Any, arch: str, **kwargs: Any) -> Any:
    """Dispatches ``arch`` in ``{"elman", "gru", "lstm", "hawk", "mamba"}``."""
    table = {"elman": to_elman, "gru": to_gru, "lstm": to_lstm, "hawk": to_hawk, "mamba": to_mamba}
    if arch not in table:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(table)}")
    return table[arch](src, **kwargs)


# Register the converted model classes on import, so rnnattn.load() finds them in a fresh process.
from . import elman, gru, hawk, lstm  # noqa: E402, F401
