"""End-to-end journey: compile -> perturb -> run -> report (the Fig. 4 study at a tiny scale)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("lsrl_noise", ROOT / "analysis" / "lsrl_noise.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_noise_study_quick(tmp_path, monkeypatch):
    mod = _load()
    monkeypatch.setattr("sys.argv", ["lsrl_noise.py", "--targets", "1", "--out", str(tmp_path)])
    mod.main()
    for name in ("vec2vec.csv", "tok2tok.csv", "fig4.png", "index.html", "summary_tok2tok.csv"):
        assert (tmp_path / name).exists()
    import pandas as pd

    tok = pd.read_csv(tmp_path / "tok2tok.csv")
    assert len(tok) == len(mod.VARIANTS) * len(mod.SIGMAS)
    clean_mul = tok[(tok.variant == "multiplicative") & (tok.sigma == 0)].wrong_pct
    assert (clean_mul == 0).all()


def test_target_function_is_smooth_and_bounded():
    mod = _load()
    import numpy as np

    f = mod.target_function(0)
    xs = np.random.default_rng(0).uniform(0, 1, size=(50, 2))
    ys = np.stack([f(x) for x in xs])
    assert ys.shape == (50, 2) and np.abs(ys).max() <= 3


def test_noise_study_never_replaces_files_without_force(tmp_path, monkeypatch):
    mod = _load()
    (tmp_path / "index.html").write_text("precious")
    monkeypatch.setattr("sys.argv", ["lsrl_noise.py", "--targets", "1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        mod.main()
    assert "--force" in str(e.value.code) and (tmp_path / "index.html").read_text() == "precious"
