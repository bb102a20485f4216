"""Levenberg-Marquardt polishing (rnnattn.training.lm) and the fast identification protocol that uses it."""

import math

import numpy as np
import pytest
import torch

from rnnattn import load_checkpoint
from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig
from rnnattn.tasks import TeacherStudent, TeacherStudentConfig
from rnnattn.training import TrainConfig, train
from rnnattn.training.fast import PARAM_NAMES
from rnnattn.training.lm import levenberg_marquardt, residual_jacobian
from rnnattn.training.protocols import protocol_defaults


def _model(d=3, N=6, M=5, dout=2, append_one=True, seed=0):
    torch.manual_seed(seed)
    return GatedLinearRNN(GatedLinearRNNConfig(d, N, M, dout, append_one=append_one)).double()


@pytest.mark.parametrize("last_only", [False, True])
@pytest.mark.parametrize("append_one", [True, False])
def test_jacobian_matches_autograd(last_only, append_one):
    """The analytic Jacobian against torch.autograd.functional.jacobian of the model's own forward (float64)."""
    m = _model(append_one=append_one)
    with torch.no_grad():
        m.nu[0] = 40.0  # lam = 0 exactly: the d lam / d nu convention (0) must hold there too
    x = torch.randn(3, 7, 3, dtype=torch.float64)
    z = m.augment(x) if append_one else x
    shapes = {n: tuple(getattr(m, n).shape) for n in PARAM_NAMES}
    flat0 = torch.cat([getattr(m, n).detach().reshape(-1) for n in PARAM_NAMES])

    def fun(v):
        p, o = {}, 0
        for n, s in shapes.items():
            k = math.prod(s)
            p[n] = v[o : o + k].view(s)
            o += k
        y = torch.func.functional_call(m, p, (x,))
        return (y[:, -1:] if last_only else y).reshape(-1)

    J_ref = torch.autograd.functional.jacobian(fun, flat0.clone())
    p = {n: getattr(m, n).detach() for n in PARAM_NAMES}
    yhat, J = residual_jacobian(p, z, last_only)
    with torch.no_grad():
        y = m(x)
    torch.testing.assert_close(yhat, y[:, -1:] if last_only else y, rtol=0, atol=1e-12)
    assert J.shape == J_ref.shape
    torch.testing.assert_close(J, J_ref, rtol=1e-10, atol=1e-12)


def test_lm_recovers_a_realisable_target():
    """Zero-residual problem: LM from a perturbed copy of a gated RNN drives the batch loss to ~0."""
    teacher = _model(N=4, M=3, seed=1)
    student = _model(N=4, M=3, seed=1)
    with torch.no_grad():
        for n in ("W_in", "W_out", "D"):
            getattr(student, n).add_(0.05 * torch.randn_like(getattr(student, n)))
    x = torch.randn(32, 6, 3, dtype=torch.float64)
    with torch.no_grad():
        y = teacher(x)
    shapes = {n: tuple(getattr(student, n).shape) for n in PARAM_NAMES}
    flat = torch.cat([getattr(student, n).detach().reshape(-1) for n in PARAM_NAMES])
    with torch.no_grad():
        before = float(0.5 * (student(x) - y).pow(2).mean())
    loss, mu = levenberg_marquardt(flat, shapes, student.augment(x), y, iters=30)
    assert before > 1e-4
    assert loss < 1e-14 * max(1.0, before) or loss < 1e-16
    assert mu > 0


def test_lm_polishing_beats_adam_in_train():
    """Through train(): the LM rounds cut the validation loss by > 100x where the AdamW phase stopped."""
    task = TeacherStudent(TeacherStudentConfig(d=2, seq_len=8))
    torch.manual_seed(0)
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 8, 8, 2))
    cfg = TrainConfig(
        steps=300,
        lr=1e-2,
        polish_rounds=3,
        polish_iters=5,
        polish_batch=64,
        polish_method="lm",
        val_every=300,
        val_samples=256,
        checkpoint_every=0,
    )
    r = train(task, m, cfg, progress=False)
    adam_val = [h["val_loss"] for h in r.history if h["phase"] == "adam"][-1]
    lm_rows = [h for h in r.history if h["phase"] == "lm"]
    assert len(lm_rows) == 3 and r.steps == 300 + 15
    assert lm_rows[-1]["val_loss"] < adam_val / 100
    assert m.W_in.dtype == torch.float32  # the model keeps its training dtype


@pytest.mark.parametrize("sparse", [{}, {"l1": 3e-2, "polish_freeze_zeros": 0.05}], ids=["plain", "l1_frozen"])
def test_lm_resume_is_bit_exact(tmp_path, sparse):
    task = TeacherStudent(TeacherStudentConfig(d=2, seq_len=6))
    cfg = TrainConfig(
        **sparse,
        steps=20,
        lr=1e-2,
        polish_rounds=3,
        polish_iters=2,
        polish_batch=16,
        polish_method="lm",
        val_every=10,
        val_samples=64,
        checkpoint_every=10,
        data_block=5,
    )

    def student():
        torch.manual_seed(0)
        return GatedLinearRNN(GatedLinearRNNConfig(2, 5, 5, 2))

    straight = student()
    train(task, straight, cfg, out_dir=tmp_path / "a", progress=False)
    first = student()
    r1 = train(
        task, first, cfg, out_dir=tmp_path / "b", progress=False, callbacks=[lambda row: row["step"] >= 22]
    )
    assert r1.steps == 22
    resumed = load_checkpoint(tmp_path / "b" / "model.safetensors").model
    r2 = train(task, resumed, cfg, out_dir=tmp_path / "b", resume=True, progress=False)
    assert r2.steps == 26
    for n in PARAM_NAMES:
        assert torch.equal(getattr(straight, n), getattr(resumed, n)), n
    if sparse:  # the frozen entries are exact zeros in the result
        assert any(bool((getattr(straight, n) == 0).any()) for n in ("W_in", "W_out", "D"))


def test_polish_method_errors():
    with pytest.raises(ValueError, match="polish_method"):
        TrainConfig(polish_method="newton")
    task = TeacherStudent(TeacherStudentConfig(d=2, seq_len=4))
    m = GatedLinearRNN(GatedLinearRNNConfig(2, 3, 3, 2))
    with pytest.raises(ValueError, match="fast engine"):
        train(task, m, TrainConfig(steps=1, engine="autograd", polish_method="lm"), progress=False)
    big = torch.zeros(9000, dtype=torch.float64)
    with pytest.raises(ValueError, match="too many"):
        levenberg_marquardt(big, {"W_in": (9000,)}, torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), 1)


def test_fast_protocol_uses_lm_polishing():
    train_kw, model_kw = protocol_defaults("fast", "teacher_student")
    cfg = TrainConfig(**train_kw)
    assert cfg.polish_method == "lm" and cfg.polish_rounds > 0
    assert model_kw == {"n_hidden": 32, "n_gating": 32}
    icl_kw, _ = protocol_defaults("fast", "icl_regression")
    assert icl_kw.get("polish_rounds", 0) == 0  # ICL has a non-zero optimum: no fixed-batch polishing


@pytest.mark.parametrize("last_only", [False, True])
def test_factored_normal_equations_equal_the_dense_ones(last_only):
    """J^T J and J^T r assembled from the factored W_out block equal the products of the dense Jacobian."""
    from rnnattn.training import lm

    m = _model(N=5, M=4, dout=3)
    x = torch.randn(lm.CHUNK + 5, 6, 3, dtype=torch.float64)  # two chunks
    z = m.augment(x)
    y = torch.randn(x.shape[0], 1 if last_only else 6, 3, dtype=torch.float64)
    shapes = {n: tuple(getattr(m, n).shape) for n in PARAM_NAMES}
    flat = torch.cat([getattr(m, n).detach().reshape(-1) for n in PARAM_NAMES])
    A, g, sq = lm._normal_equations(flat, shapes, z, y, last_only)
    yhat, J = residual_jacobian(lm._split(flat, shapes), z, last_only)
    r = (yhat - y).reshape(-1)
    torch.testing.assert_close(A, J.T @ J, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, J.T @ r, rtol=1e-12, atol=1e-12)
    assert sq == pytest.approx(float(r @ r), rel=1e-12)


def test_lm_with_frozen_entries_keeps_them_zero_and_solves_the_restricted_system():
    """``freeze_small`` zeroes the tiny entries; LM then moves only the others, with the step of the normal
    equations restricted to those columns of the dense Jacobian (checked against numpy), and still fits a sparse
    realisable target."""
    from rnnattn.training.lm import freeze_small

    teacher = _model(N=4, M=3, seed=2)
    with torch.no_grad():
        teacher.W_in[0, 1].zero_()  # a dead m-branch row, and scattered zeros elsewhere
        teacher.W_out[1, 0, 2] = 0.0
        teacher.D[1, 1] = 0.0
    student = _model(N=4, M=3, seed=2)
    with torch.no_grad():
        for n in ("W_in", "W_out", "D"):
            p, t = getattr(student, n), getattr(teacher, n)
            p.copy_(t + torch.where(t == 0, 1e-7, 0.03) * torch.randn_like(t))
    x = torch.randn(24, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        y = teacher(x)
    shapes = {n: tuple(getattr(student, n).shape) for n in PARAM_NAMES}
    flat = torch.cat([getattr(student, n).detach().reshape(-1) for n in PARAM_NAMES])
    active = freeze_small(flat, shapes, 1e-3)
    zero = ~active
    n_nu = shapes["nu"][0]
    assert int(zero.sum()) == 4 + 1 + 1 and bool((flat[zero] == 0).all())  # the row (d + 1 = 4) and 2 entries
    n_w_in = math.prod(shapes["W_in"])
    assert bool(active[n_w_in : n_w_in + n_nu].all())  # nu is never frozen
    z = student.augment(x)
    # one iteration by hand: the damped normal equations on the active columns only
    sizes = [math.prod(s) for s in shapes.values()]
    params = {k: v.view(shapes[k]) for k, v in zip(shapes, torch.split(flat, sizes), strict=True)}
    yhat, J = residual_jacobian(params, z)
    r = (yhat - y).reshape(-1).numpy()
    Ja = J.numpy()[:, active.numpy()]
    A = Ja.T @ Ja
    mu = 1e-3
    dg = A.diagonal() + 1e-12 * A.diagonal().max() + 1e-300
    want = flat.clone()
    want[active] += torch.from_numpy(np.linalg.solve(A + mu * np.diag(dg), -Ja.T @ r))
    one = flat.clone()
    levenberg_marquardt(one, shapes, z, y, iters=1, mu=mu, active=active)
    if float(0.5 * ((yhat - y) ** 2).mean()) > 0:
        torch.testing.assert_close(one, want, rtol=1e-8, atol=1e-12)
    loss, _ = levenberg_marquardt(flat, shapes, z, y, iters=30, active=active)
    assert bool((flat[zero] == 0).all())
    assert loss < 1e-14


def test_sparse_protocol_is_fast_plus_l1_and_frozen_zeros():
    from rnnattn.cli.cmd_train import PROTOCOLS as CLI_PROTOCOLS
    from rnnattn.training.protocols import PROTOCOLS

    assert CLI_PROTOCOLS == PROTOCOLS
    fast_kw, fast_model = protocol_defaults("fast", "teacher_student")
    kw, model = protocol_defaults("sparse", "teacher_student")
    assert model == fast_model and kw.pop("l1") > 0 and kw.pop("polish_freeze_zeros") == 1e-3
    assert kw.pop("target_loss") < fast_kw.pop("target_loss") and kw.pop("polish_rounds") > fast_kw.pop("polish_rounds")
    assert kw.pop("protocol") == "sparse" and fast_kw.pop("protocol") == "fast" and kw == fast_kw
    TrainConfig(**protocol_defaults("sparse", "teacher_student")[0])
    with pytest.raises(ValueError, match="teacher-student only"):
        protocol_defaults("sparse", "icl_regression")
