"""Context–query polynomial and the y-split residual (rnnattn.analysis.context_query): exact on the one-step-GD
construction, equal to a least-squares fit of the forward pass, and the constrained / unconstrained split."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnattn import GatedLinearRNN, GatedLinearRNNConfig
from rnnattn.analysis.context_query import context_query, context_query_polynomial
from rnnattn.analysis.errors import AnalysisNotApplicable
from rnnattn.analysis.polynomial import fit_polynomial
from rnnattn.constructions import attention_to_gated_rnn, gd_attention
from rnnattn.models.attention import LinearSelfAttention, LinearSelfAttentionConfig

ICL = Path(__file__).resolve().parents[2] / "checkpoints" / "icl_d6.safetensors"
ETA = 1 / 14.8


@pytest.mark.parametrize(("form", "basis"), [("full", "value"), ("compact", "input"), ("minimal", "input")])
def test_exact_gd_construction_is_one_step_gd_on_every_term(form, basis):
    m = attention_to_gated_rnn(gd_attention(3, 3, ETA), form=form, basis=basis)
    r = context_query(m, d_x=3, d_y=3, eta=ETA)
    assert r.distance < 1e-12 and r.distance_support < 1e-12
    assert r.residual_support < 1e-12 and r.residual_unconstrained < 1e-12
    np.testing.assert_allclose(r.gd_terms["model"], ETA, rtol=1e-12)
    assert len(r.gd_terms) == 9
    split = r.instantaneous_split
    assert (split[["0 y", "1 y", ">=2 y", "total"]].to_numpy() < 1e-12).all()
    np.testing.assert_allclose(split["x_j^2 y_i (mean)"], ETA, rtol=1e-12)


def _small_model(d: int, recurrence: str, seed: int) -> GatedLinearRNN:
    torch.manual_seed(seed)
    m = GatedLinearRNN(GatedLinearRNNConfig(d, 5, 4, 2, recurrence=recurrence)).double()
    if recurrence == "dense":
        with torch.no_grad():
            m.A.copy_(0.4 * torch.randn(5, 5, dtype=torch.float64))
    return m


@pytest.mark.parametrize("recurrence", ["diagonal", "dense"])
def test_context_query_polynomial_matches_a_fit_of_the_forward_pass(recurrence):
    d = 2
    m = _small_model(d, recurrence, seed=3)
    exact = context_query_polynomial(m)

    def two_tokens(cq: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return m(torch.as_tensor(cq).reshape(-1, 2, d))[:, -1].numpy()

    fit = fit_polynomial(two_tokens, 2 * d, 4, seed=1)
    scale = np.abs(exact.coefficients).max()
    np.testing.assert_allclose(exact.coefficients, fit.coefficients, atol=1e-9 * scale, rtol=0)
    assert exact.variables == ("x1_c", "x2_c", "x1_q", "x2_q")


def test_query_weights_reading_y_only_touch_unconstrained_terms():
    # the GD attention layer with a query that also reads y: extra terms all contain y_q
    lsa = gd_attention(3, 3, ETA)
    with torch.no_grad():
        lsa.W_Q[0, 0, 4] = 0.3  # q_1 += 0.3 * y_2
    r = context_query(attention_to_gated_rnn(lsa, form="full"), d_x=3, d_y=3, eta=ETA)
    assert r.distance_support < 1e-12 and r.residual_support < 1e-12
    assert r.residual_unconstrained > 1e-3
    parts = r.residual_parts.set_index("part")
    assert parts.loc["cross", "unconstrained"] > 1e-3 and parts["constrained"].max() < 1e-12
    # in the instantaneous polynomial the same weights give terms with two y-variables (y_1 * y_2 * x_1 ...)
    split = r.instantaneous_split.set_index("output")
    assert split.loc["y1", ">=2 y"] > 1e-3 and split.loc["y1", "0 y"] < 1e-12
    total = split[["0 y", "1 y", ">=2 y"]].pow(2).sum(axis=1).pow(0.5)
    np.testing.assert_allclose(total, split["total"], rtol=1e-12)


def test_bad_inputs_are_clear_errors():
    m = attention_to_gated_rnn(gd_attention(3, 3, ETA), form="full")
    with pytest.raises(ValueError, match="pass d_x and d_y"):
        context_query(m)
    with pytest.raises(ValueError, match="pass eta"):
        context_query(m, d_x=3, d_y=3)
    with pytest.raises(ValueError, match="do not fit the model"):
        context_query(m, d_x=2, d_y=3, eta=ETA)
    with pytest.raises(AnalysisNotApplicable):
        context_query(LinearSelfAttention(LinearSelfAttentionConfig(d_input=6)), d_x=3, d_y=3, eta=ETA)


@pytest.mark.skipif(not ICL.exists(), reason="shipped checkpoint missing")
def test_shipped_icl_checkpoint_reads_its_task():
    r = context_query(ICL)
    assert r.eta == pytest.approx(ETA) and (r.d_x, r.d_y) == (3, 3)
    assert r.polynomial.coefficients.shape == (3, 1820)
    # a trained network sits near one-step GD on the GD terms themselves
    np.testing.assert_allclose(r.gd_terms["model"], ETA, rtol=0.1)
    assert r.residual_support < r.residual_unconstrained
    assert "distance" in repr(r) and "Context-query polynomial" in r._repr_html_()
    json.dumps(r.to_dict())


def test_oversized_model_is_refused_before_allocating():
    big = GatedLinearRNN(GatedLinearRNNConfig(40, 4, 4, 40))
    with pytest.raises(ValueError, match="MAX_ANALYSIS_BYTES"):
        context_query_polynomial(big)
