"""Rotation to the canonical basis (rnnattn.analysis.rotate): mixed constructions come back at the compact
construction's size, equivalent to the source attention layer; the basis choices; the shipped student."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _constructions import gated_from_arrays, pad_and_scramble, random_lsa
from _mixing import max_rel_diff, mix_within_groups
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnattn import GatedLinearRNN, GatedLinearRNNConfig
from rnnattn.analysis.errors import AnalysisNotApplicable
from rnnattn.analysis.rotate import rotate_to_canonical
from rnnattn.constructions import attention_to_gated_rnn

STUDENT = Path(__file__).resolve().parents[2] / "checkpoints" / "teacher_student_d4.safetensors"


@settings(max_examples=8, deadline=None)
@given(d=st.integers(2, 4), form=st.sampled_from(["full", "compact", "minimal"]), seed=st.integers(0, 1000))
def test_mixed_constructions_rotate_back_to_the_compact_size(d, form, seed):
    lsa = random_lsa(d, seed)
    c = attention_to_gated_rnn(lsa, form=form)
    mixed = pad_and_scramble(mix_within_groups(c, seed, extra_memory=3, extra_query=2), 4, 5, seed)
    assert max_rel_diff(c, mixed, d) < 1e-10  # check first that the mixing preserves the function
    r = rotate_to_canonical(mixed)
    assert (r.effective.n_kv, r.effective.n_query) == (d * (d + 1) // 2, d)
    assert (r.n_hidden_after, r.n_gating_after) == (d * (d + 1) // 2 + d, d * d)
    assert r.minimal and r.kv_basis_kind == "monomials" and r.query_basis_kind == "monomials"
    assert r.polynomial_distance < 1e-9 and r.output_error < 1e-9
    # independent check: the rotated network computes the source attention layer
    assert max_rel_diff(lsa, r.model, d, seed=1) < 1e-9
    lam = r.model.lam.numpy()
    assert set(lam[: d * (d + 1) // 2]) == {1.0} and set(lam[d * (d + 1) // 2 :]) == {0.0}


def test_canonical_basis_does_not_depend_on_the_mixing():
    c = attention_to_gated_rnn(random_lsa(3, 4), form="compact")
    a = rotate_to_canonical(pad_and_scramble(mix_within_groups(c, 1, extra_memory=4), 3, 3, 2)).model
    rb = rotate_to_canonical(mix_within_groups(c, 9, extra_query=2))
    b = rb.model
    summ = rb.summary.set_index("kind")
    assert summ.loc["hidden", "before"] == c.config.n_hidden + 2 and summ.loc["hidden", "after"] == 6 + 3
    assert summ.loc["gating", "after"] == 9 and summ.loc["hidden", "of which"].startswith("6 KV (monomials) + 3 query")
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=1e-9, rtol=0)
    assert a.metadata["labels"]["hidden"][:2] == ["kv[x1^2]", "kv[x1*x2]"]
    assert a.metadata["labels"]["hidden"][-1] == "q[x3]"


def _model(d: int, mem: list, fgt: list, M: int, seed: int) -> GatedLinearRNN:
    """λ = 1 neurons with inputs ``mem`` and λ = 0 neurons with inputs ``fgt`` (lists of (W_m, W_x) rows over x̃),
    random gating rows pairing a memory neuron with a forget neuron."""
    rng = np.random.default_rng(seed)
    n_m, n_f = len(mem), len(fgt)
    W_in = np.stack([np.array([r[0] for r in mem + fgt]), np.array([r[1] for r in mem + fgt])])
    nu = np.concatenate([np.full(n_m, -math.inf), np.full(n_f, math.inf)])
    W_out = np.zeros((2, M, n_m + n_f))
    W_out[0, :, :n_m] = rng.standard_normal((M, n_m))
    W_out[1, :, n_m:] = rng.standard_normal((M, n_f))
    return gated_from_arrays(W_in, nu, W_out, rng.standard_normal((d, M)))


def _x1(v: np.ndarray) -> np.ndarray:
    return np.append(v, 0.0)


def test_basis_kinds_symmetric_square_and_times_constant():
    # memory forms span Sym²(V) for a random plane V in R^3 (not coordinate aligned: 6 monomials, 3 forms);
    # forget forms (w·x)·1 for w in a random plane (3 monomials, 2 forms)
    rng = np.random.default_rng(0)
    d = 3
    V = rng.standard_normal((2, d))
    Wf = rng.standard_normal((2, d))
    one = np.eye(d + 1)[d]
    mem = [(_x1(a @ V), _x1(b @ V)) for a, b in rng.standard_normal((5, 2, 2))]
    fgt = [(_x1(w @ Wf), one) for w in rng.standard_normal((4, 2))]
    m = _model(d, mem, fgt, M=6, seed=1)
    r = rotate_to_canonical(m)
    assert (r.effective.n_kv, r.effective.n_query) == (3, 2)
    assert (r.kv_basis_kind, r.query_basis_kind) == ("symmetric square", "times constant")
    assert r.minimal and r.n_hidden_after == 5
    assert r.output_error < 1e-9 and r.polynomial_distance < 1e-9


def test_no_product_basis_of_the_effective_size_falls_back_to_the_support():
    # one memory form (a·x)(b·x) spread over all 6 monomials: exact, but 6 KV neurons for 1 effective
    rng = np.random.default_rng(3)
    d = 3
    a, b = rng.standard_normal((2, d))
    one = np.eye(d + 1)[d]
    m = _model(d, [(_x1(a), _x1(b))], [(_x1(w), one) for w in np.eye(d)], M=4, seed=2)
    r = rotate_to_canonical(m)
    assert r.effective.n_kv == 1 and not r.minimal
    assert r.kv_basis_kind.startswith("monomials (support") and r.n_hidden_after == 6 + 3
    assert r.output_error < 1e-9


def test_not_applicable_without_memory_neurons():
    m = GatedLinearRNN(GatedLinearRNNConfig(3, 6, 6, 3)).double()
    with torch.no_grad():
        m.nu.fill_(0.0)  # λ = 1/e: all "other"
    with pytest.raises(AnalysisNotApplicable, match="nothing attention-like"):
        rotate_to_canonical(m)


@pytest.mark.skipif(not STUDENT.exists(), reason="shipped checkpoint missing")
def test_shipped_student_rotates_to_14_hidden_and_16_gating():
    r = rotate_to_canonical(STUDENT)
    assert (r.n_hidden_before, r.n_gating_before) == (32, 32)
    assert (r.n_hidden_after, r.n_gating_after) == (14, 16) and r.minimal
    assert r.output_error < 1e-4 and r.polynomial_distance < 1e-3
    # dropping the non-attention blocks does not move the network away from its teacher
    assert r.reference_distance["rotated"] <= r.reference_distance["original"]
    assert "hidden 32->14" in repr(r)
    json.dumps(r.to_dict())
    assert "Rotation to the canonical basis" in r._repr_html_()


def test_rotation_compares_with_the_reference_the_caller_gave():
    """``equivalence(..., reference=X)`` measures the rotated model against X, as every other step does."""
    from rnnattn.analysis import equivalence, instantaneous_polynomial, polynomial_distance

    own, other = random_lsa(3, 1), random_lsa(3, 2)
    c = attention_to_gated_rnn(own, form="compact")
    assert rotate_to_canonical(c).reference_distance["original"] < 1e-12  # its source construction
    far = polynomial_distance(instantaneous_polynomial(c), instantaneous_polynomial(other)).value
    res = equivalence(c, reference=other)
    assert res.rotation.reference_distance["original"] == pytest.approx(far, rel=1e-9) and far > 0.1
    assert rotate_to_canonical(c, reference=other).reference_distance["original"] == pytest.approx(far, rel=1e-9)
    with pytest.raises(ValueError):
        rotate_to_canonical(c, reference="teacher")  # asked for, not recorded: refused, not silently dropped
