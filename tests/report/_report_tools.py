"""Helpers shared by the report tests."""

from __future__ import annotations

import torch

from rnnattn.models import LinearSelfAttention, LinearSelfAttentionConfig


def small_lsa(d: int = 3, seed: int = 0) -> LinearSelfAttention:
    """A float64 attention layer with weights on a 1/8 grid (platform-independent) and an invertible W_V."""
    g = torch.Generator().manual_seed(seed)
    lsa = LinearSelfAttention(LinearSelfAttentionConfig(d_input=d)).to(torch.float64)
    with torch.no_grad():
        for p in (lsa.W_Q, lsa.W_K, lsa.W_V):
            p.copy_(torch.round(torch.randn(p.shape, generator=g, dtype=torch.float64) * 8) / 8)
        lsa.W_V.add_(torch.eye(d, dtype=torch.float64))  # keep W_V well conditioned for the value-basis forms
    return lsa
