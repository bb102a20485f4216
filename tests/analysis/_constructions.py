"""Exact constructions written out from §2.1 (Fig. 1), independent of rnnattn.constructions, plus the scrambling
used by the rewrite tests (dead padding, permutations, rescalings, m/x swaps, split gating rows)."""

from __future__ import annotations

import math

import numpy as np
import torch

from rnnattn import GatedLinearRNN, GatedLinearRNNConfig, LinearSelfAttention, LinearSelfAttentionConfig


def random_lsa(d: int, seed: int = 0) -> LinearSelfAttention:
    torch.manual_seed(seed)
    return LinearSelfAttention(LinearSelfAttentionConfig(d_input=d)).to(torch.float64)


def gated_from_arrays(W_in, nu, W_out, D, metadata=None) -> GatedLinearRNN:
    W_in, W_out, D, nu = (np.asarray(a, dtype=np.float64) for a in (W_in, W_out, D, nu))
    d = W_in.shape[2] - 1
    m = GatedLinearRNN(GatedLinearRNNConfig(d, W_in.shape[1], W_out.shape[1], D.shape[0])).to(torch.float64)
    with torch.no_grad():
        m.W_in.copy_(torch.from_numpy(W_in))
        m.nu.copy_(torch.from_numpy(nu))
        m.W_out.copy_(torch.from_numpy(W_out))
        m.D.copy_(torch.from_numpy(D))
    m.metadata = dict(metadata or {})
    return m


def fig1(lsa: LinearSelfAttention) -> GatedLinearRNN:
    """Spec §2.1: d^2 + d hidden (KV (i,j) = sum v_i k_j with lambda 1, query j with lambda 0), d^2 gating rows."""
    WQ, WK, WV = (getattr(lsa, n)[0].detach().double().numpy() for n in ("W_Q", "W_K", "W_V"))
    d = WQ.shape[1]
    N, M = d * d + d, d * d
    W_in = np.zeros((2, N, d + 1))
    W_out = np.zeros((2, M, N))
    D = np.zeros((d, M))
    nu = np.full(N, math.inf)
    for i in range(d):
        for j in range(d):
            r = i * d + j
            W_in[0, r, :d], W_in[1, r, :d] = WK[j], WV[i]
            nu[r] = -math.inf
            W_out[0, r, r] = 1.0
            W_out[1, r, d * d + j] = 1.0
            D[i, r] = 1.0
    for j in range(d):
        W_in[0, d * d + j, :d] = WQ[j]
        W_in[1, d * d + j, d] = 1.0
    return gated_from_arrays(W_in, nu, W_out, D)


def weights(m: GatedLinearRNN) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    g = lambda t: t.detach().double().numpy().copy()  # noqa: E731
    return g(m.W_in), g(m.nu), g(m.W_out), g(m.D)


def pad_and_scramble(
    m: GatedLinearRNN, extra_hidden: int, extra_gating: int, seed: int = 0
) -> GatedLinearRNN:
    """Add dead neurons/rows of every kind, then permute, rescale (c, 1/c) and swap m/x rows at random."""
    rng = np.random.default_rng(seed)
    W_in, nu, W_out, D = weights(m)
    N, M, d1, o = W_in.shape[1], W_out.shape[1], W_in.shape[2], D.shape[0]
    # extra hidden neurons: a third with zero W_m_in row, a third with zero W_x_in row, a third never read
    E = extra_hidden
    W_in_e = rng.standard_normal((2, E, d1))
    kinds = np.arange(E) % 3
    W_in_e[0, kinds == 0] = 0.0
    W_in_e[1, kinds == 1] = 0.0
    nu_e = rng.standard_normal(E)
    W_in = np.concatenate([W_in, W_in_e], axis=1)
    nu = np.concatenate([nu, nu_e])
    # existing gating rows also read the input-dead extra neurons (they are exactly 0, so the output is
    # unchanged)
    W_out = np.concatenate([W_out, np.zeros((2, M, E))], axis=2)
    dead_in = np.flatnonzero(kinds != 2) + N
    W_out[:, :, dead_in] = rng.standard_normal((2, M, dead_in.size))
    # extra gating rows: zero D column, zero W_m_out row, or reading only input-dead neurons (removed in round
    # 2)
    F = extra_gating
    W_out_e = rng.standard_normal((2, F, N + E))
    D_e = rng.standard_normal((o, F))
    gk = np.arange(F) % 3
    D_e[:, gk == 0] = 0.0
    W_out_e[0, gk == 1] = 0.0
    live = np.setdiff1d(np.arange(N + E), dead_in)
    for k in np.flatnonzero(gk == 2):
        W_out_e[:, k, live] = 0.0  # reads only neurons that never receive input
    W_out = np.concatenate([W_out, W_out_e], axis=1)
    D = np.concatenate([D, D_e], axis=1)
    # scramble: permutations, (c, 1/c) rescaling, m/x swaps
    hp, gp = rng.permutation(N + E), rng.permutation(M + F)
    W_in, nu, W_out, D = W_in[:, hp], nu[hp], W_out[:, gp][:, :, hp], D[:, gp]
    for W in (W_in, W_out):
        n = W.shape[1]
        c = rng.uniform(0.3, 3.0, n) * rng.choice([-1.0, 1.0], n)
        W[0] *= c[:, None]
        W[1] /= c[:, None]
        swap = rng.random(n) < 0.5
        W[:, swap] = W[::-1][:, swap]
    return gated_from_arrays(W_in, nu, W_out, D)


def split_row(m: GatedLinearRNN, row: int, seed: int = 0) -> GatedLinearRNN:
    """Replace gating row ``row`` (kernel u v^T, D column c) by three rows whose kernels sum to the same:
    (u + p) v^T + p (s - v)^T - p s^T, each mixing KV and query neurons, D columns all c (proportional)."""
    rng = np.random.default_rng(seed)
    W_in, nu, W_out, D = weights(m)
    u, v, c = W_out[0, row].copy(), W_out[1, row].copy(), D[:, row].copy()
    N = u.size
    p, s = rng.standard_normal(N), rng.standard_normal(N)
    rows_m = [u + p, p, -p]
    rows_x = [v, s - v, s]
    keep = [k for k in range(W_out.shape[1]) if k != row]
    W_out = np.concatenate([W_out[:, keep], np.stack([np.stack(rows_m), np.stack(rows_x)])], axis=1)
    D = np.concatenate([D[:, keep], np.stack([c, c, c], axis=1)], axis=1)
    return gated_from_arrays(W_in, nu, W_out, D)
