"""Errors of the constructions stage."""

from __future__ import annotations


class ConstructionError(ValueError):
    """A construction cannot be built from this source model; ``str(err)`` is a one-line reason.

    Subclasses ``ValueError`` so the CLI prints it as a one-line error.
    """
