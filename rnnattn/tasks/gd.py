"""One-step gradient descent on in-context linear regression (von Oswald et al.; Zucchet et al. App. C.2, Eq. 36).

With context ``X = [x_1 .. x_n]`` (``d_x x n``), targets ``y_i = W* x_i`` and one GD step from ``W = 0`` on
``0.5 * sum_i ||W x_i - y_i||^2``, the prediction at the query is ``ŷ = eta * sum_i y_i x_i^T x_q``.

For i.i.d. input entries with variance ``s2 = sigma_x^2`` and kurtosis ``k = E[x^4] / s2^2`` (uniform: 9/5,
normal: 3), ``E[X X^T] = n s2 I`` and ``Tr E[(X X^T)^2] = n d_x s2^2 (n + d_x - 2 + k)``, so (App. C.2, Eqs. 34-36)

    eta* = Tr E[X X^T] / Tr E[(X X^T)^2] = 1 / (s2 (n + d_x - 2 + k))            (= 1/14.8 for n=12, d_x=3, uniform)
    L(eta) = 0.5 sigma_W^2 s2 d_x [1 - 2 eta n s2 + eta^2 n s2^2 (n + d_x - 2 + k)]   per output coordinate
    L*     = 0.5 sigma_W^2 s2 d_x (d_x - 2 + k) / (n + d_x - 2 + k)                  (= 0.094595 train, 0.18919 val)

``L`` uses the paper's loss convention: 0.5 * squared error averaged over output coordinates.
"""

from __future__ import annotations

import torch

UNIFORM_KURTOSIS = 9.0 / 5.0
NORMAL_KURTOSIS = 3.0


def _check(n: int, d_x: int, sigma_x2: float) -> None:
    if n < 1 or d_x < 1:
        raise ValueError(f"one-step GD: need n >= 1 and d_x >= 1, got n={n}, d_x={d_x}")
    if sigma_x2 <= 0:
        raise ValueError(f"one-step GD: sigma_x2 must be positive, got {sigma_x2}")


def optimal_gd_learning_rate(
    n: int, d_x: int, sigma_x2: float = 1.0, kurtosis: float = UNIFORM_KURTOSIS
) -> float:
    """``eta* = 1 / (sigma_x^2 (n + d_x - 2 + kurtosis))`` (Eq. 36; 1/14.8 for the paper's setting)."""
    _check(n, d_x, sigma_x2)
    return 1.0 / (sigma_x2 * (n + d_x - 2.0 + kurtosis))


def gd_loss(
    eta: float,
    n: int,
    d_x: int,
    sigma_w2: float = 1.0 / 3.0,
    sigma_x2: float = 1.0,
    kurtosis: float = UNIFORM_KURTOSIS,
) -> float:
    """Expected loss (0.5 * squared error averaged over outputs) of one GD step with learning rate ``eta``."""
    _check(n, d_x, sigma_x2)
    s2 = sigma_x2
    return (
        0.5 * sigma_w2 * s2 * d_x * (1 - 2 * eta * n * s2 + eta**2 * n * s2**2 * (n + d_x - 2.0 + kurtosis))
    )


def optimal_gd_loss(
    n: int, d_x: int, sigma_w2: float = 1.0 / 3.0, sigma_x2: float = 1.0, kurtosis: float = UNIFORM_KURTOSIS
) -> float:
    """``L* = 0.5 sigma_W^2 sigma_x^2 d_x (d_x - 2 + k) / (n + d_x - 2 + k)`` (0.094595 train, 0.18919 val)."""
    _check(n, d_x, sigma_x2)
    return 0.5 * sigma_w2 * sigma_x2 * d_x * (d_x - 2.0 + kurtosis) / (n + d_x - 2.0 + kurtosis)


def one_step_gd_predict(tokens: torch.Tensor, d_x: int, eta: float) -> torch.Tensor:
    """One-step-GD prediction at the query token.

    Args:
        tokens: ``[B, n+1, d_x + d_y]``: context tokens ``(x_i, y_i)`` then the query ``(x_q, 0)``.
        d_x: input size.
        eta: learning rate.
    Returns:
        ``ŷ [B, d_y] = eta * sum_i y_i (x_i . x_q)``.
    """
    if tokens.dim() != 3 or tokens.shape[-1] <= d_x or tokens.shape[1] < 2:
        raise ValueError(f"one_step_gd_predict: tokens must be [B, n+1, d_x+d_y], got {tuple(tokens.shape)}")
    xs, ys = tokens[:, :-1, :d_x], tokens[:, :-1, d_x:]
    xq = tokens[:, -1, :d_x]
    dots = torch.bmm(xs, xq[:, :, None])  # [B, n, 1] = x_i . x_q (a 3-operand einsum is ~10x slower on CPU)
    return eta * (ys * dots).sum(dim=1)
