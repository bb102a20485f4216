"""The pytest plugin: option, marker and the polynomial_baseline fixture, run in an inner pytest session."""

import json

# Inner in-process pytest runs restore sys.modules afterwards; import what the fixture uses now, so C
# extensions
# (numpy.fft, ...) are not loaded a second time by a later inner run.
import rnnattn.analysis  # noqa: F401
import rnnattn.constructions  # noqa: F401
import rnnattn.testing.baseline  # noqa: F401

pytest_plugins = ["pytester"]

BAD = """
import pytest
@pytest.mark.rnnattn_baseline(tolerance=1)
def test_x(polynomial_baseline):
    pass
"""

TEST = """
import pytest
import torch
from rnnattn.constructions import attention_to_gated_rnn
from rnnattn.models import LinearSelfAttention, LinearSelfAttentionConfig

def make(scale=1.0):
    torch.manual_seed(0)
    lsa = LinearSelfAttention(LinearSelfAttentionConfig(d_input=2)).to(torch.float64)
    with torch.no_grad():
        lsa.W_V.mul_(scale)
    return attention_to_gated_rnn(lsa, form="minimal")

def test_minimal(polynomial_baseline):
    polynomial_baseline(make(SCALE))

@pytest.mark.rnnattn_baseline(rtol=0.5)
def test_loose(polynomial_baseline):
    polynomial_baseline(make(SCALE), name="loose")
"""


def test_plugin_is_registered(request):
    assert request.config.pluginmanager.hasplugin("rnnattn")
    assert request.config.getoption("--rnnattn-update-baselines") is False
    assert any(m.startswith("rnnattn_baseline(") for m in request.config.getini("markers"))


def test_baseline_lifecycle(pytester):
    pytester.makepyfile(test_poly=TEST.replace("SCALE", "1.0"), test_bad=BAD)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, errors=1)
    result.stdout.fnmatch_lines(["*no polynomial baseline*test_minimal.json*--rnnattn-update-baselines*"])
    result.stdout.fnmatch_lines(["*unknown arguments*tolerance*"])

    result = pytester.runpytest_inprocess("--rnnattn-update-baselines", "test_poly.py")
    result.assert_outcomes(passed=2)
    path = pytester.path / "baselines" / "test_poly" / "test_minimal.json"
    data = json.loads(path.read_text())
    assert data["format"] == 1 and data["variables"] == ["x1", "x2"] and len(data["monomials"]) == 15
    assert (
        len(data["coefficients"]) == 2
        and (pytester.path / "baselines" / "test_poly" / "loose.json").is_file()
    )

    pytester.runpytest_inprocess("test_poly.py").assert_outcomes(passed=2)

    pytester.makepyfile(test_poly=TEST.replace("SCALE", "1.1"))  # 10 % change in every coefficient
    result = pytester.runpytest_inprocess("test_poly.py")
    result.assert_outcomes(failed=1, passed=1)  # the marker's rtol=0.5 tolerates it
    result.stdout.fnmatch_lines(
        [
            "*differs from baseline test_minimal.json*",
            "*coefficients differ from the baseline*",
            "*output y1: * coefficients differ*",
            "*model * baseline * difference *",
            "*if the change is intended, rerun with --rnnattn-update-baselines*",
        ]
    )


def test_baseline_json_round_trips_exactly():
    import numpy as np

    from rnnattn.analysis import Polynomial
    from rnnattn.testing.baseline import compare_with_baseline, polynomial_to_json

    rng = np.random.default_rng(0)
    p = Polynomial(rng.normal(size=(2, 10)) / 3, ("a", "b", "c"), ("y1", "y2"), 2, "random")
    text = polynomial_to_json(p)
    assert text == polynomial_to_json(p)
    assert np.array_equal(np.array(json.loads(text)["coefficients"]), p.coefficients)
    assert compare_with_baseline(p, json.loads(text), rtol=0, atol=0) is None
