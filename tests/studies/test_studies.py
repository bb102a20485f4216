"""The reproduction studies in analysis/: each runs end to end (sweep -> analysis -> report) and its report opens
with the paper's claims beside ours (✓/✗ per claim) and the time the study took.

Default suite: the ``--tiny`` mode of every study (seconds each, in-process). ``-m slow``: the ``--quick`` mode
(minutes each on a 2-core CPU).
"""

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
STUDIES = ("table1", "table2", "fig3", "fig4", "lsrl_noise")
PAPER_TABLE = {
    "table1": "table1.csv",
    "table2": "table2.csv",
    "fig3": "fig3A_by_size.csv",
    "fig4": "fig4A_best.csv",
    "lsrl_noise": "summary_tok2tok.csv",
}
CLAIM_COLUMNS = ["claim (paper)", "source", "paper", "ours", "reproduced", "criterion"]


def load_study(name: str):
    """A study script as a module (helpers ``_common`` / ``paper_claims`` are imported as the studies import
    them)."""
    if str(ANALYSIS) not in sys.path:
        sys.path.insert(0, str(ANALYSIS))
    if name not in STUDIES:
        return importlib.import_module(name)
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
    assert f"--{mode} mode" in html
    assert "<script" not in html.lower()
    # the claims table opens the page, before the mode section and the study's own sections
    first = html.index("Claims: paper vs rnnattn")
    assert first < html.index("How this report was produced") and "Time this study took" in html
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims.columns) == CLAIM_COLUMNS and len(claims) >= 4
    assert set(claims["reproduced"]) <= {"✓", "✗", "–"}
    assert claims["ours"].notna().all() and claims["paper"].notna().all()
    assert len(pd.read_csv(out / PAPER_TABLE[name])) >= 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["study"] == name and summary["mode"] == mode
    t = summary["timing"]
    assert t["wall_s"] > 0 and t["cpu_s"] > 0 and t["cpu_s"] >= t["training_cpu_s"]
    n_ok = sum(r["reproduced"] == "✓" for r in summary["claims"])
    assert summary["verdict"].startswith(f"{n_ok}/")
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert "report.html" in manifest and all((out / f).exists() for f in manifest)
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 'src="data:image/png;base64,' in html  # figures are inline: the HTML stands alone


@pytest.mark.parametrize("name", STUDIES)
def test_study_tiny_end_to_end(name, tmp_path):
    out = run_study(name, tmp_path, "--tiny", "--workers", "1")
    check_report(out, name, "tiny")


def test_rerun_resumes_and_refuses_foreign_files(tmp_path, capsys):
    args = ("--tiny", "--workers", "1")
    out = run_study("fig3", tmp_path, *args)
    results = sorted((tmp_path / "runs" / "fig3").glob("*.jsonl"))
    n = [len(r.read_text().splitlines()) for r in results]
    run_study("fig3", tmp_path, *args)
    assert [len(r.read_text().splitlines()) for r in results] == n  # every run was done: nothing retrained
    timing = json.loads((out / "summary.json").read_text())["timing"]
    assert timing["runs_trained_now"] == 0 and timing["runs_reused"] == 4 and timing["training_cpu_s"] > 0
    (out / "claims.csv").unlink()
    (out / "manifest.json").unlink()
    (out / "claims.csv").write_text("a user's own file\n")
    with pytest.raises(SystemExit, match="not written by a study"):
        run_study("fig3", tmp_path, *args)
    assert (out / "claims.csv").read_text() == "a user's own file\n"
    run_study("fig3", tmp_path, *args, "--force")
    check_report(out, "fig3", "tiny")


@pytest.mark.parametrize("name", ("table1", "table2"))
def test_checkpoints_are_analysed_not_trained(name, tmp_path):
    """--checkpoints analyses the given runs: nothing is trained and nothing is written into their folder."""
    first = run_study(name, tmp_path / "a", "--tiny", "--workers", "1")
    paths = [str(p) for p in sorted((tmp_path / "a" / "runs" / name / "checkpoints").glob("*.safetensors"))]
    assert paths
    before = {p: Path(p).stat().st_mtime_ns for p in paths}
    out = run_study(name, tmp_path / "b", "--tiny", "--checkpoints", *paths)
    assert not (tmp_path / "b" / "runs").exists()
    assert {p: Path(p).stat().st_mtime_ns for p in paths} == before
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["sources"].values()) == sorted(paths)
    assert summary["timing"]["training_cpu_s"] == 0
    assert first.exists()


def test_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        load_study("table2").main(["--checkpoints", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nope.safetensors does not exist" in err and "Traceback" not in err


def test_modes_are_exclusive(tmp_path):
    with pytest.raises(SystemExit):
        load_study("table2").main(["--full", "--tiny", "--out", str(tmp_path)])


def test_default_mode_is_converged():
    common = load_study("_common")
    args = common.parse_args("fig3", "", [])
    assert args.mode == "converged" and args.runs_dir.name == "converged" and args.device == "cpu"
    assert common.parse_args("fig3", "", ["--full"]).device == "auto"


def test_plateau_stopper_stops_only_on_a_plateau():
    from rnnattn.sweeps.runs import plateau_stopper

    stop = plateau_stopper(patience=3, min_rel=0.01)
    assert not any(stop({"val_loss": v}) for v in (1.0, 0.5, 0.25, 0.12))  # improving: never stops
    assert not stop({"val_loss": None}) and not stop({"train_loss": 0.1})  # rows without validation do not count
    assert [stop({"val_loss": 0.1199}) for _ in range(3)] == [False, False, True]  # < 1% better: a plateau
    late = plateau_stopper(patience=1, min_rel=0.01, min_steps=100)  # an early plateau is not the end
    assert [late({"val_loss": 1.0, "step": s}) for s in (10, 50, 90, 100)] == [False, False, False, True]
    fresh = plateau_stopper(patience=2, min_rel=0.5)
    assert [fresh({"val_loss": v}) for v in (1.0, 0.6, 0.55, 0.3)] == [False, False, True, False]  # 2x better resets


def test_late_improvement_reads_the_curve():
    common = load_study("_common")
    curve = [[s, 1.0 / s, None] for s in range(10, 110, 10)]  # train loss 1/step, no validation
    assert common.late_improvement(curve) == pytest.approx((1 / 80 - 1 / 100) / (1 / 80))
    with_val = [[10, 9.0, 2.0], [80, 9.0, 1.0], [100, 9.0, 0.5]]  # validation loss is preferred where recorded
    assert common.late_improvement(json.dumps(with_val)) == pytest.approx(0.5)
    assert common.late_improvement([[1, 1.0, None]]) != common.late_improvement([[1, 1.0, None]])  # nan


def test_claim_rows_mark_and_keep_the_numbers():
    pc = load_study("paper_claims")
    c = pc.TABLE2_CLAIMS[1]
    row = pc.row(c, "0.0683 ± 1e-4", True, "✓ if within 2%")
    assert list(row) == CLAIM_COLUMNS and row["reproduced"] == "✓" and row["paper"] == c.paper
    assert pc.row(c, "x", False, "")["reproduced"] == "✗" and pc.row(c, "x", None, "")["reproduced"] == "–"


@pytest.mark.parametrize("path", sorted(ANALYSIS.glob("*.py")), ids=lambda p: p.name)
def test_studies_use_only_public_api(path):
    """No ``rnnattn._x`` module or ``_name`` imported from rnnattn (the studies are the user's view of the
    API), and no ``PAPER_*`` numbers imported by a study (they reach the studies through analysis/paper_claims.py,
    which reads them from the public :mod:`rnnattn.paper`)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnnattn"):
            assert not any(part.startswith("_") for part in node.module.split(".")), (path.name, node.module)
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
            assert not private, (path.name, private)
            assert not any(a.name.startswith("PAPER") for a in node.names), (path.name, "paper numbers")
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("rnnattn"):
                    assert not any(p.startswith("_") for p in a.name.split(".")), (path.name, a.name)
    assert not re.search(r"rnnattn\.\w+\._\w", path.read_text()), path.name


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_study_quick(name, tmp_path):
    """The --quick mode (minutes on a 2-core CPU; CI)."""
    out = run_study(name, tmp_path, "--quick")
    check_report(out, name, "quick")
