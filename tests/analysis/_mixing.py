"""Equivalent re-bases of diagonal constructions: new product neurons within each λ group (used by the effective-count
and rotation tests).

Within a λ group the hidden state is ``h_g = U_g Σ m(x̃)`` (moment space, see rnnattn.analysis.effective); replacing
the group by any neurons ``U'_g = M U_g`` with product inputs and reading them through ``W' = W U_g U'_g^+`` leaves the
function unchanged when ``U'_g`` spans the same forms. The new neurons are random products ``(a·x)(b·x)`` (memory
group: spans all quadratic forms in x) and ``(a·x)·1`` (forget group: all linear forms), so the mixing is invertible
on the reachable states (and over-complete with ``extra_*`` neurons, like a trained student).
"""

from __future__ import annotations

import numpy as np
import torch
from _constructions import gated_from_arrays, weights

from rnnattn import GatedLinearRNN
from rnnattn.analysis._moments import input_forms, moments_of


def _random_products(rng, n: int, d: int, quadratic: bool) -> tuple[np.ndarray, np.ndarray]:
    Wm = np.zeros((n, d + 1))
    Wx = np.zeros((n, d + 1))
    Wm[:, :d] = rng.standard_normal((n, d))
    if quadratic:
        Wx[:, :d] = rng.standard_normal((n, d))
    else:
        Wx[:, d] = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    return Wm, Wx


def mix_within_groups(m: GatedLinearRNN, seed: int = 0, extra_memory: int = 0, extra_query: int = 0) -> GatedLinearRNN:
    """Replace the λ = 1 and λ = 0 groups of a diagonal construction by random product neurons spanning the same
    forms (``rank + extra`` neurons each), readout re-solved; other neurons are kept as they are."""
    rng = np.random.default_rng(seed)
    W_in, nu, W_out, D = weights(m)
    lam = np.exp(-np.exp(nu))
    d = m.d_input
    mom = moments_of(m)
    U = input_forms(W_in[0], W_in[1], mom)
    new_in, new_nu, new_cols = [], [], []
    for sel, quadratic, extra in ((lam == 1.0, True, extra_memory), (lam == 0.0, False, extra_query)):
        idx = np.flatnonzero(sel)
        rank = np.linalg.matrix_rank(U[idx]) if idx.size else 0
        Wm, Wx = _random_products(rng, rank + extra, d, quadratic)
        U_new = input_forms(Wm, Wx, mom)
        # the new forms must lie in the span of the old ones, and span it
        coef, *_ = np.linalg.lstsq(U[idx].T, U_new.T, rcond=None)
        # lstsq's residual grows with the conditioning of the old forms (a random LSA can have a near-singular W_Q)
        tol = 1e-14 * max(1.0, np.linalg.cond(U[idx])) if idx.size else 0.0
        assert np.linalg.norm(U[idx].T @ coef - U_new.T) <= max(1e-10, tol) * np.linalg.norm(U_new), "forms leave span"
        new_in.append(np.stack([Wm, Wx]))
        new_nu.append(nu[idx][:1].repeat(rank + extra))
        new_cols.append(W_out[:, :, idx] @ U[idx] @ np.linalg.pinv(U_new))  # W' = W U U'^+
    rest = np.flatnonzero(~((lam == 1.0) | (lam == 0.0)))
    W_in2 = np.concatenate([*new_in, W_in[:, rest]], axis=1)
    nu2 = np.concatenate([*new_nu, nu[rest]])
    W_out2 = np.concatenate([*new_cols, W_out[:, :, rest]], axis=2)
    return gated_from_arrays(W_in2, nu2, W_out2, D, getattr(m, "metadata", {}))


def max_rel_diff(a: torch.nn.Module, b: torch.nn.Module, d: int, seed: int = 0) -> float:
    x = torch.randn(8, 16, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return float((ya - yb).abs().max() / ya.abs().max())
