"""Inputs of every analysis function: a model, a :class:`~rnnattn.Checkpoint` or a checkpoint path.

Analysis runs in float64 on a *copy* of the model (training runs in float32; the figures of Table 1 go down to
1e-10, below float32 resolution), so the caller's model is never modified. Each public function resolves (loads,
copies) its input once with :func:`resolve` and hands the copy to the step functions, which never copy again;
a :class:`Subject` passed back in is used as is.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnattn.analysis.errors import AnalysisNotApplicable, NotApplicable
from rnnattn.checkpoint import Checkpoint, load_checkpoint
from rnnattn.limits import check_analysis_width
from rnnattn.models.base import Model
from rnnattn.models.gated_rnn import GatedLinearRNN
from rnnattn.safeio import printable

ModelSource = Model | Checkpoint | str | os.PathLike


@dataclass
class Subject:
    """A resolved analysis input: the float64 model copy plus where it came from."""

    model: Model
    metadata: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Model] = field(default_factory=dict)
    path: Path | None = None


def float64_copy(model: Model) -> Model:
    """A deep copy of ``model`` in float64 with gradients off (metadata copied too)."""
    m = copy.deepcopy(model).to(torch.float64)
    m.metadata = copy.deepcopy(getattr(model, "metadata", {}))
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


def _analysis_ready(model: Model) -> bool:
    params = list(model.parameters())
    return (not model.training and all(p.dtype == torch.float64 and not p.requires_grad for p in params)
            and all(b.dtype == torch.float64 for b in model.buffers() if b.is_floating_point()))


def resolve(source: ModelSource, what: str = "model") -> Subject:
    """Turn a model / checkpoint / path into a :class:`Subject` holding a float64 copy.

    A model that already is what :func:`float64_copy` makes (float64, eval mode, no gradients: every model the
    analysis steps produce) is used as is, since analyses only read models; so a pipeline copies its input once.
    """
    if isinstance(source, Subject):
        return source
    if isinstance(source, str | os.PathLike):
        source = load_checkpoint(source)
    if isinstance(source, Checkpoint):
        check_analysis_width(source.model)  # a file's model: refuse widths whose probe activations cannot fit
        return Subject(
            float64_copy(source.model),
            dict(source.metadata),
            {k: float64_copy(v) for k, v in source.extras.items()},
            source.path,
        )
    if isinstance(source, Model):
        if _analysis_ready(source):  # already a float64, eval, gradient-free copy: analyses only read models
            return Subject(source, dict(getattr(source, "metadata", {})))
        return Subject(float64_copy(source), dict(getattr(source, "metadata", {})))
    raise TypeError(
        f"{what} must be an rnnattn Model, a Checkpoint or a checkpoint path, got {type(source).__name__}"
    )


_NOT_EQ2 = {
    "LSTM": "its gates pass through sigmoid/tanh nonlinearities, so it has no exact polynomial form, no bilinear "
    "gating rows and no diagonal lambda to prune or canonicalise (Eq. 2 structure is absent)",
    "GRU": "its gates pass through sigmoid/tanh nonlinearities and the update gate mixes h_{t-1} into the "
    "product (App. A.3), so the Eq. 2 structure (bilinear gating, linear recurrence) is absent",
    "LRU": "its gating is a sigmoid GLU and its lambda is complex, so the exact polynomial/row analysis of "
    "Eq. 2 does not apply",
    "SequenceModel": "a stack of layers has no single Eq. 2 gating/recurrence to analyse; analyse a single "
    "GatedLinearRNN layer instead",
    "LinearSelfAttention": "it is the attention layer itself (use it as the reference)",
}


def gated_or_na(model: Model, step: str) -> GatedLinearRNN | NotApplicable:
    """``model`` if it is a :class:`GatedLinearRNN` (Eq. 2), else :class:`NotApplicable` saying why not."""
    if isinstance(model, GatedLinearRNN):
        return model
    name = type(model).__name__
    reason = _NOT_EQ2.get(name, "only GatedLinearRNN (Eq. 2) models have this structure")
    return NotApplicable(step, f"{name} is not an Eq. 2 gated RNN: {reason}")


def require_gated_rnn(model: Model, step: str) -> GatedLinearRNN:
    """Return ``model`` if it is a :class:`GatedLinearRNN`, else raise :class:`AnalysisNotApplicable` with a reason."""
    if isinstance(model, GatedLinearRNN):
        return model
    raise AnalysisNotApplicable(step, model, _NOT_EQ2.get(type(model).__name__, "only GatedLinearRNN (Eq. 2) "
                                                          "models have this structure"))


def dense_offdiag_ratio(model: GatedLinearRNN) -> float:
    """``max|A_offdiag| / max|A|`` for dense recurrence (0 for diagonal models)."""
    if model.config.recurrence == "diagonal":
        return 0.0
    A = model.A.detach()
    scale = float(A.abs().max())
    if scale == 0.0:
        return 0.0
    off = A - torch.diag(torch.diagonal(A))
    return float(off.abs().max()) / scale


def hidden_lambda(model: GatedLinearRNN, diag_tol: float = 1e-9) -> torch.Tensor | None:
    """Per-neuron lambda ``[N]``: the diagonal decay, or ``diag(A)`` when dense ``A`` is diagonal to ``diag_tol``
    (relative); ``None`` for a genuinely dense ``A`` (then neurons have no individual lambda)."""
    if model.config.recurrence == "diagonal":
        return model.lam.detach()
    if dense_offdiag_ratio(model) <= diag_tol:
        return torch.diagonal(model.A.detach()).clone()
    return None


def labels(model: Model, kind: str, n: int) -> list[str]:
    """Unit labels (``kind`` "hidden" or "gating"): ``model.metadata["labels"][kind]`` (written by the rewrites),
    else ``metadata["construction"]["labels"][kind]`` (constructions: ``S[0,1]``, ``p[2]``), else ``h0, h1,
    ...`` / ``g0, g1, ...``."""
    meta = getattr(model, "metadata", {})
    construction = meta.get("construction", {})
    for stored in (
        meta.get("labels"),
        construction.get("labels") if isinstance(construction, dict) else None,
    ):
        got = stored.get(kind) if isinstance(stored, dict) else None
        if isinstance(got, list | tuple) and len(got) == n:
            return [str(s) for s in got]
    return [f"{'h' if kind == 'hidden' else 'g'}{i}" for i in range(n)]


def display_path(path: str | os.PathLike | None) -> str | None:
    """How a report names a file: relative to the working folder when inside it, else the bare file name (never
    the absolute path of the machine that built the report)."""
    if path is None:
        return None
    p = Path(path)
    try:
        shown = str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        shown = p.name
    return printable(shown)  # control characters and undecodable bytes (lone surrogates) escaped: always encodes


def input_names(model: Model) -> list[str]:
    """Names of the input variables (``metadata["input_names"]`` if stored, else ``x1..xd``)."""
    d = model.d_input
    got = getattr(model, "metadata", {}).get("input_names")
    if isinstance(got, list | tuple) and len(got) == d:
        return [str(s) for s in got]
    return [f"x{i + 1}" for i in range(d)]
