"""Notebook displays of the analysis results: short reprs (no module trees, no whole arrays) and ``_repr_html_``
rendered by rnnattn.display with every string escaped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _constructions import random_lsa

from rnnattn import ActivationCache
from rnnattn.analysis import (
    NotApplicable,
    Polynomial,
    ProbeResult,
    canonicalize,
    equivalence,
    instantaneous_polynomial,
    merge_rank1,
    prune,
)
from rnnattn.constructions import attention_to_gated_rnn

EVIL = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def evil_result():
    """A full pipeline run on a construction whose unit labels and input names carry markup."""
    lsa = random_lsa(2, seed=7)
    rnn = attention_to_gated_rnn(lsa, form="compact")
    n, m = rnn.config.n_hidden, rnn.config.n_gating
    rnn.metadata = {**rnn.metadata, "labels": {"hidden": [f"{EVIL}{i}" for i in range(n)],
                                               "gating": [f"{EVIL}g{i}" for i in range(m)]},
                    "input_names": [f"{EVIL}x", "x2"]}
    return equivalence(rnn, n_sequences=8)


def _results(r):
    probe = ProbeResult(0.0, 1.0, pd.DataFrame({"target": [EVIL]}), pd.DataFrame(), np.arange(3), np.arange(2), 9,
                        0.99, 0.01, EVIL, notes=[EVIL])
    y, cache = r.student.run_with_cache(torch.zeros(1, 2, 2, dtype=torch.float64))
    cache.activations[EVIL] = y
    return {
        "EquivalenceResult": r, "PruneResult": r.prune, "CanonicalResult": r.canonical, "MergeResult": r.merges,
        "ProbeResult": probe, "Polynomial": r.student_polynomial, "PolynomialComparison": r.comparison,
        "RolesResult": r.roles, "WeightsResult": r.weights, "Checks": r.checks, "LossResult": r.loss,
        "Reference": r.reference, "NotApplicable": NotApplicable("probes", EVIL), "ActivationCache": cache,
        "Polynomial in named variables": Polynomial(np.ones((1, 3)), (EVIL,), ("y1",), 2, EVIL),
    }


def test_every_repr_html_escapes(evil_result):
    for name, obj in _results(evil_result).items():
        html = obj._repr_html_()
        assert "<script" not in html.lower(), name
        assert html.startswith('<div class="rnnattn-fragment">'), name
    # the strings are shown, as text
    r = _results(evil_result)
    for name in ("RolesResult", "ProbeResult", "NotApplicable", "ActivationCache",
                 "Polynomial in named variables"):
        assert "&lt;script&gt;" in r[name]._repr_html_(), name


def test_reprs_are_short(evil_result):
    for name, obj in _results(evil_result).items():
        text = repr(obj)
        assert len(text) < 400, (name, len(text), text[:200])
        assert "HookPoint" not in text and "\n" not in text, name
    assert repr(evil_result.prune).startswith("PruneResult(n_hidden_before=")
    assert "verdict=True" in repr(evil_result)


def test_single_step_results_do_not_print_module_trees():
    lsa = random_lsa(3, seed=1)
    rnn = attention_to_gated_rnn(lsa, form="full")
    for res in (prune(rnn), canonicalize(rnn), merge_rank1(rnn, rows=[0, 1])):
        assert "HookPoint" not in repr(res) and len(repr(res)) < 400
        assert "model=" not in repr(res)  # the rewritten model is res.model, not part of the repr
    p = instantaneous_polynomial(rnn)
    assert len(repr(p)) < 200 and "35 monomials of degree <= 4 in x1..x3" in repr(p)


def test_cache_repr_of_a_small_batch_is_short():
    lsa = random_lsa(3, seed=2)
    _, cache = lsa.run_with_cache(torch.randn(4, 16, 3, dtype=torch.float64))
    assert isinstance(cache, ActivationCache) and len(repr(cache)) < 300 and "hook_q [4, 16, 1, 3]" in repr(cache)


def _imports(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_display_and_registry_reach_nothing_above_them():
    """The display layer sits below every stage; the model registry names no module above models/."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "rnnattn"
    for f in (root / "display").glob("*.py"):
        first_party = {m for m in _imports(f) if m.startswith("rnnattn")}
        assert first_party <= {"rnnattn._version", "rnnattn.display", "rnnattn.display.document",
                               "rnnattn.display.html"}, (f.name, first_party)
    assert not {m for m in _imports(root / "models" / "registry.py") if m.startswith("rnnattn")}
    assert "rnnattn.lsrl" not in (root / "models" / "registry.py").read_text()
    for f in (root / "analysis").glob("*.py"):
        assert not {m for m in _imports(f) if m.startswith(("rnnattn.report", "rnnattn.cli"))}, f.name
