r"""Rotate to the canonical basis: rebuild a gated RNN's attention part at the construction's size (§2.2).

A trained student can hold the compact construction behind an invertible mixing of same-λ neurons (see
:mod:`rnnattn.analysis.effective`). This step undoes it: from the moment-space cross blocks ``G_i`` of
:func:`~rnnattn.analysis.effective.effective_counts` (output ``y_i ⊃ 2 Σ_{t'} m(x̃_{t'})ᵀ G_i m(x̃_t)``) it builds a
new diagonal :class:`GatedLinearRNN` with

* ``n_kv`` memory neurons whose inputs are products spanning the KV side,
* ``n_query`` forget neurons spanning the query side (each group's decay: the mean of its neurons' decays,
  weighted by their part in the cross block, so dead neurons do not count),
* one gating row per (output ``i``, query neuron ``l``) with a nonzero readout: ``W_x^out = e_l``,
  ``W_m^out = C_i[:, l]``, ``D = e_i``, where ``C_i = 2 F_kv^+ G_i (F_q^+)ᵀ`` and ``F`` holds the new neurons'
  input forms in moment coordinates — the layout of the compact construction (``d(d+1)/2 + d`` hidden, ``d²``
  gating rows for a generic teacher).

Each side's neurons must be products ``(a·x̃)(b·x̃)``; the basis is chosen in this order:

1. ``"monomials"``: the side's span is spanned by coordinate moments ``x̃_a x̃_b`` (its support in the moment
   basis has exactly ``n`` elements) — the canonical choice (KV units ``Σ x_a x_b``, query units ``x_a · 1``), the
   same whatever mixing the student used;
2. ``"times constant"``: every form of the span is ``(w·x̃)·1``: neurons ``(w_k·x̃)·1`` from an orthonormal basis;
3. ``"symmetric square"``: the span is all of ``Sym²(V)`` for a subspace ``V`` of linear forms
   (``dim V = s``, ``s(s+1)/2 = n``): neurons ``(e_a·x̃)(e_b·x̃)`` for an orthonormal basis ``e`` of ``V``;
4. otherwise the monomials of the support (more than ``n`` neurons): exact but not minimal (``minimal=False``).

"Support" and "≈ 0" use the side's rank tolerance from :func:`~rnnattn.analysis.effective.numerical_rank`
(relative to the largest singular value, each direction weighted by its singular value): what the rank decision
called noise is dropped here too, and the distances below measure what that costs.

The blocks the rotated network drops (memory×memory, forget×forget, anything read from "other" neurons) and the
decays it averages are the only approximations; :class:`RotationResult` reports the polynomial distance
(:func:`~rnnattn.analysis.polynomial_distance`, the original as reference) and the output error on probe
inputs (:func:`~rnnattn.analysis.inputs.probe_inputs`). On an exactly mixed construction both are at float64
rounding.

Public API: :func:`rotate_to_canonical` (model, checkpoint or path) -> :class:`RotationResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from rnnattn.analysis._moments import MomentBlocks, Moments, input_forms, moment_blocks
from rnnattn.analysis.distance import polynomial_distance
from rnnattn.analysis.effective import EffectiveCounts, effective_counts, numerical_rank
from rnnattn.analysis.errors import AnalysisNotApplicable
from rnnattn.analysis.inputs import probe_inputs
from rnnattn.analysis.loading import ModelSource, require_gated_rnn, resolve
from rnnattn.analysis.polynomial import instantaneous_polynomial
from rnnattn.analysis.references import Reference, resolve_reference
from rnnattn.analysis.results import fields_dict, unit_table
from rnnattn.models.gated_rnn import GatedLinearRNN, GatedLinearRNNConfig


@dataclass
class _Side:
    """New neurons of one side: branch rows ``W_m``, ``W_x`` ``[n, p]``, forms ``F [P, n]``, labels, basis kind."""

    W_m: np.ndarray
    W_x: np.ndarray
    F: np.ndarray
    labels: list[str]
    kind: str


def _monomial_side(support: np.ndarray, mom: Moments, p: int, tag: str) -> _Side:
    eye = np.eye(p)
    a, b = mom.pairs[support, 0], mom.pairs[support, 1]
    F = np.eye(mom.size)[:, support]
    return _Side(eye[a], eye[b], F, [f"{tag}[{mom.names[j]}]" for j in support], "monomials")


def _product_basis(L: np.ndarray, spec: np.ndarray, tol: float, mom: Moments, p: int, tag: str) -> _Side:
    """Neurons spanning the column space of ``L [P, n]`` (orthonormal singular vectors with relative singular
    values ``spec``), in the order of the module docstring. Components below the side's rank tolerance ``tol``
    (relative to the largest singular value) are treated as noise, as the rank decision did."""
    n = L.shape[1]
    Lw = L * spec[:n]  # each direction weighted by its share of the block
    rows = np.linalg.norm(Lw, axis=1)
    support = np.flatnonzero(rows > tol * rows.max())
    if support.size == n:
        return _monomial_side(support, mom, p, tag)
    a, b = mom.pairs[:, 0], mom.pairs[:, 1]
    if mom.const is not None:
        with_const = (a == mom.const) | (b == mom.const)
        if np.linalg.norm(Lw[~with_const]) <= tol * np.linalg.norm(Lw):
            # (w·x̃)·1 has moment coordinates w_a on x̃_a x̃_const (and w_const on the constant moment)
            W = np.zeros((n, p))
            other = np.where(a == mom.const, b, a)[with_const]
            W[:, other] = L[with_const].T
            return _Side(
                W,
                np.tile(np.eye(p)[mom.const], (n, 1)),
                L * with_const[:, None],
                [f"{tag}{k}" for k in range(n)],
                "times constant",
            )
    # symmetric square: V = common column space of the forms' symmetric matrices
    S = np.zeros((n, p, p))
    S[:, a, b] = Lw.T * np.where(a == b, 1.0, 0.5)
    S = S + np.transpose(S, (0, 2, 1)) - S * np.eye(p)  # fill the lower triangle
    U, sv, _ = np.linalg.svd(np.concatenate(list(S), axis=1))
    s = numerical_rank(sv, method="rtol", rtol=tol).rank
    if s * (s + 1) // 2 == n:
        E = U[:, :s].T
        ia, ib = np.triu_indices(s)
        return _Side(
            E[ia],
            E[ib],
            input_forms(E[ia], E[ib], mom).T,
            [f"{tag}[e{i}*e{j}]" for i, j in zip(ia, ib, strict=True)],
            "symmetric square",
        )
    side = _monomial_side(support, mom, p, tag)
    side.kind = "monomials (support larger than the effective count)"
    return side


def _group_nu(blocks: MomentBlocks, g: str, h: str) -> float:
    """``nu`` of the decay for group ``g``'s new neurons: the mean of its decays weighted by how much each neuron
    takes part in the ``g × h`` cross block (input norm × readout norm), so dead neurons do not count.
    ``exp(-exp(nu))`` is that mean; ``nu = ±inf`` for exactly 0 / 1."""
    R = blocks.B[g].T @ blocks.H @ blocks.B[h] @ blocks.U[h]  # [o, n_g, P]; matmuls, not a naive 4-way einsum
    w = np.linalg.norm(blocks.U[g], axis=1) * np.linalg.norm(R, axis=(0, 2))
    lam = np.real(blocks.lam[g])
    lam_bar = float(np.clip(np.sum(w * lam) / np.sum(w), 0.0, 1.0))
    with np.errstate(divide="ignore"):
        return float(np.log(-np.log(lam_bar))) if 0 < lam_bar < 1 else (np.inf if lam_bar == 0 else -np.inf)


@dataclass(repr=False)
class RotationResult:
    """Outcome of :func:`rotate_to_canonical`.

    Attributes:
        model: the rotated float64 :class:`GatedLinearRNN` (diagonal).
        effective: the :class:`EffectiveCounts` it was built from.
        n_hidden_before, n_gating_before, n_hidden_after, n_gating_after: sizes.
        kv_basis_kind, query_basis_kind: how each side's product basis was chosen (module docstring).
        minimal: both sides use exactly the effective count.
        polynomial_distance: mean relative distance of the instantaneous polynomials (original = reference).
        output_error: ``max|y_rot - y| / max|y|`` on the probe inputs; output_rms_error: RMS ratio.
        probe: the probe inputs in words.
        decays: the two group decays used.
        reference_distance: polynomial distance to the model's reference (teacher / one-step GD / source
            construction, :func:`~rnnattn.analysis.resolve_reference`) of ``"original"`` and ``"rotated"``;
            empty when the model has no reference.
    """

    model: GatedLinearRNN
    effective: EffectiveCounts
    n_hidden_before: int
    n_gating_before: int
    n_hidden_after: int
    n_gating_after: int
    kv_basis_kind: str
    query_basis_kind: str
    minimal: bool
    polynomial_distance: float
    output_error: float
    output_rms_error: float
    probe: str
    decays: dict[str, float] = field(default_factory=dict)
    reference_distance: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        eff = self.effective
        kv = f"{eff.n_kv} KV ({self.kv_basis_kind}) + {eff.n_query} query ({self.query_basis_kind})"
        return unit_table(
            (self.n_hidden_before, self.n_hidden_after, kv),
            (self.n_gating_before, self.n_gating_after, "one row per (output, query unit)"),
            "of which",
        )

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)

    def __repr__(self) -> str:
        return (
            f"RotationResult(hidden {self.n_hidden_before}->{self.n_hidden_after}, gating "
            f"{self.n_gating_before}->{self.n_gating_after}, minimal={self.minimal}, polynomial distance "
            f"{self.polynomial_distance:.3g}, output error {self.output_error:.3g})"
        )

    def _repr_html_(self) -> str:
        from rnnattn.display import KeyValues, Table, fragment

        kv = KeyValues(
            [
                ("polynomial distance (relative, original = reference)", f"{self.polynomial_distance:.3g}"),
                ("output error max|Δy|/max|y|", f"{self.output_error:.3g}"),
                ("output error RMS ratio", f"{self.output_rms_error:.3g}"),
                ("probe inputs", self.probe),
                ("decays (memory, forget)", f"{self.decays}"),
                *[
                    (f"polynomial distance to the reference ({k})", f"{v:.3g}")
                    for k, v in self.reference_distance.items()
                ],
            ]
        )
        reading = f"rotated to {self.n_hidden_after} hidden + {self.n_gating_after} gating rows" + (
            "" if self.minimal else " (not minimal: a side's span has no product basis of its size)"
        )
        return fragment("Rotation to the canonical basis", reading, Table(self.summary), kv)


def _build(m: GatedLinearRNN, G: np.ndarray, kv: _Side, q: _Side, nu: tuple[float, float]) -> GatedLinearRNN:
    """The rotated network: hidden = KV neurons then query neurons; rows (i, l) with nonzero readout."""
    C = 2 * np.einsum("ap,ipq,bq->iab", np.linalg.pinv(kv.F), G, np.linalg.pinv(q.F))  # [o, n_kv, n_q]
    nk, nq = kv.W_m.shape[0], q.W_m.shape[0]
    o = C.shape[0]
    keep = [(i, l) for i in range(o) for l in range(nq) if np.any(C[i, :, l] != 0)]
    if not keep:
        raise AnalysisNotApplicable("rotate_to_canonical", m, "the memory x forget readout is zero")
    Wo = np.zeros((2, len(keep), nk + nq))
    D = np.zeros((o, len(keep)))
    for r, (i, l) in enumerate(keep):
        Wo[0, r, :nk], Wo[1, r, nk + l], D[i, r] = C[i, :, l], 1.0, 1.0
    cfg = GatedLinearRNNConfig(
        d_input=m.d_input,
        n_hidden=nk + nq,
        n_gating=len(keep),
        d_output=o,
        recurrence="diagonal",
        append_one=m.config.append_one,
    )
    new = GatedLinearRNN(cfg).to(torch.float64)
    with torch.no_grad():
        new.W_in.copy_(torch.from_numpy(np.stack([np.concatenate([kv.W_m, q.W_m]), np.concatenate([kv.W_x, q.W_x])])))
        new.nu.copy_(torch.tensor([nu[0]] * nk + [nu[1]] * nq, dtype=torch.float64))
        new.W_out.copy_(torch.from_numpy(Wo))
        new.D.copy_(torch.from_numpy(D))
    for prm in new.parameters():
        prm.requires_grad_(False)
    qlab = q.labels
    new.metadata = {
        **{k: v for k, v in m.metadata.items() if k in ("task", "reference", "input_names")},
        "labels": {"hidden": kv.labels + qlab, "gating": [f"y{i + 1}<-{qlab[l]}" for i, l in keep]},
        "rotated_from": f"{type(m).__name__}(N={m.config.n_hidden}, M={m.config.n_gating})",
    }
    return new.eval()


def rotate_to_canonical(
    model: ModelSource,
    hi: float = 0.99,
    lo: float = 0.01,
    method: str = "gap",
    rtol: float = 1e-3,
    min_gap: float = 10.0,
    n_probe: int = 64,
    seed: int = 0,
    reference: Reference | ModelSource | str | None = None,
) -> RotationResult:
    """Rebuild the attention part of a gated RNN in the canonical basis at the effective counts' size.

    Args:
        model: a :class:`GatedLinearRNN` (model, checkpoint or path); a float64 copy is used.
        hi, lo, method, rtol, min_gap: as in :func:`~rnnattn.analysis.effective.effective_counts`.
        n_probe, seed: probe sequences for the output check (the checkpoint's task, else N(0, I), 32 steps).
        reference: what ``reference_distance`` compares with: a resolved :class:`Reference`, or anything
            :func:`~rnnattn.analysis.resolve_reference` takes (default: the one the checkpoint records).
    Returns:
        :class:`RotationResult` with the new model and its distance to the original.
    Raises:
        AnalysisNotApplicable: not a :class:`GatedLinearRNN`, no memory×forget interaction, defective dense ``A``.

    Example:
        >>> rotate_to_canonical("checkpoints/teacher_student_d4.safetensors")  # doctest: +SKIP
        RotationResult(hidden 32->14, gating 32->16, minimal=True, ...)
    """
    subj = resolve(model)
    m = require_gated_rnn(subj.model, "rotate_to_canonical")
    eff = effective_counts(m, hi, lo, method, rtol, min_gap)
    if eff.n_kv == 0 or eff.n_query == 0:
        raise AnalysisNotApplicable(
            "rotate_to_canonical",
            m,
            f"no memory x forget interaction (effective KV {eff.n_kv}, query {eff.n_query}): nothing attention-like",
        )
    blocks = moment_blocks(m, hi, lo)
    p = m.d_input + int(m.config.append_one)
    kv = _product_basis(eff.kv_basis, eff.kv_spectrum, eff.kv_rank.tolerance, blocks.moments, p, "kv")
    q = _product_basis(eff.query_basis, eff.query_spectrum, eff.query_rank.tolerance, blocks.moments, p, "q")
    nu = (_group_nu(blocks, "memory", "forget"), _group_nu(blocks, "forget", "memory"))
    new = _build(m, eff.cross_blocks, kv, q, nu)
    p_new, p_old = instantaneous_polynomial(new), instantaneous_polynomial(m)
    dist = polynomial_distance(p_new, p_old).value
    try:
        ref = (reference if isinstance(reference, Reference) else resolve_reference(subj, reference)).polynomial
        ref_dist = {"original": polynomial_distance(p_old, ref).value, "rotated": polynomial_distance(p_new, ref).value}
    except ValueError:  # no teacher / task / source construction to compare with
        if reference is not None:  # one the caller asked for must resolve
            raise
        ref_dist = {}
    probe = probe_inputs(subj.metadata, m.d_input, n_sequences=n_probe, seed=seed)
    with torch.no_grad():
        y, y_new = m(probe.x), new(probe.x)
    scale = float(y.abs().max()) or 1.0
    rms = float(((y_new - y) ** 2).mean().sqrt() / ((y**2).mean().sqrt() or 1.0))
    lam = lambda v: float(np.exp(-np.exp(v)))  # noqa: E731
    return RotationResult(
        model=new,
        effective=eff,
        n_hidden_before=m.config.n_hidden,
        n_gating_before=m.config.n_gating,
        n_hidden_after=new.config.n_hidden,
        n_gating_after=new.config.n_gating,
        kv_basis_kind=kv.kind,
        query_basis_kind=q.kind,
        minimal=kv.F.shape[1] == eff.n_kv and q.F.shape[1] == eff.n_query,
        polynomial_distance=float(dist),
        output_error=float((y_new - y).abs().max()) / scale,
        output_rms_error=rms,
        probe=probe.description,
        decays={"memory": lam(nu[0]), "forget": lam(nu[1])},
        reference_distance=ref_dist,
    )
