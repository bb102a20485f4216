"""Post-hoc analysis (§3.1, App. B.2): what a trained gated RNN computes, and whether it is attention in disguise.

Every function takes a model, a :class:`rnnattn.Checkpoint` or a checkpoint path and analyses a float64 copy;
rewrites (``prune``, ``canonicalize``, ``merge_rank1``) are pure functions returning a new model and a record.
Steps that do not apply to a model raise :class:`AnalysisNotApplicable` with the reason.
"""

from rnnattn.analysis.canonical import canonicalize
from rnnattn.analysis.distance import coefficient_differences, leading_terms, polynomial_distance
from rnnattn.analysis.equivalence import equivalence
from rnnattn.analysis.errors import AnalysisNotApplicable
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
    PAPER_TABLE1,
    CanonicalResult,
    EquivalenceResult,
    EquivalenceThresholds,
    MergeResult,
    PolynomialDistance,
    ProbeResult,
    PruneResult,
    RankOneMerge,
)
from rnnattn.analysis.roles import neuron_roles, role_counts

__all__ = [
    "AnalysisNotApplicable",
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
    "PAPER_TABLE1",
]
