r"""What a student is compared with: the teacher, the one-step-GD solution, or the construction it came from.

Resolution order when no reference is passed (``resolve_reference(subject, None)``):

1. ``metadata["reference"] == "teacher"`` → the checkpoint's ``extras["teacher"]``;
2. ``metadata["reference"] == "one_step_gd"`` → the linear-attention form of one GD step (§4, Eq. 4) with the
   task's ``eta`` (or the analytic optimum ``eta*`` of App. C.2 from the task metadata);
3. a checkpoint with an ``extras["teacher"]`` → that teacher;
4. a construction → ``rnnattn.constructions.source_of(model)``.

One GD step from ``W_0 = 0`` (Eq. 4) is ``y_hat = eta * sum_t y_t x_t^T x_{T+1}``: a linear attention layer
with ``W_K = W_Q = [I_dx, 0]`` and ``W_V = eta [0, I_dy]`` on tokens ``(x, y)``; its instantaneous polynomial
has the single monomials ``eta * x_j^2 y_i`` in output i (Table 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rnnattn.analysis.errors import ReferenceUnavailable
from rnnattn.analysis.loading import ModelSource, Subject, float64_copy, resolve
from rnnattn.analysis.polynomial import Polynomial, attention_polynomial
from rnnattn.analysis.results import Result
from rnnattn.constructions import source_of
from rnnattn.limits import check_polynomial
from rnnattn.models.attention import LinearSelfAttention, LinearSelfAttentionConfig
from rnnattn.models.base import Model

REFERENCE_KINDS = ("teacher", "one_step_gd", "construction")


@dataclass(repr=False)
class Reference(Result):
    """A resolved reference: ``kind`` ("teacher" | "one_step_gd" | "construction" | "model"), the attention model
    and its cubic polynomial, and a one-line ``description``."""

    kind: str
    model: LinearSelfAttention
    polynomial: Polynomial
    description: str


def optimal_gd_eta(n_context: int, d_x: int, sigma_x2: float = 1.0, kurtosis: float = 9.0 / 5.0) -> float:
    r"""Optimal one-step-GD learning rate, App. C.2: :math:`\eta^* = 1 / (\sigma_x^2 (n + d_x + \kappa - 2))`
    (``kappa`` = kurtosis of the input entries: 9/5 uniform, 3 normal; 1/14.8 for Table 2's setting).
    Delegates to :func:`rnnattn.tasks.optimal_gd_learning_rate`."""
    from rnnattn.tasks import optimal_gd_learning_rate

    return optimal_gd_learning_rate(n_context, d_x, sigma_x2, kurtosis)


def one_step_gd_lsa(eta: float, d_x: int, d_y: int, d_output: int | None = None) -> LinearSelfAttention:
    """Linear attention implementing one GD step (Eq. 4) on tokens ``(x, y)`` of size ``d_x + d_y`` (float64).

    Outputs the ``d_y`` prediction; with ``d_output = d_x + d_y`` the prediction is placed in the last ``d_y``
    outputs (the y slots of the token) through ``W_O``.
    """
    d = d_x + d_y
    if d_output not in (None, d_y, d):
        raise ValueError(f"one_step_gd_lsa: d_output must be d_y={d_y} or d_x+d_y={d}, got {d_output}")
    cfg = LinearSelfAttentionConfig(
        d_input=d, d_key=d_x, d_value=d_y, d_output=None if d_output in (None, d_y) else d
    )
    lsa = LinearSelfAttention(cfg).to(torch.float64)
    with torch.no_grad():
        sel_x = torch.zeros(d_x, d, dtype=torch.float64)
        sel_x[:, :d_x] = torch.eye(d_x, dtype=torch.float64)
        sel_y = torch.zeros(d_y, d, dtype=torch.float64)
        sel_y[:, d_x:] = torch.eye(d_y, dtype=torch.float64)
        lsa.W_K.copy_(sel_x[None])
        lsa.W_Q.copy_(sel_x[None])
        lsa.W_V.copy_(eta * sel_y[None])
        if lsa.W_O is not None:
            lsa.W_O.copy_(sel_y.T)
    lsa.metadata = {
        "description": f"one step of GD (Eq. 4), eta={eta:.6g}",
        "d_x": d_x,
        "d_y": d_y,
        "eta": eta,
    }
    lsa.metadata["input_names"] = [f"x{i + 1}" for i in range(d_x)] + [f"y{i + 1}" for i in range(d_y)]
    for p in lsa.parameters():
        p.requires_grad_(False)
    return lsa.eval()


def one_step_gd_polynomial(eta: float, d_x: int, d_y: int) -> Polynomial:
    """The cubic instantaneous polynomial of one GD step: output i is ``eta * y_i * sum_j x_j^2`` (Table 2)."""
    return attention_polynomial(one_step_gd_lsa(eta, d_x, d_y))


def _task_dict(metadata: dict[str, Any]) -> dict[str, Any]:
    task = metadata.get("task", {})
    return task if isinstance(task, dict) else {}


def _first(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def task_gd_eta(task: dict[str, Any], d_x: int) -> float | None:
    """The step size of one GD step (Eq. 4) that a task's metadata states: ``eta`` (or ``gd_eta``, ``eta_star``),
    else App. C.2's analytic ``eta*`` from the context length (``n_context``, ``T``, ...), the input variance and
    distribution (kurtosis 3 normal, 9/5 uniform); None when it states neither."""
    eta = _first(task, "eta", "gd_eta", "eta_star")
    if eta is not None:
        return float(eta)
    n = _first(task, "n_context", "T", "n_pairs", "seq_len_context")
    if n is None:
        return None
    kurt = 3.0 if _first(task, "x_dist", default="uniform") == "normal" else 9.0 / 5.0
    return optimal_gd_eta(int(n), int(d_x), float(_first(task, "x_var", "sigma_x2", default=1.0)), kurt)


def gd_reference_from_metadata(metadata: dict[str, Any], d_output: int | None = None) -> LinearSelfAttention:
    """Build the one-step-GD attention layer from a checkpoint's task metadata (``d_x``, ``d_y``, ``eta`` or the
    context length ``n_context``/``T`` and the input variance for the analytic ``eta*``)."""
    task = {**_task_dict(metadata), **{k: v for k, v in metadata.items() if k in ("eta", "d_x", "d_y")}}
    d_x, d_y = _first(task, "d_x"), _first(task, "d_y")
    if d_x is None or d_y is None:
        raise ReferenceUnavailable("reference 'one_step_gd' needs d_x and d_y in the checkpoint's task metadata")
    check_polynomial(int(d_x) + int(d_y), 3, int(d_y), "one-step-GD reference")  # d from metadata: refuse huge d
    eta = task_gd_eta(task, int(d_x))
    if eta is None:
        raise ReferenceUnavailable(
            "reference 'one_step_gd' needs eta, or the number of context pairs (n_context), in the task metadata"
        )
    if d_output not in (None, int(d_y), int(d_x) + int(d_y)):
        raise ReferenceUnavailable(
            f"reference 'one_step_gd': the student has {d_output} outputs, one GD step predicts d_y={d_y} "
            f"(or the whole token, {int(d_x) + int(d_y)})"
        )
    return one_step_gd_lsa(float(eta), int(d_x), int(d_y), d_output)


def _as_lsa(model: Model, kind: str, description: str) -> Reference:
    if not isinstance(model, LinearSelfAttention):
        raise ReferenceUnavailable(
            f"reference ({kind}) must be a LinearSelfAttention (Eq. 1), got {type(model).__name__}"
        )
    m = model if next(model.parameters()).dtype == torch.float64 else float64_copy(model)
    return Reference(kind, m, attention_polynomial(m), description)


def _construction_source(model: Model) -> Model | None:
    try:
        return source_of(model)
    except ValueError as e:  # source_of's documented error: a malformed provenance record
        raise ReferenceUnavailable(str(e)) from None


def resolve_reference(
    subject: Subject | ModelSource, reference: ModelSource | str | None = None
) -> Reference:
    """Resolve the reference a student is compared with (see the module docstring for the default order).

    Args:
        subject: the student (model, checkpoint, path or resolved subject).
        reference: ``None`` (from metadata), "teacher", "one_step_gd", "construction", or a
            LinearSelfAttention model / checkpoint / path.
    Raises:
        ReferenceUnavailable: no reference can be found or the one asked for cannot be used (one-line reason
            saying what to pass).
    """
    subj = resolve(subject)
    meta = subj.metadata
    wanted = reference if isinstance(reference, str) and reference in REFERENCE_KINDS else None
    if reference is not None and wanted is None:
        if (
            isinstance(reference, str)
            and reference not in REFERENCE_KINDS
            and not reference.endswith(".safetensors")
        ):
            raise ReferenceUnavailable(
                f"reference must be one of {REFERENCE_KINDS}, a model or a checkpoint path, got {reference!r}"
            )
        return _as_lsa(resolve(reference, "reference").model, "model", "given reference model")
    kind = wanted or meta.get("reference")
    if kind == "teacher" or (kind is None and "teacher" in subj.extras):
        if "teacher" not in subj.extras:
            raise ReferenceUnavailable("reference 'teacher' requested but the checkpoint holds no extras['teacher']")
        return _as_lsa(subj.extras["teacher"], "teacher", "the teacher saved with the checkpoint")
    if kind == "one_step_gd":
        lsa = gd_reference_from_metadata(meta, subj.model.d_output)
        return _as_lsa(lsa, "one_step_gd", lsa.metadata["description"])
    src = _construction_source(subj.model)
    if src is not None:
        return _as_lsa(src, "construction", "the attention layer the construction was built from")
    if kind == "construction":
        raise ReferenceUnavailable(
            "reference 'construction' requested but rnnattn.constructions.source_of found no source"
        )
    raise ReferenceUnavailable(
        "no reference found: pass reference=<LinearSelfAttention or checkpoint>, or save the student "
        "with metadata reference='teacher' (extras={'teacher': lsa}) or reference='one_step_gd'"
    )
