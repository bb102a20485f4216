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


def test_noise_study_tiny_writes_a_claims_report(tmp_path):
    mod = _load()
    mod.main(["--tiny", "--out", str(tmp_path)])
    for name in ("vec2vec.csv", "tok2tok.csv", "fig4.png", "report.html", "summary_tok2tok.csv", "claims.csv"):
        assert (tmp_path / name).exists()
    import json

    claims = json.loads((tmp_path / "summary.json").read_text())["claims"]
    assert [c["reproduced"] for c in claims].count("✓") >= 2 and len(claims) == len(mod.pc.LSRL_NOISE_CLAIMS)
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


def test_noise_study_never_replaces_files_without_force(tmp_path):
    mod = _load()
    (tmp_path / "report.html").write_text("precious")
    with pytest.raises(SystemExit) as e:
        mod.main(["--tiny", "--out", str(tmp_path)])
    assert "--force" in str(e.value.code) and (tmp_path / "report.html").read_text() == "precious"
