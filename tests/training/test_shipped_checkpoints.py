"""The shipped checkpoints load, carry the documented metadata, and reproduce the losses they record."""

from pathlib import Path

import pytest
import torch

from rnnattn import load_checkpoint
from rnnattn.cli.main import main
from rnnattn.tasks import task_from_dict

ROOT = Path(__file__).resolve().parents[2] / "checkpoints"


def _load(name):
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{path} not shipped")
    return load_checkpoint(path)


def test_teacher_student_checkpoint():
    ck = _load("teacher_student_d4.safetensors")
    md = ck.metadata
    assert md["reference"] == "teacher" and md["task"]["name"] == "teacher_student" and md["task"]["d"] == 4
    task = task_from_dict(md["task"], teacher=ck.extras["teacher"])
    val = task.validation_set(256, seed=123)
    with torch.no_grad():
        loss = task.loss(ck.model(val.x), val.y, val.mask).item()
    assert loss < 10 * md["training"]["final_val_loss"] + 1e-7
    assert (ROOT / "teacher_student_d4.log.csv").stat().st_size < 1_000_000


def test_icl_checkpoint(capsys):
    ck = _load("icl_d6.safetensors")
    md = ck.metadata
    assert md["reference"] == "one_step_gd" and ck.model.config.n_hidden == 80 and ck.model.d_input == 6
    task = task_from_dict(md["task"])
    val = task.validation_set(20_000, seed=321)
    with torch.no_grad():
        loss = task.loss(ck.model(val.x), val.y, val.mask).item()
    assert loss == pytest.approx(md["training"]["final_val_loss"], rel=0.05)
    assert main(["info", str(ROOT / "icl_d6.safetensors")]) == 0
    assert "one_step_gd" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["teacher_student_d4_sparse", "teacher_student_d4_sparse_s2"])
def test_sparse_students_have_the_zero_rows_of_fig_2a(name):
    """The shipped sparse-protocol students (ours: fast + L1) reached loss 1e-7, and pruning by zero rows leaves
    10 λ≈1 KV units with quadratic input and 4 λ≈0 query units with linear input among <= 18 of 32 hidden
    neurons, and <= 17 of 32 gating rows."""
    from rnnattn.analysis import neuron_roles, prune

    ck = _load(f"{name}.safetensors")
    tr = ck.metadata["training"]
    assert tr["protocol"] == "sparse" and tr["config"]["l1"] > 0 and tr["reached_target"]
    assert tr["final_val_loss"] <= 1e-7
    pr = prune(ck.model)
    assert pr.n_hidden_before == pr.n_gating_before == 32
    assert pr.n_hidden_after <= 18 and pr.n_gating_after <= 17
    table = neuron_roles(pr.model)
    memory, forget = table[table.role == "memory"], table[table.role == "forget"]
    assert len(memory) == 10 and set(memory.input_kind) == {"quadratic"}
    assert (forget.input_kind == "linear").sum() == 4
