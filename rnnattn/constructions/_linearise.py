"""The sigmoid linearisation of App. A.1, shared by the LSTM and LRU constructions (not public).

``σ(ε z) − σ(0) = ½ tanh(ε z / 2) = ε z / 4 · (1 − (ε z)² / 12 + O(ε⁴))``, and ``σ(0) = ½`` exactly in
floating point. So a product ``(α·z)(β·z)`` is obtained from two gated units that share the linear branch
``β·z``: ``σ(ε α̂·z) (β·z)`` and the *reference* ``σ(0) (β·z)``; ``(4 ‖α‖ / ε)`` times their difference is the
product up to a relative error ``(ε α̂·z)² / 12``. References depend only on the linear branch, so products
sharing it share one reference unit (``ProductBank`` deduplicates them). A factor that is a constant (x̃'s
last coordinate only) needs no linearisation at all: ``σ(SATURATE) = 1`` exactly, and the constant moves into
the linear branch.

Rows are over an input space with a trailing bias coordinate: ``row [D + 1]``, ``row·(z, 1)``.
"""

from __future__ import annotations

from collections import Counter

import torch

from rnnattn.constructions._common import SATURATE


def is_constant(row: torch.Tensor) -> bool:
    """Whether ``row [D + 1]`` reads only the bias coordinate (and is non-zero)."""
    return bool((row[:-1] == 0).all() and row[-1] != 0)


def key(row: torch.Tensor) -> bytes:
    return row.detach().cpu().contiguous().numpy().tobytes()


def unit(row: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``(row / ‖row‖, ‖row‖)`` — the linearised pre-activation is ``ε`` times a unit-norm projection."""
    n = float(torch.linalg.vector_norm(row))
    return row / n, n


def orient(
    products: list[tuple[torch.Tensor, torch.Tensor]],
) -> list[tuple[torch.Tensor, torch.Tensor, bool]]:
    """For each product ``(α, β)`` decide which factor goes through the sigmoid: the *less* shared one, so
    that references (keyed by the linear factor) are shared as much as possible. Ties put ``β`` through the
    sigmoid (for the canonical constructions that is the unit-scale value/query side). Returns ``(σ-factor,
    linear factor, exact)`` where ``exact`` marks a constant factor (no linearisation needed, σ(SATURATE) = 1)."""
    count = Counter()
    for a, b in products:
        for r in (a, b):
            if float(torch.linalg.vector_norm(r)):
                count[key(unit(r)[0])] += 1
    out = []
    for a, b in products:
        if not float(torch.linalg.vector_norm(a)) or not float(torch.linalg.vector_norm(b)):
            continue  # the product is identically zero: no unit
        if is_constant(a) or is_constant(b):
            c, other = (a, b) if is_constant(a) else (b, a)
            out.append((c, other * c[-1], True))
            continue
        ca, cb = count[key(unit(a)[0])], count[key(unit(b)[0])]
        out.append((a, b, False) if ca < cb else (b, a, False))
    return out


class ProductBank:
    """Gated units ``σ(row_m·(z, 1)) · (row_x·(z, 1))`` with deduplication, and the linear map back to
    products.

    ``add(α, β, eps)`` registers the product ``(α·z̃)(β·z̃)`` and returns the list of ``(unit index,
    coefficient)`` whose weighted sum approximates it (exact for constant factors).
    """

    def __init__(self, dim: int, dtype: torch.dtype, dim_x: int | None = None) -> None:
        # dim: input size of the σ-branch; dim_x: of the linear branch (differs only for LRU In+Skip)
        self.dim, self.dim_x, self.dtype = dim, dim if dim_x is None else dim_x, dtype
        self.m_rows: list[torch.Tensor] = []
        self.x_rows: list[torch.Tensor] = []
        self._index: dict[bytes, int] = {}

    def unit_index(self, m_row: torch.Tensor, x_row: torch.Tensor) -> int:
        k = key(torch.cat([m_row, x_row]))
        if k not in self._index:
            self._index[k] = len(self.m_rows)
            self.m_rows.append(m_row)
            self.x_rows.append(x_row)
        return self._index[k]

    def product(self, s: torch.Tensor, lin: torch.Tensor, exact: bool, eps: float) -> list[tuple[int, float]]:
        """Units and coefficients for ``(s·z̃)(lin·z̃)``; ``exact`` when ``s`` is a constant already folded
        into ``lin`` (see :func:`orient`). Both factors are stored unit-norm so that equal directions share
        units."""
        lin_hat, nl = unit(lin)
        if exact:  # σ(SATURATE) · lin = 1 · lin — exactly the product
            one = torch.zeros(self.dim + 1, dtype=self.dtype)
            one[-1] = SATURATE
            return [(self.unit_index(one, lin_hat), nl)]
        s_hat, ns = unit(s)
        scale = 4.0 * ns * nl / eps
        ref = self.unit_index(torch.zeros(self.dim + 1, dtype=self.dtype), lin_hat)  # σ(0) = ½ exactly
        return [(self.unit_index(eps * s_hat, lin_hat), scale), (ref, -scale)]

    def pad_to(self, n: int) -> None:
        """Add inert units (``σ(0) · 0 = 0``) until there are ``n``."""
        while len(self.m_rows) < n:
            self.m_rows.append(torch.zeros(self.dim + 1, dtype=self.dtype))
            self.x_rows.append(torch.zeros(self.dim_x + 1, dtype=self.dtype))

    def __len__(self) -> int:
        return len(self.m_rows)

    def matrices(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W_m [R, D], b_m [R], W_x [R, D], b_x [R])``."""
        Wm, Wx = torch.stack(self.m_rows), torch.stack(self.x_rows)
        return Wm[:, :-1], Wm[:, -1], Wx[:, :-1], Wx[:, -1]


def register_products(
    bank: ProductBank, products: list[tuple[torch.Tensor, torch.Tensor]], eps: float
) -> list[list[tuple[int, float]]]:
    """Register all ``products`` (pairs of rows ``[D + 1]``) in ``bank``; return per product the ``(unit,
    coefficient)`` list whose weighted sum of unit outputs approximates it (empty for identically-zero
    products). :func:`to_matrix` turns it into ``P [K, R]`` once the bank is complete."""
    terms: list[list[tuple[int, float]]] = []
    oriented = iter(orient(products))
    for a, b in products:
        if not float(torch.linalg.vector_norm(a)) or not float(torch.linalg.vector_norm(b)):
            terms.append([])
            continue
        s, lin, exact = next(oriented)
        terms.append(bank.product(s, lin, exact, eps))
    return terms


def to_matrix(terms: list[list[tuple[int, float]]], n_units: int, dtype: torch.dtype) -> torch.Tensor:
    """``P [K, n_units]`` from :func:`register_products` output."""
    P = torch.zeros(len(terms), n_units, dtype=dtype)
    for k, ts in enumerate(terms):
        for i, c in ts:
            P[k, i] += c
    return P
