"""Why no GRU stack implements the gating of Eq. 2 or linear self-attention (App. A.3)."""

from __future__ import annotations

from typing import Any, NoReturn

from rnnattn.constructions.errors import ConstructionError

GRU_REASON = (
    "no stack of GRU layers can implement the multiplicative gating g(x) = (W_m x) ⊙ (W_x x) of Eq. 2, "
    "hence no linear self-attention (App. A.3): the only product in a GRU is "
    "h_t = (1 − z) ⊙ h_{t−1} + z ⊙ h̃, so one branch would have to be the update gate z and the other "
    "the candidate h̃, but z ≠ 0 then also scales the carried state h_{t−1}, which leaks into the "
    "product (and the reset gate r only gates the recurrent input V(r ⊙ h), not the current token's features)"
)


def attention_to_gru(lsa: Any = None, *args: Any, **kwargs: Any) -> NoReturn:
    """Always raises :class:`ConstructionError` with the App. A.3 reason (Table 3: GRU — / —).

    Kept as a function so that callers iterating over architectures get a one-line, explained refusal.
    """
    raise ConstructionError(f"attention_to_gru: {GRU_REASON}")


def gated_rnn_to_gru(rnn: Any = None, *args: Any, **kwargs: Any) -> NoReturn:
    """Always raises :class:`ConstructionError` (App. A.3), as :func:`attention_to_gru`."""
    raise ConstructionError(f"gated_rnn_to_gru: {GRU_REASON}")
