"""pytest plugin of rnnattn (entry point ``pytest11: rnnattn = rnnattn.testing.plugin``).

Provides the ``polynomial_baseline`` fixture, the ``rnnattn_baseline`` marker and the ``--rnnattn-update-baselines``
option. Loading this module imports only pytest and the standard library; torch and the analysis are imported when the
fixture is first used.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnnattn", "rnnattn polynomial baselines")
    group.addoption(
        "--rnnattn-update-baselines",
        action="store_true",
        default=False,
        help="write (or rewrite) the JSON baselines compared by the polynomial_baseline fixture instead of "
        "checking them",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rnnattn_baseline(rtol=1e-9, atol=1e-12, directory='baselines'): tolerances and folder used by the "
        "polynomial_baseline fixture in this test",
    )


@pytest.fixture
def polynomial_baseline(request: pytest.FixtureRequest):
    """Compare a model's instantaneous polynomial against a JSON baseline stored beside the test.

    Call it as ``polynomial_baseline(model, name=None, rtol=None, atol=None)``. The baseline lives in
    ``<test dir>/baselines/<test module>/<name or test name>.json``; ``pytest --rnnattn-update-baselines``
    writes it.
    A missing baseline fails with the command that creates it.
    """
    from rnnattn.testing.baseline import PolynomialBaseline

    return PolynomialBaseline.from_request(request)
