"""rnnattn.ops.diagonal_recurrence (chunked scan + custom backward) against the sequential reference.

Tolerances (issue 2): max |fast - ref| <= 1e-12 * max(1, max |ref|) in float64/complex128 and
<= 1e-5 * max |ref| in float32/complex64; the same for gradients. The reference itself is checked against
exact rational arithmetic (fractions) so that "equal to the reference" means equal to the recurrence.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck

from rnnattn.ops import diagonal_recurrence, diagonal_recurrence_ref

SPECIAL_LAMBDAS = [0.0, 1e-12, 1e-3, 0.5, 0.9, 0.999, 1 - 1e-9, 1.0]
TOL = {torch.float64: 1e-12, torch.complex128: 1e-12, torch.float32: 1e-5, torch.complex64: 1e-5}


def assert_matches(fast: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """Norm-wise agreement at the issue's tolerance for ``dtype`` (default: the tensors' dtype)."""
    assert fast.shape == ref.shape and fast.dtype == ref.dtype
    tol = TOL[dtype or ref.dtype]
    scale = ref.abs().max().item() if ref.numel() else 0.0
    if ref.dtype in (torch.float64, torch.complex128):
        scale = max(scale, 1.0)
    err = (fast - ref).abs().max().item() if ref.numel() else 0.0
    assert err <= tol * scale, f"max |fast - ref| = {err:.3e} > {tol:.0e} * {scale:.3e}"


def make_lam(n: int, dtype: torch.dtype, g: torch.Generator, special: bool = True) -> torch.Tensor:
    """Moduli covering lambda -> 0 and lambda -> 1 (exactly and nearly) and random ones; random phases if
    complex."""
    mod = torch.rand(n, generator=g, dtype=torch.float64)
    if special:
        k = min(n, len(SPECIAL_LAMBDAS))
        mod[:k] = torch.tensor(SPECIAL_LAMBDAS[:k], dtype=torch.float64)
    if dtype.is_complex:
        phase = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 2 * torch.pi
        return torch.polar(mod, phase).to(dtype)
    return mod.to(dtype)


def make_inputs(B, T, N, dtype, seed=0, h0=True, special=True):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(B, T, N, generator=g, dtype=dtype)
    lam = make_lam(N, dtype, g, special)
    s = torch.randn(B, N, generator=g, dtype=dtype) if h0 else None
    return u, lam, s


def widen(t: torch.Tensor | None) -> torch.Tensor | None:
    if t is None:
        return None
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


# -- the reference is the recurrence (exact arithmetic)
# ----------------------------------------------------------
def test_reference_equals_exact_rational_recurrence():
    g = torch.Generator().manual_seed(1)
    B, T, N = 2, 6, 3
    u = torch.randint(-5, 6, (B, T, N), generator=g).double() / 4
    lam = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    lam_tv = torch.randint(0, 5, (B, T, N), generator=g).double() / 4  # time-varying decays
    h0 = torch.randint(-3, 4, (B, N), generator=g).double() / 2
    for lam_used in (lam, lam_tv):
        h, hT = diagonal_recurrence_ref(u, lam_used, h0, output_final_state=True)
        for b in range(B):
            for n in range(N):
                state = Fraction(h0[b, n].item())
                for t in range(T):
                    lt = lam_used[n] if lam_used.dim() == 1 else lam_used[b, t, n]
                    state = Fraction(lt.item()) * state + Fraction(u[b, t, n].item())
                    assert Fraction(h[b, t, n].item()) == state  # dyadic rationals: float64 is exact here
                assert Fraction(hT[b, n].item()) == state


# -- forward
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.float32, torch.complex64])
@pytest.mark.parametrize("T", [0, 1, 2, 3, 7, 31, 64, 65, 127, 129, 1000, 2000])
@pytest.mark.parametrize("with_h0", [False, True])
def test_matches_reference_lengths(dtype, T, with_h0):
    u, lam, h0 = make_inputs(2, T, 8, dtype, seed=T, h0=with_h0)
    h, hT = diagonal_recurrence(u, lam, h0, output_final_state=True)
    r, rT = diagonal_recurrence_ref(u, lam, h0, output_final_state=True)
    assert_matches(h, r)
    assert_matches(hT, rT)
    if dtype in (torch.float32, torch.complex64):
        # float32 error is measured against the float64 recurrence too (the float32 loop is not exact either)
        r64, _ = diagonal_recurrence_ref(widen(u), widen(lam), widen(h0))
        assert_matches(widen(h), r64, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.float32])
def test_every_chunk_size_gives_the_same_result(dtype):
    T = 23
    u, lam, h0 = make_inputs(2, T, 5, dtype, seed=3)
    r, rT = diagonal_recurrence_ref(u, lam, h0, output_final_state=True)
    for C in [1, 2, 3, 4, 5, 7, 11, 22, 23, 24, 100]:
        h, hT = diagonal_recurrence(u, lam, h0, output_final_state=True, chunk_size=C)
        assert_matches(h, r)
        assert_matches(hT, rT)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    B=st.integers(1, 3),
    T=st.integers(0, 300),
    N=st.integers(1, 9),
    complex_=st.booleans(),
    with_h0=st.booleans(),
    chunk=st.one_of(st.none(), st.integers(1, 40)),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_reference_property(B, T, N, complex_, with_h0, chunk, seed):
    dtype = torch.complex128 if complex_ else torch.float64
    u, lam, h0 = make_inputs(B, T, N, dtype, seed=seed, h0=with_h0)
    h, hT = diagonal_recurrence(u, lam, h0, output_final_state=True, chunk_size=chunk)
    r, rT = diagonal_recurrence_ref(u, lam, h0, output_final_state=True)
    assert_matches(h, r)
    assert_matches(hT, rT)
    # float32 on the same data: 1e-5 relative against the float32 loop
    lo = torch.complex64 if complex_ else torch.float32
    h32, _ = diagonal_recurrence(u.to(lo), lam.to(lo), None if h0 is None else h0.to(lo), chunk_size=chunk)
    r32, _ = diagonal_recurrence_ref(u.to(lo), lam.to(lo), None if h0 is None else h0.to(lo))
    assert_matches(h32, r32)


def test_lambda_one_is_an_exact_cumulative_sum():
    u, _, h0 = make_inputs(3, 500, 4, torch.float64, seed=5)
    u = torch.round(u * 8) / 8  # dyadic values: every partial sum is exact in float64
    h0 = torch.round(h0 * 8) / 8
    h, hT = diagonal_recurrence(u, torch.ones(4, dtype=torch.float64), h0, output_final_state=True)
    assert torch.equal(h, torch.cumsum(u, 1) + h0[:, None])
    assert torch.equal(hT, h[:, -1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_lambda_zero_copies_the_input_exactly(dtype):
    u, _, h0 = make_inputs(2, 130, 4, dtype, seed=6)
    h, hT = diagonal_recurrence(u, torch.zeros(4, dtype=dtype), h0, output_final_state=True)
    assert torch.equal(h, u)  # 0 * anything + u, no residue of h0 or of earlier steps
    assert torch.equal(hT, u[:, -1])


def test_lambda_near_zero_and_near_one():
    u, _, _ = make_inputs(2, 400, 2, torch.float64, seed=7)
    h, _ = diagonal_recurrence(u, torch.tensor([1e-12, 1 - 1e-9], dtype=torch.float64))
    assert torch.allclose(h[..., 0], u[..., 0], rtol=0, atol=1e-11)
    # |h_t - sum_s u_s| = |sum_s (1 - lam^(t-s)) u_s| <= 1e-9 * t * sum_s |u_s|, and lam is not rounded to 1
    diff = (h[..., 1] - torch.cumsum(u[..., 1], 1)).abs()
    assert (diff <= 1e-9 * 400 * u[..., 1].abs().sum(1, keepdim=True)).all()
    assert diff.max() > 1e-9


def test_complex_rotation_keeps_modulus_over_long_sequences():
    # |lambda| = 1 with a phase: h_t = e^{i theta t} h_0 must neither grow nor decay, even in complex64
    theta = 2.0
    lam = torch.polar(torch.tensor([1.0]), torch.tensor([theta])).to(torch.complex64)
    h0 = torch.ones(1, 1, dtype=torch.complex64)
    h, _ = diagonal_recurrence(torch.zeros(1, 4000, 1, dtype=torch.complex64), lam, h0)
    t = torch.arange(1, 4001, dtype=torch.float64)
    exact = torch.polar(torch.ones_like(t), theta * t)
    assert (h[0, :, 0].to(torch.complex128) - exact).abs().max().item() < 1e-4


def test_dtype_promotion_and_noncontiguous_input():
    g = torch.Generator().manual_seed(8)
    u = torch.randn(2, 5, 40, generator=g).transpose(1, 2)  # [2, 40, 5], non-contiguous
    lam64 = torch.rand(5, generator=g, dtype=torch.float64)
    h, _ = diagonal_recurrence(u, lam64)
    assert h.dtype == torch.float64
    assert_matches(h, diagonal_recurrence_ref(u.double(), lam64)[0])
    lamc = torch.polar(torch.rand(5, generator=g), torch.rand(5, generator=g))
    hc, _ = diagonal_recurrence(u, lamc)
    assert hc.dtype == torch.complex64
    assert_matches(hc, diagonal_recurrence_ref(u.to(torch.complex64), lamc)[0])


def test_empty_sequence_passes_the_state_through():
    h0 = torch.randn(2, 3)
    h, hT = diagonal_recurrence(torch.zeros(2, 0, 3), torch.rand(3), h0, output_final_state=True)
    assert h.shape == (2, 0, 3) and torch.equal(hT, h0)
    _, hT0 = diagonal_recurrence(torch.zeros(2, 0, 3), torch.rand(3), output_final_state=True)
    assert torch.equal(hT0, torch.zeros(2, 3))
    assert diagonal_recurrence(torch.zeros(2, 4, 3), torch.rand(3))[1] is None


@pytest.mark.parametrize(
    "u, lam, h0, kwargs, match",
    [
        (torch.zeros(2, 4, 3), torch.zeros(2, 3), None, {}, "lam must be"),
        (torch.zeros(2, 4, 3), torch.zeros(4), None, {}, "channels"),
        (torch.zeros(4, 3), torch.zeros(3), None, {}, "u must be"),
        (torch.zeros(2, 4, 3), torch.zeros(3), torch.zeros(3), {}, "initial_state"),
        (torch.zeros(2, 4, 3), torch.zeros(3), None, {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_arguments_raise_one_line_value_errors(u, lam, h0, kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        diagonal_recurrence(u, lam, h0, **kwargs)
    assert "\n" not in str(e.value)


# -- gradients
# ----------------------------------------------------------------------------------------------------
def _grads(fn, u, lam, h0, w, v):
    u, lam = u.detach().requires_grad_(), lam.detach().requires_grad_()
    h0 = None if h0 is None else h0.detach().requires_grad_()
    h, hT = fn(u, lam, h0, output_final_state=True)
    # a non-holomorphic real loss exercises the conjugate conventions of complex autograd
    loss = (h * w).real.sum() + (hT.abs() ** 2 * v).sum() + (h.abs() ** 2).sum() * 1e-3
    inputs = [u, lam] + ([h0] if h0 is not None else [])
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.float32, torch.complex64])
@pytest.mark.parametrize("T", [1, 2, 17, 64, 300])
@pytest.mark.parametrize("with_h0", [False, True])
def test_gradients_match_reference(dtype, T, with_h0):
    u, lam, h0 = make_inputs(2, T, 8, dtype, seed=100 + T, h0=with_h0)
    g = torch.Generator().manual_seed(T)
    w = torch.randn(2, T, 8, generator=g, dtype=dtype)
    v = torch.rand(2, 8, generator=g, dtype=u.real.dtype)
    fast = _grads(diagonal_recurrence, u, lam, h0, w, v)
    ref = _grads(diagonal_recurrence_ref, u, lam, h0, w, v)
    for a, b in zip(fast, ref, strict=True):
        assert_matches(a, b)


@pytest.mark.parametrize("lam_value", [0.0, 1e-12, 1 - 1e-9, 1.0])
def test_gradients_at_the_lambda_limits(lam_value):
    u, _, h0 = make_inputs(2, 50, 3, torch.float64, seed=9)
    lam = torch.full((3,), lam_value, dtype=torch.float64)
    w = torch.randn(2, 50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    v = torch.ones(2, 3, dtype=torch.float64)
    fast = _grads(diagonal_recurrence, u, lam, h0, w, v)
    ref = _grads(diagonal_recurrence_ref, u, lam, h0, w, v)
    for a, b in zip(fast, ref, strict=True):
        assert torch.isfinite(a).all()
        assert_matches(a, b)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("T, chunk", [(1, None), (5, None), (7, 2), (9, 3), (10, 10), (10, 1)])
def test_gradcheck(complex_, T, chunk):
    dtype = torch.complex128 if complex_ else torch.float64
    u, lam, h0 = make_inputs(1, T, 2, dtype, seed=T, special=False)
    u.requires_grad_(), lam.requires_grad_(), h0.requires_grad_()

    def f(u, lam, h0):
        return diagonal_recurrence(u, lam, h0, output_final_state=True, chunk_size=chunk)

    assert gradcheck(f, (u, lam, h0))
    assert gradcheck(lambda u, lam: diagonal_recurrence(u, lam, chunk_size=chunk)[0], (u, lam))


@pytest.mark.parametrize("complex_", [False, True])
def test_double_backward(complex_):
    # the backward is built from differentiable ops (it calls the op again), so second derivatives exist
    dtype = torch.complex128 if complex_ else torch.float64
    u, lam, h0 = make_inputs(1, 7, 2, dtype, seed=12, special=False)
    u.requires_grad_(), lam.requires_grad_(), h0.requires_grad_()
    assert gradgradcheck(lambda u, lam, h0: diagonal_recurrence(u, lam, h0, chunk_size=3)[0], (u, lam, h0))


def test_gradient_only_where_requested():
    u, lam, h0 = make_inputs(2, 10, 3, torch.float64, seed=11)
    lam.requires_grad_()
    h, _ = diagonal_recurrence(u, lam, h0)
    (g_lam,) = torch.autograd.grad(h.sum(), [lam])
    (r_lam,) = torch.autograd.grad(diagonal_recurrence_ref(u, lam, h0)[0].sum(), [lam])
    assert_matches(g_lam, r_lam)
    assert u.grad is None and h0.grad is None
