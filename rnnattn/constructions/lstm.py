"""LSTMs implementing linear self-attention (1 layer) and Eq. 2 (2 layers): App. A.2, Table 4.

Table 4 presumes linear ``c̃``, ``g``, ``o`` and ``tanh(c)``. With the real nonlinearities we use

* ``c̃ = tanh(δ b̂·x̃)`` with ``δ = eps²``: the cell state stays ``O(δ T)``, so ``tanh(c̃)`` and ``tanh(c)``
  are linear to relative ``O(δ² T²)`` — negligible; the readout multiplies by ``1/δ`` (rounding is
  *relative*, so a tiny ``δ`` costs no precision);
* the sigmoid linearisation of App. A.1 for ``g`` and ``o`` (``_linearise``): ``σ(ε a) − σ(0) ≈ ε a / 4`` with
  ``σ(0) = ½`` exact, i.e. reference cells with a zero pre-activation, subtracted in the next linear map. For
  the one-layer LSA construction both ``g`` and ``o`` are linearised, so each term needs the four cells ``(g,
  o) ∈ {σ(εâ), ½} × {σ(εĉ), ½}`` combined as ``(+, −, −, +)``; references are shared between terms.

The error is therefore ``≈ (ε a)² / 12`` per linearised sigmoid (``a`` the unit-norm projection of the gate
input), against rounding ``≈ u · 16 / ε²`` (one layer: two linearised gates in one product) or ``u · 4 / ε``
per layer (two layers: only ``g``), ``u`` the unit roundoff. The defaults sit near the optimum in float64; in
float32 no ``eps`` reaches 1e-4 for the one-layer construction (see ``DEFAULT_EPS`` and the closing note of
issue 3).

Forget gates ``f = 1`` / ``f = 0`` and ``o = 1`` (Table 4's ``±∞`` biases) use ``±SATURATE = ±1000``:
``σ(±1000)`` is exactly 1 / 0 in float32 and float64, and the weights stay finite. ``f = λ`` uses
``logit(λ)``.
"""

from __future__ import annotations

import torch

from rnnattn.constructions._common import (
    SATURATE,
    augmented_input_rows,
    check_form,
    check_gated_rnn,
    forget_bias,
    lsa_weights,
    resolve_eps,
    value_basis_query,
)
from rnnattn.constructions._linearise import key, orient, unit
from rnnattn.constructions.attention_rnn import pairs
from rnnattn.constructions.provenance import record
from rnnattn.models.attention import LinearSelfAttention
from rnnattn.models.classic import LSTM
from rnnattn.models.gated_rnn import GatedLinearRNN
from rnnattn.models.sequence import SequenceModel, SequenceModelConfig

#: default ``eps`` per dtype: near the measured optimum (float64 relative error ~1e-7 one layer, ~1e-9 two
#: layers; float32 ~1e-3 and ~4e-4 — float32 cannot reach 1e-4 here)
DEFAULT_EPS_ONE_LAYER = {torch.float64: 3e-4, torch.float32: 1e-2}
DEFAULT_EPS_TWO_LAYERS = {torch.float64: 1e-6, torch.float32: 5e-4}


class _CellBank:
    """LSTM cells with deduplication. Each gate is a row ``[D + 1]`` over ``(z, 1)``; ``HALF`` (all zeros)
    gives ``σ(0) = ½`` and ``ONE`` (bias ``SATURATE``) gives ``σ = 1``, both exactly."""

    def __init__(self, dim: int, dtype: torch.dtype) -> None:
        self.dim, self.dtype = dim, dtype
        self.rows: dict[str, list[torch.Tensor]] = {"f": [], "g": [], "c": [], "o": []}
        self._index: dict[bytes, int] = {}
        self.HALF = torch.zeros(dim + 1, dtype=dtype)
        self.ONE = torch.zeros(dim + 1, dtype=dtype)
        self.ONE[-1] = SATURATE

    def const_f(self, bias: float) -> torch.Tensor:
        r = torch.zeros(self.dim + 1, dtype=self.dtype)
        r[-1] = bias
        return r

    def add(self, f: torch.Tensor, g: torch.Tensor, c: torch.Tensor, o: torch.Tensor) -> int:
        k = key(torch.cat([f, g, c, o]))
        if k not in self._index:
            self._index[k] = len(self.rows["f"])
            for name, r in zip("fgco", (f, g, c, o), strict=True):
                self.rows[name].append(r)
        return self._index[k]

    def __len__(self) -> int:
        return len(self.rows["f"])

    def fill(self, lstm: LSTM) -> None:
        with torch.no_grad():
            for name in "fgco":
                R = torch.stack(self.rows[name])
                gp = lstm.gate(name)
                gp.U.copy_(R[:, :-1])
                gp.b.copy_(R[:, -1])
                gp.V.zero_()
                gp.b_h.zero_()


def _sequence(
    d_in: int,
    d_out: int,
    widths: list[int],
    readout: torch.Tensor,
    banks: list[_CellBank],
    dtype: torch.dtype,
) -> SequenceModel:
    layers, prev = [], d_in
    for w in widths:
        layers.append({"class": "LSTM", "d_input": prev, "d_hidden": w})
        prev = w
    model = SequenceModel(
        SequenceModelConfig(
            d_input=d_in,
            d_output=d_out,
            d_model=d_in,
            layers=tuple(layers),
            embed_bias=False,
            readout_bias=False,
        )
    ).to(dtype)
    with torch.no_grad():
        model.embed.weight.copy_(torch.eye(d_in, dtype=dtype))
        model.readout.weight.copy_(readout)
    for layer, bank in zip(model.layers, banks, strict=True):
        bank.fill(layer)
    return model


def lsa_terms(lsa: LinearSelfAttention, form: str, basis: str, who: str):
    """LSA as a sum of rank-1 terms: ``y_t = Σ_r out_r · (Σ_{t'≤t} (a_r·x)(b_r·x)) · (c_r·x_t)``.

    Returns ``(A, B, Cq [R, d], Out [d, R], info)``. ``full``: ``r = (i, j)``, ``a = W_K[j], b = W_V[i], c =
    W_Q[j], out = e_i`` (Table 4 left). ``compact``: ``a, b = F[min(i,j)], F[max(i,j)], c = P[j]``.
    ``minimal``: the ``d(d+1)/2`` rows of the minimal form, the diagonal ones as the rank-1 product ``F[i]·(F[i] −
    Σ_{j≠i} F[j])``. ``F, P, R`` as in :func:`attention_to_gated_rnn`'s compact forms.
    """
    W_Q, W_K, W_V = lsa_weights(lsa, who)
    d, dtype = W_Q.shape[0], W_Q.dtype
    info: dict = {}
    I = torch.eye(d, dtype=dtype)
    if form == "full":
        A = W_K.repeat(d, 1)
        B = W_V.repeat_interleave(d, 0)
        Cq = W_Q.repeat(d, 1)
        Out = I.repeat_interleave(d, 1)
        return A, B, Cq, Out, info
    info["basis"] = basis
    if basis == "value":
        P, cond = value_basis_query(W_Q, W_K, W_V, who)
        F, R = W_V, I
        info["W_V_condition"] = cond
    else:
        P, F, R = W_K.T @ W_Q, I, W_V
    rows = []
    if form == "compact":
        for i in range(d):
            for j in range(d):
                rows.append((F[min(i, j)], F[max(i, j)], P[j], R[:, i]))
    else:
        for a, b in pairs(d):
            if a != b:
                rows.append((F[a], F[b], P[a] + P[b], R[:, a] + R[:, b]))
        for i in range(d):
            rows.append((F[i], F[i] - (F.sum(0) - F[i]), P[i], R[:, i]))
    A, B, Cq, Out = (torch.stack([r[k] for r in rows]) for k in range(4))
    return A, B, Cq, Out.T, info


def attention_to_lstm(
    lsa: LinearSelfAttention, eps: float | None = None, form: str = "full", basis: str = "value"
) -> SequenceModel:
    r"""One LSTM layer approximating ``lsa`` (App. A.2, Table 4 left): identity embedding → LSTM → linear
    readout.

    Each term ``(a, b, c)`` of :func:`lsa_terms` (``d²`` for ``form="full"``, ``d(d+1)/2`` for ``"minimal"``)
    is a cell with ``f = 1`` accumulating ``g ⊙ c̃ ≈ (a·x)(b·x)``, read through ``o ≈ c·x``; with the
    linearisations of the module docstring each term uses four cells, fewer when references are shared (``2d²
    + 2d`` for ``"full"``; see :func:`~rnnattn.constructions.counts.construction_sizes`).

    Args:
        lsa: one head, no ``W_O``, ``d_key = d_value = d_input``; weights in float32 or float64.
        eps: gate pre-activation scale (``c̃`` uses ``eps²``); default ``DEFAULT_EPS_ONE_LAYER[dtype]``. The
            error is ``O(eps²)`` down to the rounding floor ``O(u / eps²)``.
        form, basis: which rank-1 decomposition of the attention (see :func:`lsa_terms`).
    Returns:
        ``SequenceModel`` (one ``LSTM`` layer) in the source's dtype.
    """
    who = "attention_to_lstm"
    check_form(form, basis, who)
    A, B, Cq, Out, info = lsa_terms(lsa, form, basis, who)
    d, dtype = A.shape[1], A.dtype
    eps = resolve_eps(eps, dtype, DEFAULT_EPS_ONE_LAYER, who)
    delta = eps * eps
    z = lambda r: torch.cat([r, r.new_zeros(1)])  # noqa: E731  (no bias: attention has no constant)
    terms = [
        (z(a), z(b), z(c), o)
        for a, b, c, o in zip(A, B, Cq, Out.T, strict=True)
        if all(float(torch.linalg.vector_norm(v)) for v in (a, b, c))
    ]

    def build(swap: bool):
        bank, coefs = _CellBank(d, dtype), []
        f = bank.const_f(SATURATE)
        for a, b, c, out in terms:
            if swap:
                a, b = b, a
            (ah, na), (bh, nb), (ch, nc) = unit(a), unit(b), unit(c)
            scale = 16.0 * na * nb * nc / (eps * eps * delta)
            for g, o, sign in (
                (eps * ah, eps * ch, 1),
                (bank.HALF, eps * ch, -1),
                (eps * ah, bank.HALF, -1),
                (bank.HALF, bank.HALF, 1),
            ):
                coefs.append((bank.add(f, g, delta * bh, o), sign * scale, out))
        return bank, coefs

    bank, coefs = min((build(False), build(True)), key=lambda bc: len(bc[0]))
    H = max(len(bank), 1)
    readout = torch.zeros(d, H, dtype=dtype)
    for idx, c, out in coefs:
        readout[:, idx] += c * out
    if not len(bank):
        bank.add(bank.const_f(SATURATE), bank.HALF, bank.HALF, bank.HALF)  # zero attention: one inert cell
    model = _sequence(d, d, [H], readout, [bank], dtype)
    return record(model, who, lsa, form=form, eps=eps, delta=delta, **info)


def gated_rnn_to_lstm(rnn: GatedLinearRNN, eps: float | None = None) -> SequenceModel:
    r"""Two LSTM layers approximating a diagonal gated RNN (Eq. 2; App. A.2, Table 4 right).

    Layer 1 (input gating and recurrence): per hidden unit ``n``, ``f = σ(logit λ_n) = λ_n``, ``o = 1``, ``g ⊙
    c̃ ≈ (W_m^in[n]·x̃)(W_x^in[n]·x̃)`` (biases supply the constant of x̃): a linearised cell and a reference
    cell, or one exact cell with ``g = 1`` when a factor is constant (the query units). Layer 2 (output
    gating): ``f = 0``, ``o = 1``, ``g ⊙ c̃ ≈ (W_m^out[k]·h)(W_x^out[k]·h)`` on ``h`` recovered linearly from
    layer 1; the readout applies ``D``.

    Args:
        rnn: a diagonal :class:`GatedLinearRNN` (float32/float64).
        eps: sigmoid pre-activation scale for unit-norm projections of unit-scale inputs / hidden states
            (``c̃`` uses ``eps²``); default ``DEFAULT_EPS_TWO_LAYERS[dtype]``. Hidden states of size ``s`` add
            an error ``≈ (eps s)² / 12``: lower ``eps`` for long sequences with large key-value sums.
    Returns:
        ``SequenceModel`` with two ``LSTM`` layers.
    """
    who = "gated_rnn_to_lstm"
    check_gated_rnn(rnn, who)
    dtype = rnn.W_in.dtype
    eps = resolve_eps(eps, dtype, DEFAULT_EPS_TWO_LAYERS, who)
    delta = eps * eps
    bank1, P1 = _gated_rnn_layer1(rnn, eps, delta)
    bank2, readout = _gated_rnn_layer2(rnn, P1, eps, delta)
    d, H1, H2 = rnn.config.d_input, P1.shape[1], readout.shape[1]
    model = _sequence(d, rnn.config.d_output, [H1, H2], readout, [bank1, bank2], dtype)
    return record(model, who, rnn, eps=eps, delta=delta)


def _gated_rnn_layer1(rnn: GatedLinearRNN, eps: float, delta: float) -> tuple[_CellBank, torch.Tensor]:
    r"""Layer 1 of :func:`gated_rnn_to_lstm`: input gating and recurrence ``h_t = λ ⊙ h_{t-1} + (W_m^in x̃) ⊙
    (W_x^in x̃)`` (Eq. 2) with ``f = λ_n``, ``o = 1``.

    Returns ``(bank1, P1 [N, H1])`` with ``ĥ = P1 h1 ≈ h``: per unit ``n`` a linearised cell (coefficient
    ``4 |s| |l| / (eps δ)``) and its ``g = ½`` reference (negated), or one exact cell ``g = 1`` (coefficient
    ``|l| / δ``) when a factor is constant; zero units get no cell.
    """
    d, N, dtype = rnn.config.d_input, rnn.config.n_hidden, rnn.W_in.dtype
    Wm, Wx = augmented_input_rows(rnn)
    fb = forget_bias(rnn.nu.detach())
    bank1 = _CellBank(d, dtype)
    P1_terms: list[list[tuple[int, float]]] = []
    oriented = iter(orient(list(zip(Wm, Wx, strict=True))))
    for n in range(N):
        if not float(torch.linalg.vector_norm(Wm[n])) or not float(torch.linalg.vector_norm(Wx[n])):
            P1_terms.append([])
            continue
        s, lin, exact = next(oriented)  # σ-factor, tanh-factor (constant folded in when exact)
        f = bank1.const_f(float(fb[n]))
        lh, nl = unit(lin)
        if exact:
            P1_terms.append([(bank1.add(f, bank1.ONE, delta * lh, bank1.ONE), nl / delta)])
            continue
        sh, ns = unit(s)
        scale = 4.0 * ns * nl / (eps * delta)
        P1_terms.append(
            [
                (bank1.add(f, eps * sh, delta * lh, bank1.ONE), scale),
                (bank1.add(f, bank1.HALF, delta * lh, bank1.ONE), -scale),
            ]
        )
    H1 = max(len(bank1), 1)
    if not len(bank1):
        bank1.add(bank1.const_f(-SATURATE), bank1.HALF, bank1.HALF, bank1.ONE)
    P1 = torch.zeros(N, H1, dtype=dtype)
    for n, ts in enumerate(P1_terms):
        for i, c in ts:
            P1[n, i] += c
    return bank1, P1


def _gated_rnn_layer2(
    rnn: GatedLinearRNN, P1: torch.Tensor, eps: float, delta: float
) -> tuple[_CellBank, torch.Tensor]:
    r"""Layer 2 of :func:`gated_rnn_to_lstm`: output gating ``y = D ((W_m^out ĥ) ⊙ (W_x^out ĥ))`` (Eq. 2) on
    ``ĥ = P1 h1`` with no memory (``f = 0``, ``o = 1``).

    ``P1 [N, H1]`` from :func:`_gated_rnn_layer1`. Returns ``(bank2, readout [d_output, H2])``: per output
    product ``k`` a linearised cell and its reference, read out with ``± 4 |s| |l| / (eps δ) · D[:, k]``.
    """
    H1, dtype = P1.shape[1], P1.dtype
    bank2 = _CellBank(H1, dtype)
    f0 = bank2.const_f(-SATURATE)
    Wm_o, Wx_o, D = rnn.W_m_out.detach(), rnn.W_x_out.detach(), rnn.D.detach()
    z = lambda r: torch.cat([r, r.new_zeros(1)])  # noqa: E731
    lift = lambda r: torch.cat([r[:-1] @ P1, r.new_zeros(1)])  # noqa: E731  (a row on ĥ as a row on h1)
    readout_terms = []
    prods = [(z(a), z(b)) for a, b in zip(Wm_o, Wx_o, strict=True)]
    oriented2 = iter(orient(prods))
    for k, (a, b) in enumerate(prods):
        if not float(torch.linalg.vector_norm(a)) or not float(torch.linalg.vector_norm(b)):
            continue
        s, lin, _ = next(oriented2)  # no constant on ĥ: never exact
        (sh, ns), (lh, nl) = unit(s), unit(lin)
        scale = 4.0 * ns * nl / (eps * delta)
        c = delta * lift(lh)
        readout_terms.append((bank2.add(f0, eps * lift(sh), c, bank2.ONE), scale, D[:, k]))
        readout_terms.append((bank2.add(f0, bank2.HALF, c, bank2.ONE), -scale, D[:, k]))
    H2 = max(len(bank2), 1)
    if not len(bank2):
        bank2.add(f0, bank2.HALF, bank2.HALF, bank2.ONE)
    readout = torch.zeros(rnn.config.d_output, H2, dtype=dtype)
    for i, c, col in readout_terms:
        readout[:, i] += c * col
    return bank2, readout
