"""The fast engine's hand-written backward and flat AdamW against autograd and torch.optim.AdamW."""

import pytest
import torch

from rnnattn.models import (
    GatedLinearRNN,
    GatedLinearRNNConfig,
    LinearSelfAttention,
    LinearSelfAttentionConfig,
)
from rnnattn.training.config import TrainConfig
from rnnattn.training.fast import FlatAdamW, StackedGatedRNN, chunked_scan, scan_chunk, supports
from rnnattn.training.optim import add_l1_subgradient, flat_multipliers, make_adamw, set_lr


def _models(K, d=3, N=6, M=5, dout=2, append_one=True):
    torch.manual_seed(0)
    return [
        GatedLinearRNN(GatedLinearRNNConfig(d, N, M, dout, append_one=append_one)).double() for _ in range(K)
    ]


@pytest.mark.parametrize("last_only", [False, True])
@pytest.mark.parametrize("append_one", [True, False])
def test_gradients_match_autograd(last_only, append_one):
    K, B, T = 3, 4, 7
    models = _models(K, append_one=append_one)
    x = torch.randn(K, B, T, 3, dtype=torch.float64)
    y = torch.randn(K, B, T, 2, dtype=torch.float64)
    net = StackedGatedRNN(models)
    z, tgt = net.prepare(x, y, last_only)
    losses = net.loss_and_grad(z, tgt, T, last_only)
    for k, m in enumerate(models):
        out = m(x[k])
        sel = (slice(None), slice(-1, None)) if last_only else (slice(None), slice(None))
        loss = 0.5 * ((out[sel] - y[k][sel]) ** 2).mean()
        loss.backward()
        assert abs(loss.item() - losses[k].item()) < 1e-12
        for name in ("W_in", "nu", "W_out", "D"):
            torch.testing.assert_close(net.grads[name][k], getattr(m, name).grad, rtol=1e-9, atol=1e-12)
        pred = net.predict(z, T, last_only)[k]  # rows are time-major (t * B + b), or the last step only
        want = out[:, -1] if last_only else out.transpose(0, 1).reshape(-1, 2)
        torch.testing.assert_close(pred, want)


def test_gradient_is_finite_at_exact_zero_and_one_decay():
    (m,) = _models(1)
    with torch.no_grad():
        m.nu[0], m.nu[1] = float("inf"), float("-inf")  # lambda = 0 and lambda = 1 exactly
    net = StackedGatedRNN([m])
    z, tgt = net.prepare(
        torch.randn(1, 2, 5, 3, dtype=torch.float64), torch.randn(1, 2, 5, 2, dtype=torch.float64)
    )
    net.loss_and_grad(z, tgt, 5)
    assert torch.isfinite(net.grad).all() and net.grads["nu"][0, :2].abs().max() == 0


def test_write_back_round_trip_and_support():
    models = _models(2)
    net = StackedGatedRNN(models)
    net.flat.add_(1.0)
    net.write_back(models)
    assert torch.equal(models[1].D, net.params["D"][1])
    assert not supports(LinearSelfAttention(LinearSelfAttentionConfig(3)))
    with pytest.raises(ValueError, match="share one config"):
        StackedGatedRNN([_models(1)[0], _models(1, N=7)[0]])


@pytest.mark.parametrize("l1", [0.0, 0.05])
def test_flat_adamw_matches_torch_adamw(l1):
    cfg = TrainConfig(weight_decay=0.1, recurrence_lr_mult=7.0, recurrence_weight_decay=0.01, l1=l1)
    (m,) = _models(1)
    ref = _models(1)[0]
    net = StackedGatedRNN([m])
    mult, wd, l1_vec = flat_multipliers(net.slices(), net.P, {"nu"}, cfg)
    assert (l1_vec is None) == (l1 == 0) and (l1_vec is None or float(l1_vec[net.slices()["nu"]].abs().sum()) == 0)
    opt = FlatAdamW(net.flat, net.grad, mult.double(), wd.double(), l1=l1_vec)
    topt = make_adamw(ref, cfg)
    g = torch.Generator().manual_seed(0)
    for step in range(5):
        lr = 1e-2 / (step + 1)
        grads = {
            n: torch.randn(getattr(ref, n).shape, generator=g, dtype=torch.float64)
            for n in ("W_in", "nu", "W_out", "D")
        }
        for n, v in grads.items():
            net.grads[n][0].copy_(v)
            getattr(ref, n).grad = v.clone()
        if l1:
            add_l1_subgradient(topt.param_groups[0]["params"], l1)  # torch's AdamW with the same penalty
        opt.step(lr)
        set_lr(topt, lr)
        topt.step()
    for n in ("W_in", "nu", "W_out", "D"):
        # torch keeps Adam's step count in a float32 tensor (bias corrections good to ~1e-8), hence rtol 1e-8.
        torch.testing.assert_close(net.params[n][0], getattr(ref, n).detach(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("T", [1, 2, 7, 12, 32, 36, 130])
@pytest.mark.parametrize("reverse", [False, True])
def test_chunked_scan_matches_the_sequential_recurrence(T, reverse):
    g = torch.Generator().manual_seed(T)
    K, N, B = 2, 5, 3
    x = torch.randn(K, T, B, N, generator=g, dtype=torch.float64)
    lam = torch.rand(K, N, generator=g, dtype=torch.float64)
    lam[0, 0], lam[0, 1] = 0.0, 1.0  # the exact ends stay exact
    want = x.clone()
    order = range(T - 2, -1, -1) if reverse else range(1, T)
    for t in order:  # the naive reference: one step at a time
        want[:, t] += lam[:, None, :] * want[:, t + 1 if reverse else t - 1]
    for c in [None] + [c for c in range(1, T + 1) if T % c == 0]:  # every chunking, and the default
        got = chunked_scan(x.clone(), lam, reverse, chunk=c)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert scan_chunk(T) == T if T <= 64 else 1 < scan_chunk(T) < T
    with pytest.raises(ValueError, match="divide"):
        chunked_scan(x, lam, reverse, chunk=T + 1)


@pytest.mark.parametrize("last_only", [False, True])
def test_workspace_reuse_does_not_leak_between_steps(last_only):
    """Buffers are kept across steps: a second step on other data equals a fresh engine's step."""
    models = _models(2)
    x = torch.randn(2, 2, 4, 8, 3, dtype=torch.float64)
    y = torch.randn(2, 2, 4, 8, 2, dtype=torch.float64)
    warm, fresh = StackedGatedRNN(models), StackedGatedRNN(models)
    z0, t0 = warm.prepare(x[0], y[0], last_only)
    z1, t1 = warm.prepare(x[1], y[1], last_only)
    warm.loss_and_grad(z0, t0, 8, last_only)
    warm.loss(z0[:, :8], t0[:, : 1 if last_only else 8], 8, last_only)  # an evaluation of another shape between
    a = warm.loss_and_grad(z1, t1, 8, last_only)
    b = fresh.loss_and_grad(z1, t1, 8, last_only)
    assert torch.equal(a, b) and torch.equal(warm.grad, fresh.grad)
