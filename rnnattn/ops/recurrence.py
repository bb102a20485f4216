"""Fast linear recurrences.

All ops share fla's signature ``op(x, ..., initial_state=None, output_final_state=False) -> (out,
final_state)`` and the layout ``[B, T, N]`` (batch, time, channels). Each has a sequential reference in
:mod:`rnnattn.ops.naive`.

The gated RNN (Eq. 2 of Zucchet et al.) and the LRU (Eq. 6) use a *time-invariant* diagonal decay
``h_t = lam * h_{t-1} + u_t``. On CPU this op is memory-bound (a few flops per element), so the fastest form
is the one that touches ``[B, T, N]`` the fewest times with the fewest Python-level ops (measured in
``benchmarks/bench_recurrence.py``):

* **kernel** (:func:`_scan`, no autograd): a chunked scan. Inside chunks of ``C`` steps a sequential pass that
  runs over all chunks at once (``C`` fused ``addcmul`` ops on ``[B, T/C, N]`` slices), then a sequential pass
  over the ``T/C`` chunk ends, then one in-place fix-up ``h += carry * lam^(1..C)``. ``C = ceil(sqrt T)``
  makes Python overhead ``O(sqrt T)`` ops; with ``C = T`` it is the plain loop (one fused op per step, written
  straight into the output). Work stays ``O(B T N)`` (a Toeplitz/matmul form costs ``O(B T N C)`` and measured
  5-30x slower here). Powers ``lam^k`` are tabulated in float64 and reduced mod 2π for complex ``lam``, so
  float32 does not lose phase accuracy on long sequences; ``lam = 0`` and ``lam = 1`` stay exact.
* **autograd** (:class:`_DiagonalRecurrence`): the adjoint of a diagonal recurrence is the same recurrence run
  backwards with ``conj(lam)``, so backward calls the kernel once more instead of unrolling ``T`` autograd
  nodes; ``dL/dlam = sum_t g_t conj(h_{t-1})``. Backward is itself built from differentiable ops, so double
  backward works.
"""

from __future__ import annotations

import math

import torch

from rnnattn.ops.naive import dense_recurrence_ref


def default_chunk(T: int) -> int:
    """Chunk length of the scan, ``ceil(sqrt(T))``: ``2 sqrt(T)`` Python-level ops in all. Measured best or
    within noise of the best (plain loop, C = 16, 64) at the sizes of ``benchmarks/bench_recurrence.py``
    on the 2-core box."""
    return max(1, math.isqrt(max(T, 1) - 1) + 1)


def _power_table(lam: torch.Tensor, C: int) -> torch.Tensor:
    """``lam^k`` for ``k = 1..C`` -> ``[C, N]`` in ``lam.dtype``, computed in double precision (exact at 0 and
    1)."""
    e = torch.arange(1, C + 1, dtype=torch.float64, device=lam.device)[:, None]
    if lam.is_complex():
        lam64 = lam.to(torch.complex128)
        # reduce the phase mod 2π in float64: e * angle grows with k and would lose float32 digits otherwise
        p = torch.polar(lam64.abs()[None] ** e, torch.remainder(e * lam64.angle()[None], 2 * math.pi))
    else:
        p = lam.to(torch.float64)[None] ** e
    return p.to(lam.dtype)


def _scan(
    u: torch.Tensor, lam: torch.Tensor, h0: torch.Tensor | None, reverse: bool, chunk: int
) -> torch.Tensor:
    """``h_t = lam * h_{t-1} + u_t`` (``reverse``: ``h_t = lam * h_{t+1} + u_t``, ``h0`` entering at the end).

    All tensors share one dtype; returns a new contiguous ``[B, T, N]``. Not differentiable (runs under
    no_grad).
    """
    B, T, N = u.shape
    h = torch.empty((B, T, N), dtype=u.dtype, device=u.device)
    if T == 0:
        return h
    C = min(max(int(chunk), 1), T)
    nC = T // C
    full = nC * C
    # chunked part: [0, full) forwards, [T - full, T) in reverse; the rest (< C steps) is finished by a plain
    # loop
    off = T - full if reverse else 0
    hv = h[:, off : off + full].view(B, nC, C, N)
    uv = u[:, off : off + full].reshape(B, nC, C, N)  # a view for contiguous u
    hs, us = hv.unbind(2), uv.unbind(2)  # all step views at once (per-step slicing costs more than the step)
    order = range(C - 1, -1, -1) if reverse else range(C)
    first = order[0]
    if nC == 1 and h0 is not None:
        torch.addcmul(us[first], h0[:, None], lam, out=hs[first])
    else:
        hs[first].copy_(us[first])
    prev = first
    for j in order[1:]:
        torch.addcmul(us[j], hs[prev], lam, out=hs[j])
        prev = j
    if nC > 1:
        pw = _power_table(lam, C)  # pw[k-1] = lam^k
        lamC = pw[-1]
        carry = torch.empty(B, nC, N, dtype=u.dtype, device=u.device)  # state entering each chunk
        cs = range(nC - 1, -1, -1) if reverse else range(nC)
        c0 = cs[0]
        if h0 is None:
            carry[:, c0].zero_()
        else:
            carry[:, c0].copy_(h0)
        end = 0 if reverse else C - 1  # position of a chunk's last step in scan order
        ends, carries = hs[end].unbind(1), carry.unbind(1)
        prev_c = c0
        for c in cs[1:]:
            torch.addcmul(ends[prev_c], carries[prev_c], lamC, out=carries[c])
            prev_c = c
        # position j of a chunk is lam^(j+1) (forward) or lam^(C-j) (reverse) steps past the carry
        hv.addcmul_(carry[:, :, None], (pw.flip(0) if reverse else pw)[None, None])
    # tail: the steps the chunks did not cover (scan order continues from the chunked part)
    if full < T:
        if reverse:
            rest, start = range(off - 1, -1, -1), off
        else:
            rest, start = range(full, T), full - 1
        for t in rest:
            torch.addcmul(u[:, t], h[:, start], lam, out=h[:, t])
            start = t
    return h


class _DiagonalRecurrence(torch.autograd.Function):
    """Autograd wrapper of :func:`_scan`; backward is the reverse scan with ``conj(lam)``."""

    @staticmethod
    def forward(ctx, u, lam, h0, reverse, chunk):  # type: ignore[override]
        with torch.no_grad():
            h = _scan(u, lam, h0, reverse, chunk)
        ctx.save_for_backward(lam, h0, h)
        ctx.reverse, ctx.chunk = reverse, chunk
        return h

    @staticmethod
    def backward(ctx, gh):  # type: ignore[override]
        lam, h0, h = ctx.saved_tensors
        need_u, need_lam, need_h0 = ctx.needs_input_grad[:3]
        lc = lam.conj()
        # adjoint: g_t = gh_t + conj(lam) g_{t+1}, i.e. the same recurrence in the other direction
        g = _DiagonalRecurrence.apply(gh, lc, None, not ctx.reverse, ctx.chunk)
        # g at the step that read h0 (first in scan order), and each step's predecessor state
        g_first = g[:, -1] if ctx.reverse else g[:, 0]
        grad_lam = grad_h0 = None
        if need_lam:
            if ctx.reverse:
                grad_lam = (g[:, :-1] * h[:, 1:].conj()).sum((0, 1))
            else:
                grad_lam = (g[:, 1:] * h[:, :-1].conj()).sum((0, 1))
            if h0 is not None:
                grad_lam = grad_lam + (g_first * h0.conj()).sum(0)
        if need_h0 and h0 is not None:
            grad_h0 = lc * g_first
        return (g if need_u else None), grad_lam, grad_h0, None, None


def diagonal_recurrence(
    u: torch.Tensor,
    lam: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Time-invariant diagonal linear recurrence ``h_t = lam ⊙ h_{t-1} + u_t`` (real or complex).

    Args:
        u: ``[B, T, N]`` driving inputs.
        lam: ``[N]`` decays (for time-varying decays use :func:`rnnattn.ops.naive.diagonal_recurrence_ref`).
        initial_state: ``[B, N]`` ``h_0`` (zeros when None).
        output_final_state: also return ``h_T``.
        chunk_size: chunk length ``C`` of the scan (default :func:`default_chunk`; ``>= T`` is the plain loop). Only
            speed depends on it.
    Returns:
        ``(h [B, T, N], h_T [B, N] or None)``, with ``h[:, t]`` the state *after* reading ``u[:, t]``.
    """
    if lam.dim() != 1:
        raise ValueError(f"diagonal_recurrence: lam must be [N], got {tuple(lam.shape)}")
    if u.dim() != 3:
        raise ValueError(f"diagonal_recurrence: u must be [B, T, N], got {tuple(u.shape)}")
    B, T, N = u.shape
    if lam.shape[0] != N:
        raise ValueError(f"diagonal_recurrence: lam has {lam.shape[0]} channels, u has {N}")
    if initial_state is not None and tuple(initial_state.shape) != (B, N):
        raise ValueError(
            f"diagonal_recurrence: initial_state must be [{B}, {N}], got {tuple(initial_state.shape)}"
        )
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"diagonal_recurrence: chunk_size must be a positive integer, got {chunk_size!r}")
    dtype = torch.promote_types(u.dtype, lam.dtype)
    if initial_state is not None:
        dtype = torch.promote_types(dtype, initial_state.dtype)
    u, lam = u.to(dtype), lam.to(dtype)
    h0 = initial_state.to(dtype) if initial_state is not None else None
    if T == 0:
        hT = (h0 if h0 is not None else u.new_zeros(B, N)) if output_final_state else None
        return u, hT
    C = chunk_size or default_chunk(T)
    h = _DiagonalRecurrence.apply(u, lam, h0, False, C)
    return h, (h[:, -1] if output_final_state else None)


def dense_recurrence(
    u: torch.Tensor,
    A: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Dense linear recurrence ``h_t = A h_{t-1} + u_t`` (the 'dense' variant of Eq. 2), ``A: [N, N]``.

    A full matrix has no cheap parallel form on CPU (a scan over matrix products costs ``N^3`` per step
    against ``N^2`` for the loop), so this is the sequential product, one ``[B, N] @ [N, N]`` per step.
    """
    return dense_recurrence_ref(u, A, initial_state, output_final_state)
