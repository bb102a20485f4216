"""Plain float64 weights of a :class:`GatedLinearRNN`, edited by the rewrites (prune, canonicalise, merge) and
turned back into a new model. Keeping ``nu`` (not ``lambda``) avoids rounding exact 0/1 decays."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch

from rnnattn.analysis.loading import labels
from rnnattn.models.gated_rnn import GatedLinearRNN


@dataclass
class GatedWeights:
    """``W_in [2, N, p]``, ``rec`` (``nu [N]`` or ``A [N, N]``), ``W_out [2, M, N]``, ``D [o, M]`` and unit labels."""

    W_in: np.ndarray
    rec: np.ndarray
    W_out: np.ndarray
    D: np.ndarray
    hidden_labels: list[str]
    gating_labels: list[str]
    dense: bool

    @classmethod
    def of(cls, model: GatedLinearRNN) -> GatedWeights:
        def np_(t: torch.Tensor) -> np.ndarray:
            return t.detach().to(torch.float64).cpu().numpy().copy()

        dense = model.config.recurrence == "dense"
        return cls(
            np_(model.W_in),
            np_(model.A if dense else model.nu),
            np_(model.W_out),
            np_(model.D),
            labels(model, "hidden", model.config.n_hidden),
            labels(model, "gating", model.config.n_gating),
            dense,
        )

    @property
    def n_hidden(self) -> int:
        return self.W_in.shape[1]

    @property
    def n_gating(self) -> int:
        return self.W_out.shape[1]

    @property
    def lam(self) -> np.ndarray:
        """Per-neuron decay: ``exp(-exp(nu))`` or ``diag(A)``."""
        return np.diag(self.rec).copy() if self.dense else np.exp(-np.exp(self.rec))

    def select_hidden(self, idx: np.ndarray) -> GatedWeights:
        idx = np.asarray(idx, dtype=np.int64)
        rec = self.rec[np.ix_(idx, idx)] if self.dense else self.rec[idx]
        return replace(
            self,
            W_in=self.W_in[:, idx],
            rec=rec,
            W_out=self.W_out[:, :, idx],
            hidden_labels=[self.hidden_labels[i] for i in idx],
        )

    def select_gating(self, idx: np.ndarray) -> GatedWeights:
        idx = np.asarray(idx, dtype=np.int64)
        return replace(
            self,
            W_out=self.W_out[:, idx],
            D=self.D[:, idx],
            gating_labels=[self.gating_labels[i] for i in idx],
        )

    def to_model(self, template: GatedLinearRNN, **metadata: object) -> GatedLinearRNN:
        """A new float64 model with these weights (config sizes updated; template metadata + ``metadata``)."""
        if self.n_hidden == 0 or self.n_gating == 0:
            raise ValueError(
                f"rewrite would leave {self.n_hidden} hidden neurons and {self.n_gating} gating rows; "
                "a GatedLinearRNN needs at least one of each"
            )
        cfg = template.config.replace(n_hidden=self.n_hidden, n_gating=self.n_gating)
        model = GatedLinearRNN(cfg).to(torch.float64)
        with torch.no_grad():
            model.W_in.copy_(torch.from_numpy(self.W_in))
            (model.A if self.dense else model.nu).copy_(torch.from_numpy(self.rec))
            model.W_out.copy_(torch.from_numpy(self.W_out))
            model.D.copy_(torch.from_numpy(self.D))
        for p in model.parameters():
            p.requires_grad_(False)
        model.metadata = copy.deepcopy(template.metadata)
        model.metadata["labels"] = {"hidden": list(self.hidden_labels), "gating": list(self.gating_labels)}
        model.metadata.update(metadata)
        return model.eval()


def named_weights(model: GatedLinearRNN) -> dict[str, np.ndarray]:
    """The weights by name, as plotted in Fig. 2A: ``W_m_in``, ``W_x_in`` ``[N, p]``, ``W_m_out``, ``W_x_out``
    ``[M, N]``, ``D`` ``[o, M]``, ``lam`` ``[N]`` (the decays; for dense ``A`` its eigenvalue moduli) and, for
    dense recurrence, ``A [N, N]``. The one weight extraction of the analysis stage."""
    w = GatedWeights.of(model)
    out = {"W_m_in": w.W_in[0], "W_x_in": w.W_in[1], "W_m_out": w.W_out[0], "W_x_out": w.W_out[1], "D": w.D}
    if w.dense:
        out["A"] = w.rec
        out["lam"] = np.abs(np.linalg.eigvals(w.rec))
    else:
        out["lam"] = w.lam
    return out


def check_inputs(d: int, seed: int = 1234, batch: int = 16, seq_len: int = 32) -> torch.Tensor:
    """Random float64 inputs ``[batch, seq_len, d]`` ~ N(0, I) used to verify that a rewrite preserves the output."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, seq_len, d, generator=g, dtype=torch.float64)


def max_change(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """``(max |a(x) - b(x)|, max |a(x)|)`` in float64."""
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return float((ya - yb).abs().max()), float(ya.abs().max())
