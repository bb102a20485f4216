"""Assertion helpers for tests of rnnattn models (and of models users build with it).

- :func:`assert_polynomial_distance_below` — the instantaneous polynomial of a model is within a relative L2
  distance of a reference's (Table 1's polynomial distance, §3.1); on failure the message names the outputs and
  monomials that differ.
- :func:`assert_outputs_close` — two models (or callables) agree on inputs ``x``, through
  ``torch.testing.assert_close`` with explicit tolerances.
- The pytest plugin (:mod:`rnnattn.testing.plugin`, registered as the ``pytest11`` entry point ``rnnattn``) adds the
  ``polynomial_baseline`` fixture that compares a model's polynomial with a JSON baseline stored beside the test.

Heavy modules (torch, the analysis stage) are imported inside the functions, so importing this package is
cheap.

Example:
    >>> from rnnattn.constructions import attention_to_gated_rnn
    >>> rnn = attention_to_gated_rnn(lsa, form="compact")
    >>> assert_polynomial_distance_below(rnn, lsa, 1e-12)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "assert_polynomial_distance_below",
    "assert_outputs_close",
    "polynomial_of",
    "PolynomialComparison",
    "compare_polynomials",
]


def polynomial_of(source: Any, max_degree: int | None = None):
    """The instantaneous :class:`~rnnattn.analysis.polynomial.Polynomial` of a model / checkpoint / path, or
    the polynomial itself; raised to ``max_degree`` (zero-padded) when given."""
    from rnnattn.analysis.polynomial import Polynomial, instantaneous_polynomial

    p = source if isinstance(source, Polynomial) else instantaneous_polynomial(source)
    return p.with_degree(max_degree) if max_degree is not None else p


@dataclass
class PolynomialComparison:
    """Per-output comparison of two polynomials on a common monomial basis.

    Attributes:
        outputs: output names compared.
        monomials: names of the common basis.
        model, reference: ``[n_out, K]`` coefficients.
        distance: ``[n_out]`` relative L2 distance ``||p_i - q_i|| / ||q_i||`` (absolute when ``||q_i|| = 0``).
        reference_norm: ``[n_out]`` ``||q_i||``.
    """

    outputs: list[str]
    monomials: list[str]
    model: np.ndarray
    reference: np.ndarray
    distance: np.ndarray
    reference_norm: np.ndarray

    def value(self, reduction: str = "mean") -> float:
        if reduction not in ("mean", "max"):
            raise ValueError(f"reduction must be 'mean' or 'max', got {reduction!r}")
        return float(self.distance.mean() if reduction == "mean" else self.distance.max())

    def report(self, threshold: float | None = None, top: int = 5, atol: float = 0.0) -> str:
        """Lines naming each output over ``threshold`` (all outputs if None) and its largest coefficient
        differences (those above ``atol``)."""
        import numpy as np

        lines = []
        for i, name in enumerate(self.outputs):
            if threshold is not None and not self.distance[i] >= threshold:
                if not np.isnan(self.distance[i]):
                    continue
            kind = "relative" if self.reference_norm[i] > 0 else "absolute (reference output is 0)"
            lines.append(
                f"  output {name}: distance {self.distance[i]:.3e} ({kind}; ||reference|| = "
                f"{self.reference_norm[i]:.3e})"
            )
            diff = self.model[i] - self.reference[i]
            order = np.argsort(-np.abs(diff), kind="stable")[:top]
            for j in order:
                if not abs(diff[j]) > atol:
                    break
                lines.append(
                    f"    {self.monomials[j]:<16} model {self.model[i, j]: .6e}  reference "
                    f"{self.reference[i, j]: .6e}  difference {diff[j]: .3e}"
                )
        return "\n".join(lines)


def _select_outputs(names: Sequence[str], outputs: Sequence[int | str] | None) -> list[int]:
    if outputs is None:
        return list(range(len(names)))
    idx = []
    for o in outputs:
        if isinstance(o, str):
            if o not in names:
                raise ValueError(f"unknown output {o!r}; the model's outputs are {list(names)}")
            idx.append(list(names).index(o))
        else:
            if not -len(names) <= int(o) < len(names):
                raise ValueError(f"output index {o} out of range for {len(names)} outputs")
            idx.append(int(o) % len(names))
    return idx


def compare_polynomials(
    model: Any, reference: Any, outputs: Sequence[int | str] | None = None
) -> PolynomialComparison:
    """Compare the instantaneous polynomials of ``model`` and ``reference`` (models, checkpoints or
    polynomials).

    Both are brought to the larger of their degrees (a cubic attention polynomial is a quartic with zero
    degree-4 terms), then compared output by output with the relative L2 distance of Table 1 (§3.1; normalisation as in
    :mod:`rnnattn.analysis.distance`).
    """
    import numpy as np

    p, q = polynomial_of(model), polynomial_of(reference)
    if p.n_vars != q.n_vars:
        raise ValueError(
            f"model has {p.n_vars} input variables, reference {q.n_vars}: polynomials not comparable"
        )
    if p.n_outputs != q.n_outputs:
        raise ValueError(
            f"model has {p.n_outputs} outputs, reference {q.n_outputs}: polynomials not comparable"
        )
    deg = max(p.max_degree, q.max_degree)
    p, q = p.with_degree(deg), q.with_degree(deg)
    idx = _select_outputs(p.outputs, outputs)
    P, Q = p.coefficients[idx], q.coefficients[idx]
    diff = np.linalg.norm(P - Q, axis=1)
    qn = np.linalg.norm(Q, axis=1)
    dist = np.where(qn > 0, diff / np.where(qn > 0, qn, 1.0), diff)
    return PolynomialComparison([p.outputs[i] for i in idx], p.monomials, P, Q, dist, qn)


def assert_polynomial_distance_below(
    model: Any,
    reference: Any,
    threshold: float,
    outputs: Sequence[int | str] | None = None,
    reduction: str = "mean",
    top: int = 5,
) -> float:
    """Assert that the instantaneous polynomial of ``model`` is within ``threshold`` of ``reference``'s.

    Args:
        model: a gated RNN / attention model, checkpoint, checkpoint path, or a ``Polynomial``.
        reference: the same kinds (typically the attention layer a construction came from).
        threshold: the distance must be strictly below it.
        outputs: restrict to these outputs (names like ``"y1"`` or indices); default all.
        reduction: ``"mean"`` over outputs (the paper's "averaged over the outputs") or ``"max"`` (every
        output).
        top: coefficient differences listed per failing output.
    Returns:
        The distance (so tests can also log it).
    Raises:
        AssertionError: listing every output at or over the threshold with its largest coefficient
        differences.
    """
    import numpy as np

    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    cmp = compare_polynomials(model, reference, outputs)
    value = cmp.value(reduction)
    if not value < threshold:  # also catches NaN
        per = ", ".join(f"{n}={d:.3e}" for n, d in zip(cmp.outputs, cmp.distance, strict=True))
        bad = cmp.report(threshold if reduction == "max" or np.isnan(value) else None, top=top)
        raise AssertionError(
            f"polynomial distance {value:.3e} is not below {threshold:.3e} ({reduction} over "
            f"{len(cmp.outputs)} outputs of ||p_i - q_i|| / ||q_i||, {len(cmp.monomials)} monomials; per "
            f"output: {per})\n{bad}"
        )
    return value


def assert_outputs_close(
    a: Callable[[Any], Any],
    b: Callable[[Any], Any],
    x: Any,
    rtol: float,
    atol: float,
    *,
    msg: str | None = None,
) -> None:
    """Assert ``a(x)`` and ``b(x)`` agree elementwise (``|a - b| <= atol + rtol |b|``), compared in float64.

    ``a`` and ``b`` are models or callables ``x [B, T, D] -> y [B, T, D_out]``; tolerances are explicit (there
    is no sensible default across float32 training and float64 constructions). Models are run under ``torch.no_grad``.
    """
    import torch

    with torch.no_grad():
        ya, yb = a(x), b(x)
    if isinstance(ya, tuple):
        ya = ya[0]
    if isinstance(yb, tuple):
        yb = yb[0]
    ya = torch.as_tensor(ya).detach().to(torch.float64)
    yb = torch.as_tensor(yb).detach().to(torch.float64)
    if ya.shape != yb.shape:
        raise AssertionError(f"output shapes differ: {tuple(ya.shape)} vs {tuple(yb.shape)}")

    def _msg(default: str) -> str:
        err = (ya - yb).abs()
        where = (
            tuple(int(i) for i in torch.unravel_index(torch.argmax(err), err.shape)) if err.numel() else ()
        )
        extra = f"largest difference at index {where}: {float(err.max()) if err.numel() else 0:.3e}"
        return f"{msg + ': ' if msg else ''}{default}\n{extra}"

    torch.testing.assert_close(ya, yb, rtol=rtol, atol=atol, msg=_msg)
