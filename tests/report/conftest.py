"""Shared fixtures of the report tests: a small exact construction and its report, built once per session."""

from __future__ import annotations

import pytest
from _report_tools import small_lsa

from rnnattn.constructions import attention_to_gated_rnn
from rnnattn.models import LinearSelfAttention


@pytest.fixture(scope="session")
def lsa3() -> LinearSelfAttention:
    return small_lsa(3)


@pytest.fixture(scope="session")
def construction(lsa3):
    return attention_to_gated_rnn(lsa3, form="compact")


@pytest.fixture(scope="session")
def construction_report(construction, tmp_path_factory):
    """:class:`ReportPaths` of the compact construction's report (reference found from its provenance)."""
    from rnnattn.report.build import build_report

    out = tmp_path_factory.mktemp("construction_report")
    return build_report(construction, out_dir=out, name="compact_construction")
