"""Regression tests of the exact constructions through rnnattn.testing and its pytest plugin.

Every exact construction of linear attention in a gated RNN (§2.1-2.2, Fig. 1, and rnnattn's minimal form) must (1) keep
its instantaneous polynomial within 1e-12 (relative L2, every output) of the attention layer it was built from, and (2)
match the polynomial stored in ``baselines/test_polynomial_regression/`` — a change of the construction's coefficients
(a different but still-equivalent parametrisation is fine for (1)) shows up here. Regenerate the baselines with
``python -m pytest tests/constructions/test_polynomial_regression.py --rnnattn-update-baselines``.
"""

import pytest
import torch

from rnnattn.constructions import attention_to_gated_rnn, source_of
from rnnattn.models import LinearSelfAttention, LinearSelfAttentionConfig
from rnnattn.testing import assert_outputs_close, assert_polynomial_distance_below

FORMS = [
    ("full", "value"),
    ("compact", "value"),
    ("compact", "input"),
    ("minimal", "value"),
    ("minimal", "input"),
]


def grid_lsa(d: int, seed: int) -> LinearSelfAttention:
    """Weights on a 1/8 grid (exact in binary, identical on every platform) with a well-conditioned W_V."""
    g = torch.Generator().manual_seed(seed)
    lsa = LinearSelfAttention(LinearSelfAttentionConfig(d_input=d)).to(torch.float64)
    with torch.no_grad():
        for p in (lsa.W_Q, lsa.W_K, lsa.W_V):
            p.copy_(torch.round(torch.randn(p.shape, generator=g, dtype=torch.float64) * 8) / 8)
        lsa.W_V.add_(2 * torch.eye(d, dtype=torch.float64))
    return lsa


@pytest.mark.parametrize("d", [2, 4])
@pytest.mark.parametrize("form, basis", FORMS, ids=[f"{f}-{b}" for f, b in FORMS])
def test_construction_polynomial(form, basis, d, polynomial_baseline):
    lsa = grid_lsa(d, seed=d)
    rnn = attention_to_gated_rnn(lsa, form=form, basis=basis)
    assert_polynomial_distance_below(rnn, lsa, 1e-12, reduction="max")
    assert_polynomial_distance_below(
        rnn, source_of(rnn), 1e-12, reduction="max"
    )  # provenance gives the same source
    x = torch.randn(3, 9, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert_outputs_close(rnn, lsa, x, rtol=1e-10, atol=1e-12)
    polynomial_baseline(
        rnn,
        name=f"{form}_{basis}_d{d}",
        description=f"attention_to_gated_rnn(form={form!r}, basis={basis!r}) of grid_lsa(d={d}, seed={d})",
    )
