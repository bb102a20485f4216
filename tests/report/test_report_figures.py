import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from rnnattn.display import Figure as FigureBlock
from rnnattn.report import figures

PNG = b"\x89PNG\r\n\x1a\n"


def test_mpl_text_escapes_mathtext():
    assert figures.mpl_text("$x$ costs $5") == r"\$x\$ costs \$5"
    fig = figures.new_figure(2, 1)
    fig.text(0.1, 0.5, figures.mpl_text("$\\frac{1}{0$"))  # unbalanced mathtext would raise when drawn
    assert FigureBlock(fig).png.startswith(PNG)


def test_loss_curve_reads_log_columns():
    log = pd.DataFrame(
        {
            "step": [0, 10, 20],
            "phase": ["adam"] * 3,
            "train_loss": [1.0, 0.1, 0.01],
            "val_loss": [1.1, np.nan, 0.02],
            "ref_val_loss": [0.0, 0.0, 0.0],
        }
    )
    fig = figures.loss_curve(log, paper_loss=1e-3)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert (
        "train_loss" in labels and "val_loss" in labels and "ref_val_loss" not in labels
    )  # zeros cannot go on a log axis
    with pytest.raises(ValueError, match="loss"):
        figures.loss_curve(pd.DataFrame({"step": [1]}))


def test_lambda_histogram_counts_roles():
    lam = np.r_[np.ones(5), np.zeros(3), [0.5, 0.6]]
    fig = figures.lambda_histogram(lam)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["memory (5)", "forget (3)", "other (2)"]


def test_heatmaps_and_kernels_and_coefficients_render():
    rng = np.random.default_rng(0)
    mats = {
        "W_m^in": rng.normal(size=(6, 4)),
        "W_x^in": rng.normal(size=(6, 4)),
        "W_m^out": rng.normal(size=(5, 6)),
        "W_x^out": rng.normal(size=(5, 6)),
        "D": rng.normal(size=(3, 5)),
    }
    fig = figures.weight_heatmaps(mats, lam=np.r_[np.ones(3), np.zeros(3)], hidden_labels=list("abcdef"))
    assert len(fig.axes) == 7  # 5 matrices + lambda + colorbar
    k = figures.kernel_images([np.outer(np.arange(4), np.ones(4))], ["K"], [[3.0, 1e-17, 0, 0]])
    assert len(k.axes) == 2
    c = figures.coefficient_comparison(["a", "b", "c"], rng.normal(size=(2, 3)), rng.normal(size=(2, 3)))
    assert len(c.axes) == 2
    with pytest.raises(ValueError, match="monomials"):
        figures.coefficient_comparison(["a"], np.ones((2, 3)), np.ones((2, 3)))
    for f in (fig, k, c):
        assert isinstance(f, Figure) and FigureBlock(f).png.startswith(PNG)


def test_png_is_deterministic():
    def make():
        return FigureBlock(figures.lambda_histogram(np.linspace(0, 1, 20))).png

    assert make() == make()
