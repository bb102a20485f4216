"""Plain sequential references for the recurrences in :mod:`rnnattn.ops` (the ground truth the fast paths are
tested against). Layout ``[B, T, N]`` throughout."""

from __future__ import annotations

import torch


def diagonal_recurrence_ref(
    u: torch.Tensor,
    lam: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``h_t = lam * h_{t-1} + u_t`` by a Python loop over time.

    Args:
        u: ``[B, T, N]`` inputs (real or complex).
        lam: ``[N]`` or ``[B, T, N]`` (time-varying) decay.
        initial_state: ``[B, N]`` ``h_0`` (zeros if None).
    Returns:
        ``(h [B, T, N], h_T [B, N] or None)``.
    """
    B, T, N = u.shape
    dtype = torch.promote_types(u.dtype, lam.dtype)
    h = torch.zeros(B, N, dtype=dtype, device=u.device) if initial_state is None else initial_state.to(dtype)
    # unbind, not u[:, t]: the backward of T single-step selects would materialise T full-size zero tensors
    # (O(T^2) memory traffic; 7 s instead of 0.3 s at B=16, T=1024, N=256).
    lams = [lam] * T if lam.dim() == 1 else lam.unbind(1)
    out = []
    for lt, u_t in zip(lams, u.unbind(1), strict=True):
        h = lt * h + u_t
        out.append(h)
    hs = torch.stack(out, dim=1) if out else u.new_zeros(B, 0, N, dtype=dtype)
    return hs, (h if output_final_state else None)


def dense_recurrence_ref(
    u: torch.Tensor,
    A: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``h_t = A h_{t-1} + u_t`` by a Python loop over time. ``A: [N, N]``."""
    B, T, N = u.shape
    h = torch.zeros(B, N, dtype=u.dtype, device=u.device) if initial_state is None else initial_state
    out = []
    for u_t in u.unbind(1):  # unbind: linear-cost backward (see diagonal_recurrence_ref)
        h = h @ A.T + u_t
        out.append(h)
    hs = torch.stack(out, dim=1) if out else u.new_zeros(B, 0, N)
    return hs, (h if output_final_state else None)
