"""Post-hoc analysis (§3.1, App. B.2): what a trained gated RNN computes, and whether it is attention in disguise.

Every function takes a model, a :class:`rnnattn.Checkpoint` or a checkpoint path and analyses a float64 copy;
rewrites (``prune``, ``canonicalize``, ``merge_rank1``) are pure functions returning a new model and a record.
:func:`equivalence` is the one pipeline: each of its steps returns its result or a :class:`NotApplicable` with
the reason; the single-step functions raise :class:`AnalysisNotApplicable` instead. Results have short reprs and
render in notebooks (``_repr_html_``, through :mod:`rnnattn.display`).
"""

from rnnattn.analysis.canonical import canonicalize
from rnnattn.analysis.context_query import ContextQueryResult, context_query, context_query_polynomial
from rnnattn.analysis.distance import coefficient_differences, leading_terms, polynomial_distance
from rnnattn.analysis.effective import EffectiveCounts, effective_counts
from rnnattn.analysis.equivalence import equivalence
from rnnattn.analysis.errors import AnalysisNotApplicable, NotApplicable, ReferenceUnavailable
from rnnattn.analysis.merge import merge_rank1
from rnnattn.analysis.polynomial import Polynomial, fit_polynomial, instantaneous_polynomial, monomial_basis
from rnnattn.analysis.probes import probe_scores
from rnnattn.analysis.prune import half_mse, prune
from rnnattn.analysis.references import (
    Reference,
    one_step_gd_lsa,
    one_step_gd_polynomial,
    optimal_gd_eta,
    resolve_reference,
)
from rnnattn.analysis.results import (
    CanonicalResult,
    MergeResult,
    PolynomialDistance,
    ProbeResult,
    PruneResult,
    RankOneMerge,
)
from rnnattn.analysis.roles import neuron_roles, role_counts
from rnnattn.analysis.rotate import RotationResult, rotate_to_canonical
from rnnattn.analysis.steps import (
    Checks,
    EquivalenceOptions,
    EquivalenceResult,
    EquivalenceThresholds,
    LossResult,
    PolynomialComparison,
    RolesResult,
    WeightsResult,
)

__all__ = [
    "AnalysisNotApplicable",
    "NotApplicable",
    "ReferenceUnavailable",
    "neuron_roles",
    "role_counts",
    "prune",
    "canonicalize",
    "merge_rank1",
    "probe_scores",
    "instantaneous_polynomial",
    "fit_polynomial",
    "monomial_basis",
    "Polynomial",
    "polynomial_distance",
    "coefficient_differences",
    "leading_terms",
    "equivalence",
    "half_mse",
    "resolve_reference",
    "Reference",
    "one_step_gd_lsa",
    "one_step_gd_polynomial",
    "optimal_gd_eta",
    "PruneResult",
    "CanonicalResult",
    "MergeResult",
    "RankOneMerge",
    "ProbeResult",
    "PolynomialDistance",
    "EquivalenceResult",
    "EquivalenceThresholds",
    "EquivalenceOptions",
    "LossResult",
    "RolesResult",
    "WeightsResult",
    "PolynomialComparison",
    "Checks",
    "effective_counts",
    "EffectiveCounts",
    "rotate_to_canonical",
    "RotationResult",
    "context_query",
    "context_query_polynomial",
    "ContextQueryResult",
]
