"""Training loop: loss goes down, exact resume, run directories, checkpoint schema, batched training."""

import csv
import math

import pytest
import torch

from rnnattn import load_checkpoint
from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig, SequenceModel, SequenceModelConfig
from rnnattn.tasks import InContextRegression, TeacherStudent, TeacherStudentConfig
from rnnattn.training import TrainConfig, cosine_lr, train, train_batched
from rnnattn.training.data import BlockStream, step_seed
from rnnattn.training.engines import make_engine

TS = TeacherStudentConfig(d=3, seq_len=8)


def _student(seed=0, d=3, N=8, dout=3):
    torch.manual_seed(seed)
    return GatedLinearRNN(GatedLinearRNNConfig(d, N, N, dout))


def _cfg(**kw):
    base = dict(
        steps=40, lr=3e-3, log_every=10, val_every=20, val_samples=256, checkpoint_every=0, data_block=8
    )
    base.update(kw)
    return TrainConfig(**base)


def test_cosine_schedule_endpoints():
    c = TrainConfig(steps=101, lr=1e-3, lr_min=1e-6)
    assert cosine_lr(0, c) == pytest.approx(1e-3) and cosine_lr(100, c) == pytest.approx(1e-6)
    assert cosine_lr(50, c) == pytest.approx((1e-3 + 1e-6) / 2)
    w = TrainConfig(steps=20, warmup_steps=4, lr=1.0, lr_min=0.0)
    assert [cosine_lr(s, w) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize("engine", ["fast", "autograd"])
def test_short_run_lowers_the_loss(engine):
    task = TeacherStudent(TS)
    model = _student()
    val = task.validation_set(256, 5)
    with torch.no_grad():
        before = task.loss(model(val.x), val.y, val.mask).item()
    res = train(task, model, _cfg(steps=120, lr=1e-2, engine=engine, val_every=0), progress=False)
    with torch.no_grad():
        after = task.loss(model(val.x), val.y, val.mask).item()
    assert (
        after < 0.5 * before
        and res.steps == 120
        and res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    )


def test_fast_and_autograd_engines_agree():
    task = TeacherStudent(TS)
    a, b = _student(), _student()
    train(task, a, _cfg(steps=10, engine="fast", val_every=0), progress=False)
    train(task, b, _cfg(steps=10, engine="autograd", val_every=0), progress=False)
    for n in ("W_in", "nu", "W_out", "D"):
        torch.testing.assert_close(getattr(a, n), getattr(b, n), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("engine", ["fast", "autograd"])
def test_resume_is_bit_exact(tmp_path, engine):
    task = TeacherStudent(TS)
    cfg = _cfg(
        steps=24,
        engine=engine,
        checkpoint_every=12,
        val_every=12,
        polish_rounds=1,
        polish_iters=3,
        polish_batch=16,
    )
    straight = _student()
    train(task, straight, cfg, out_dir=tmp_path / "a", progress=False)
    # Interrupted run: same config, stopped by a callback right after the step-12 checkpoint.
    first = _student()
    r1 = train(
        task, first, cfg, out_dir=tmp_path / "b", progress=False, callbacks=[lambda row: row["step"] >= 12]
    )
    assert r1.steps == 12 and not r1.interrupted
    resumed = load_checkpoint(tmp_path / "b" / "model.safetensors").model
    r2 = train(task, resumed, cfg, out_dir=tmp_path / "b", resume=True, progress=False)
    assert r2.steps == 24 + 3
    for n in ("W_in", "nu", "W_out", "D"):
        assert torch.equal(getattr(straight, n), getattr(resumed, n)), n
    rows = list(csv.DictReader(open(tmp_path / "b" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [10, 12, 20, 24, 27]


def test_autograd_engine_trains_other_models():
    task = TeacherStudent(TS)
    torch.manual_seed(0)
    lru = SequenceModel(
        SequenceModelConfig(
            d_input=3, d_output=3, d_model=8, layers=({"class": "LRU", "d_state": 8, "variant": "in_out"},)
        )
    )
    res = train(task, lru, _cfg(steps=20, engine="auto"), progress=False)
    assert math.isfinite(res.final_val_loss)
    with pytest.raises(ValueError, match="fast"):
        train(task, lru, _cfg(steps=5, engine="fast"), progress=False)


def test_run_directory_is_protected(tmp_path):
    task = TeacherStudent(TS)
    train(task, _student(), _cfg(steps=10, val_every=0), out_dir=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(task, _student(), _cfg(steps=10, val_every=0), out_dir=tmp_path, progress=False)
    train(task, _student(), _cfg(steps=10, val_every=0), out_dir=tmp_path, force=True, progress=False)
    with pytest.raises(ValueError, match="different config"):
        train(task, _student(), _cfg(steps=11, val_every=0), out_dir=tmp_path, resume=True, progress=False)


def test_checkpoint_schema(tmp_path):
    task = TeacherStudent(TS)
    res = train(task, _student(), _cfg(steps=20), out_dir=tmp_path, progress=False)
    ck = load_checkpoint(res.checkpoint)
    md = ck.metadata
    assert md["reference"] == "teacher" and md["task"] == task.to_dict()
    tr = md["training"]
    assert tr["step"] == 20 and tr["completed"] and tr["config"]["steps"] == 20 and tr["engine"] == "fast"
    for key in ("final_train_loss", "final_val_loss", "wall_time", "device", "torch_version", "protocol"):
        assert key in tr
    assert torch.equal(ck.extras["teacher"].W_Q, task.teacher.W_Q)
    assert (tmp_path / "state.safetensors").exists() and (tmp_path / "summary.json").exists()


def test_icl_run_reports_gd_reference():
    task = InContextRegression()
    res = train(task, _student(d=6, N=8), _cfg(steps=20, val_samples=5000), progress=False)
    assert res.reference_val_loss == pytest.approx(task.optimal_gd_loss(validation=True), rel=0.05)
    assert math.isfinite(res.final_val_loss)


def test_target_loss_stops_early():
    res = train(TeacherStudent(TS), _student(), _cfg(steps=40, target_loss=1e9), progress=False)
    assert res.reached_target and res.target_step == 20 and res.steps == 20


def test_batched_training_matches_one_by_one():
    task = InContextRegression()
    cfg = _cfg(steps=15, val_every=1, val_samples=512)
    batch = [_student(k, d=6, N=8) for k in range(3)]
    results = train_batched(task, batch, cfg, seeds=[5, 6, 7])
    for k in range(3):
        single = _student(k, d=6, N=8)
        r = train(task, single, cfg.replace(seed=5 + k, val_every=15), progress=False)
        for n in ("W_in", "nu", "W_out", "D"):
            torch.testing.assert_close(getattr(batch[k], n), getattr(single, n), rtol=1e-4, atol=1e-5)
        assert results[k].final_val_loss == pytest.approx(r.final_val_loss, rel=1e-4)


def test_step_seeds_are_distinct():
    seeds = {step_seed(s, t) for s in range(5) for t in range(200)}
    assert len(seeds) == 1000


def test_bad_config_and_model_errors():
    with pytest.raises(ValueError, match="engine"):
        TrainConfig(engine="turbo")
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="features"):
        train(TeacherStudent(TS), _student(d=4), _cfg(), progress=False)


@pytest.mark.parametrize("task", [TeacherStudent(TS), InContextRegression()], ids=["every_step", "last_step"])
def test_engines_agree_on_loss_and_gradients_in_float64(task):
    """The fast engine (hand-written backward, reused buffers) and autograd give the same loss and gradients on
    the same training batch, to 1e-10 relative in float64, on every step of a short run."""
    d, dout = task.d_input, task.d_output
    cfg = _cfg(dtype="float64", batch_size=16)
    fast_m, auto_m = _student(d=d, dout=dout), _student(d=d, dout=dout)
    fe = make_engine(fast_m, task, cfg, torch.device("cpu"), torch.float64)
    ae = make_engine(auto_m.double(), task, cfg.replace(engine="autograd"), torch.device("cpu"), torch.float64)
    assert (fe.name, ae.name) == ("fast", "autograd")
    fe_data, ae_data = (BlockStream(task, 16, 0, 4, e.prepare) for e in (fe, ae))
    for step in range(3):  # three steps: the second and third run on the kept buffers
        (fd, i), (ad, _) = fe_data.get(step), ae_data.get(step)
        z, y = fd
        loss_f = fe.net.loss_and_grad(z[i : i + 1], y[i : i + 1], fe.T, fe.last)[0]
        auto_m.zero_grad(set_to_none=True)
        loss_a = ae._loss(ad, i)
        loss_a.backward()
        assert abs(loss_f.item() - loss_a.item()) <= 1e-10 * abs(loss_a.item())
        for n in ("W_in", "nu", "W_out", "D"):
            gf, ga = fe.net.grads[n][0], getattr(auto_m, n).grad
            assert (gf - ga).abs().max() <= 1e-10 * ga.abs().max(), n
        with torch.no_grad():  # move both models the same way so later steps see new weights
            for n in ("W_in", "nu", "W_out", "D"):
                getattr(auto_m, n).sub_(1e-3 * getattr(auto_m, n).grad)
            fe.net.flat.sub_(1e-3 * fe.net.grad)


def test_l1_penalty_same_in_both_engines():
    """``l1``: the fast engine's FlatAdamW and torch's AdamW with the subgradient give the same float64 run (to
    torch's float32 step count in the bias corrections, as test_flat_adamw_matches_torch_adamw), the
    recurrence is not penalised, and the penalised tensors shrink."""
    task = TeacherStudent(TS)
    runs = {}
    for engine in ("fast", "autograd"):
        m = _student()
        train(task, m.double(), _cfg(steps=30, engine=engine, val_every=0, dtype="float64", l1=0.05), progress=False)
        runs[engine] = m
    for n in ("W_in", "nu", "W_out", "D"):
        torch.testing.assert_close(getattr(runs["fast"], n), getattr(runs["autograd"], n), rtol=1e-7, atol=1e-9)
    plain = _student()
    train(task, plain.double(), _cfg(steps=30, val_every=0, dtype="float64"), progress=False)
    for n in ("W_in", "W_out", "D"):  # L1 shrinks every penalised tensor
        assert getattr(runs["fast"], n).abs().sum() < getattr(plain, n).abs().sum(), n
    torch.testing.assert_close(runs["fast"].nu, plain.nu, rtol=0.2, atol=0.05)  # nu: only indirectly affected
    with pytest.raises(ValueError, match="l1"):
        TrainConfig(l1=-1.0)
    with pytest.raises(ValueError, match="l1"):
        TrainConfig(l1=float("nan"))
    with pytest.raises(ValueError, match="polish_freeze_zeros"):
        TrainConfig(polish_freeze_zeros=1e-3)  # needs LM
    with pytest.raises(ValueError, match="polish_freeze_zeros"):
        TrainConfig(polish_freeze_zeros=1.5, polish_method="lm")
