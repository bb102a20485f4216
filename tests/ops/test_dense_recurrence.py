"""rnnattn.ops.dense_recurrence (h_t = A h_{t-1} + u_t) against exact arithmetic and the closed form."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch.autograd import gradcheck

from rnnattn.ops import dense_recurrence, dense_recurrence_ref, diagonal_recurrence


def test_exact_rational_recurrence():
    g = torch.Generator().manual_seed(0)
    B, T, N = 2, 5, 3
    A = torch.randint(-2, 3, (N, N), generator=g).double() / 4
    u = torch.randint(-4, 5, (B, T, N), generator=g).double() / 2
    h0 = torch.randint(-4, 5, (B, N), generator=g).double() / 2
    h, hT = dense_recurrence(u, A, h0, output_final_state=True)
    Af = [[Fraction(A[i, j].item()) for j in range(N)] for i in range(N)]
    for b in range(B):
        state = [Fraction(h0[b, i].item()) for i in range(N)]
        for t in range(T):
            state = [
                sum(Af[i][j] * state[j] for j in range(N)) + Fraction(u[b, t, i].item()) for i in range(N)
            ]
            assert [Fraction(v) for v in h[b, t].tolist()] == state
        assert [Fraction(v) for v in hT[b].tolist()] == state


def test_closed_form_with_matrix_powers():
    g = torch.Generator().manual_seed(1)
    B, T, N = 3, 20, 4
    A = torch.randn(N, N, generator=g, dtype=torch.float64) / 3
    u = torch.randn(B, T, N, generator=g, dtype=torch.float64)
    h0 = torch.randn(B, N, generator=g, dtype=torch.float64)
    h, _ = dense_recurrence(u, A, h0)
    for t in [0, 7, T - 1]:
        exact = h0 @ torch.linalg.matrix_power(A, t + 1).T
        for s in range(t + 1):
            exact = exact + u[:, s] @ torch.linalg.matrix_power(A, t - s).T
        torch.testing.assert_close(h[:, t], exact, rtol=0, atol=1e-12)


def test_diagonal_matrix_equals_diagonal_recurrence():
    g = torch.Generator().manual_seed(2)
    lam = torch.rand(5, generator=g, dtype=torch.float64)
    u = torch.randn(2, 70, 5, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 5, generator=g, dtype=torch.float64)
    hd, hdT = dense_recurrence(u, torch.diag(lam), h0, output_final_state=True)
    hg, hgT = diagonal_recurrence(u, lam, h0, output_final_state=True)
    torch.testing.assert_close(hd, hg, rtol=0, atol=1e-12)
    torch.testing.assert_close(hdT, hgT, rtol=0, atol=1e-12)


def test_fast_entry_point_equals_reference_and_edges():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(3, 3, generator=g)
    u = torch.randn(2, 9, 3, generator=g)
    assert torch.equal(dense_recurrence(u, A)[0], dense_recurrence_ref(u, A)[0])
    h, hT = dense_recurrence(torch.zeros(2, 0, 3), A, output_final_state=True)
    assert h.shape == (2, 0, 3) and torch.equal(hT, torch.zeros(2, 3))
    assert dense_recurrence(u, A)[1] is None


@pytest.mark.parametrize("with_h0", [False, True])
def test_gradcheck(with_h0):
    g = torch.Generator().manual_seed(4)
    A = (torch.randn(3, 3, generator=g, dtype=torch.float64) / 2).requires_grad_()
    u = torch.randn(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True) if with_h0 else None
    args = (u, A, h0) if with_h0 else (u, A)
    assert gradcheck(lambda *a: dense_recurrence(*a, output_final_state=True), args)
