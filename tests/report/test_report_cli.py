"""``rnnattn report``: success, refusing to overwrite, one-line errors with a non-zero exit."""

import pytest
from _report_tools import small_lsa

import rnnattn
from rnnattn.cli import cmd_report
from rnnattn.cli.main import main
from rnnattn.constructions import attention_to_gated_rnn


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny_construction.safetensors"
    rnnattn.save(attention_to_gated_rnn(small_lsa(2, seed=2), form="minimal"), path)
    return path


def _one_line_error(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnattn: error: ") and match in err, err
    return err


def test_report_writes_then_refuses_to_overwrite(checkpoint, tmp_path, capsys):
    assert main(["report", str(checkpoint), "-o", str(tmp_path), "--format", "html"]) == 0
    out = capsys.readouterr().out
    html = tmp_path / "tiny_construction" / "report.html"
    assert out.strip() == f"wrote {html}" and html.is_file() and not html.with_suffix(".pdf").exists()
    before = html.read_bytes()
    _one_line_error(
        capsys,
        ["report", str(checkpoint), "-o", str(tmp_path), "--format", "html"],
        "report.html exists (use --force",
    )
    assert html.read_bytes() == before
    assert (
        main(
            [
                "report",
                str(checkpoint),
                "-o",
                str(tmp_path),
                "--format",
                "html",
                "--force",
                "--reference",
                "construction",
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--format", "html,docx"], "unknown format(s) docx"),
        (["--format", ","], "unknown format"),
        (["--reference", "bogus"], "--reference 'bogus'"),
        (["--all-shipped", "x.safetensors"], "--all-shipped takes no CHECKPOINT"),
    ],
)
def test_usage_errors(argv, match, capsys, tmp_path):
    _one_line_error(capsys, ["report", *argv, "-o", str(tmp_path)], match)


def test_missing_and_corrupt_checkpoints(tmp_path, capsys):
    _one_line_error(
        capsys, ["report", str(tmp_path / "nope.safetensors"), "-o", str(tmp_path)], "no such file"
    )
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    _one_line_error(capsys, ["report", str(bad), "-o", str(tmp_path)], "bad.safetensors")
    (tmp_path / "file").write_text("x")
    _one_line_error(capsys, ["report", str(bad), "-o", str(tmp_path / "file")], "not a directory")


def test_reference_to_missing_teacher_is_one_line(checkpoint, tmp_path, capsys):
    # The construction has no teacher extra: asking for one is a one-line error, not a traceback.
    _one_line_error(
        capsys,
        ["report", str(checkpoint), "-o", str(tmp_path), "--reference", "teacher", "--format", "html"],
        "teacher",
    )


def test_shipped_checkpoints_skip_identical_copies(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.safetensors", "default.safetensors", "z.safetensors"))
    a.write_bytes(b"one")
    b.write_bytes(b"one")
    c.write_bytes(b"two")
    assert cmd_report.shipped_checkpoints(tmp_path) == [a, c]


def test_default_checkpoint_is_package_data_and_matches_the_repository_copy():
    from pathlib import Path

    with cmd_report.default_checkpoint() as path:
        assert path.is_file() and path.parent.name == "data" and path.parent.parent.name == "rnnattn"
        repo_copy = Path(__file__).resolve().parents[2] / "checkpoints" / "default.safetensors"
        if repo_copy.exists():  # one checkpoint, two places: they must not drift apart
            assert repo_copy.read_bytes() == path.read_bytes()
        assert path.with_name("default.log.csv").is_file()  # the loss curve travels with it


def test_report_without_arguments_works_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--format", "html"]) == 0
    html = tmp_path / "reports" / "default" / "report.html"
    assert capsys.readouterr().out.strip() == "wrote reports/default/report.html" and html.is_file()
    text = html.read_text()
    assert "<td>default.safetensors</td>" in text and "/rnnattn/data/" not in text and str(tmp_path) not in text
    assert "Table 1 (teacher-student" in text and "Table 2" not in text and "EQUIVALENT" in text


def test_bugs_are_internal_errors_not_user_errors(monkeypatch, capsys):
    for exc in (TypeError("bad operand"), KeyError("k"), RuntimeError("boom")):
        def boom(args, exc=exc):
            raise exc

        monkeypatch.setattr(cmd_report, "run", boom)
        assert main(["report"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"rnnattn: internal error: {type(exc).__name__}") and "--debug" in err, err
