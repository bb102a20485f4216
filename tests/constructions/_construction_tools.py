"""Shared helpers of the construction tests: a tolerance helper and random attention layers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnattn.models import LinearSelfAttention, LinearSelfAttentionConfig


@dataclass(frozen=True)
class Err:
    """Max-abs error and relative error ``max|a − b| / max|b|`` (norm-wise: element-wise ratios are
    meaningless near zeros of the reference)."""

    max_abs: float
    rel: float

    def __str__(self) -> str:
        return f"max-abs {self.max_abs:.3e}, relative {self.rel:.3e}"


def err(actual: torch.Tensor, expected: torch.Tensor) -> Err:
    a, b = actual.detach().to(torch.float64), expected.detach().to(torch.float64)
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    assert torch.isfinite(a).all(), "non-finite values in the construction's output"
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    scale = float(b.abs().max()) if b.numel() else 0.0
    return Err(diff, diff / scale if scale else diff)


def assert_rel(actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str = "") -> Err:
    e = err(actual, expected)
    assert e.rel <= rtol, f"{what}: {e} exceeds rtol {rtol:.1e}"
    return e


def random_lsa(
    d: int, seed: int, dtype: torch.dtype = torch.float64, cond: float | None = None, scale: float = 1.0
) -> LinearSelfAttention:
    """LSA with N(0, scale²/d) weights; with ``cond`` set, ``W_V = U diag(s) Vᵀ`` with singular values spread
    log-uniformly in ``[1, cond]`` (times ``scale / sqrt(d)``) — a well-conditioned value matrix."""
    g = torch.Generator().manual_seed(seed)
    lsa = LinearSelfAttention(LinearSelfAttentionConfig(d_input=d)).to(dtype).requires_grad_(False)
    s = scale / d**0.5
    for W in (lsa.W_Q, lsa.W_K, lsa.W_V):
        W.copy_(torch.randn(W.shape, generator=g, dtype=dtype) * s)
    if cond is not None:
        U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=dtype))
        V, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=dtype))
        sv = cond ** torch.rand(d, generator=g, dtype=dtype)
        lsa.W_V[0].copy_(U @ torch.diag(sv) @ V.T * s)
    return lsa


def unit_inputs(B: int, T: int, d: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Unit-scale tokens ``x ~ N(0, I)`` ``[B, T, d]`` (the teacher–student default; the paper leaves the distribution
    open, §3.1)."""
    return torch.randn(B, T, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)
