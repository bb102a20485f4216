"""Training throughput on 1 thread, every figure a ratio against contenders timed in the same process (interleaved
rounds, medians; ``benchmarks/common.py``), with the machine's float32 matmul peak measured in the same run.

Regenerate ``benchmarks/results/training.md`` with::

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py            # ~5 CPU-minutes; --quick: ~2

Cases:
  A. teacher-student d=4, N=M=100, B=64, T=32 (the paper's student): ``train()`` (what ``rnnattn train`` runs:
     data generation, teacher labels and AdamW included) against the FLOP limit — forward + backward matmul work
     ``(6(d+1)2N + 6N 2M + 6M d_out) T B`` FLOP at the dense ``[1024, 1024]`` matmul peak — and against the fast
     engine step alone, the autograd engine, a plain PyTorch loop and JAX (``benchmarks/jax_step.py``, optional).
  B. long sequences, B=16, T=1024, N=M=256: ``train()`` against the JAX ``lax.scan`` step; page faults per step.
  C. K models at once (``train_batched``) against K one-by-one ``train()`` calls, both tasks, N=M=32.

Times are process CPU seconds (``time.process_time``): on the shared 2-core machine wall time includes waiting for
a core (the load average is recorded); CPU time shows the work itself. JAX gets one XLA thread, and the whole
process is pinned to one core, so no contender can use a second one.
"""

from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax_step  # noqa: E402  (sets XLA flags before jax is imported)

PINNED_CORE = jax_step.single_thread_flags()

import torch  # noqa: E402
from common import environment_lines, load_average, markdown_table, time_interleaved, write_result  # noqa: E402
from torch import nn  # noqa: E402

from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig  # noqa: E402
from rnnattn.tasks import InContextRegression, TeacherStudent, TeacherStudentConfig  # noqa: E402
from rnnattn.training import TrainConfig, train, train_batched  # noqa: E402
from rnnattn.training.data import sample_steps  # noqa: E402
from rnnattn.training.engines import make_engine  # noqa: E402

QUIET = dict(val_every=0, log_every=10**9, checkpoint_every=0)


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
        h, hs = torch.zeros_like(u[:, 0]), []
        for t in range(u.shape[1]):
            h = lam * h + u[:, t]
            hs.append(h)
        return self.D(self.out_m(torch.stack(hs, 1)) * self.out_x(torch.stack(hs, 1)))


def flops_per_step(d: int, N: int, M: int, d_out: int, T: int, B: int, last_only: bool = False) -> float:
    """Forward + backward matmul FLOP of one step; with ``last_only`` the readout runs on the last step only."""
    readout_rows = B if last_only else T * B
    return 6 * (d + 1) * 2 * N * T * B + (6 * N * 2 * M + 6 * M * d_out) * readout_rows


def dense_matmuls(N: int, M: int, C: int, S: int) -> Callable[[], None]:
    """The step's three ``[C, N] x [N, 2M]``-sized matmuls (readout forward, its weight gradient, the state
    gradient) ``S`` times: the part of the step that already runs at the matmul peak, i.e. its floor."""
    h, W, b = torch.randn(C, N), torch.randn(2 * M, N), torch.randn(C, 2 * M)
    hb, gW = torch.empty(C, N), torch.empty(2 * M, N)

    def run() -> None:
        for _ in range(S):
            torch.mm(h, W.t(), out=b)
            torch.mm(b.t(), h, out=gW)
            torch.mm(b, W, out=hb)

    return run


class Faults:
    """Wraps a callable; counts minor page faults per call (allocator returning memory to the OS shows here)."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn, self.counts = fn, []

    def __call__(self) -> None:
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self.fn()
        self.counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)

    def median(self) -> float:
        c = sorted(self.counts[1:] or self.counts)
        return float(c[len(c) // 2])


def matmul_contender(reps: int) -> Callable[[], None]:
    a, b, o = torch.randn(1024, 1024), torch.randn(1024, 1024), torch.empty(1024, 1024)

    def run() -> None:
        for _ in range(reps):
            torch.mm(a, b, out=o)

    return run


def contenders(task, d: int, N: int, M: int, d_out: int, B: int, S: int, extra: bool) -> dict:
    """``name -> (fn, steps per call)``: train(), the fast step alone, JAX, and (``extra``) autograd / plain."""
    cfg = TrainConfig(steps=S, batch_size=B, data_block=S, **QUIET)
    model = GatedLinearRNN(GatedLinearRNNConfig(d, N, M, d_out))
    out = {"train()": (Faults(lambda: train(task, model, cfg, progress=False)), S)}
    eng = make_engine(
        GatedLinearRNN(GatedLinearRNNConfig(d, N, M, d_out)), task, cfg, torch.device("cpu"), torch.float32
    )
    data = eng.prepare(sample_steps(task, B, 0, range(S)))
    out["fast engine step (no data)"] = (Faults(lambda: [eng.step(data, i, 1e-3) for i in range(S)]), S)
    out["data only (inputs, labels, layout)"] = (lambda: eng.prepare(sample_steps(task, B, 1, range(S))), S)
    out["3 dense matmuls only (floor)"] = (dense_matmuls(N, M, task.seq_len * B, S), S)
    if extra:
        S2 = max(S // 4, 1)
        am = GatedLinearRNN(GatedLinearRNNConfig(d, N, M, d_out))
        acfg = cfg.replace(steps=S2, data_block=S2, engine="autograd")
        out["autograd train()"] = (lambda: train(task, am, acfg, progress=False), S2)
        plain = PlainGatedRNN(d, N, M, d_out)
        opt = torch.optim.AdamW(plain.parameters(), 1e-3, weight_decay=1e-4)
        b = task.sample(B, torch.Generator().manual_seed(0))

        def plain_steps() -> None:
            for _ in range(S2):
                opt.zero_grad()
                task.loss(plain(b.x), b.y, b.mask).backward()
                opt.step()

        out["plain PyTorch loop"] = (plain_steps, S2)
    if jax_step.available():
        b = task.sample(B, torch.Generator().manual_seed(0))
        x, y = b.x.numpy(), b.y.numpy()
        for scan in ("sequential", "associative") if extra else ("sequential",):
            step, st = jax_step.make_step(d, N, M, d_out, scan)
            box = [st]

            def run(step=step, box=box) -> None:
                loss = None
                for _ in range(S):
                    box[0], loss = step(box[0], x, y)
                jax_step.block_until_ready(loss)

            out[f"JAX {'lax.scan' if scan == 'sequential' else 'associative_scan'}"] = (run, S)
    return out


def budget_line(limit_ms: float, per: dict[str, float]) -> str:
    """What 70% of the FLOP limit leaves for the work that is not the three dense matmuls or the data."""
    need = limit_ms / 0.7
    dense, data = per["3 dense matmuls only (floor)"], per["data only (inputs, labels, layout)"]
    left = need - dense - data
    return (
        f"- 70% of the FLOP limit means `train()` ≤ {need:.2f} ms: the 3 dense matmuls alone take {dense:.2f} ms "
        f"({100 * limit_ms / dense:.0f}% of the limit) and the data {data:.2f} ms, which leaves {left:.2f} ms for "
        f"the rest of the step (thin d+1 / d_out matmuls, elementwise products, the scan, AdamW); it takes "
        f"{per['train()'] - dense - data:.2f} ms now"
    )


def flop_case(title: str, task, shape: tuple, S: int, repeats: int, extra: bool) -> tuple[list[str], dict]:
    """One case: interleaved contenders plus the matmul peak; returns markdown lines and the raw figures."""
    d, N, M, d_out, T, B = shape
    cs = contenders(task, d, N, M, d_out, B, S, extra)
    mm_reps = 4
    fns = {"matmul 1024^2": matmul_contender(mm_reps), **{k: fn for k, (fn, _) in cs.items()}}
    res = time_interleaved(fns, repeats=repeats, warmup=1)
    peak = mm_reps * 2 * 1024**3 / res["matmul 1024^2"].cpu_median / 1e9
    fl = flops_per_step(d, N, M, d_out, T, B)
    limit_ms = fl / peak / 1e6
    per = {k: res[k].cpu_ms / n for k, (_, n) in cs.items()}
    wall = {k: res[k].ms / n for k, (_, n) in cs.items()}
    rows = []
    for k in cs:
        faults = cs[k][0].median() / cs[k][1] if isinstance(cs[k][0], Faults) else "-"
        rows.append([k, per[k], wall[k], f"{100 * limit_ms / per[k]:.0f}%", per[k] / per["train()"], faults])
    lines = [
        f"## {title}",
        "",
        f"- float32 matmul peak (1024², this run, CPU time): **{peak:.1f} GFLOP/s**; step work {fl / 1e9:.3f} GFLOP "
        f"-> FLOP limit **{limit_ms:.2f} ms/step**",
        f"- `train()` at **{100 * limit_ms / per['train()']:.0f}% of the FLOP limit**; repeats: {repeats}, "
        f"{S} steps per call",
        budget_line(limit_ms, per),
        "",
        markdown_table(
            ["contender", "CPU ms/step", "wall ms/step", "of FLOP limit", "time / train()", "page faults/step"], rows
        ),
        "",
    ]
    return lines, {"peak": peak, "limit_ms": limit_ms, "per_step_ms": per}


def batched_case(K: int, S: int, repeats: int) -> list[list]:
    """Rows of case C, with the ceiling: one-by-one time over (data + FLOP limit) per model-step, the speed-up a
    batched step at 100% of the matmul peak would reach, since every model still needs its own data."""
    rows = []
    for name, task, d, d_out in (("teacher-student", TeacherStudent(), 4, 4), ("ICL", InContextRegression(), 6, 3)):
        cfg = TrainConfig(steps=S, **QUIET)
        models = [GatedLinearRNN(GatedLinearRNNConfig(d, 32, 32, d_out)) for _ in range(K)]

        def one_by_one(models=models, task=task, cfg=cfg) -> None:
            for k in range(K):
                train(task, models[k], cfg.replace(seed=k), progress=False)

        fns = {"batched": lambda models=models, task=task, cfg=cfg: train_batched(task, models, cfg),
               "one by one": one_by_one, "matmul": matmul_contender(2),
               "data": lambda task=task, cfg=cfg: [sample_steps(task, cfg.batch_size, k, range(S)) for k in range(K)]}
        r = time_interleaved(fns, repeats=repeats, warmup=1)
        peak = 2 * 2 * 1024**3 / r["matmul"].cpu_median / 1e9
        b, s = r["batched"].cpu_median, r["one by one"].cpu_median
        data = r["data"].cpu_median / (K * S)
        last = task.loss_positions is not None
        limit = flops_per_step(d, 32, 32, d_out, task.seq_len, cfg.batch_size, last) / peak / 1e9
        rows.append([name, K, 1e3 * b / (K * S), 1e3 * s / (K * S), f"**{s / b:.2f}x**", 1e3 * data, 1e3 * limit,
                     f"{s / (K * S) / (data + limit):.2f}x", f"{peak:.1f}"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, K=8 only")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    rep = 3 if a.quick else 7
    lines = ["# Training throughput (1 thread)", "",
             f"Regenerate: `OMP_NUM_THREADS=1 python benchmarks/bench_training.py {' '.join(sys.argv[1:])}`", "",
             *environment_lines(), f"- JAX available: {jax_step.available()}",
             f"- GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none (not measured)'}",
             f"- process pinned to core {PINNED_CORE} (every contender, JAX's threads included, runs on one core)",
             "- all times are process CPU time medians; wall time also includes waiting for the core (see the load "
             "average)", ""]
    ts = TeacherStudent()
    la, ra = flop_case("A. teacher-student d=4, N=M=100, B=64, T=32", ts, (4, 100, 100, 4, 32, 64), 32, rep, True)
    print("\n".join(la), flush=True)
    long_task = TeacherStudent(TeacherStudentConfig(seq_len=1024))
    lb, rb = flop_case("B. long sequences: B=16, T=1024, N=M=256", long_task, (4, 256, 256, 4, 1024, 16), 8,
                       max(rep // 2, 2), False)
    jx = rb["per_step_ms"].get("JAX lax.scan")
    if jx:
        half = jx / 2
        lb.insert(4, f"- `train()` vs JAX lax.scan step: **{jx / rb['per_step_ms']['train()']:.2f}x** faster; 2x "
                     f"would need {half:.0f} ms/step, {100 * rb['limit_ms'] / half:.0f}% of the FLOP limit")
    print("\n".join(lb), flush=True)
    rows = [r for K in ((8,) if a.quick else (4, 8)) for r in batched_case(K, 64, rep)]
    lc = ["## C. K models at once (`train_batched`) vs one by one, N=M=32, B=64, 64 steps", "",
          markdown_table(["task", "K", "batched CPU ms/model-step", "one-by-one CPU ms/model-step", "speed-up",
                          "data ms/model-step", "FLOP limit ms/model-step", "ceiling (one-by-one / (data + limit))",
                          "matmul peak GFLOP/s"], rows), ""]
    print("\n".join(lc), flush=True)
    lines += la + lb + lc + [f"- load average at end: {load_average()}", ""]
    if not a.no_write:
        print(f"wrote {write_result('training.md', chr(10).join(lines))}")


if __name__ == "__main__":
    main()
