"""rnnattn.testing assertion helpers: they pass on exact constructions and fail with readable messages."""

import re

import pytest
import torch

from rnnattn.constructions import attention_to_gated_rnn
from rnnattn.models import LinearSelfAttention, LinearSelfAttentionConfig
from rnnattn.testing import assert_outputs_close, assert_polynomial_distance_below, compare_polynomials


@pytest.fixture(scope="module")
def lsa():
    torch.manual_seed(0)
    return LinearSelfAttention(LinearSelfAttentionConfig(d_input=3)).to(torch.float64)


@pytest.fixture(scope="module")
def rnn(lsa):
    return attention_to_gated_rnn(lsa, form="full")


def test_passes_on_exact_construction(rnn, lsa):
    d = assert_polynomial_distance_below(rnn, lsa, 1e-12)
    assert 0 <= d < 1e-12
    assert assert_polynomial_distance_below(rnn, lsa, 1e-12, outputs=["y2", 0], reduction="max") < 1e-12


def test_failure_names_outputs_and_monomials(rnn, lsa):
    broken = attention_to_gated_rnn(lsa, form="full")
    with torch.no_grad():
        broken.D[1] *= 1.5  # output y2 only: every one of its coefficients grows by 50 %
    with pytest.raises(AssertionError) as exc:
        assert_polynomial_distance_below(broken, lsa, 1e-3, reduction="max")
    msg = str(exc.value)
    assert msg.startswith("polynomial distance 5.000e-01 is not below 1.000e-03")
    assert "output y2: distance 5.000e-01" in msg and "output y1" not in msg and "output y3" not in msg
    # the largest differing monomial of y2 is listed with both values and the difference
    cmp = compare_polynomials(broken, lsa)
    j = int(abs(cmp.model[1] - cmp.reference[1]).argmax())
    line = next(ln for ln in msg.splitlines() if ln.strip().startswith(cmp.monomials[j] + " "))
    assert re.search(r"model\s+-?\d\.\d+e[+-]\d+\s+reference\s+-?\d\.\d+e[+-]\d+\s+difference", line)
    # the mean over outputs is 0.5 / 3, still far above the threshold; restricting to healthy outputs passes
    with pytest.raises(AssertionError, match="1.667e-01"):
        assert_polynomial_distance_below(broken, lsa, 1e-3)
    assert_polynomial_distance_below(broken, lsa, 1e-12, outputs=["y1", "y3"])


def test_argument_errors(rnn, lsa):
    with pytest.raises(ValueError, match="threshold"):
        assert_polynomial_distance_below(rnn, lsa, 0)
    with pytest.raises(ValueError, match="unknown output 'y9'"):
        assert_polynomial_distance_below(rnn, lsa, 1e-3, outputs=["y9"])
    other = LinearSelfAttention(LinearSelfAttentionConfig(d_input=2)).double()
    with pytest.raises(ValueError, match="not comparable"):
        assert_polynomial_distance_below(rnn, other, 1e-3)


def test_outputs_close(rnn, lsa):
    x = torch.randn(2, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert_outputs_close(rnn, lsa, x, rtol=1e-10, atol=1e-12)
    broken = attention_to_gated_rnn(lsa, form="full")
    with torch.no_grad():
        broken.D[0, 0] += 1e-3
    with pytest.raises(
        AssertionError, match=r"(?s)construction vs LSA.*largest difference at index \(\d+, \d+, 0\)"
    ):
        assert_outputs_close(broken, lsa, x, 1e-10, 1e-12, msg="construction vs LSA")
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_outputs_close(rnn, lambda t: t[:, :1], x, 0, 0)
