"""LRUs implementing the gated RNN of Eq. 2 and linear self-attention (App. A.1, Table 3).

Sigmoid GLUs become the linear gatings of Eq. 2 through the linearisation of :mod:`._linearise` (``σ(ε a) −
σ(0) ≈ ε a / 4``, references ``σ(0) = ½`` exact, shared when they have the same linear branch; constant
factors exact through ``σ(1000) = 1``). The recurrence is used with real decays (``θ = 0`` via ``theta_log =
−inf``, ``γ = 1``, ``λ = exp(−exp(ν))`` with ``nu_log = ν`` of the gated RNN, so ``λ = 1`` / ``0`` stay exact)
and real ``B``, ``C``. The only approximation is the sigmoid: relative error ``≈ (ε a)² / 12`` per linearised
gating, ``a`` the unit-norm projection of its input, against rounding ``≈ 4 u / (ε a)``.

Layers needed (Table 3): Eq. 2 needs two vanilla (``"out"``) or In+Skip layers and one In+Out layer; attention
needs one In+Out or In+Skip layer (In+Skip's output GLU reads the current input, so queries need no state) and
two vanilla layers. The layers sit in a :class:`SequenceModel` with an identity embedding and the readout ``D
· (linear recombination of the GLU outputs)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rnnattn.constructions._common import (
    SATURATE,
    augmented_input_rows,
    check_form,
    check_gated_rnn,
    lsa_weights,
    resolve_eps,
)
from rnnattn.constructions._linearise import ProductBank, is_constant, register_products, to_matrix
from rnnattn.constructions.attention_rnn import attention_to_gated_rnn
from rnnattn.constructions.errors import ConstructionError
from rnnattn.constructions.provenance import record
from rnnattn.models.attention import LinearSelfAttention
from rnnattn.models.gated_rnn import GatedLinearRNN
from rnnattn.models.lru import LRU_VARIANTS
from rnnattn.models.sequence import SequenceModel, SequenceModelConfig

#: default ``eps`` per dtype: float64 relative error ~1e-9 on unit-scale inputs (T ≤ 64); float32 ~1e-4 at
#: best
DEFAULT_EPS = {torch.float64: 1e-6, torch.float32: 1e-3}


def _set_glu(glu, Wm, bm, Wx, bx) -> None:
    glu.W_m.weight.copy_(Wm)
    glu.W_m.bias.copy_(bm)
    glu.W_x.weight.copy_(Wx)
    glu.W_x.bias.copy_(bx)


def _set_recurrence(layer, nu: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor) -> None:
    layer.nu_log.copy_(nu)
    layer.theta_log.fill_(-math.inf)  # phase exactly 0: a real recurrence
    layer.gamma_log.zero_()  # γ = 1
    layer.B_re.copy_(B)
    layer.B_im.zero_()
    layer.C_re.copy_(C)
    layer.C_im.zero_()
    layer.D.copy_(D)


def _passthrough_glu(glu, n_out: int, d_x: int, dtype) -> None:
    """``σ(SATURATE) ⊙ [I 0] ỹ = [I 0] ỹ``: an exact identity on the first ``n_out`` entries."""
    d_m = glu.W_m.in_features
    _set_glu(
        glu,
        torch.zeros(n_out, d_m, dtype=dtype),
        torch.full((n_out,), SATURATE, dtype=dtype),
        torch.eye(n_out, d_x, dtype=dtype),
        torch.zeros(n_out, dtype=dtype),
    )


def _model(d: int, d_out: int, layers: list[dict], readout: torch.Tensor, dtype) -> SequenceModel:
    model = SequenceModel(
        SequenceModelConfig(
            d_input=d, d_output=d_out, d_model=d, layers=tuple(layers), embed_bias=False, readout_bias=False
        )
    ).to(dtype)
    with torch.no_grad():
        model.embed.weight.copy_(torch.eye(d, dtype=dtype))
        model.readout.weight.copy_(readout)
    return model


def _input_products(rnn: GatedLinearRNN, units: list[int]):
    Wm, Wx = augmented_input_rows(rnn)
    return [(Wm[n], Wx[n]) for n in units]


def _row(v: torch.Tensor, width: int) -> torch.Tensor:
    """A row over the first ``len(v)`` of ``width`` inputs plus a zero bias coordinate."""
    r = v.new_zeros(width + 1)
    r[: v.shape[0]] = v
    return r


def gated_rnn_to_lru(rnn: GatedLinearRNN, eps: float | None = None, variant: str = "out") -> SequenceModel:
    r"""LRU layers approximating a diagonal gated RNN (Eq. 2; App. A.1).

    * ``variant="out"`` (vanilla LRU, two layers, App. A.1, Table 3): layer 1 has ``λ = 0``, ``B = C = I`` so its output
    GLU
      acts on the token and plays ``g^in`` (GLU biases supply x̃'s constant); layer 2 has the gated RNN's ``λ``, ``B``
      recombining the GLU units into ``g^in``, ``C`` exposing ``h``, and its GLU plays ``g^out``.
    * ``variant="in_out"`` (one layer): input GLU = ``g^in``, recurrence, output GLU = ``g^out``.
    * ``variant="in_skip"`` (two layers): layer 1's input GLU + recurrence hold ``h`` and its output GLU passes it
      through (``σ(SATURATE) = 1``); layer 2's input GLU plays ``g^out`` and the rest passes through.

    Args:
        rnn: a diagonal :class:`GatedLinearRNN` (float32/float64).
        eps: sigmoid pre-activation scale for unit-norm projections of unit-scale inputs / hidden states; default
            ``DEFAULT_EPS[dtype]``. Large hidden states ``s`` add ``≈ (eps s)² / 12``.
        variant: one of ``"out"``, ``"in_out"``, ``"in_skip"``.
    Returns:
        ``SequenceModel`` of ``LRU`` layers in the source's dtype.
    """
    who = "gated_rnn_to_lru"
    check_gated_rnn(rnn, who)
    if variant not in LRU_VARIANTS:
        raise ConstructionError(f"{who}: variant must be one of {LRU_VARIANTS}, got {variant!r}")
    eps = resolve_eps(eps, rnn.W_in.dtype, DEFAULT_EPS, who)
    gb = _gating_banks(rnn, eps, variant)
    build = {"in_out": _lru_in_out, "out": _lru_out, "in_skip": _lru_in_skip}[variant]
    return record(build(rnn, gb), who, rnn, variant=variant, eps=eps)


@dataclass
class _GatingBanks:
    """The linearised gatings of Eq. 2 for :func:`gated_rnn_to_lru`.

    ``bank_in``: GLU for ``g^in`` over ``x̃``, ``R1`` units (``R1 ≥ N``, so ỹ can hold ``h``); ``P_in [N, R1]``
    with ``g^in ≈ P_in u`` (the recurrence's ``B``); ``bank_out``: GLU for ``g^out`` over ``h``, ``R2`` units;
    ``readout [d_output, R2] = D · (recombination of the GLU outputs)``.
    """

    bank_in: ProductBank
    P_in: torch.Tensor
    bank_out: ProductBank
    readout: torch.Tensor
    R1: int
    R2: int


def _gating_banks(rnn: GatedLinearRNN, eps: float, variant: str) -> _GatingBanks:
    """Linearise the input and output gatings of ``rnn``; ``g^out`` reads ``h`` from ``R1`` entries of ỹ, or
    from the ``N`` passed-through states for ``"in_skip"``."""
    dtype, N = rnn.W_in.dtype, rnn.config.n_hidden
    bank_in = ProductBank(rnn.config.d_input, dtype)
    t_in = register_products(bank_in, _input_products(rnn, list(range(N))), eps)
    R1 = max(len(bank_in), N)  # the GLU width is also ỹ's width, which must hold h
    bank_in.pad_to(R1)
    P_in = to_matrix(t_in, R1, dtype)  # g^in ≈ P_in u
    h_width = R1 if variant != "in_skip" else N  # where g^out reads h from
    bank_out = ProductBank(h_width, dtype)
    prods = [
        (_row(a, h_width), _row(b, h_width)) for a, b in zip(rnn.W_m_out.detach(), rnn.W_x_out.detach(), strict=True)
    ]
    t_out = register_products(bank_out, prods, eps)
    R2 = max(len(bank_out), 1)
    bank_out.pad_to(R2)
    readout = rnn.D.detach() @ to_matrix(t_out, R2, dtype)
    return _GatingBanks(bank_in, P_in, bank_out, readout, R1, R2)


def _lru_in_out(rnn: GatedLinearRNN, gb: _GatingBanks) -> SequenceModel:
    """One In+Out layer: input GLU = ``g^in``, recurrence ``λ``, ``B = P_in``, ``C = [I; 0]`` (ỹ[:N] = h),
    output GLU = ``g^out``."""
    dtype, d, N = rnn.W_in.dtype, rnn.config.d_input, rnn.config.n_hidden
    layer = {"class": "LRU", "d_input": d, "d_state": N, "variant": "in_out", "d_inner": gb.R1, "d_output": gb.R2}
    model = _model(d, rnn.config.d_output, [layer], gb.readout, dtype)
    L = model.layers[0]
    with torch.no_grad():
        _set_glu(L.glu_in, *gb.bank_in.matrices())
        _set_recurrence(L, rnn.nu.detach(), gb.P_in, torch.eye(gb.R1, N, dtype=dtype), torch.zeros(gb.R1, dtype=dtype))
        _set_glu(L.glu_out, *gb.bank_out.matrices())
    return model


def _lru_out(rnn: GatedLinearRNN, gb: _GatingBanks) -> SequenceModel:
    """Two vanilla layers: layer 1 ``λ = 0``, ``B = C = I`` (ỹ = x) with output GLU = ``g^in``; layer 2
    recurrence ``λ``, ``B = P_in``, ``C = [I; 0]``, output GLU = ``g^out``."""
    dtype, d, N = rnn.W_in.dtype, rnn.config.d_input, rnn.config.n_hidden
    layers = [
        {"class": "LRU", "d_input": d, "d_state": d, "variant": "out", "d_output": gb.R1},
        {"class": "LRU", "d_input": gb.R1, "d_state": N, "variant": "out", "d_output": gb.R2},
    ]
    model = _model(d, rnn.config.d_output, layers, gb.readout, dtype)
    L1, L2 = model.layers
    with torch.no_grad():
        I = torch.eye(d, dtype=dtype)
        _set_recurrence(L1, torch.full((d,), math.inf, dtype=dtype), I, I, torch.zeros(d, dtype=dtype))  # λ = 0: ỹ = x
        _set_glu(L1.glu_out, *gb.bank_in.matrices())
        expose = torch.eye(gb.R1, N, dtype=dtype)  # C: ỹ[:N] = h
        _set_recurrence(L2, rnn.nu.detach(), gb.P_in, expose, torch.zeros(gb.R1, dtype=dtype))
        _set_glu(L2.glu_out, *gb.bank_out.matrices())
    return model


def _lru_in_skip(rnn: GatedLinearRNN, gb: _GatingBanks) -> SequenceModel:
    """Two In+Skip layers: layer 1 input GLU = ``g^in`` + recurrence hold ``h``, output GLU passes it through
    (``σ(SATURATE) = 1``); layer 2 input GLU = ``g^out``, ``λ = 0``, ``B = C = I`` and a pass-through output
    GLU."""
    dtype, d, N, R1, R2 = rnn.W_in.dtype, rnn.config.d_input, rnn.config.n_hidden, gb.R1, gb.R2
    layers = [
        {"class": "LRU", "d_input": d, "d_state": N, "variant": "in_skip", "d_inner": R1, "d_output": N},
        {"class": "LRU", "d_input": N, "d_state": R2, "variant": "in_skip", "d_inner": R2, "d_output": R2},
    ]
    model = _model(d, rnn.config.d_output, layers, gb.readout, dtype)
    L1, L2 = model.layers
    with torch.no_grad():
        _set_glu(L1.glu_in, *gb.bank_in.matrices())
        _set_recurrence(L1, rnn.nu.detach(), gb.P_in, torch.eye(R1, N, dtype=dtype), torch.zeros(R1, dtype=dtype))
        _passthrough_glu(L1.glu_out, N, R1, dtype)  # y1 = h
        _set_glu(L2.glu_in, *gb.bank_out.matrices())
        I = torch.eye(R2, dtype=dtype)
        _set_recurrence(L2, torch.full((R2,), math.inf, dtype=dtype), I, I, torch.zeros(R2, dtype=dtype))
        _passthrough_glu(L2.glu_out, R2, R2, dtype)
    return model


def attention_to_lru(
    lsa: LinearSelfAttention,
    eps: float | None = None,
    variant: str = "in_out",
    form: str = "full",
    basis: str = "value",
) -> SequenceModel:
    r"""LRU layers approximating ``lsa`` (App. A.1): the gated RNN of :func:`attention_to_gated_rnn`
    (``form``, ``basis``) converted by :func:`gated_rnn_to_lru` for ``"in_out"`` (one layer) and ``"out"``
    (two layers); for ``"in_skip"`` one layer: input GLU → key-value products, ``λ = 1`` states, and the
    output GLU ``σ(W_m x_t) ⊙ (W_x ỹ_t)`` multiplies the (linearised) query of the current token with the
    key-values, so the query units of the gated RNN are not needed.

    Args:
        lsa: one head, no ``W_O``, ``d_key = d_value = d_input``.
        eps: as in :func:`gated_rnn_to_lru` (default ``DEFAULT_EPS[dtype]``).
        variant: ``"in_out"`` (default), ``"in_skip"`` or ``"out"``.
        form, basis: the gated-RNN construction used (see :func:`attention_to_gated_rnn`).
    Returns:
        ``SequenceModel`` of ``LRU`` layers; its provenance names ``lsa`` as the source.
    """
    who = "attention_to_lru"
    if variant not in LRU_VARIANTS:
        raise ConstructionError(f"{who}: variant must be one of {LRU_VARIANTS}, got {variant!r}")
    check_form(form, basis, who)
    lsa_weights(lsa, who)
    rnn = attention_to_gated_rnn(lsa, form, basis)
    extra = {k: v for k, v in rnn.metadata["construction"].items() if k in ("basis", "W_V_condition")}
    if variant != "in_skip":
        model = gated_rnn_to_lru(rnn, eps, variant)
        eps = model.metadata["construction"]["eps"]
    else:
        eps = resolve_eps(eps, rnn.W_in.dtype, DEFAULT_EPS, who)
        model = _attention_in_skip(rnn, eps)
    return record(model, who, lsa, variant=variant, form=form, eps=eps, **extra)


def _attention_in_skip(rnn: GatedLinearRNN, eps: float) -> SequenceModel:
    """One In+Skip layer from a gated RNN whose output gating multiplies *query units* (``λ = 0``, one
    constant factor, so a linear function of the current token) with other units.

    Input GLU + recurrence hold the ``kv`` (memory) units; the output GLU ``σ(W_m x_t) ⊙ (W_x ỹ_t)``
    multiplies the linearised query of the current token with them (:func:`_in_skip_output_products`).
    """
    dtype, d = rnn.W_in.dtype, rnn.config.d_input
    query = _query_units(rnn)
    kv = [n for n in range(rnn.config.n_hidden) if n not in query]
    bank_in = ProductBank(d, dtype)
    t_in = register_products(bank_in, _input_products(rnn, kv), eps)
    R1 = max(len(bank_in), len(kv), 1)
    bank_in.pad_to(R1)
    P_in = to_matrix(t_in, R1, dtype)
    bank_out, terms = _in_skip_output_products(rnn, query, kv, R1, eps)
    R2 = max(len(bank_out), 1)
    bank_out.pad_to(R2)
    readout = rnn.D.detach() @ to_matrix(terms, R2, dtype)
    layer = {"class": "LRU", "d_input": d, "d_state": max(len(kv), 1), "variant": "in_skip", "d_inner": R1}
    model = _model(d, rnn.config.d_output, [{**layer, "d_output": R2}], readout, dtype)
    L = model.layers[0]
    with torch.no_grad():
        _set_glu(L.glu_in, *bank_in.matrices())
        if kv:
            B, C, nu = P_in, torch.eye(R1, len(kv), dtype=dtype), rnn.nu.detach()[kv]
        else:  # no memory: one inert state (λ = 0, B = C = 0)
            B, C, nu = (
                torch.zeros(1, R1, dtype=dtype),
                torch.zeros(R1, 1, dtype=dtype),
                torch.full((1,), math.inf, dtype=dtype),
            )
        _set_recurrence(L, nu, B, C, torch.zeros(R1, dtype=dtype))
        _set_glu(L.glu_out, *bank_out.matrices())
    return model


def _query_units(rnn: GatedLinearRNN) -> dict[int, torch.Tensor]:
    """Units ``n`` with ``λ_n = 0`` and one constant input factor: ``h_n = c · (other · x̃)``, returned as
    ``n -> c · other`` (a linear form ``[d + 1]`` over ``x̃``)."""
    Wm, Wx = augmented_input_rows(rnn)
    lam = rnn.lam.detach()
    query: dict[int, torch.Tensor] = {}
    for n in range(rnn.config.n_hidden):
        if lam[n] == 0 and (is_constant(Wm[n]) or is_constant(Wx[n])):
            c, other = (Wm[n], Wx[n]) if is_constant(Wm[n]) else (Wx[n], Wm[n])
            query[n] = c[-1] * other
    return query


def _in_skip_output_products(
    rnn: GatedLinearRNN, query: dict[int, torch.Tensor], kv: list[int], R1: int, eps: float
) -> tuple[ProductBank, list]:
    """Output GLU of :func:`_attention_in_skip`: each output-gating row ``k`` of Eq. 2 must multiply query units
    ``q`` with memory units ``s``; it becomes ``σ(ε q·x̃) ⊙ (s · ỹ[:R1])`` (σ-branch on the token, linear branch
    on ỹ, exact when the query form is constant). Returns the bank and the per-row terms for ``to_matrix``."""
    dtype, d = rnn.W_in.dtype, rnn.config.d_input
    pos = {n: i for i, n in enumerate(kv)}
    bank_out = ProductBank(d, dtype, dim_x=R1)  # σ-branch reads the token, linear branch reads ỹ
    terms = []
    for k, (a, b) in enumerate(zip(rnn.W_m_out.detach(), rnn.W_x_out.detach(), strict=True)):
        qa, qb = [set(torch.nonzero(v).flatten().tolist()) for v in (a, b)]
        if not qa or not qb:
            terms.append([])
            continue
        if qb <= set(query) and not (qa & set(query)):
            q, s = b, a
        elif qa <= set(query) and not (qb & set(query)):
            q, s = a, b
        else:
            raise ConstructionError(
                f"attention_to_lru: In+Skip needs every output-gating row to multiply query "
                f"units (λ = 0, linear in the current token) with memory units; row {k} does not"
            )
        q_row = sum(q[n] * query[n] for n in query)  # over x̃
        lin = torch.zeros(R1 + 1, dtype=dtype)
        for n in kv:
            lin[pos[n]] = s[n]
        if is_constant(q_row):
            terms.append(bank_out.product(q_row, lin * q_row[-1], True, eps))
        else:
            terms.append(bank_out.product(q_row, lin, False, eps))
    return bank_out, terms
