"""Training throughput: steps/s of the rnnattn training step against a plain PyTorch loop and the FLOP limit.

Measures, in one process with 1 thread:
  * the FLOP limit: a dense matmul of the step's dominant shape, GFLOP/s -> steps/s at the step's FLOP count
    (forward + backward ~ 3x forward; from Eq. 2: 6(d+1)2N + 6N 2M + 6M d_out FLOP per token);
  * a plain PyTorch implementation (nn.Module, Python for-loop over time, torch AdamW);
  * the foundation model with autograd (``engine="autograd"``) and the fast engine (``engine="fast"``), both through
    ``rnnattn.training.train`` (data generation included);
  * batched training of K models (K = 4, 8) against K one-by-one runs.

Times are CPU seconds of this (1-thread) process (``time.process_time``): on the shared 2-core machine wall time
depends on other users' load, CPU time much less; on an idle machine the two agree.

Usage: ``python benchmarks/bench_training.py [--steps 200] [--quick] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig
from rnnattn.tasks import InContextRegression, TeacherStudent
from rnnattn.training import TrainConfig, train, train_batched

CASES = {  # name: (task factory, d_in, N, M, d_out, T)
    "teacher_student N=M=100": (TeacherStudent, 4, 100, 100, 4, 32),
    "icl N=M=80": (InContextRegression, 6, 80, 80, 3, 13),
}


class PlainGatedRNN(nn.Module):
    """The straightforward implementation: two Linear layers per gating, a Python loop over time."""

    def __init__(self, d: int, N: int, M: int, d_out: int) -> None:
        super().__init__()
        self.in_m, self.in_x = nn.Linear(d + 1, N, bias=False), nn.Linear(d + 1, N, bias=False)
        self.nu = nn.Parameter(torch.randn(N))
        self.out_m, self.out_x = nn.Linear(N, M, bias=False), nn.Linear(N, M, bias=False)
        self.D = nn.Linear(M, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)
        u = self.in_m(x) * self.in_x(x)
        lam = torch.exp(-torch.exp(self.nu))
        h = torch.zeros_like(u[:, 0])
        hs = []
        for t in range(u.shape[1]):
            h = lam * h + u[:, t]
            hs.append(h)
        h = torch.stack(hs, dim=1)
        return self.D(self.out_m(h) * self.out_x(h))


def flops_per_step(d: int, N: int, M: int, d_out: int, T: int, B: int) -> float:
    return (6 * (d + 1) * 2 * N + 6 * N * 2 * M + 6 * M * d_out) * T * B


def matmul_gflops(N: int, M: int, rows: int, reps: int = 30) -> float:
    a, w = torch.randn(rows, N), torch.randn(N, 2 * M)
    a @ w
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for _ in range(reps):
            a @ w
        best = min(best, (time.process_time() - t) / reps)
    return 2 * rows * N * 2 * M / best / 1e9


def time_plain(task, d, N, M, d_out, T, steps, B=64) -> float:
    torch.manual_seed(0)
    model = PlainGatedRNN(d, N, M, d_out)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    batches = [task.sample(B, g) for _ in range(8)]
    t = None
    for i in range(steps + 5):
        if i == 5:
            t = time.process_time()
        x, y, mask = batches[i % 8]
        opt.zero_grad()
        loss = task.loss(model(x), y, mask)
        loss.backward()
        opt.step()
    return steps / (time.process_time() - t)


def time_train(task, d, N, M, d_out, steps, engine) -> float:
    torch.manual_seed(0)
    model = GatedLinearRNN(GatedLinearRNNConfig(d, N, M, d_out))
    cfg = TrainConfig(steps=steps, engine=engine, val_every=0, log_every=10**9, checkpoint_every=0)
    train(task, model, cfg.replace(steps=5), progress=False)  # warm-up (lazy imports, allocator)
    t = time.process_time()
    train(task, model, cfg, progress=False)
    return steps / (time.process_time() - t)


def time_batched(task, d, N, M, d_out, K, steps) -> tuple[float, float]:
    """(model-steps/s batched, model-steps/s one by one)."""
    cfg = TrainConfig(steps=steps, val_every=0, log_every=10**9, checkpoint_every=0)
    models = [GatedLinearRNN(GatedLinearRNNConfig(d, N, M, d_out)) for _ in range(K)]
    train_batched(task, models, cfg.replace(steps=5))
    t = time.process_time()
    train_batched(task, models, cfg)
    batched = K * steps / (time.process_time() - t)
    t = time.process_time()
    for k in range(K):
        train(task, models[k], cfg.replace(seed=k), progress=False)
    single = K * steps / (time.process_time() - t)
    return batched, single


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="fewer steps, skip the batched comparison at K=8")
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    steps = 40 if a.quick else a.steps
    out: dict = {"torch": torch.__version__, "threads": a.threads, "cases": {}}
    for name, (factory, d, N, M, d_out, T) in CASES.items():
        task = factory()
        fl = flops_per_step(d, N, M, d_out, T, 64)
        gf = matmul_gflops(N, M, T * 64)
        row = {
            "flop_per_step": fl,
            "matmul_gflops": gf,
            "flop_limit_steps_s": gf * 1e9 / fl,
            "plain_loop_steps_s": time_plain(task, d, N, M, d_out, T, steps // 2),
            "autograd_steps_s": time_train(task, d, N, M, d_out, steps // 2, "autograd"),
            "fast_steps_s": time_train(task, d, N, M, d_out, steps, "fast"),
        }
        row["speedup_vs_plain"] = row["fast_steps_s"] / row["plain_loop_steps_s"]
        row["fraction_of_flop_limit"] = row["fast_steps_s"] / row["flop_limit_steps_s"]
        out["cases"][name] = row
        print(
            f"{name}: fast {row['fast_steps_s']:.1f} steps/s ({1e3 / row['fast_steps_s']:.2f} ms), autograd "
            f"{row['autograd_steps_s']:.1f}, plain loop {row['plain_loop_steps_s']:.1f}, FLOP limit "
            f"{row['flop_limit_steps_s']:.1f} ({gf:.1f} GFLOP/s); x{row['speedup_vs_plain']:.1f} vs plain, "
            f"{100 * row['fraction_of_flop_limit']:.0f}% of the FLOP limit",
            flush=True,
        )
    out["batched"] = {}
    for K in (4,) if a.quick else (4, 8):
        for name, (factory, d, N, M, d_out) in {
            "teacher_student N=M=32": (TeacherStudent, 4, 32, 32, 4),
            "icl N=M=32": (InContextRegression, 6, 32, 32, 3),
        }.items():
            b, s = time_batched(factory(), d, N, M, d_out, K, steps // 2)
            out["batched"][f"{name} K={K}"] = {
                "batched_model_steps_s": b,
                "one_by_one_model_steps_s": s,
                "speedup": b / s,
            }
            print(
                f"batched {name} K={K}: {b:.1f} vs {s:.1f} model-steps/s one by one (x{b / s:.2f})",
                flush=True,
            )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
