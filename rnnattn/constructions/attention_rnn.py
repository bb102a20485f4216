"""Linear self-attention inside a gated linear RNN: Fig. 1, §2.2 and rnnattn's minimal form (not in the paper)."""

from __future__ import annotations

import math

import torch

from rnnattn.constructions._common import check_form, lsa_weights, value_basis_query
from rnnattn.constructions.provenance import record
from rnnattn.models.attention import LinearSelfAttention
from rnnattn.models.gated_rnn import GatedLinearRNN, GatedLinearRNNConfig


def pairs(d: int) -> list[tuple[int, int]]:
    """Upper-triangle index pairs ``(a, b)``, ``a <= b``, in row-major order: the symmetric KV units."""
    return [(a, b) for a in range(d) for b in range(a, d)]


def attention_to_gated_rnn(
    lsa: LinearSelfAttention, form: str = "full", basis: str = "value"
) -> GatedLinearRNN:
    r"""A diagonal :class:`GatedLinearRNN` computing exactly what ``lsa`` computes (Eq. 1 via Eq. 2).

    Writing ``v = W_V x, k = W_K x, q = W_Q x`` and ``x̃ = (x, 1)``:

    * ``form="full"`` (Fig. 1, §2.1): ``d² + d`` hidden units, ``d²`` gating rows. KV unit ``(i, j)`` (index
      ``i d + j``) reads ``k_j v_i`` with ``λ = 1``; query unit ``d² + j`` reads ``q_j · 1`` with ``λ = 0``; gating row
      ``(i, j)`` multiplies them and ``D = I ⊗ 1ᵀ`` sums over ``j``: ``y_i = Σ_j KV_ij q_j``.
    * ``form="compact"`` (§2.2): ``d(d+1)/2 + d`` hidden, ``d²`` gating rows. KV units ``S_ab = Σ v_a v_b``
      (``a ≤ b``), query units ``p = Q' x`` with ``Q' = W_V^{-T} W_K^T W_Q``; row ``(i, j)`` is ``S_{min,max}
      p_j``. Needs ``W_V`` invertible.
    * ``form="minimal"`` (rnnattn's, not in the paper): the same hidden units, ``d(d+1)/2`` gating rows:
    ``S_ab (p_a + p_b)`` for
      ``a < b`` (to outputs ``a`` and ``b``) and ``(S_ii − Σ_{j≠i} S_ij) p_i``.

    ``basis="input"`` (compact/minimal only) stores the raw second moments ``Σ x_a x_b`` and ``p = W_K^T W_Q
    x``, and applies ``W_V`` in the readout (``D = W_V (I ⊗ 1ᵀ)`` resp. its minimal analogue): same sizes, no
    inverse, so it works for any ``W_V``. The default ``basis="value"`` is the paper's.

    ``λ`` is exactly 1 (``nu = -inf``) or 0 (``nu = +inf``); every weight is a copy, product or (value basis)
    the solve for ``Q'``, in the source's dtype. Unit labels are in ``metadata["construction"]["labels"]``.

    Args:
        lsa: one head, no ``W_O``, ``d_key = d_value = d_input``.
        form: ``"full"``, ``"compact"`` or ``"minimal"``.
        basis: ``"value"`` (default) or ``"input"``; ignored by ``"full"``.
    Returns:
        ``GatedLinearRNN`` with ``d_input = d_output = d``; ``model(x)`` equals ``lsa(x)`` for ``x [B, T, d]``.
    Raises:
        ConstructionError: unsupported attention layer, or singular ``W_V`` for the value-basis compact forms.

    Example:
        >>> lsa = LinearSelfAttention(LinearSelfAttentionConfig(d_input=4)).double()
        >>> rnn = attention_to_gated_rnn(lsa, form="minimal")
        >>> (rnn.config.n_hidden, rnn.config.n_gating)
        (14, 10)
    """
    who = "attention_to_gated_rnn"
    check_form(form, basis, who)
    W_Q, W_K, W_V = lsa_weights(lsa, who)
    d, dtype = W_Q.shape[0], W_Q.dtype
    extra: dict = {"form": form}
    if form == "full":
        parts = _full(W_Q, W_K, W_V)
    else:
        extra["basis"] = basis
        if basis == "value":
            P, cond = value_basis_query(W_Q, W_K, W_V, who)
            F = W_V  # KV factors: S_ab = Σ (W_V[a]·x)(W_V[b]·x)
            R = torch.eye(d, dtype=dtype)  # readout mixes outputs with the identity
            extra["W_V_condition"] = cond
        else:
            P, F, R = W_K.T @ W_Q, torch.eye(d, dtype=dtype), W_V
        parts = _symmetric(F, P, R, minimal=(form == "minimal"))
    Wm_in, Wx_in, nu, Wm_out, Wx_out, D, labels = parts
    N, M = Wm_in.shape[0], Wm_out.shape[0]
    rnn = GatedLinearRNN(GatedLinearRNNConfig(d_input=d, n_hidden=N, n_gating=M, d_output=d)).to(dtype)
    with torch.no_grad():
        rnn.W_in.copy_(torch.stack([Wm_in, Wx_in]))
        rnn.nu.copy_(nu)
        rnn.W_out.copy_(torch.stack([Wm_out, Wx_out]))
        rnn.D.copy_(D)
    extra["labels"] = labels
    return record(rnn, who, lsa, **extra)


def _full(W_Q, W_K, W_V):
    d, dtype = W_Q.shape[0], W_Q.dtype
    N, M = d * d + d, d * d
    Wm_in = torch.zeros(N, d + 1, dtype=dtype)
    Wx_in = torch.zeros(N, d + 1, dtype=dtype)
    Wm_out = torch.zeros(M, N, dtype=dtype)
    Wx_out = torch.zeros(M, N, dtype=dtype)
    D = torch.zeros(d, M, dtype=dtype)
    for i in range(d):
        for j in range(d):
            r = i * d + j
            Wm_in[r, :d], Wx_in[r, :d] = W_K[j], W_V[i]  # KV_ij = Σ k_j v_i
            Wm_out[r, r], Wx_out[r, d * d + j] = 1, 1  # KV_ij · q_j
            D[i, r] = 1
    Wm_in[d * d :, :d] = W_Q
    Wx_in[d * d :, d] = (
        1  # query units: q_j · 1 (the constant lives in the x-branch, canonical form of Fig. 2A)
    )
    nu = torch.cat([torch.full((d * d,), -math.inf, dtype=dtype), torch.full((d,), math.inf, dtype=dtype)])
    labels = {
        "hidden": [f"kv[{i},{j}]" for i in range(d) for j in range(d)] + [f"query[{j}]" for j in range(d)],
        "gating": [f"kv[{i},{j}]*query[{j}]" for i in range(d) for j in range(d)],
    }
    return Wm_in, Wx_in, nu, Wm_out, Wx_out, D, labels


def _symmetric(F, P, R, minimal: bool):
    """Compact / minimal forms: KV units ``S_ab = Σ (F[a]·x)(F[b]·x)``, query units ``p = P x``, output ``y =
    R (S p)``. Value basis: ``F = W_V, P = Q', R = I``; input basis: ``F = I, P = W_K^T W_Q, R = W_V``."""
    d, dtype = F.shape[0], F.dtype
    prs = pairs(d)
    idx = {ab: n for n, ab in enumerate(prs)}
    n_kv = len(prs)
    N = n_kv + d
    Wm_in = torch.zeros(N, d + 1, dtype=dtype)
    Wx_in = torch.zeros(N, d + 1, dtype=dtype)
    for n, (a, b) in enumerate(prs):
        Wm_in[n, :d], Wx_in[n, :d] = F[a], F[b]
    Wm_in[n_kv:, :d] = P
    Wx_in[n_kv:, d] = 1
    nu = torch.cat([torch.full((n_kv,), -math.inf, dtype=dtype), torch.full((d,), math.inf, dtype=dtype)])
    S = lambda i, j: idx[(min(i, j), max(i, j))]  # noqa: E731  (hidden index of S_ij = S_ji)
    rows_m, rows_x, cols, glabels = [], [], [], []
    if not minimal:
        for i in range(d):
            for j in range(d):
                m = torch.zeros(N, dtype=dtype)
                x = torch.zeros(N, dtype=dtype)
                m[S(i, j)], x[n_kv + j] = 1, 1
                rows_m.append(m), rows_x.append(x), cols.append(R[:, i])
                glabels.append(f"S[{min(i, j)},{max(i, j)}]*p[{j}]")
    else:
        for a, b in prs:
            if a == b:
                continue
            m = torch.zeros(N, dtype=dtype)
            x = torch.zeros(N, dtype=dtype)
            m[S(a, b)], x[n_kv + a], x[n_kv + b] = 1, 1, 1  # S_ab (p_a + p_b) feeds outputs a and b
            rows_m.append(m), rows_x.append(x), cols.append(R[:, a] + R[:, b])
            glabels.append(f"S[{a},{b}]*(p[{a}]+p[{b}])")
        for i in range(d):
            m = torch.zeros(N, dtype=dtype)
            x = torch.zeros(N, dtype=dtype)
            for j in range(d):
                m[S(i, j)] = 1 if j == i else -1  # removes the S_ij p_i terms the pair rows added to output i
            x[n_kv + i] = 1
            rows_m.append(m), rows_x.append(x), cols.append(R[:, i])
            glabels.append(f"(S[{i},{i}]-sum_j S[{i},j])*p[{i}]")
    labels = {"hidden": [f"S[{a},{b}]" for a, b in prs] + [f"p[{j}]" for j in range(d)], "gating": glabels}
    return Wm_in, Wx_in, nu, torch.stack(rows_m), torch.stack(rows_x), torch.stack(cols, 1), labels
