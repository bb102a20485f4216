"""Polynomial baselines: a model's instantaneous polynomial stored as JSON beside a test, and compared later.

A baseline file holds ``{"format": 1, "variables", "outputs", "max_degree", "monomials", "coefficients",
"description"}`` with coefficients as exact decimal floats (JSON ``repr``), so a regenerated file is
byte-identical when nothing changed. Used through the ``polynomial_baseline`` fixture of :mod:`rnnattn.testing.plugin`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FORMAT = 1
DEFAULT_RTOL = 1e-7
DEFAULT_ATOL = 1e-10
UPDATE_OPTION = "--rnnattn-update-baselines"


def _safe_name(name: str) -> str:
    # Test ids hold brackets, slashes, spaces (parametrisation): keep file names portable.
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "baseline"


def polynomial_to_json(poly: Any, description: str = "") -> str:
    data = {
        "format": FORMAT,
        "description": description or poly.source,
        "variables": list(poly.variables),
        "outputs": list(poly.outputs),
        "max_degree": int(poly.max_degree),
        "monomials": poly.monomials,
        "coefficients": [[float(c) for c in row] for row in poly.coefficients],
    }
    return json.dumps(data, indent=1) + "\n"


def compare_with_baseline(
    poly: Any, baseline: dict[str, Any], rtol: float, atol: float, top: int = 8
) -> str | None:
    """``None`` if ``poly`` matches ``baseline`` (``|p - b| <= atol + rtol |b|`` for every coefficient), else
    a message naming the outputs and monomials that differ and by how much."""
    import numpy as np

    if baseline.get("format") != FORMAT:
        return f"baseline format {baseline.get('format')!r} is not {FORMAT}"
    if list(poly.variables) != baseline["variables"] or list(poly.outputs) != baseline["outputs"]:
        return (
            f"variables/outputs changed: model {list(poly.variables)} -> {list(poly.outputs)}, baseline "
            f"{baseline['variables']} -> {baseline['outputs']}"
        )
    deg = max(int(poly.max_degree), int(baseline["max_degree"]))
    p = poly.with_degree(deg)
    ref = np.zeros_like(p.coefficients)
    index = {m: j for j, m in enumerate(p.monomials)}
    unknown = [m for m in baseline["monomials"] if m not in index]
    if unknown:
        return f"baseline has monomials the model's basis lacks: {unknown[:5]}"
    cols = [index[m] for m in baseline["monomials"]]
    ref[:, cols] = np.asarray(baseline["coefficients"], dtype=np.float64)
    diff = np.abs(p.coefficients - ref)
    bad = diff > atol + rtol * np.abs(ref)
    bad |= np.isnan(p.coefficients) != np.isnan(ref)
    if not bad.any():
        return None
    lines = [
        f"{int(bad.sum())} of {bad.size} coefficients differ from the baseline (rtol={rtol:g}, "
        f"atol={atol:g}):"
    ]
    for i, out in enumerate(p.outputs):
        js = np.flatnonzero(bad[i])
        if not len(js):
            continue
        js = js[np.argsort(-diff[i, js], kind="stable")]
        lines.append(f"  output {out}: {len(js)} coefficients differ")
        for j in js[:top]:
            lines.append(
                f"    {p.monomials[j]:<16} model {p.coefficients[i, j]: .6e}  baseline {ref[i, j]: .6e}  "
                f"difference {p.coefficients[i, j] - ref[i, j]: .3e}"
            )
        if len(js) > top:
            lines.append(f"    ... and {len(js) - top} more")
    return "\n".join(lines)


@dataclass
class PolynomialBaseline:
    """The ``polynomial_baseline`` fixture: ``polynomial_baseline(model, name=None, rtol=None, atol=None)``.

    Attributes:
        directory: where baselines of this test module live (``<test dir>/baselines/<module>/``).
        default_name: file stem used when ``name`` is not given (the test's name).
        update: write baselines instead of comparing (``--rnnattn-update-baselines``).
        rtol, atol: tolerances (from the ``rnnattn_baseline`` marker, else 1e-7 / 1e-10).
    """

    directory: Path
    default_name: str
    update: bool = False
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    test_file: Path | None = None

    @classmethod
    def from_request(cls, request: pytest.FixtureRequest) -> PolynomialBaseline:
        marker = request.node.get_closest_marker("rnnattn_baseline")
        kw = dict(marker.kwargs) if marker else {}
        unknown = set(kw) - {"rtol", "atol", "directory"}
        if unknown:
            pytest.fail(
                f"rnnattn_baseline marker: unknown arguments {sorted(unknown)} (use rtol, atol, directory)",
                pytrace=False,
            )
        test_file = Path(str(request.node.path))
        directory = test_file.parent / kw.get("directory", "baselines") / test_file.stem
        return cls(
            directory,
            _safe_name(request.node.name),
            bool(request.config.getoption(UPDATE_OPTION)),
            float(kw.get("rtol", DEFAULT_RTOL)),
            float(kw.get("atol", DEFAULT_ATOL)),
            test_file,
        )

    def path(self, name: str | None = None) -> Path:
        return self.directory / f"{_safe_name(name or self.default_name)}.json"

    def __call__(
        self,
        model: Any,
        name: str | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        description: str = "",
    ) -> Path:
        """Compare (or, with ``--rnnattn-update-baselines``, write) the baseline of ``model``'s polynomial.

        Args:
            model: model, checkpoint, path or ``Polynomial``.
            name: baseline name (default: the test name); several per test need distinct names.
        Returns:
            The baseline file's path.
        """
        from rnnattn.checkpoint import atomic_write_bytes
        from rnnattn.testing import polynomial_of

        poly = polynomial_of(model)
        path = self.path(name)
        if self.update:
            atomic_write_bytes(path, polynomial_to_json(poly, description).encode(), overwrite=True)
            return path
        if not path.is_file():
            pytest.fail(
                f"no polynomial baseline {path}; create it with: python -m pytest {UPDATE_OPTION} "
                f"{self.test_file or ''}",
                pytrace=False,
            )
        try:
            baseline = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            pytest.fail(f"cannot read polynomial baseline {path}: {e}", pytrace=False)
        problem = compare_with_baseline(
            poly, baseline, self.rtol if rtol is None else rtol, self.atol if atol is None else atol
        )
        if problem:
            raise AssertionError(
                f"instantaneous polynomial differs from baseline {path.name}:\n{problem}\n"
                f"(if the change is intended, rerun with {UPDATE_OPTION})"
            )
        return path
