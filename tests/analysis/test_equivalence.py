import json

import numpy as np
import pytest
import torch
from _constructions import pad_and_scramble, random_lsa, split_row

import rnnattn
from rnnattn import GRU, GatedLinearRNN, GatedLinearRNNConfig, GRUConfig
from rnnattn.analysis import EquivalenceResult, NotApplicable, ReferenceUnavailable, equivalence
from rnnattn.constructions import attention_to_gated_rnn, gd_attention
from rnnattn.tasks import InContextRegression, TeacherStudent, TeacherStudentConfig


@pytest.fixture(scope="module")
def scrambled_result():
    lsa = random_lsa(4, seed=11)
    student = pad_and_scramble(split_row(attention_to_gated_rnn(lsa, form="full"), 6, seed=2), 20, 24, seed=5)
    student.metadata = {}  # no provenance: the reference must come from the argument
    return equivalence(student, lsa, n_sequences=64), lsa


def test_equivalence_on_disguised_construction(scrambled_result):
    r, lsa = scrambled_result
    assert isinstance(r, EquivalenceResult) and r.verdict, r.verdict_text
    assert r.reference_kind == "model" and r.loss.value < 1e-24
    assert r.probes.kv_score < 1e-10 and r.probes.q_score < 1e-10 and r.comparison.distance.value < 1e-12
    s = r.prune.summary.set_index("kind")
    assert (s.loc["hidden", "after"], s.loc["gating", "after"]) == (
        20,
        18,
    )  # 16 + 2: the split row's extra rows
    assert r.merges.merges[0].merged and len(r.merges.merges[0].rows) == 3
    w = r.weights
    assert w.stage == "pruned + canonical + merged"
    assert w.matrices["W_m_out"].shape == (16, 20) and w.matrices["D"].shape == (4, 16)
    assert len(w.labels["hidden"]) == 20 and w.labels["inputs"][-1] == "1"
    np.testing.assert_array_equal(w.matrices["lam"], [1.0] * 16 + [0.0] * 4)
    roles = r.roles
    assert roles.counts["memory"] == int((roles.lam > 0.99).sum()) >= 16  # before pruning: 16 KV + padding
    assert roles.lam.shape == (40,)  # 20 + 20 padding
    assert r.task is None and [na.step for na in r.not_applicable] == ["context-query polynomial"]  # no ICL task
    # through the scrambling, the basis-free steps find the compact construction's 10 KV + 4 query units
    assert (r.effective.n_kv, r.effective.n_query) == (10, 4) and r.rotation.minimal
    assert r.rotation.n_hidden_after == 14 and r.rotation.polynomial_distance < 1e-9
    assert set(r.checks.table["check"]) >= {"KV score", "Q score"} and r.checks.table["passed"].all()


def test_result_serialises_and_renders(scrambled_result):
    r, _ = scrambled_result
    d = json.loads(json.dumps(r.to_dict()))
    assert d["checks"]["passed"] is True and d["student"]["class"] == "GatedLinearRNN"
    assert len(d["student_polynomial"]["monomials"]) == 70
    assert d["merges"]["merges"][0]["output_singular_values"][0] > 0
    html = r._repr_html_()
    assert "equivalent" in html and "<table" in html and "MergeResult" in html
    assert "verdict=True" in repr(r)


def test_equivalence_from_checkpoint_with_teacher(tmp_path):
    task = TeacherStudent(TeacherStudentConfig(d=2, seq_len=8, input_dist="uniform"))
    student = attention_to_gated_rnn(task.teacher.double(), form="minimal").float()
    student.metadata = {}
    path = rnnattn.save(
        student,
        tmp_path / "ts.safetensors",
        extras={"teacher": task.teacher.float()},
        task=task.to_dict(),
        reference="teacher",
    )
    r = equivalence(path, n_sequences=16)
    assert r.reference_kind == "teacher" and "teacher_student" in r.settings["input_distribution"]
    assert r.settings["seq_len"] == 8 and r.task == "teacher_student"
    assert r.settings["source"] == "ts.safetensors"  # a file outside the working folder: its name only
    # float32 weights: the distances reflect float32 rounding of the stored weights, nothing more
    assert r.verdict and r.comparison.distance.value < 1e-6
    assert r.prune.n_hidden_after == 5 and r.prune.n_gating_after == 3


def _gd_student(task: InContextRegression, tmp_path, readout_scale: float = 1.0):
    """GD's exact construction (full form) read out at the y slots only, scaled by ``readout_scale``, saved with its
    task and the one-step-GD reference."""
    gd6 = gd_attention(3, 3, task.eta_star)  # 6 outputs, the y slots last
    full = attention_to_gated_rnn(gd6, form="full")
    student = GatedLinearRNN(full.config.replace(d_output=3)).double()
    with torch.no_grad():
        student.W_in.copy_(full.W_in)
        student.nu.copy_(full.nu)
        student.W_out.copy_(full.W_out)
        student.D.copy_(readout_scale * full.D[3:])
    return rnnattn.save(student, tmp_path / "icl.safetensors", task=task.to_dict(), reference="one_step_gd")


def test_equivalence_icl_against_one_step_gd(tmp_path):
    task = InContextRegression()
    path = _gd_student(task, tmp_path)
    r = equivalence(path, n_sequences=32)
    assert r.reference_kind == "one_step_gd" and r.verdict, r.verdict_text
    assert r.settings["loss"].endswith("time steps [12]") and r.loss.positions == [12]
    assert r.task == "icl_regression"
    assert r.student_polynomial.coefficient("y1", "x1^2*y1") == pytest.approx(task.eta_star, rel=1e-12)
    # GD's sparse structure: 9 KV (y_i x_j) and 3 query units survive pruning
    assert r.prune.n_hidden_after == 12 and r.prune.n_gating_after == 9
    # the verdict compares with one-step GD on the task's support (the context-query polynomial), not on y_q terms
    cq = r.context_query
    assert cq.eta == pytest.approx(task.eta_star) and cq.distance_support < 1e-12 and cq.residual_support < 1e-12
    checks = r.checks.table.set_index("check")["value"]
    assert "context-query distance to one-step GD (task's support, y_q = 0)" in checks
    assert not any(c.startswith("polynomial distance") for c in checks.index)


def test_icl_student_with_the_wrong_learning_rate_is_not_gd(tmp_path):
    """The ICL verdict can fail: GD's exact construction with its readout scaled by 1.3 (eta = 1.3 eta*)."""
    path = _gd_student(InContextRegression(), tmp_path, readout_scale=1.3)
    r = equivalence(path, n_sequences=32, merge=False)
    assert r.verdict is False and r.verdict_text.startswith("not shown one step of GD"), r.verdict_text
    failed = set(r.checks.table.loc[~r.checks.table["passed"], "check"])
    assert "context-query distance to one-step GD (task's support, y_q = 0)" in failed
    assert any(c.startswith("loss vs one-step GD") for c in failed)


def test_untrained_student_is_not_equivalent():
    torch.manual_seed(0)
    student = GatedLinearRNN(GatedLinearRNNConfig(3, 12, 12, 3))
    r = equivalence(student, random_lsa(3), n_sequences=8, merge=False)
    assert r.verdict is False and "polynomial distance" in r.verdict_text
    assert isinstance(r.merges, NotApplicable) and "merge=False" in r.merges.reason


def test_dense_student_reports_what_does_not_apply():
    torch.manual_seed(1)
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 4, 4, 2, recurrence="dense")).double()
    with torch.no_grad():
        m.A.add_(0.1 * torch.triu(torch.ones(4, 4), 1))  # the init is diagonal; make it genuinely dense
    r = equivalence(m, random_lsa(2), n_sequences=8)
    assert isinstance(r.canonical, NotApplicable) and "dense A is not diagonal" in r.canonical.reason
    assert [na.step for na in r.not_applicable][:2] == ["canonicalize", "merge_rank1"]
    assert r.context_query.reason.startswith("defined for in-context regression")
    assert r.probes.features == "eigenmodes" and r.roles.features == "eigenmodes"
    assert "A" in r.weights.matrices and r.weights.stage == "pruned"
    assert json.loads(json.dumps(r.to_dict()))["roles"]["table"][0]["lam_complex"]["im"] == 0.0


def test_gru_gets_a_result_where_every_step_says_why_not():
    gru = GRU(GRUConfig(2, 2))
    r = equivalence(gru, random_lsa(2), n_sequences=4)
    assert r.reference_kind == "model" and r.verdict is None
    assert {na.step for na in r.not_applicable} == {*r.steps()} - {"reference"}
    assert all("GRU is not an Eq. 2 gated RNN" in na.reason for na in r.not_applicable if na.step != "roles")
    assert "no input-independent decay" in r.roles.reason
    assert r.verdict_text.startswith("no verdict: ")


def test_reference_asked_for_must_fit_the_student():
    with pytest.raises(ReferenceUnavailable, match="2 -> 2 features, the student 2 -> 3"):
        equivalence(GatedLinearRNN(GatedLinearRNNConfig(2, 3, 3, 3)), random_lsa(2))
    with pytest.raises(ReferenceUnavailable, match="no extras\\['teacher'\\]"):
        equivalence(GatedLinearRNN(GatedLinearRNNConfig(2, 3, 3, 2)), "teacher")


def test_without_a_reference_the_reference_free_steps_still_run():
    lsa = random_lsa(3, seed=4)
    student = attention_to_gated_rnn(lsa, form="compact")
    student.metadata = {}  # forget the source: nothing to compare with
    r = equivalence(student, n_sequences=8)
    assert r.reference_kind == "none" and r.verdict is None and "no reference found" in r.verdict_text
    assert {na.step for na in r.not_applicable} == {"reference", "loss", "probes", "polynomial comparison",
                                                    "context-query polynomial", "verdict"}
    assert all("no reference found" in na.reason for na in r.not_applicable if na.step != "context-query polynomial")
    assert (r.effective.n_kv, r.effective.n_query) == (6, 3)  # reference-free: d(d+1)/2 KV, d query units
    assert r.prune.n_hidden_after == 9 and r.canonical.gating_conforming.all() and r.merges.merges == []
    assert r.student_polynomial.max_degree == 4 and not r.probes  # NotApplicable is falsy


def test_non_finite_weights_are_flagged_not_analysed():
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 3, 3, 2)).double()
    with torch.no_grad():
        m.D[0, 0] = float("nan")
    r = equivalence(m, random_lsa(2), n_sequences=4)
    assert len(r.not_applicable) == len(r.steps()) - 1  # all but the reference
    assert all("non-finite weights: D (1 NaN, 0 Inf)" in na.reason for na in r.not_applicable)


def test_the_student_is_copied_once(monkeypatch):
    """The public wrapper resolves (copies) the model once; the steps reuse that copy."""
    import rnnattn.analysis.loading as loading

    copies = []
    real = loading.float64_copy
    monkeypatch.setattr(loading, "float64_copy", lambda m: copies.append(type(m).__name__) or real(m))
    lsa = random_lsa(2, seed=3)
    student = attention_to_gated_rnn(lsa, form="compact")
    equivalence(student, lsa, n_sequences=4)
    assert copies.count("GatedLinearRNN") == 1, copies


@pytest.mark.slow
def test_shipped_teacher_student_checkpoint():
    """Table 1 on the shipped checkpoint (when present): every figure is computed and finite."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "checkpoints" / "teacher_student_d4.safetensors"
    if not path.exists():
        pytest.skip("checkpoints/teacher_student_d4.safetensors not shipped")
    r = equivalence(path)
    assert r.reference_kind == "teacher" and "teacher_student" in r.settings["input_distribution"]
    assert np.isfinite([r.loss.value, r.probes.kv_score, r.probes.q_score, r.comparison.distance.value]).all()
    assert r.roles.counts["memory"] >= 10  # d(d+1)/2 KV units at least, as the paper's student
