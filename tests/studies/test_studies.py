"""The reproduction studies in analysis/: each runs end to end (sweep -> analysis -> report) and its report
holds the paper-vs-rnnattn table and says which mode produced it.

Default suite: ``--tiny`` smoke runs (a handful of training steps, in-process). ``-m slow``: the real
``--quick`` mode of every study (minutes each on a 2-core CPU).
"""

import ast
import importlib.util
import json
import re
from pathlib import Path

import pandas as pd
import pytest

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
STUDIES = ("table1", "table2", "fig3", "fig4")
SIDE_BY_SIDE = {
    "table1": "table1.csv",
    "table2": "table2.csv",
    "fig3": "fig3_side_by_side.csv",
    "fig4": "fig4_side_by_side.csv",
}


def load_study(name: str):
    spec = importlib.util.spec_from_file_location(f"study_{name}", ANALYSIS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_study(name: str, tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "reports" / name
    argv = ["--out", str(out), "--runs-dir", str(tmp_path / "runs" / name), "--no-progress", *extra]
    assert load_study(name).main(argv) == 0
    return out


def check_report(out: Path, name: str, mode: str) -> None:
    html = (out / "report.html").read_text()
    assert f"--{mode} mode" in html and "Paper vs rnnattn" in html
    assert "<script" not in html.lower()
    side = pd.read_csv(out / SIDE_BY_SIDE[name])
    assert len(side) >= 3
    assert any(c.startswith("paper") for c in side.columns) and any("rnnattn" in c or "run" in c for c in side.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["study"] == name and summary["mode"] == mode
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert "report.html" in manifest and all((out / f).exists() for f in manifest)
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 'src="data:image/png;base64,' in html  # figures are inline: the HTML stands alone


@pytest.mark.parametrize("name", STUDIES)
def test_study_tiny_end_to_end(name, tmp_path):
    out = run_study(name, tmp_path, "--quick", "--tiny", "--workers", "1")
    check_report(out, name, "tiny")


def test_rerun_resumes_and_refuses_foreign_files(tmp_path):
    args = ("--quick", "--tiny", "--workers", "1")
    out = run_study("fig3", tmp_path, *args)
    results = sorted((tmp_path / "runs" / "fig3").glob("*.jsonl"))
    n = [len(r.read_text().splitlines()) for r in results]
    run_study("fig3", tmp_path, *args)
    assert [len(r.read_text().splitlines()) for r in results] == n  # every run was done: nothing retrained
    (out / "fig3_side_by_side.csv").unlink()
    (out / "manifest.json").unlink()
    (out / "fig3_side_by_side.csv").write_text("a user's own file\n")
    with pytest.raises(FileExistsError, match="not written by a study"):
        run_study("fig3", tmp_path, *args)
    assert (out / "fig3_side_by_side.csv").read_text() == "a user's own file\n"
    run_study("fig3", tmp_path, *args, "--force")
    check_report(out, "fig3", "tiny")


def test_tiny_needs_quick(tmp_path):
    with pytest.raises(SystemExit):
        load_study("table2").main(["--full", "--tiny", "--out", str(tmp_path)])


@pytest.mark.parametrize("path", sorted(ANALYSIS.glob("*.py")), ids=lambda p: p.name)
def test_studies_use_only_public_api(path):
    """No ``rnnattn._x`` module or ``_name`` imported from rnnattn (the studies are the user's view of the
    API)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnnattn"):
            assert not any(part.startswith("_") for part in node.module.split(".")), (path.name, node.module)
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
            assert not private, (path.name, private)
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("rnnattn"):
                    assert not any(p.startswith("_") for p in a.name.split(".")), (path.name, a.name)
    assert not re.search(r"rnnattn\.\w+\._\w", path.read_text()), path.name


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_study_quick(name, tmp_path):
    """The real --quick mode (minutes on a 2-core CPU): what reports/<study>/ is generated with."""
    out = run_study(name, tmp_path, "--quick")
    check_report(out, name, "quick")
