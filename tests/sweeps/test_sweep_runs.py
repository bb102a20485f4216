import pytest
import torch

from rnnattn import load
from rnnattn.models import GatedLinearRNN, SequenceModel
from rnnattn.sweeps.runs import ARCHITECTURES, build_model, train_run, unflatten


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("layers", [1, 2])
def test_build_model_every_architecture(arch, layers):
    torch.manual_seed(0)
    m = build_model(arch, 6, 3, 5, layers)
    assert m(torch.randn(2, 7, 6)).shape == (2, 7, 3)
    if arch.startswith("gated") and layers == 1:
        assert isinstance(m, GatedLinearRNN) and m.config.n_hidden == m.config.n_gating == 5
        assert m.config.recurrence == arch.split("_")[1]
    else:
        assert isinstance(m, SequenceModel) and len(m.layers) == layers
        assert all(layer.d_input == 5 for layer in m.layers)  # width = size everywhere (paper §3.3)
    if arch.startswith("lru"):
        assert all(layer.config.d_state == 5 and layer.config.variant == arch[4:] for layer in m.layers)


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("transformer", 6, 3, 5)
    with pytest.raises(ValueError, match="positive integers"):
        build_model("lstm", 6, 3, 0)


def test_unflatten():
    assert unflatten({"a": 1, "train": {"lr": 1, "steps": 2}, "train.steps": 5, "task_options.d": 4}) == {
        "a": 1,
        "train": {"lr": 1, "steps": 5},
        "task_options": {"d": 4},
    }


BASE = {
    "task": "teacher_student",
    "task_options": {"d": 2, "seq_len": 6},
    "arch": "gated_diagonal",
    "size": 4,
    "train": {"steps": 4, "batch_size": 8, "lr": 1e-2},
    "eval_samples": 64,
}


def test_train_run_single_and_saved(tmp_path):
    out = train_run({**BASE, "seed": 3, "save_dir": str(tmp_path)})
    assert out["steps"] == 4 and out["reference_train_loss"] == 0.0 and out["gap"] == out["train_loss"] > 0
    assert out["n_parameters"] == 2 * 4 * 3 + 4 + 2 * 4 * 4 + 2 * 4 and 0 <= out["n_memory"] <= 4
    ck = load(out["checkpoint"])
    assert ck.metadata["sweep_params"]["seed"] == 3 and ck.metadata["task"]["name"] == "teacher_student"


def test_batched_replicas_equal_single_runs():
    batched = train_run({**BASE, "seed": 5, "replicas": 2})
    assert batched["seeds"] == [5, 6]
    single = train_run({**BASE, "seed": 6})
    assert batched["train_loss"][1] == pytest.approx(single["train_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="replicas > 1"):
        train_run({**BASE, "arch": "lstm", "seed": 0, "replicas": 2})


def test_icl_run_reports_gap_to_gd():
    out = train_run(
        {
            "task": "icl_regression",
            "arch": "gated_diagonal",
            "size": 4,
            "seed": 0,
            "eval_samples": 2000,
            "train": {"steps": 3, "batch_size": 8},
        }
    )
    assert 0.08 < out["reference_train_loss"] < 0.11  # one-step GD on 2000 sequences, L* = 0.0946
    assert out["gap"] == pytest.approx(out["train_loss"] - out["reference_train_loss"])
    assert out["reference_val_loss"] > out["reference_train_loss"]  # validation W* has twice the variance


def test_interrupted_long_run_resumes_from_its_state(tmp_path, monkeypatch):
    """A single run stopped half-way (its worker killed) continues from the trainer state in save_dir and reaches
    the same weights as an uninterrupted run."""
    from rnnattn.sweeps.runs import _prepare, params_digest
    from rnnattn.training import train

    train_cfg = {**BASE["train"], "steps": 6, "log_every": 1}
    full = train_run({**BASE, "seed": 1, "train": train_cfg})
    params = {**BASE, "seed": 1, "train": train_cfg, "save_dir": str(tmp_path)}
    p, seed, task, config = _prepare(params)
    torch.manual_seed(seed)
    model = build_model("gated_diagonal", 2, 2, 4)
    run_dir = tmp_path / f"{params_digest(params)}.run"
    stopped = train(
        task,
        model,
        config,
        out_dir=run_dir,
        callbacks=[lambda row: row["step"] >= 3],
        progress=False,
        handle_sigint=False,
    )
    assert stopped.steps == 3 and (run_dir / "state.safetensors").exists()
    import rnnattn.training

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["resume"])
        return train(*args, **kwargs)

    monkeypatch.setattr(rnnattn.training, "train", spy)
    resumed = train_run(params)
    assert calls == [True]  # continued from step 3, not retrained from scratch
    assert resumed["train_loss"] == pytest.approx(full["train_loss"], rel=1e-6)
