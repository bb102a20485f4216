"""Shared checks and small helpers of the constructions (not public)."""

from __future__ import annotations

import math

import torch

from rnnattn.constructions.errors import ConstructionError
from rnnattn.models.attention import LinearSelfAttention
from rnnattn.models.gated_rnn import GatedLinearRNN

FORMS = ("full", "compact", "minimal")

#: bias that saturates a sigmoid *exactly*: σ(1000) == 1 and σ(−1000) == 0 in float32 and float64 (exp(−1000)
#: underflows to 0). Used for the gates Table 4 sets with ±∞ biases (f = 1 or 0, o = 1, g = 1) and for GLU
#: rows whose sigmoid must be 1: finite, so checkpoints do not flag the weights and optimisers never form ∞ −
#: ∞.
SATURATE = 1000.0
BASES = ("value", "input")


def lsa_weights(lsa: LinearSelfAttention, who: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W_Q, W_K, W_V)``, each ``[d, d]`` in the source's dtype, after checking the constructions apply.

    The constructions of Fig. 1 / §2.2 read the LSA output straight from the gated units (``D = I ⊗ 1ᵀ``): one
    head, no output projection and ``d_key = d_value = d_input``.
    """
    if not isinstance(lsa, LinearSelfAttention):
        raise ConstructionError(f"{who}: needs a LinearSelfAttention, got {type(lsa).__name__}")
    c = lsa.config
    if c.n_heads != 1:
        raise ConstructionError(
            f"{who}: the construction implements one head, this layer has {c.n_heads} "
            "(build one construction per head and add their outputs)"
        )
    if lsa.W_O is not None:
        raise ConstructionError(
            f"{who}: the construction has no output projection (W_O = I, Eq. 1); this layer has "
            f"W_O {tuple(lsa.W_O.shape)} (fold it into W_V for a single head)"
        )
    if c.dk != c.d_input or c.dv != c.d_input:
        raise ConstructionError(
            f"{who}: the construction needs d_key = d_value = d_input = {c.d_input}, got "
            f"d_key={c.dk}, d_value={c.dv}"
        )
    W = [w.detach()[0].clone() for w in (lsa.W_Q, lsa.W_K, lsa.W_V)]
    check_float(W[0].dtype, who)
    if not all(torch.isfinite(w).all() for w in W):
        raise ConstructionError(f"{who}: the attention weights contain NaN or Inf")
    return W[0], W[1], W[2]


def check_float(dtype: torch.dtype, who: str) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise ConstructionError(f"{who}: constructions work in float32 or float64, the source is {dtype}")


def check_form(form: str, basis: str, who: str) -> None:
    if form not in FORMS:
        raise ConstructionError(f"{who}: form must be one of {FORMS}, got {form!r}")
    if basis not in BASES:
        raise ConstructionError(f"{who}: basis must be one of {BASES}, got {basis!r}")


def value_basis_query(
    W_Q: torch.Tensor, W_K: torch.Tensor, W_V: torch.Tensor, who: str
) -> tuple[torch.Tensor, float]:
    """``Q' = W_V^{-T} W_K^T W_Q`` (§2.2), and the condition number of ``W_V``.

    Raises ConstructionError when ``W_V`` is singular to working precision (smallest singular value below ``d
    · eps · largest``): the compact forms store the key-values in the value basis and cannot undo a singular ``W_V``.
    """
    s = torch.linalg.svdvals(W_V)
    d = W_V.shape[0]
    tol = d * torch.finfo(W_V.dtype).eps * float(s.max()) if s.numel() else 0.0
    if s.numel() == 0 or float(s.max()) == 0.0 or float(s.min()) <= tol:
        cond = math.inf if float(s.min()) == 0.0 else float(s.max() / s.min())
        raise ConstructionError(
            f"{who}: W_V must be invertible for the value-basis compact/minimal forms (its "
            f"condition number is {cond:.3g}); use form='full' or basis='input'"
        )
    Qp = torch.linalg.solve(W_V.T, W_K.T @ W_Q)
    return Qp, float(s.max() / s.min())


def check_gated_rnn(rnn: GatedLinearRNN, who: str) -> None:
    if not isinstance(rnn, GatedLinearRNN):
        raise ConstructionError(f"{who}: needs a GatedLinearRNN, got {type(rnn).__name__}")
    if rnn.config.recurrence != "diagonal":
        raise ConstructionError(
            f"{who}: needs a diagonal recurrence (an LSTM forget gate / LRU decay is one number "
            "per unit); this GatedLinearRNN has a dense A"
        )
    check_float(rnn.W_in.dtype, who)
    for name, p in rnn.named_parameters():
        if torch.isnan(p).any() or (name != "nu" and torch.isinf(p).any()):
            raise ConstructionError(f"{who}: parameter {name} contains NaN or Inf")


def augmented_input_rows(rnn: GatedLinearRNN) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_m^in, W_x^in)`` as ``[N, d+1]`` over x̃ = (x, 1); a zero constant column if ``append_one`` is
    off."""
    Wm, Wx = rnn.W_m_in.detach(), rnn.W_x_in.detach()
    if not rnn.config.append_one:
        pad = Wm.new_zeros(Wm.shape[0], 1)
        Wm, Wx = torch.cat([Wm, pad], 1), torch.cat([Wx, pad], 1)
    return Wm.clone(), Wx.clone()


def resolve_eps(eps: float | None, dtype: torch.dtype, defaults: dict[torch.dtype, float], who: str) -> float:
    """The linearisation scale: ``eps`` if given (checked), else the per-dtype default."""
    if eps is None:
        return defaults[dtype]
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not (0.0 < float(eps) < math.inf):
        raise ConstructionError(f"{who}: eps must be a positive finite number, got {eps!r}")
    return float(eps)


def forget_bias(nu: torch.Tensor) -> torch.Tensor:
    """``logit(lambda)`` for ``lambda = exp(-exp(nu))``, computed without forming ``1 - lambda`` (accurate
    near 1): ``-e^nu - log(-expm1(-e^nu))``, clamped to ``±SATURATE`` so that ``lambda = 1`` / ``0`` stay
    exact (``nu = -inf`` / ``+inf``; also every ``lambda`` within 1e-400 of them, i.e. all that round to 1 /
    0)."""
    e = torch.exp(nu)
    with torch.no_grad():
        out = -e - torch.log(-torch.expm1(-e))
    out[torch.isposinf(nu)] = -SATURATE
    return out.clamp(-SATURATE, SATURATE)
