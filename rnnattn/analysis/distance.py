"""Distance between instantaneous polynomials (Table 1's "polynomial distance", §3.1).

The paper: "normalized Euclidean distance between these coefficient vectors ..., average over all 4 output
units". rnnattn's headline reading (``normalisation="relative"``) is ``mean_i ||p_i - q_i||_2 / ||q_i||_2``
with ``q`` the reference; the un-normalised ``mean_i ||p_i - q_i||_2`` ("absolute") and the distance between
unit-normalised vectors ``mean_i ||p_i/||p_i|| - q_i/||q_i||||_2`` ("unit", insensitive to an overall scale)
are always reported beside it. Coefficients are taken in the plain monomial basis of degree <= max(deg p,
deg q) (70 per output for d = 4: the reference's missing degree-4 and lower terms count as zeros).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rnnattn.analysis.polynomial import Polynomial
from rnnattn.analysis.results import PolynomialDistance

NORMALISATIONS = ("relative", "absolute", "unit")


def align(p: Polynomial, q: Polynomial) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient matrices of ``p`` and ``q`` on their common basis: ``([o, n_mono], [o, n_mono])``."""
    if p.n_vars != q.n_vars:
        raise ValueError(f"polynomials have {p.n_vars} and {q.n_vars} variables")
    if p.n_outputs != q.n_outputs:
        raise ValueError(f"polynomials have {p.n_outputs} and {q.n_outputs} outputs")
    k = max(p.max_degree, q.max_degree)
    return p.with_degree(k).coefficients, q.with_degree(k).coefficients


def polynomial_distance(p: Polynomial, q: Polynomial, normalisation: str = "relative") -> PolynomialDistance:
    """Per-output distances between ``p`` (student) and ``q`` (reference) and their mean.

    Args:
        p, q: polynomials with the same variables and outputs (degrees may differ).
        normalisation: which variant ``value`` averages: "relative" (default, the paper's reading), "absolute"
            or "unit". All three arrays are always returned.
    Returns:
        :class:`PolynomialDistance`; a zero reference output gives ``inf`` relative distance unless ``p_i`` is
        also zero (then 0).
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    P, Q = align(p, q)
    diff = np.linalg.norm(P - Q, axis=1)
    np_, nq = np.linalg.norm(P, axis=1), np.linalg.norm(Q, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(nq > 0, diff / np.where(nq > 0, nq, 1.0), np.where(diff > 0, np.inf, 0.0))
        unit_p = P / np.where(np_ > 0, np_, 1.0)[:, None]
        unit_q = Q / np.where(nq > 0, nq, 1.0)[:, None]
    unit = np.linalg.norm(unit_p - unit_q, axis=1)
    arrays = {"relative": rel, "absolute": diff, "unit": unit}
    table = pd.DataFrame(
        {
            "output": list(q.outputs),
            "relative": rel,
            "absolute": diff,
            "unit": unit,
            "norm_p": np_,
            "norm_q": nq,
        }
    )
    return PolynomialDistance(
        value=float(np.mean(arrays[normalisation])),
        normalisation=normalisation,
        relative=rel,
        absolute=diff,
        unit=unit,
        n_monomials=P.shape[1],
        n_outputs=P.shape[0],
        table=table,
    )


def coefficient_differences(p: Polynomial, q: Polynomial, k: int = 20) -> pd.DataFrame:
    """The ``k`` largest ``|p - q|`` coefficients over all outputs: ``output``, ``monomial``, ``degree``,
    ``student`` (p), ``reference`` (q), ``difference`` (p - q)."""
    P, Q = align(p, q)
    basis = p.with_degree(max(p.max_degree, q.max_degree))
    names, degs = basis.monomials, basis.degrees
    diff = P - Q
    flat = np.argsort(-np.abs(diff), axis=None, kind="stable")[:k]
    rows = []
    for f in flat:
        i, j = np.unravel_index(f, diff.shape)
        rows.append(
            {
                "output": q.outputs[i],
                "monomial": names[j],
                "degree": int(degs[j]),
                "student": float(P[i, j]),
                "reference": float(Q[i, j]),
                "difference": float(diff[i, j]),
            }
        )
    return pd.DataFrame(rows, columns=["output", "monomial", "degree", "student", "reference", "difference"])


def leading_terms(p: Polynomial, q: Polynomial, k: int = 6) -> pd.DataFrame:
    """Per output the ``k`` largest reference terms with the student's coefficient beside them: ``output``,
    ``monomial``, ``student``, ``reference``."""
    P, Q = align(p, q)
    names = p.with_degree(max(p.max_degree, q.max_degree)).monomials
    rows = []
    for i, out in enumerate(q.outputs):
        for j in np.argsort(-np.abs(Q[i]), kind="stable")[:k]:
            rows.append(
                {"output": out, "monomial": names[j], "student": float(P[i, j]), "reference": float(Q[i, j])}
            )
    return pd.DataFrame(rows, columns=["output", "monomial", "student", "reference"])
