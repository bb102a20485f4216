"""Levenberg-Marquardt polishing of one diagonal gated RNN (Eq. 2) in float64, with an analytic Jacobian.

Why: on teacher-student the AdamW phase stalls near loss ~2e-5 and strong-Wolfe L-BFGS barely moves it (measured:
-25% in 1000 iterations, in float32 or float64). The task is a zero-residual least-squares problem, so a
Gauss-Newton model of the loss is accurate near the optimum; damped Gauss-Newton steps (LM) on a fixed batch take the
loss below 1e-6 in a few dozen iterations (``benchmarks/bench_identification.py``). Only small students are
supported: the normal matrix is ``[P, P]`` (N = M = 32: P = 2528, 51 MB); it is assembled from a factored Jacobian
(:func:`jacobian_parts`), solved by Cholesky.

Jacobian of the residuals ``r = ŷ - y`` (rows ``(b, t, o)``) with respect to the flat parameters of
:class:`~rnnattn.training.fast.StackedGatedRNN` (``W_in, nu, W_out, D``):
    dr_o/dh_n = G_on = sum_k D_ok (b_x,k W_m^out_kn + b_m,k W_x^out_kn);
    dh_t,n/dW_m^in_nj = V^m_t,nj = sum_{t'<=t} lam_n^(t-t') a_x,t'n z_t'j   (V^x with a_m);
    dh_t,n/dlam_n = q_t,n with q_t = lam q_{t-1} + h_{t-1};  dlam/dnu = -exp(nu) lam;
    dr_o/dW_m^out_kn = D_ok b_x,k h_n;  dr_o/dW_x^out_kn = D_ok b_m,k h_n;  dr_o/dD_o'k = [o = o'] g_k.
"""

from __future__ import annotations

import torch

MAX_PARAMETERS = 8000  # the [P, P] normal matrix and its solve; above this LM costs more than it saves
CHUNK = 32  # sequences per Jacobian block (a [CHUNK*T*d_out, P] float64 block: 4096 x 2528 = 83 MB at N = M = 32)


def jacobian_parts(
    params: dict[str, torch.Tensor], z: torch.Tensor, last_only: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Outputs and the Jacobian of one model in factored form (unstacked parameters ``W_in [2, N, d+1]``,
    ``nu [N]``, ``W_out [2, M, N]``, ``D [d_out, M]``; inputs ``z [B, T, d+1]`` with the constant 1 appended).

    The ``W^out`` columns (``2MN`` of the ``P`` columns: 2048 of 2528 at N = M = 32) factor as
    ``dr_o/dW^out_skn = D_ok X_skn`` with ``X_m = b_x ⊗ h``, ``X_x = b_m ⊗ h``; they are returned as ``X`` and never
    multiplied out (``d_out`` times fewer rows for the normal matrix, :func:`_normal_equations`).

    Returns:
        ``yhat [B, T', d_out]``, ``J_rest [R, d_out, Q]`` (columns: ``W_in``, ``nu``, ``D`` in flat order,
        ``Q = 2N(d+1) + N + d_out M``) and ``X [R, 2, M, N]``; rows ``R = B T'`` in ``(b, t)`` order, ``T' = 1``
        (last step) when ``last_only`` else ``T``.
    """
    W_in, nu, W_out, D = params["W_in"], params["nu"], params["W_out"], params["D"]
    B, T, d1 = z.shape
    N, M, O = nu.shape[0], W_out.shape[1], D.shape[0]
    lam = torch.exp(-torch.exp(nu))
    am, ax = z @ W_in[0].T, z @ W_in[1].T  # [B, T, N]
    u = am * ax
    h, q = torch.empty_like(u), torch.zeros_like(u)
    Vm = torch.empty(B, T, N, d1, dtype=z.dtype, device=z.device)
    Vx = torch.empty_like(Vm)
    h[:, 0] = u[:, 0]
    Vm[:, 0] = ax[:, 0, :, None] * z[:, 0, None, :]
    Vx[:, 0] = am[:, 0, :, None] * z[:, 0, None, :]
    lam2 = lam[:, None]
    for t in range(1, T):
        h[:, t] = lam * h[:, t - 1] + u[:, t]
        q[:, t] = lam * q[:, t - 1] + h[:, t - 1]
        Vm[:, t] = lam2 * Vm[:, t - 1] + ax[:, t, :, None] * z[:, t, None, :]
        Vx[:, t] = lam2 * Vx[:, t - 1] + am[:, t, :, None] * z[:, t, None, :]
    if last_only:
        h, q, Vm, Vx = h[:, -1:], q[:, -1:], Vm[:, -1:], Vx[:, -1:]
    Tp = h.shape[1]
    R = B * Tp
    h, q = h.reshape(R, N), q.reshape(R, N)
    bm, bx = h @ W_out[0].T, h @ W_out[1].T  # [R, M]
    g = bm * bx
    yhat = g @ D.T
    G = torch.einsum("ok,rk,kn->ron", D, bx, W_out[0]) + torch.einsum("ok,rk,kn->ron", D, bm, W_out[1])
    # d lam / d nu, defined as 0 where lam == 0 (nu = +inf would give inf * 0)
    dlam = torch.where(lam == 0, torch.zeros_like(lam), -torch.exp(nu) * lam)
    eye = torch.eye(O, dtype=z.dtype, device=z.device)
    rest = [
        (G[..., None] * Vm.reshape(R, 1, N, d1)).reshape(R, O, N * d1),
        (G[..., None] * Vx.reshape(R, 1, N, d1)).reshape(R, O, N * d1),
        G * (q * dlam)[:, None, :],
        (eye[None, :, :, None] * g[:, None, None, :]).reshape(R, O, O * M),
    ]
    X = torch.stack([bx[:, :, None] * h[:, None, :], bm[:, :, None] * h[:, None, :]], dim=1)  # [R, 2, M, N]
    return yhat.reshape(B, Tp, O), torch.cat(rest, dim=-1), X


def residual_jacobian(
    params: dict[str, torch.Tensor], z: torch.Tensor, last_only: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and the dense Jacobian ``J [B*T'*d_out, P]`` (rows ``(b, t, o)``, columns in the flat parameter
    order) assembled from :func:`jacobian_parts` (used by tests; LM itself keeps the factored form)."""
    yhat, rest, X = jacobian_parts(params, z, last_only)
    R, O, _ = rest.shape
    D = params["D"]
    n_head = params["W_in"].numel() + params["nu"].numel()
    wout = (D[None, :, None, :, None] * X[:, None]).reshape(R, O, -1)  # dr_o/dW^out_skn = D_ok X_skn
    return yhat, torch.cat([rest[..., :n_head], wout, rest[..., n_head:]], dim=-1).reshape(R * O, -1)


def _split(flat: torch.Tensor, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    out, o = {}, 0
    for name, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        out[name] = flat[o : o + n].view(shape)
        o += n
    return out


def _normal_equations(flat, shapes, z, y, last_only):
    """``J^T J [P, P]``, ``J^T r [P]`` and ``sum r^2`` over the batch, accumulated in chunks of sequences.

    Block form (``J = [J_rest | J_W]``, ``J_W[(r,o), (s,k,n)] = D_ok X[r,s,k,n]``): ``J_W^T J_W = (X^T X) ∘
    (D^T D)_kk'`` (X has ``R`` rows, not ``R d_out``), ``J_rest^T J_W = sum_r Y_rkq X_rskn`` with ``Y = D^T``
    applied to ``J_rest``, ``J_W^T r = sum_r X_rskn (r D)_rk``. About 4x fewer FLOPs than ``J^T J`` from the
    dense ``J`` at N = M = 32 (measured in ``benchmarks/bench_identification.py``).
    """
    p = _split(flat, shapes)
    D = p["D"]
    n_head = p["W_in"].numel() + p["nu"].numel()
    n_w = p["W_out"].numel()
    P = flat.numel()
    Q = P - n_w
    A = torch.zeros(P, P, dtype=flat.dtype, device=flat.device)
    g = torch.zeros(P, dtype=flat.dtype, device=flat.device)
    DtD = D.T @ D  # [M, M]
    sq = 0.0
    rest_idx = torch.cat([torch.arange(n_head), torch.arange(n_head + n_w, P)]).to(flat.device)
    A_rest, A_cross, A_ww = A.new_zeros(Q, Q), A.new_zeros(Q, n_w), A.new_zeros(n_w, n_w)
    g_rest, g_w = g.new_zeros(Q), g.new_zeros(n_w)
    for s in range(0, z.shape[0], CHUNK):
        yh, rest, X = jacobian_parts(p, z[s : s + CHUNK], last_only)
        r = (yh - y[s : s + CHUNK]).reshape(-1, D.shape[0])  # [R, O]
        R = r.shape[0]
        Jr = rest.reshape(R * D.shape[0], Q)
        A_rest.addmm_(Jr.T, Jr)
        g_rest.addmv_(Jr.T, r.reshape(-1))
        Xf = X.reshape(R, n_w)
        A_ww.addmm_(Xf.T, Xf)
        Y = torch.einsum("ok,roq->rkq", D, rest)  # [R, M, Q]
        A_cross += torch.einsum("rkq,rskn->qskn", Y, X).reshape(Q, n_w)
        g_w += torch.einsum("rskn,rk->skn", X, r @ D).reshape(-1)
        sq += float((r * r).sum())
    M, N = D.shape[1], n_w // (2 * D.shape[1])
    A_ww.view(2, M, N, 2, M, N).mul_(DtD[None, :, None, None, :, None])
    w = slice(n_head, n_head + n_w)
    A[w, w] = A_ww
    A[rest_idx[:, None], rest_idx[None, :]] = A_rest
    A[rest_idx, w] = A_cross
    A[w, rest_idx] = A_cross.T
    g[rest_idx], g[w] = g_rest, g_w
    return A, g, sq


def _sum_sq(flat, shapes, z, y, last_only) -> float:
    p = _split(flat, shapes)
    W_in, nu, W_out, D = p["W_in"], p["nu"], p["W_out"], p["D"]
    lam = torch.exp(-torch.exp(nu))
    u = (z @ W_in[0].T) * (z @ W_in[1].T)
    if last_only:
        e = torch.arange(z.shape[1] - 1, -1, -1, dtype=z.dtype, device=z.device)
        h = (u * torch.pow(lam[None, :], e[:, None])).sum(dim=1, keepdim=True)
    else:
        h = torch.empty_like(u)
        h[:, 0] = u[:, 0]
        for t in range(1, z.shape[1]):
            h[:, t] = lam * h[:, t - 1] + u[:, t]
    yhat = ((h @ W_out[0].T) * (h @ W_out[1].T)) @ D.T
    return float((yhat - y).pow(2).sum())


def freeze_small(flat: torch.Tensor, shapes: dict[str, tuple[int, ...]], rtol: float) -> torch.Tensor:
    """Set the entries of ``W_in``, ``W_out`` and ``D`` with ``|p| <= rtol * max|p|`` of their tensor to exactly 0
    (in place) and return the mask ``[P]`` of the entries LM may move (``nu`` always may)."""
    active = torch.ones_like(flat, dtype=torch.bool)
    parts, act = _split(flat, shapes), _split(active, shapes)
    for name, v in parts.items():
        if name == "nu":
            continue
        small = v.abs() <= rtol * float(v.abs().max())
        v.masked_fill_(small, 0.0)
        act[name].masked_fill_(small, False)
    return active


def _solve_spd(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``A x = b`` for the damped normal matrix: Cholesky (half the work of LU) when ``A`` is numerically
    positive definite, else LU."""
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        return torch.cholesky_solve(b[:, None], L)[:, 0]
    return torch.linalg.solve(A, b)


@torch.no_grad()
def levenberg_marquardt(
    flat: torch.Tensor,
    shapes: dict[str, tuple[int, ...]],
    z: torch.Tensor,
    y: torch.Tensor,
    iters: int,
    mu: float = 1e-3,
    last_only: bool = False,
    active: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Run ``iters`` LM iterations in place on ``flat [P]`` (float64) for the fixed batch ``z [B, T, d+1]``,
    ``y [B, T', d_out]``; with ``active [P]`` (bool) only those entries move (the step solves the normal equations
    restricted to them: a sparse student stays sparse, :func:`freeze_small`).

    Step: ``(J^T J + mu diag(J^T J)) delta = -J^T r`` (Marquardt scaling, plus a 1e-12 floor so dead columns stay
    solvable); accepted steps divide ``mu`` by 3, rejected ones multiply it by 4 and retry.

    Returns:
        ``(loss, mu)``: the batch loss ``0.5 mean r^2`` after the last iteration and the damping to continue with.
    """
    P = flat.numel()
    if P > MAX_PARAMETERS:
        raise ValueError(
            f"Levenberg-Marquardt polishing: {P} parameters is too many (at most {MAX_PARAMETERS}); use a smaller "
            "student or polish with L-BFGS"
        )
    n_res = y.numel()
    idx = None if active is None else active.nonzero()[:, 0]
    sq = _sum_sq(flat, shapes, z, y, last_only)
    for _ in range(iters):
        A, g, sq = _normal_equations(flat, shapes, z, y, last_only)
        if idx is not None:
            A, g = A[idx[:, None], idx[None, :]], g[idx]
        dg = A.diagonal().clone()
        dg += 1e-12 * float(dg.max()) + 1e-300
        old = flat.clone()
        while True:
            A_d = A.clone()
            A_d.diagonal().add_(mu * dg)
            delta = _solve_spd(A_d, -g)
            flat.copy_(old)
            if idx is None:
                flat.add_(delta)
            else:
                flat.index_add_(0, idx, delta)
            new = _sum_sq(flat, shapes, z, y, last_only)
            if new < sq:
                mu, sq = max(mu / 3, 1e-12), new
                break
            mu *= 4
            if mu > 1e10 or not torch.isfinite(delta).all():
                flat.copy_(old)  # no decrease possible at this precision: stop
                return 0.5 * sq / n_res, min(mu, 1e10)
    return 0.5 * sq / n_res, mu
