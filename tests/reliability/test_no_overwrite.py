"""Nothing a user already has is overwritten without ``--force`` / ``overwrite=True``, and writes are atomic: a refused
or failed write leaves the existing bytes exactly as they were and no stray files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _reliability_tools import COUNTS, cli, require_command, small_models

import rnnattn
from rnnattn.checkpoint import atomic_write_bytes


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def model():
    return small_models()["glrnn"][0]


def test_save_refuses_to_overwrite(tmp_path, model):
    p = tmp_path / "mine.safetensors"
    p.write_bytes(b"my precious work")
    with pytest.raises(FileExistsError, match="overwrite"):
        rnnattn.save(model, p)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"my precious work"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["mine.safetensors"]  # no temp file left behind
    rnnattn.save(model, p, overwrite=True)
    assert rnnattn.load(p).config == model.config
    COUNTS["inputs: overwrite refusals"] += 2


def test_overwrite_replaces_a_symlink_not_its_target(tmp_path, model):
    target = tmp_path / "elsewhere.bin"
    target.write_bytes(b"user data")
    link = tmp_path / "model.safetensors"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        rnnattn.save(model, link)
    rnnattn.save(model, link, overwrite=True)
    assert target.read_bytes() == b"user data" and not link.is_symlink()
    dangling = tmp_path / "dangling.safetensors"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):  # a dangling link is still the user's: not replaced silently
        rnnattn.save(model, dangling)
    assert dangling.is_symlink()


def test_failed_write_keeps_the_old_file(tmp_path, model, monkeypatch):
    p = tmp_path / "m.safetensors"
    rnnattn.save(model, p, step=1)
    before = p.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="space"):
        rnnattn.save(model, p, overwrite=True, step=2)
    with pytest.raises(OSError, match="space"):
        rnnattn.save(model, tmp_path / "new.safetensors")
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.safetensors"]


def test_save_onto_a_directory_is_refused(tmp_path, model):
    d = tmp_path / "folder.safetensors"
    d.mkdir()
    (d / "inside").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        rnnattn.save(model, d)
    with pytest.raises(OSError):
        rnnattn.save(model, d, overwrite=True)
    assert (d / "inside").read_bytes() == b"x"
    assert [x.name for x in tmp_path.iterdir()] == ["folder.safetensors"]


def test_report_never_overwrites_without_force(tmp_path):
    require_command("report")
    ck = rnnattn.save(small_models()["glrnn"][0], tmp_path / "ck.safetensors")
    out = tmp_path / "reports"
    (out / "ck").mkdir(parents=True)
    (out / "ck" / "report.html").write_bytes(b"<p>my edited report</p>")
    (out / "ck" / "report.pdf").write_bytes(b"%PDF my annotated copy")
    before = _snapshot(tmp_path)
    for fmt in ("html", "pdf", "html,pdf", "pdf,html"):
        argv = ["report", str(ck), "-o", str(out), "--format", fmt]
        rc, _, err = cli(argv, "overwrite refusals")
        assert rc == 2 and "exists" in err and "--force" in err, err
        assert _snapshot(tmp_path) == before
    # only one of the two exists: still refused before anything is written (no half-updated pair)
    (out / "ck" / "report.pdf").unlink()
    before = _snapshot(tmp_path)
    rc, _, err = cli(["report", str(ck), "-o", str(out), "--format", "pdf,html"], "overwrite refusals")
    assert rc == 2 and _snapshot(tmp_path) == before
    # an output path that is a user's file is not replaced by a folder either
    rc, _, err = cli(
        ["report", str(ck), "-o", str(out / "ck" / "report.html"), "--format", "html"], "overwrite refusals"
    )
    assert rc == 2 and _snapshot(tmp_path) == before


def test_train_never_overwrites_another_run_without_force(tmp_path):
    require_command("train")
    run = tmp_path / "run"
    run.mkdir()
    files = {
        "model.safetensors": b"someone's model",
        "state.safetensors": b"someone's state",
        "log.csv": b"step,phase\n1,adam\n",
        "summary.json": b"{}",
    }
    for name, data in files.items():
        for other in files:
            (run / other).unlink(missing_ok=True)
        (run / name).write_bytes(data)
        before = _snapshot(tmp_path)
        argv = ["train", "teacher-student", "--out", str(run), "--steps", "2", "--no-progress"]
        rc, _, err = cli(argv, "overwrite refusals")
        assert rc == 2 and "--force" in err and "Traceback" not in err, err
        assert _snapshot(tmp_path) == before, f"train touched an existing run holding only {name}"
    # a path that is a user's file is never turned into a run folder
    f = tmp_path / "notes.txt"
    f.write_bytes(b"notes")
    rc, _, err = cli(
        ["train", "teacher-student", "--out", str(f), "--steps", "2", "--no-progress"], "overwrite refusals"
    )
    assert rc == 2 and f.read_bytes() == b"notes"
