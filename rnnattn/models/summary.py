"""Model summaries shared by ``rnnattn info`` and the reports: decays per layer and non-finite weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnattn.models.base import Model


@dataclass(frozen=True)
class DecaySummary:
    """``|lambda|`` statistics of one recurrent layer (``name`` is the module path, ``""`` for the model itself)."""

    name: str
    kind: str
    n: int
    memory: int  # |lambda| > hi
    forget: int  # |lambda| < lo
    hi: float
    lo: float
    values: tuple[float, ...]


def decays(model: Model) -> dict[str, torch.Tensor]:
    """``|lambda|`` per recurrent layer with a diagonal (or dense: eigenvalue moduli) decay, by module path."""
    out: dict[str, torch.Tensor] = {}
    for name, mod in model.named_modules():
        lam = getattr(type(mod), "lam", None)
        if not isinstance(lam, property):
            continue
        with torch.no_grad():
            v = mod.lam.detach().to(torch.float64 if not mod.lam.is_complex() else torch.complex128)
            if v.dim() == 2:
                v = torch.linalg.eigvals(v)
            out[name] = v.abs().cpu()
    return out


def decay_summaries(model: Model, hi: float = 0.99, lo: float = 0.01) -> list[DecaySummary]:
    res = []
    for name, v in decays(model).items():
        mod = model.get_submodule(name) if name else model
        res.append(DecaySummary(name, type(mod).__name__, v.numel(), int((v > hi).sum()), int((v < lo).sum()), hi, lo,
                                tuple(v.tolist())))
    return res


# +-inf is meaningful in log-parametrised decays: nu = -inf gives lambda = 1 exactly and +inf gives 0 (exact
# constructions rely on it), so only NaN is suspicious there.
INF_ALLOWED = ("nu", "nu_log", "theta_log", "gamma_log")


def nonfinite(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """``{parameter name: (#NaN, #Inf)}`` for parameters holding suspicious non-finite values (Inf in the
    log-decay parameters of ``INF_ALLOWED`` is not counted)."""
    bad = {}
    for k, v in model.state_dict().items():
        if v.is_floating_point() or v.is_complex():
            inf_ok = k.rsplit(".", 1)[-1] in INF_ALLOWED
            n_nan, n_inf = int(torch.isnan(v).sum()), 0 if inf_ok else int(torch.isinf(v).sum())
            if n_nan or n_inf:
                bad[k] = (n_nan, n_inf)
    return bad
