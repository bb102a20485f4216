"""Fast linear recurrences.

All ops share fla's signature ``op(x, ..., initial_state=None, output_final_state=False) -> (out, final_state)`` and
the layout ``[B, T, N]`` (batch, time, channels). Each has a sequential reference in :mod:`rnnattn.ops.naive`.

The gated RNN (Eq. 2 of Zucchet et al.) and the LRU (Eq. 6) use a *time-invariant* diagonal decay, so the recurrence
``h_t = lam * h_{t-1} + u_t`` is a causal convolution ``h_t = sum_{s<=t} lam^(t-s) u_s``. We evaluate it in chunks of
``C`` steps: inside a chunk a ``[C, C]`` Toeplitz matrix of powers per channel (one batched matmul), across chunks a
second Toeplitz over chunk ends, so no Python loop over time remains and autograd stays plain torch. Powers are taken
with ``torch.pow`` on integer exponents, which is exact at ``lam = 0`` (``0^0 = 1``) and ``lam = 1``.
"""

from __future__ import annotations

import math

import torch

from rnnattn.ops.naive import dense_recurrence_ref


def _powers(lam: torch.Tensor, exponents: torch.Tensor) -> torch.Tensor:
    """``lam[n] ** e`` for integer-valued ``e >= 0`` -> ``[*e.shape, N]``; complex ``lam`` via modulus and phase so
    that ``lam = 0`` stays exact."""
    e = exponents.to(lam.real.dtype)[..., None]
    if lam.is_complex():
        r = torch.pow(lam.abs(), e)
        return torch.polar(r, e * lam.angle())
    return torch.pow(lam, e)


def _toeplitz(lam: torch.Tensor, C: int, stride: int = 1) -> torch.Tensor:
    """``K[n, t, s] = lam[n]^(stride*(t-s))`` for ``s <= t`` else 0: shape ``[N, C, C]``."""
    idx = torch.arange(C, device=lam.device)
    diff = idx[:, None] - idx[None, :]
    mask = diff >= 0
    P = _powers(lam, stride * diff.clamp(min=0))  # [C, C, N]
    P = P * mask[..., None].to(P.real.dtype)
    return P.permute(2, 0, 1)


def default_chunk(T: int) -> int:
    """Chunk length: one chunk for short sequences, ~sqrt(T) rounded to a power of two (<= 128) otherwise."""
    if T <= 64:
        return max(T, 1)
    return int(min(128, 2 ** round(math.log2(math.sqrt(T)) + 1)))


def diagonal_recurrence(
    u: torch.Tensor,
    lam: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Time-invariant diagonal linear recurrence ``h_t = lam ⊙ h_{t-1} + u_t`` (real or complex), chunked.

    Args:
        u: ``[B, T, N]`` driving inputs.
        lam: ``[N]`` decays (for time-varying decays use :func:`rnnattn.ops.naive.diagonal_recurrence_ref`).
        initial_state: ``[B, N]`` ``h_0`` (zeros when None).
        output_final_state: also return ``h_T``.
        chunk_size: chunk length ``C`` (default :func:`default_chunk`).
    Returns:
        ``(h [B, T, N], h_T [B, N] or None)``, with ``h[:, t]`` the state *after* reading ``u[:, t]``.
    """
    if lam.dim() != 1:
        raise ValueError(f"diagonal_recurrence: lam must be [N], got {tuple(lam.shape)}")
    B, T, N = u.shape
    if lam.shape[0] != N:
        raise ValueError(f"diagonal_recurrence: lam has {lam.shape[0]} channels, u has {N}")
    dtype = torch.promote_types(u.dtype, lam.dtype)
    u = u.to(dtype)
    lam = lam.to(dtype)
    if T == 0:
        h0 = u.new_zeros(B, N) if initial_state is None else initial_state.to(dtype)
        return u, (h0 if output_final_state else None)
    C = chunk_size or default_chunk(T)
    nC = -(-T // C)
    pad = nC * C - T
    if pad:
        u = torch.nn.functional.pad(u, (0, 0, 0, pad))
    uc = u.reshape(B, nC, C, N)
    K = _toeplitz(lam, C)  # [N, C, C]
    # Intra-chunk: local[b, c, t, n] = sum_s K[n, t, s] u[b, c, s, n]
    local = torch.einsum("nts,bcsn->bctn", K, uc)
    if nC > 1 or initial_state is not None:
        ends = local[:, :, -1]  # [B, nC, N] chunk-local end states
        if nC > 1:
            # carry[c] = state entering chunk c = sum_{c' < c} lam^(C (c-1-c')) ends[c']
            Kc = _toeplitz(lam, nC - 1, stride=C)  # [N, nC-1, nC-1]
            carry = torch.einsum("nts,bsn->btn", Kc, ends[:, :-1])
            carry = torch.nn.functional.pad(carry, (0, 0, 1, 0))  # chunk 0 enters with zero
        else:
            carry = torch.zeros_like(ends)
        if initial_state is not None:
            h0 = initial_state.to(dtype)
            start = _powers(lam, torch.arange(nC, device=u.device) * C)  # [nC, N]
            carry = carry + start[None] * h0[:, None, :]
        decay = _powers(lam, torch.arange(1, C + 1, device=u.device))  # [C, N]
        local = local + carry[:, :, None, :] * decay[None, None]
    h = local.reshape(B, nC * C, N)[:, :T]
    return h, (h[:, -1] if output_final_state else None)


def dense_recurrence(
    u: torch.Tensor,
    A: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Dense linear recurrence ``h_t = A h_{t-1} + u_t`` (the 'dense' variant of Eq. 2), ``A: [N, N]``.

    A full matrix has no cheap parallel form on CPU (a scan over matrix products costs ``N^3`` per step against
    ``N^2`` for the loop), so this is the sequential product, one ``[B, N] @ [N, N]`` per step.
    """
    return dense_recurrence_ref(u, A, initial_state, output_final_state)
