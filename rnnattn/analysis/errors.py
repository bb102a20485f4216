"""Errors of the analysis stage."""

from __future__ import annotations


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
