"""Task statistics, shapes and masks, checked against independent float64 routes."""

import math

import pytest
import torch

from rnnattn.tasks import (
    InContextRegression,
    InContextRegressionConfig,
    TeacherStudent,
    TeacherStudentConfig,
    masked_half_mse,
    task_from_dict,
)


def _lsa_loop(x, W_Q, W_K, W_V):
    """y_t = sum_{t'<=t} (W_V x_t')(W_K x_t')^T (W_Q x_t), one token at a time in float64."""
    B, T, d = x.shape
    y = torch.zeros(B, T, W_V.shape[0], dtype=torch.float64)
    for b in range(B):
        S = torch.zeros(W_V.shape[0], W_K.shape[0], dtype=torch.float64)
        for t in range(T):
            xt = x[b, t]
            S += torch.outer(W_V @ xt, W_K @ xt)
            y[b, t] = S @ (W_Q @ xt)
    return y


def test_teacher_student_shapes_targets_and_mask():
    task = TeacherStudent(TeacherStudentConfig(d=3, seq_len=7, teacher_seed=5))
    x, y, mask = task.sample(4, torch.Generator().manual_seed(1))
    assert x.shape == (4, 7, 3) and y.shape == (4, 7, 3) and mask.shape == (4, 7) and mask.all()
    assert x.dtype == torch.float32
    t = task.teacher
    ref = _lsa_loop(x.double(), t.W_Q[0].double(), t.W_K[0].double(), t.W_V[0].double())
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)


def test_teacher_is_seeded_and_scaled():
    a = TeacherStudent(TeacherStudentConfig(d=4, teacher_seed=3)).teacher
    b = TeacherStudent(TeacherStudentConfig(d=4, teacher_seed=3)).teacher
    c = TeacherStudent(TeacherStudentConfig(d=4, teacher_seed=4)).teacher
    assert torch.equal(a.W_Q, b.W_Q) and not torch.equal(a.W_Q, c.W_Q)
    big = TeacherStudent(TeacherStudentConfig(d=64, teacher_std=0.3)).teacher
    w = torch.cat([big.W_Q.flatten(), big.W_K.flatten(), big.W_V.flatten()])
    assert abs(w.std().item() - 0.3) < 0.01 and abs(w.mean().item()) < 0.01
    default = TeacherStudent(TeacherStudentConfig(d=64)).teacher
    assert abs(default.W_V.std().item() - 1 / 8) < 0.005  # W ~ N(0, 1/d)


@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_teacher_student_input_moments(dist):
    task = TeacherStudent(TeacherStudentConfig(d=4, input_dist=dist, input_std=2.0))
    x = task.inputs(2000, torch.Generator().manual_seed(0)).double()
    assert abs(x.mean().item()) < 0.02 and abs(x.var().item() - 4.0) < 0.05
    if dist == "uniform":
        assert x.abs().max().item() <= 2 * math.sqrt(3) + 1e-6


@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_teacher_student_sample_block_matches_sample(dist):
    task = TeacherStudent(TeacherStudentConfig(d=4, seq_len=5, input_dist=dist, input_std=0.7))
    seeds = (1, 2, 3)
    block = task.sample_block(3, [torch.Generator().manual_seed(s) for s in seeds])
    inputs = [task.inputs(3, torch.Generator().manual_seed(s)) for s in seeds]  # one draw per step, scaled alone
    labels = task.label(torch.cat(inputs)).y  # what the block path labelled before it drew into one buffer
    for i, s in enumerate(seeds):
        single = task.sample(3, torch.Generator().manual_seed(s))
        assert torch.equal(block.x[i], inputs[i]) and torch.equal(block.x[i], single.x)
        assert torch.equal(block.y[i], labels[3 * i : 3 * i + 3]) and bool(block.mask[i].all())
        torch.testing.assert_close(block.y[i], single.y, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("cfg", [{}, {"d_x": 5, "d_y": 2, "n_context": 30, "x_dist": "normal"}, {"d_x": 1, "d_y": 1,
                                                                                           "n_context": 1}])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_icl_sample_block_is_bit_identical_to_sample(cfg, batch):
    """The trainer's block path gives exactly the per-step batches (resume and earlier runs see the same data)."""
    from rnnattn.tasks.icl_regression import InContextRegressionConfig

    task = InContextRegression(InContextRegressionConfig(**cfg))
    seeds = [11, 12, 13, 99]
    block = task.sample_block(batch, [torch.Generator().manual_seed(s) for s in seeds])
    for i, s in enumerate(seeds):
        want = task.sample(batch, torch.Generator().manual_seed(s))
        for a, b in zip(block, want, strict=True):
            assert torch.equal(a[i], b)
    with pytest.raises(ValueError):
        task.sample_block(0, [torch.Generator()])


def test_icl_structure_and_moments():
    task = InContextRegression()
    x, y, mask = task.sample(20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 13, 6) and y.shape == (20000, 13, 3)
    assert mask[:, -1].all() and not mask[:, :-1].any()
    xs, ys = x[..., :3].double(), x[..., 3:].double()
    assert (ys[:, -1] == 0).all() and (
        y[:, :-1] == 0
    ).all()  # the query carries no label; loss only at the query
    # Recover W* from the (noiseless) context by least squares, then check targets and the W* variance.
    W = torch.linalg.lstsq(xs[:, :-1], ys[:, :-1]).solution.transpose(1, 2)  # [B, d_y, d_x]
    torch.testing.assert_close(
        torch.einsum("bij,bj->bi", W, xs[:, -1]), y[:, -1].double(), rtol=1e-4, atol=1e-4
    )
    assert abs(W.var().item() - 1 / 3) < 0.01
    assert xs.abs().max().item() <= math.sqrt(3) + 1e-6 and abs(xs.var().item() - 1.0) < 0.01
    xv = task.validation_set(20000, seed=1).x.double()
    Wv = torch.linalg.lstsq(xv[:, :-1, :3], xv[:, :-1, 3:]).solution
    assert abs(Wv.var().item() - 2 / 3) < 0.02


def test_validation_set_is_deterministic():
    task = InContextRegression()
    a, b = task.validation_set(10, 7), task.validation_set(10, 7)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, task.validation_set(10, 8).x)


def test_masked_loss_convention():
    pred, y = torch.randn(3, 4, 2, dtype=torch.float64), torch.randn(3, 4, 2, dtype=torch.float64)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[:, -1] = True
    want = sum(0.5 * (pred[b, -1, i] - y[b, -1, i]) ** 2 for b in range(3) for i in range(2)) / 6
    assert abs(masked_half_mse(pred, y, mask).item() - want.item()) < 1e-12
    with pytest.raises(ValueError, match="no position"):
        masked_half_mse(pred, y, torch.zeros(3, 4, dtype=torch.bool))


def test_bad_arguments_raise_one_line_errors():
    with pytest.raises(ValueError, match="input_dist"):
        TeacherStudentConfig(input_dist="cauchy")
    with pytest.raises(ValueError, match="positive"):
        InContextRegressionConfig(n_context=0)
    with pytest.raises(TypeError, match="Generator"):
        InContextRegression().sample(4, 0)
    with pytest.raises(ValueError, match="batch"):
        TeacherStudent().sample(0, torch.Generator())
    with pytest.raises(ValueError, match="unknown task"):
        task_from_dict({"name": "nope"})


def test_task_round_trip():
    ts = TeacherStudent(TeacherStudentConfig(d=3, teacher_seed=9, input_dist="uniform"))
    back = task_from_dict(ts.to_dict())
    assert back.to_dict() == ts.to_dict() and torch.equal(back.teacher.W_K, ts.teacher.W_K)
    icl = InContextRegression(InContextRegressionConfig(n_context=8))
    assert task_from_dict(icl.to_dict()).to_dict() == icl.to_dict()


def test_long_sequences_are_labelled_in_recurrent_form():
    """Beyond PARALLEL_MAX_T the teacher runs recurrently (linear in T); it is the same function (Eq. 1)."""
    import copy

    from rnnattn.tasks.teacher_student import PARALLEL_MAX_T

    task = TeacherStudent(TeacherStudentConfig(d=3, seq_len=PARALLEL_MAX_T + 9))
    x = task.inputs(4, torch.Generator().manual_seed(0))
    y = task.label(x).y
    with torch.no_grad():
        want = copy.deepcopy(task.teacher).double()(x.double())  # parallel form, float64
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-5)
    short = TeacherStudent(TeacherStudentConfig(d=3, seq_len=PARALLEL_MAX_T))
    xs = short.inputs(4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(short.label(xs).y, short.teacher(xs))  # paper-length labels are unchanged, bit for bit
