"""build_report end to end: sections, formats, not-applicable steps, escaping of checkpoint text,
overwriting."""

import io
import re

import pypdf
import pytest
import torch
from _report_tools import small_lsa

import rnnattn
from rnnattn.constructions import attention_to_gated_rnn
from rnnattn.models import LRU, LSTM, LRUConfig, LSTMConfig
from rnnattn.report.build import SECTION_KEYS, build_report, find_log

TITLES = [
    "Model and training",
    "Decay rates λ and neuron roles",
    "Pruning",
    "Canonical weights (Fig. 2A)",
    "Effective KV / query counts (through same-λ mixing)",
    "Probe scores (KV and Q, §3.1)",
    "Instantaneous polynomial",
    "In-context regression: one-step GD on the task's support (§4)",
    "Rank-1 merges (App. B.2, Fig. 2C)",
    "Verdict",
]


def _sections(html: str) -> dict[str, str]:
    """section id -> its status class."""
    return dict(re.findall(r'<section id="([a-z_]+)" class="status-([a-z_]+)"', html))


def test_construction_report_has_every_section_in_both_formats(construction_report):
    paths = construction_report
    html = paths.html.read_text()
    # every step applies to a construction except the in-context-regression one
    assert _sections(html) == {k: "not_applicable" if k == "context_query" else "ok" for k in SECTION_KEYS}
    assert html.count('<p class="reading">') == len(SECTION_KEYS)
    assert "EQUIVALENT — equivalent" in html and "construction reference" in html
    assert "6 effective KV units among" in html and "3 effective query units" in html  # d = 3: 6 + 3
    # λ, weights, effective-count spectra, probes, polynomial (no log, nothing to merge)
    assert html.count("data:image/png;base64,") == 5
    reader = pypdf.PdfReader(io.BytesIO(paths.pdf.read_bytes()))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) >= 1 + len(SECTION_KEYS)
    for t in TITLES + ["EQUIVALENT", "Contents", "Checks against stated thresholds", "polynomial distance"]:
        assert t in text, t


def test_construction_numbers_in_verdict(construction_report):
    html = construction_report.html.read_text()
    verdict = html[html.index('<section id="verdict"') :]
    assert verdict.count('class="pass">PASS<') == 5 and "FAIL" not in verdict
    assert "exact construction" in verdict  # the exact constructions' expectations (§2) are shown beside ours


@pytest.mark.parametrize(
    "model",
    [LSTM(LSTMConfig(d_input=3, d_hidden=4)), LRU(LRUConfig(d_input=3, d_state=4, variant="in_out"))],
    ids=["lstm", "lru"],
)
def test_models_where_analysis_does_not_apply(model, tmp_path):
    paths = build_report(model, out_dir=tmp_path, formats=("html",))
    assert paths.pdf is None and not (tmp_path / "report.pdf").exists()
    html = paths.html.read_text()
    status = _sections(html)
    assert set(status) == set(SECTION_KEYS)
    for k in ("pruning", "weights", "effective", "probes", "polynomial", "context_query", "merges", "verdict"):
        assert status[k] == "not_applicable", k
    assert status["lambda"] == ("ok" if isinstance(model, LRU) else "not_applicable")
    assert f"{type(model).__name__} is not an Eq. 2 gated RNN" in html and "No verdict" in html
    assert not re.search(r"<td>nan</td>", html)  # no meaningless numbers


def test_checkpoint_text_cannot_inject_markup(tmp_path):
    lsa = small_lsa(2, seed=1)
    rnn = attention_to_gated_rnn(lsa, form="minimal")
    evil = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
    (tmp_path / "secret.csv").write_text("step,train_loss\n0,123456789\n")
    folder = tmp_path / "ck"
    folder.mkdir()
    ck = folder / "evil<script>x.safetensors"
    rnnattn.save(
        rnn,
        ck,
        extras={"teacher": lsa},
        reference="teacher",
        description=evil,
        task={"name": evil, "input_distribution": evil},
        training={"log": "../secret.csv", "note": evil},
        **{evil: evil},
    )
    paths = build_report(ck, out_dir=tmp_path / "out", n_sequences=32)
    html = paths.html.read_text()
    assert (
        "<script" not in html.lower()
        and "<img src=x" not in html
        and "onerror=alert" not in html.replace("onerror=alert", "")
        and not re.search(r"<[^>]*onerror", html)
    )
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html  # shown, as text
    assert "Equivalence report: evil&lt;script&gt;x" in html
    assert (
        "123456789" not in html
    )  # the metadata cannot make the report read files outside the checkpoint folder
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(paths.pdf.read_bytes())).pages)
    assert "<script>alert('pwned')</script>" in text  # the PDF shows it literally (no markup there)


def test_find_log_only_searches_the_checkpoint_folder(tmp_path):
    ck = tmp_path / "run.safetensors"
    (tmp_path / "run.log.csv").write_text("step,train_loss\n0,1.0\n10,0.5\n")
    log, path, searched = find_log(ck, {"training": {"log": "/etc/passwd"}})
    assert path == tmp_path / "run.log.csv" and list(log["train_loss"]) == [1.0, 0.5]
    assert all(str(tmp_path) in s for s in searched)


def test_refuses_to_overwrite_without_force(tmp_path, construction):
    (tmp_path / "report.html").write_text("keep me")
    with pytest.raises(FileExistsError, match="report.html exists"):
        build_report(construction, out_dir=tmp_path, formats=("html", "pdf"))
    assert (tmp_path / "report.html").read_text() == "keep me" and not (tmp_path / "report.pdf").exists()
    paths = build_report(construction, out_dir=tmp_path, formats=("html",), force=True)
    assert paths.html.read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown report format"):
        build_report(torch.nn.Linear(1, 1), out_dir="/nonexistent", formats=("docx",))
    with pytest.raises(TypeError, match="needs a model"):
        build_report(torch.nn.Linear(1, 1), out_dir="/tmp/none", formats=("html",), force=True)


def test_rank1_merge_section_shows_kernels(construction, lsa3, tmp_path):
    # Split gating row 0 (u on memory, v on forget neurons) into (u + w) v^T and (-w) v^T with w on forget
    # neurons:
    # the function is unchanged, the two rows leave the block form, and together they have the rank-1 kernel u
    # v^T.
    from rnnattn.models import GatedLinearRNN

    c = construction.config
    rnn = GatedLinearRNN(c.replace(n_gating=c.n_gating + 1)).to(torch.float64)
    Wm, Wx, D = construction.W_m_out.detach(), construction.W_x_out.detach(), construction.D.detach()
    w = 0.7 * Wx[0]
    with torch.no_grad():
        rnn.W_in.copy_(construction.W_in)
        rnn.nu.copy_(construction.nu)
        rnn.W_out.copy_(torch.stack([torch.cat([Wm, -w[None]]), torch.cat([Wx, Wx[:1]])]))
        rnn.W_out[0, 0] += w
        rnn.D.copy_(torch.cat([D, D[:, :1]], dim=1))
    rnn.metadata = dict(construction.metadata)
    html = build_report(rnn, lsa3, out_dir=tmp_path, formats=("html",), n_sequences=32).html.read_text()
    merges = html[html.index('<section id="merges"') : html.index('<section id="verdict"')]
    assert "1 of 1 group(s)" in merges and "10 → 9" in merges
    assert merges.count("data:image/png;base64,") == 1 and "Merge evidence" in merges


def _icl_student():
    """The one-step-GD construction restricted to the 3 predicted outputs, saved as an ICL checkpoint."""
    from rnnattn.constructions import gd_attention
    from rnnattn.models import GatedLinearRNN
    from rnnattn.tasks import InContextRegression

    task = InContextRegression()
    full = attention_to_gated_rnn(gd_attention(3, 3, task.eta_star), form="full")
    student = GatedLinearRNN(full.config.replace(d_output=3)).double()
    with torch.no_grad():
        student.W_in.copy_(full.W_in)
        student.nu.copy_(full.nu)
        student.W_out.copy_(full.W_out)
        student.D.copy_(full.D[3:])
    return student, task


def test_each_task_shows_its_own_paper_table(tmp_path):
    student, task = _icl_student()
    icl = rnnattn.save(student, tmp_path / "icl.safetensors", task=task.to_dict(), reference="one_step_gd")
    html = build_report(icl, out_dir=tmp_path / "icl", formats=("html",), n_sequences=16).html.read_text()
    assert "Table 2" in html and "in-context linear regression" in html
    assert '<section id="context_query" class="status-ok"' in html and "context-query distance to one-step GD" in html
    assert "Table 1" not in html and "4.97e-08" not in html and "86/100" not in html  # nothing of Table 1

    from rnnattn.tasks import TeacherStudent, TeacherStudentConfig

    ts = TeacherStudent(TeacherStudentConfig(d=2, seq_len=8))
    rnn = attention_to_gated_rnn(ts.teacher.double(), form="minimal")
    rnn.metadata = {}
    path = rnnattn.save(rnn, tmp_path / "ts.safetensors", extras={"teacher": ts.teacher}, task=ts.to_dict(),
                        reference="teacher")
    html = build_report(path, out_dir=tmp_path / "ts", formats=("html",), n_sequences=16).html.read_text()
    assert "Table 1 (teacher-student" in html and "Table 2" not in html
    assert "<td>4.97e-08</td>" in html and "<td>86/100</td>" in html  # mixed column, each cell in its own scale


def test_report_records_no_absolute_paths(tmp_path, monkeypatch, construction):
    folder = tmp_path / "deep" / "models"
    folder.mkdir(parents=True)
    ck = rnnattn.save(construction, folder / "c.safetensors")
    (folder / "c.log.csv").write_text("step,train_loss\n0,1.0\n10,0.5\n")
    monkeypatch.chdir(tmp_path)
    html = build_report(ck, out_dir="out", formats=("html",), n_sequences=8).html.read_text()
    assert str(tmp_path) not in html and "deep/models/c.safetensors" in html and "From c.log.csv" in html
    monkeypatch.chdir(folder / "..")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the checkpoint is outside the working folder: its name only
    html = build_report(ck, out_dir="out", formats=("html",), n_sequences=8).html.read_text()
    assert str(tmp_path) not in html and "<td>c.safetensors</td>" in html


def test_pruning_reading_explains_units_kept_by_a_mixed_basis(construction_report):
    """The shipped N = M = 32 student has no zero rows but holds 10 KV + 4 query directions mixed within its λ groups:
    the pruning section says so with the measured counts; an exact construction gets no such note."""
    from pathlib import Path

    from rnnattn.analysis import equivalence
    from rnnattn.report.sections import ReportInputs, pruning_section

    assert "Zero rows leave" not in construction_report.html.read_text()
    ckpt = Path(__file__).resolve().parents[2] / "checkpoints" / "teacher_student_d4.safetensors"
    res = equivalence(ckpt)
    reading = pruning_section(ReportInputs(name="s", result=res)).reading
    kept = res.prune.n_hidden_after
    assert kept > 14
    assert f"Zero rows leave {kept} hidden neurons, {kept - 14} more than the 10 KV + 4 query directions" in reading
    assert f"{res.rotation.n_hidden_after} hidden neurons and {res.rotation.n_gating_after} gating rows" in reading
