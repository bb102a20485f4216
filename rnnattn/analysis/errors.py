"""Errors and the typed "does not apply" value of the analysis stage.

A pipeline step that cannot run on a model *returns* :class:`NotApplicable` (a value the report renders); a
public single-step function (``prune``, ``canonicalize``, ...) *raises* :class:`AnalysisNotApplicable` with the
same reason. :class:`ReferenceUnavailable` says that no reference could be resolved for a student.
"""

from __future__ import annotations

from dataclasses import dataclass


class AnalysisNotApplicable(ValueError):
    """An analysis step does not apply to this model (e.g. KV probes on an LSTM, which has no perfect-memory units).

    Raised instead of returning numbers that mean nothing; ``str(err)`` is a one-line reason naming the step
    and the model. Subclasses ``ValueError`` so the CLI prints it as a one-line error.
    """

    def __init__(self, step: str, model: object, reason: str) -> None:
        self.step = step
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self.reason = reason
        super().__init__(f"{step}: not applicable to {self.model_name}: {reason}")


class ReferenceUnavailable(ValueError):
    """No reference attention layer can be resolved for a student (none recorded, or the one asked for is missing
    or is not a linear self-attention layer). The message says what to pass instead."""


@dataclass(frozen=True)
class NotApplicable:
    """The result of a pipeline step that does not apply: which ``step`` and why (one line).

    It is falsy, so ``if result.probes:`` reads "if the probes ran"."""

    step: str
    reason: str

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{self.step}: not applicable: {self.reason}"

    def __repr__(self) -> str:
        return f"NotApplicable({self.step!r}, {self.reason!r})"

    def error(self, model: object) -> AnalysisNotApplicable:
        """The exception a public single-step function raises for this."""
        return AnalysisNotApplicable(self.step, model, self.reason)

    def _repr_html_(self) -> str:
        from rnnattn.display import Text, fragment

        return fragment(self.step, "Not applicable", Text(self.reason, "note"), status="not_applicable")
