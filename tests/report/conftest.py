"""Shared fixtures of the report tests: a small exact construction and its report, built once per session."""

from __future__ import annotations

import pytest
import torch

from rnnattn.constructions import attention_to_gated_rnn
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


@pytest.fixture(scope="session")
def lsa3() -> LinearSelfAttention:
    return small_lsa(3)


@pytest.fixture(scope="session")
def construction(lsa3):
    return attention_to_gated_rnn(lsa3, form="compact")


@pytest.fixture(scope="session")
def construction_report(construction, tmp_path_factory):
    """``(ReportPaths, Report)`` of the compact construction (reference found from its provenance)."""
    from rnnattn.report.build import build_document, build_report

    out = tmp_path_factory.mktemp("construction_report")
    paths = build_report(construction, out_dir=out, name="compact_construction")
    return paths, build_document
