"""Output error of a compiled model under weight noise (the paper's Fig. 4 noise model, Petrov et al. 2024 §6).

``N(0, sigma^2)`` is added to every *non-zero* weight of the compiled model (:func:`~rnnattn.lsrl.perturb_nonzeros`)
and the model is run with teacher forcing: every state stage starts each step from the clean run's state, so errors
cannot accumulate over the prompt (the paper's setup). Used by the noise study (``analysis/lsrl_noise.py``) and by the
report on compiled checkpoints (:mod:`rnnattn.report.lsrl`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .modules import CompiledLSRL, perturb_nonzeros

SIGMAS = (0.0, 1e-9, 1e-7, 1e-5, 1e-3)


def noisy_outputs(
    module: CompiledLSRL, X: torch.Tensor, sigmas: Sequence[float] = SIGMAS, seed: int = 0
) -> dict[float, np.ndarray]:
    """Outputs ``[B, T, D]`` of ``module`` on ``X [B, T, d_input]`` for every ``sigma`` (``0``: the clean run),
    teacher-forced on the clean run's states. The noise of the ``i``-th sigma is drawn from
    ``torch.Generator().manual_seed(10_000 * seed + i)``, so runs are reproducible."""
    with torch.no_grad():
        clean, cache = module.run_with_cache(X)
        teacher = [cache[f"stages.{k}.hook_out"] for k in module.state_stages()]
        out = {}
        for i, sigma in enumerate(sigmas):
            if sigma == 0:
                out[0.0] = clean.numpy()
                continue
            m = type(module)(module.config)
            m.load_state_dict(module.state_dict())
            perturb_nonzeros(m, sigma, torch.Generator().manual_seed(10_000 * seed + i))
            out[float(sigma)] = m(X, teacher_states=teacher).numpy()
    return out


def noise_error_table(
    module: CompiledLSRL, X: torch.Tensor, sigmas: Sequence[float] = SIGMAS, seeds: int = 3
) -> pd.DataFrame:
    """Per sigma: the max / median over ``seeds`` draws of ``max |y_noisy - y_clean|`` (last token of every
    sequence), and how many draws stay finite. Columns ``sigma, max_error, median_error, finite_draws``."""
    sigmas = (0.0, *[float(s) for s in sigmas if s != 0])  # the clean run is the baseline
    errs: dict[float, list[float]] = {s: [] for s in sigmas}
    for seed in range(seeds):
        runs = noisy_outputs(module, X, sigmas, seed)
        for s, y in runs.items():
            d = np.abs(y[:, -1] - runs[0.0][:, -1])
            errs[s].append(float(np.max(d)) if np.isfinite(d).all() else float("inf"))
    rows = [
        {
            "sigma": s,
            "max_error": max(v),
            "median_error": float(np.median(v)),
            "finite_draws": f"{sum(np.isfinite(v))}/{len(v)}",
        }
        for s, v in errs.items()
    ]
    return pd.DataFrame(rows)
