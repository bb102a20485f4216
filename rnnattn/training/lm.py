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
    ``dr_o/dW^out_skn = D_ok X_skn`` with ``X_skn = C_s,k h_n`` (row-wise outer products, :func:`kron_rows`),
    ``C = [b_x, b_m]``; only the factors are returned (``d_out`` times fewer rows for the normal matrix, and
    ``X^T X`` from the symmetric pair products of ``C`` and ``h``, :func:`_normal_equations`).

    Returns:
        ``yhat [B, T', d_out]``, ``J_rest [R, d_out, Q]`` (columns: ``W_in``, ``nu``, ``D`` in flat order,
        ``Q = 2N(d+1) + N + d_out M``), ``C [R, 2M]`` and ``h [R, N]``; rows ``R = B T'`` in ``(b, t)`` order,
        ``T' = 1`` (last step) when ``last_only`` else ``T``.
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
    return yhat.reshape(B, Tp, O), torch.cat(rest, dim=-1), torch.cat([bx, bm], dim=1), h


def kron_rows(C: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``X [R, 2, M, N]`` with ``X[r, s, k, n] = C[r, s M + k] h[r, n]`` (``C [R, 2M]``, ``h [R, N]``)."""
    R, N = h.shape
    return (C[:, :, None] * h[:, None, :]).view(R, 2, -1, N)


def _pair_products(x: torch.Tensor, bufs: dict, name: str) -> torch.Tensor:
    """``[R, n(n+1)/2]`` products ``x[:, i] x[:, j]`` for ``i <= j`` in ``torch.triu_indices(n, n)`` order, written
    into a kept buffer one row block ``i`` at a time (gathering the columns first costs ~10x more, measured)."""
    R, n = x.shape
    out = _buffer(bufs, name, (R, n * (n + 1) // 2), x)
    o = 0
    for i in range(n):
        torch.mul(x[:, i : i + 1], x[:, i:], out=out[:, o : o + n - i])
        o += n - i
    return out


def _pair_index(n: int, device: torch.device) -> torch.Tensor:
    """``[n, n]`` map from ``(i, j)`` to the position of ``(min, max)`` in ``torch.triu_indices(n, n)``."""
    iu = torch.triu_indices(n, n, device=device)
    idx = torch.empty(n, n, dtype=torch.long, device=device)
    pos = torch.arange(iu.shape[1], device=device)
    idx[iu[0], iu[1]] = pos
    idx[iu[1], iu[0]] = pos
    return idx


def residual_jacobian(
    params: dict[str, torch.Tensor], z: torch.Tensor, last_only: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and the dense Jacobian ``J [B*T'*d_out, P]`` (rows ``(b, t, o)``, columns in the flat parameter
    order) assembled from :func:`jacobian_parts` (used by tests; LM itself keeps the factored form)."""
    yhat, rest, C, h = jacobian_parts(params, z, last_only)
    X = kron_rows(C, h)
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


def _buffer(bufs: dict, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A kept buffer: fresh large tensors cost more in page faults than the math written into them (measured:
    the ``[M, R Q]`` product of :func:`_cross_terms` takes 68 ms into a new tensor, 15 ms into a kept one)."""
    t = bufs.get(name)
    if t is None or t.shape != shape or t.dtype != like.dtype or t.device != like.device:
        t = bufs[name] = like.new_empty(shape)
    return t


def _cross_terms(rest, C, h, D, r, A_cross, g_w, bufs: dict) -> None:
    """Add ``J_rest^T J_W`` to ``A_cross [Q, 2MN]`` and ``J_W^T r`` to ``g_w [2MN]`` for one chunk, one matmul per
    gating unit ``k``: ``sum_r Y[k, r, q] X[k, r, (s, n)]`` with ``Y[k] = (D^T J_rest)[k]`` and ``X[k, r, s, n] =
    C[r, s M + k] h[r, n]``, both built in that ``k``-major layout (no transposed copies of the large ``Y``)."""
    R, O, Q = rest.shape
    M, N = D.shape[1], h.shape[1]
    Y = _buffer(bufs, "Y", (M, R * Q), h)
    torch.mm(D.T, rest.transpose(0, 1).reshape(O, R * Q), out=Y)
    Y = Y.view(M, R, Q)
    X = _buffer(bufs, "X", (M, R, 2, N), h)
    torch.mul(C.view(R, 2, M).permute(2, 0, 1)[..., None], h[None, :, None, :], out=X)
    Xk = X.view(M, R, 2 * N)
    A_cross.view(Q, 2, M, N).add_(torch.bmm(Y.transpose(1, 2), Xk).view(M, Q, 2, N).permute(1, 2, 0, 3))
    g_w.view(2, M, N).add_(torch.bmm((r @ D).T[:, None, :], Xk).view(M, 2, N).permute(1, 0, 2))


def _normal_equations(flat, shapes, z, y, last_only, bufs: dict | None = None):
    """``J^T J [P, P]``, ``J^T r [P]`` and ``sum r^2`` over the batch, accumulated in chunks of sequences.

    Block form (``J = [J_rest | J_W]``, ``J_W[(r,o), (s,k,n)] = D_ok X[r,s,k,n]``, ``X = C ⊗ h`` row-wise):
    ``J_W^T J_W = (X^T X) ∘ (D^T D)_kk'`` (X has ``R`` rows, not ``R d_out``), ``J_rest^T J_W = sum_r Y_rkq X_rskn``
    with ``Y = D^T`` applied to ``J_rest``, ``J_W^T r = sum_r X_rskn (r D)_rk``. ``X^T X`` itself is
    ``sum_r (C_r C_r^T) ⊗ (h_r h_r^T)``: one matmul of the pair products ``C_ri C_rj`` (``i <= j``) against
    ``h_rn h_rn'`` (``n <= n'``), ~4x fewer FLOPs than ``X^T X`` (2.25 vs 8.6 GFLOP per chunk at N = M = 32),
    then one gather into the ``[2MN, 2MN]`` block.
    """
    p = _split(flat, shapes)
    D = p["D"]
    n_head = p["W_in"].numel() + p["nu"].numel()
    n_w = p["W_out"].numel()
    P = flat.numel()
    Q = P - n_w
    M, N = D.shape[1], n_w // (2 * D.shape[1])
    dev = flat.device
    n_cc, n_hh = M * (2 * M + 1), N * (N + 1) // 2
    bufs = bufs if bufs is not None else {}
    sq = 0.0
    A_rest, A_cross = flat.new_zeros(Q, Q), flat.new_zeros(Q, n_w)
    A_pairs = flat.new_zeros(n_cc, n_hh)
    g_rest, g_w = flat.new_zeros(Q), flat.new_zeros(n_w)
    for s in range(0, z.shape[0], CHUNK):
        yh, rest, C, h = jacobian_parts(p, z[s : s + CHUNK], last_only)
        r = (yh - y[s : s + CHUNK]).reshape(-1, D.shape[0])  # [R, O]
        R = r.shape[0]
        Jr = rest.reshape(R * D.shape[0], Q)
        A_rest.addmm_(Jr.T, Jr)
        g_rest.addmv_(Jr.T, r.reshape(-1))
        A_pairs.addmm_(_pair_products(C, bufs, "KC").T, _pair_products(h, bufs, "KH"))
        _cross_terms(rest, C, h, D, r, A_cross, g_w, bufs)
        sq += float((r * r).sum())
    pc, ph = _pair_index(2 * M, dev), _pair_index(N, dev)
    A_ww = A_pairs[pc[:, None, :, None], ph[None, :, None, :]].reshape(n_w, n_w)  # rows (s M + k, n)
    A_ww.view(2, M, N, 2, M, N).mul_((D.T @ D)[None, :, None, None, :, None])
    rest_idx = torch.cat([torch.arange(n_head), torch.arange(n_head + n_w, P)]).to(dev)
    w = slice(n_head, n_head + n_w)
    A = flat.new_zeros(P, P)
    A[w, w] = A_ww
    A[rest_idx[:, None], rest_idx[None, :]] = A_rest
    A[rest_idx, w] = A_cross
    A[w, rest_idx] = A_cross.T
    g = flat.new_zeros(P)
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
    bufs: dict[str, torch.Tensor] = {}
    for _ in range(iters):
        A, g, sq = _normal_equations(flat, shapes, z, y, last_only, bufs)
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
