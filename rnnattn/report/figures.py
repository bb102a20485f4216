"""Figures of the equivalence report, as ``matplotlib.figure.Figure`` objects built from plain arrays.

Nothing here touches pyplot's global state (figures are created with ``Figure()``), so building a report never
opens windows or leaks figures; every function takes numpy arrays / DataFrames, not models, so it can be
tested and reused on its own. Text that may come from a checkpoint (names, labels) goes through :func:`mpl_text`, which
stops matplotlib from reading ``$...$`` as mathtext.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

ROLE_COLORS = {"memory": "#1f77b4", "forget": "#d62728", "other": "#7f7f7f"}
OURS, REFERENCE = "#1f77b4", "#ff7f0e"


def mpl_text(s: object) -> str:
    """A string matplotlib draws literally: ``$`` escaped so no mathtext is parsed from untrusted text."""
    return str(s).replace("\\", "\\\\").replace("$", r"\$")


def new_figure(width: float, height: float, **margins: float) -> Figure:
    """A figure with fixed margins (inches-free fractions as in ``subplots_adjust``); no layout engine, which
    cost more than the drawing itself on the CI machine."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(**{"left": 0.1, "right": 0.97, "bottom": 0.16, "top": 0.9, **margins})
    return fig


def loss_columns(log: pd.DataFrame) -> list[str]:
    """The numeric ``*loss*`` columns of a training log (what :func:`loss_curve` plots)."""
    return [c for c in log.columns if "loss" in str(c).lower() and pd.api.types.is_numeric_dtype(log[c])]


def loss_curve(
    log: pd.DataFrame,
    paper_loss: float | None = None,
    reference_loss: float | None = None,
    reference_label: str = "reference",
) -> Figure:
    """Training (and validation) loss against step, log scale, from a training-log DataFrame.

    Args:
        log: columns ``step`` (or ``iteration``/``epoch``) and one or more ``*loss*`` columns.
        paper_loss: drawn as a dashed line labelled "paper".
        reference_loss: e.g. the one-step-GD loss L*; drawn as a dotted line.
    """
    step_col = next((c for c in ("step", "steps", "iteration", "iter", "epoch") if c in log.columns), None)
    loss_cols = loss_columns(log)
    if not loss_cols:
        raise ValueError("training log has no numeric '*loss*' column")
    fig = new_figure(6.4, 3.0, bottom=0.17, top=0.95)
    ax = fig.add_subplot()
    x = log[step_col].to_numpy() if step_col else np.arange(len(log))
    for c in loss_cols:
        y = log[c].to_numpy(dtype=float)
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            ax.plot(x[ok], y[ok], lw=1.2, label=mpl_text(c))
    if paper_loss is not None:
        ax.axhline(paper_loss, color="k", ls="--", lw=0.9, label=f"paper {paper_loss:.3g}")
    if reference_loss is not None:
        ax.axhline(
            reference_loss,
            color=REFERENCE,
            ls=":",
            lw=1.2,
            label=mpl_text(f"{reference_label} {reference_loss:.4g}"),
        )
    ax.set_yscale("log")
    ax.set_xlabel(mpl_text(step_col or "row"))
    ax.set_ylabel("loss")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def lambda_histogram(
    lam: np.ndarray, roles: Sequence[str] | None = None, hi: float = 0.99, lo: float = 0.01
) -> Figure:
    """Histogram of ``|lambda|`` in [0, 1], stacked by neuron role (memory / forget / other), thresholds
    marked.

    Args:
        lam: ``[N]`` decay moduli.
        roles: ``[N]`` role names; defaults to roles by the thresholds ``hi``/``lo``.
    """
    lam = np.abs(np.asarray(lam, dtype=float).ravel())
    if roles is None:
        roles = np.where(lam > hi, "memory", np.where(lam < lo, "forget", "other"))
    roles = np.asarray([str(r) for r in roles])
    fig = new_figure(6.4, 2.6, bottom=0.2, top=0.95)
    ax = fig.add_subplot()
    bins = np.linspace(0.0, 1.0, 41)
    names = [r for r in ROLE_COLORS if r in set(roles)] + sorted(set(roles) - set(ROLE_COLORS))
    data = [np.clip(lam[roles == r], 0.0, 1.0) for r in names]
    colors = [ROLE_COLORS.get(r, "#2ca02c") for r in names]
    labels = [mpl_text(f"{r} ({len(d)})") for r, d in zip(names, data, strict=True)]
    ax.hist(data, bins=bins, stacked=True, color=colors, label=labels, edgecolor="white", linewidth=0.4)
    for t in (lo, hi):
        ax.axvline(t, color="k", ls=":", lw=0.8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel(r"$|\lambda|$")
    ax.set_ylabel("neurons")
    ax.legend(fontsize=8, loc="upper center")
    return fig


def _heat(ax, m: np.ndarray, title: str, xlabel: str = "", ylabel: str = "", cmap: str = "RdBu_r") -> object:
    m = np.asarray(m, dtype=float)
    vmax = float(np.nanmax(np.abs(m))) if m.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(m, cmap=cmap, norm=TwoSlopeNorm(0.0, -vmax, vmax), aspect="auto", interpolation="nearest")
    ax.set_title(title, fontsize=9)  # callers pass mathtext-safe titles
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return im


def weight_heatmaps(
    mats: Mapping[str, np.ndarray], lam: np.ndarray | None = None, hidden_labels: Sequence[str] | None = None
) -> Figure:
    """Fig. 2A: the gated RNN's (canonical, pruned) weights side by side, diverging colours centred at 0.

    Args:
        mats: ``{"W_m^in": [N, d+1], "W_x^in": [N, d+1], "W_m^out": [M, N], "W_x^out": [M, N], "D": [d_out, M]}`` (any
            subset, drawn in this order).
        lam: ``[N]`` decays, drawn as a one-column image next to the input gating.
        hidden_labels: labels of the N hidden neurons (y ticks of the input panels when N is small).
    """
    order = [
        k
        for k in ("W_m^in", "W_x^in", "lambda", "W_m^out", "W_x^out", "D")
        if k in mats or (k == "lambda" and lam is not None)
    ]
    order += [k for k in mats if k not in order]
    widths = []
    for k in order:
        cols = 1 if k == "lambda" else np.atleast_2d(np.asarray(mats[k])).shape[1]
        widths.append(max(0.6, min(cols, 40) ** 0.8))
    fig = new_figure(
        min(2.0 + 0.55 * sum(widths), 11.0), 3.2, left=0.07, right=0.93, bottom=0.08, top=0.88, wspace=0.5
    )
    axes = fig.subplots(1, len(order), gridspec_kw={"width_ratios": widths})
    axes = np.atleast_1d(axes)
    for ax, k in zip(axes, order, strict=True):
        if k == "lambda":
            m = np.asarray(lam, dtype=float).reshape(-1, 1)
            ax.imshow(m, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            ax.set_title(r"$\lambda$", fontsize=9)
            ax.set_xticks([])
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=6)
            continue
        m = np.asarray(mats[k], dtype=float)
        im = _heat(ax, m, _pretty(k))
        if k in ("W_m^in", "W_x^in") and hidden_labels is not None and len(hidden_labels) <= 30:
            ax.set_yticks(range(len(hidden_labels)), [mpl_text(s) for s in hidden_labels], fontsize=5)
    fig.colorbar(im, ax=axes[-1], shrink=0.8).ax.tick_params(labelsize=6)
    return fig


def _pretty(key: str) -> str:
    names = {
        "W_m^in": r"$W_m^{in}$",
        "W_x^in": r"$W_x^{in}$",
        "W_m^out": r"$W_m^{out}$",
        "W_x^out": r"$W_x^{out}$",
        "D": r"$D$",
    }
    return names.get(key, mpl_text(key))


def kernel_images(
    kernels: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    singular_values: Sequence[Sequence[float]] | None = None,
) -> Figure:
    """Fig. 2C: the kernels ``K`` (``[N, N]``, hidden × hidden) of merged gating-row groups, with their
    singular values.

    Args:
        kernels: one ``[N, N]`` matrix per group (shown before merging, unsymmetrised).
        titles: one title per kernel.
        singular_values: optional spectra drawn under each kernel (log scale) — rank 1 shows as one dominant
        value.
    """
    n = len(kernels)
    if n == 0:
        raise ValueError("no kernels to draw")
    rows = 2 if singular_values is not None else 1
    fig = new_figure(
        min(2.8 * n + 0.6, 11.0),
        2.6 * rows,
        left=0.12 if n == 1 else 0.08,
        bottom=0.1,
        top=0.92,
        wspace=0.35,
        hspace=0.45,
    )
    axes = np.atleast_2d(fig.subplots(rows, n, squeeze=False))
    for j, K in enumerate(kernels):
        title = titles[j] if titles is not None else f"group {j + 1}"
        _heat(
            axes[0, j],
            K,
            mpl_text(title),
            "hidden neuron (x branch)",
            "hidden neuron (m branch)" if j == 0 else "",
        )
        if singular_values is not None:
            s = np.asarray(singular_values[j], dtype=float)
            s = s[s > 0] if (s > 0).any() else np.array([1e-300])
            ax = axes[1, j]
            ax.semilogy(np.arange(1, len(s) + 1), s, "o-", ms=3)
            ax.set_xlabel("index", fontsize=8)
            ax.set_ylabel("singular value" if j == 0 else "", fontsize=8)
            ax.tick_params(labelsize=6)
            ax.grid(True, alpha=0.3)
    return fig


def coefficient_comparison(
    monomials: Sequence[str],
    ours: np.ndarray,
    reference: np.ndarray,
    output_names: Sequence[str] | None = None,
    top: int = 12,
    reference_label: str = "reference",
) -> Figure:
    """Polynomial comparison: ours vs the reference for every coefficient (scatter), and the leading terms
    (bars).

    Args:
        monomials: ``[K]`` monomial names.
        ours, reference: ``[n_out, K]`` coefficients on the same monomials.
        output_names: ``[n_out]``.
        top: leading terms shown for the first output.
    """
    ours = np.atleast_2d(np.asarray(ours, dtype=float))
    ref = np.atleast_2d(np.asarray(reference, dtype=float))
    if ours.shape != ref.shape or ours.shape[1] != len(monomials):
        raise ValueError(
            f"coefficient arrays {ours.shape} and {ref.shape} do not match {len(monomials)} monomials"
        )
    names = list(output_names) if output_names is not None else [f"y{i + 1}" for i in range(ours.shape[0])]
    fig = new_figure(10.0, 3.4, left=0.07, right=0.98, bottom=0.25, top=0.91, wspace=0.25)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    lim = max(float(np.abs(ours).max(initial=0)), float(np.abs(ref).max(initial=0)), 1e-12) * 1.08
    for i, n in enumerate(names):
        ax1.scatter(ref[i], ours[i], s=9, alpha=0.75, label=mpl_text(n))
    ax1.plot([-lim, lim], [-lim, lim], "k-", lw=0.6)
    ax1.set_xlim(-lim, lim)
    ax1.set_ylim(-lim, lim)
    ax1.set_xlabel(mpl_text(f"{reference_label} coefficient"), fontsize=8)
    ax1.set_ylabel("model coefficient", fontsize=8)
    ax1.tick_params(labelsize=6)
    ax1.legend(fontsize=7)
    ax1.set_title("all coefficients", fontsize=9)
    k = np.argsort(-np.maximum(np.abs(ours[0]), np.abs(ref[0])), kind="stable")[:top]
    xs = np.arange(len(k))
    ax2.bar(xs - 0.2, ours[0, k], 0.4, color=OURS, label="model")
    ax2.bar(xs + 0.2, ref[0, k], 0.4, color=REFERENCE, label=mpl_text(reference_label))
    ax2.set_xticks(xs, [mpl_text(monomials[j]) for j in k], rotation=45, ha="right", fontsize=7)
    ax2.axhline(0, color="k", lw=0.5)
    ax2.tick_params(axis="y", labelsize=6)
    ax2.legend(fontsize=7)
    ax2.set_title(mpl_text(f"leading terms of {names[0]}"), fontsize=9)
    return fig


def score_bars(scores: Mapping[str, float], paper: Mapping[str, float] | None = None) -> Figure:
    """Probe scores (1 - R^2, log scale) ours vs the paper's, one bar pair per score."""
    keys = list(scores)
    fig = new_figure(4.6, 2.4, left=0.15, bottom=0.15, top=0.93)
    ax = fig.add_subplot()
    xs = np.arange(len(keys))
    vals = np.array([max(float(scores[k]), 1e-18) for k in keys])
    ax.bar(xs - 0.2, vals, 0.4, color=OURS, label="rnnattn")
    if paper:
        pv = np.array([max(float(paper.get(k, np.nan)), 1e-18) for k in keys])
        ax.bar(xs + 0.2, pv, 0.4, color="#999999", label="paper")
    ax.set_yscale("log")
    ax.set_xticks(xs, [mpl_text(k) for k in keys], fontsize=8)
    ax.set_ylabel(r"$1 - R^2$", fontsize=8)
    ax.tick_params(axis="y", labelsize=6)
    ax.legend(fontsize=7)
    return fig


def rank_spectra(spectra: Mapping[str, np.ndarray], tolerances: Mapping[str, float]) -> Figure:
    """Normalised singular values (σ/σ1, log scale) of each side of the moment-space cross block, with the rank
    tolerance of each drawn as a dashed line of the same colour (the effective count = values above it)."""
    fig = new_figure(5.4, 2.6, left=0.13, bottom=0.17, top=0.93)
    ax = fig.add_subplot()
    for (name, s), colour in zip(spectra.items(), (OURS, REFERENCE, "#2ca02c"), strict=False):
        s = np.maximum(np.asarray(s, dtype=float), 1e-18)
        ax.semilogy(np.arange(1, s.size + 1), s, "o-", ms=3, lw=1, color=colour, label=mpl_text(name))
        if name in tolerances and np.isfinite(tolerances[name]):
            ax.axhline(tolerances[name], color=colour, ls="--", lw=0.8)
    ax.set_xlabel("singular value index", fontsize=8)
    ax.set_ylabel("σ / σ1", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return fig
