"""Benchmark of the diagonal recurrence and of a GatedLinearRNN training step (issue 2).

For each configuration (batch B, length T, hidden N, gating M, token size d):

(a) the recurrence ``h_t = lam * h_{t-1} + u_t`` alone on ``u [B, T, N]``:
:func:`rnnattn.ops.diagonal_recurrence` against the plain sequential loop :func:`rnnattn.ops.diagonal_recurrence_ref`,
forward and forward+backward;
(b) one forward+backward step of ``GatedLinearRNN(d, N, M, d)`` on an MSE loss, once with the fast op and once
with the loop patched in (same weights, same data; losses are checked equal): time per step, the loop/fast
ratio, and the achieved GFLOP/s against a dense matmul timed in the same run just before the configuration.

FLOPs of a step are counted analytically per token from Eq. 2: ``6(d+1)·2N + 6N·2M + 6M·d_out`` for the four
gating matmuls and the readout (forward + backward = 3x forward), plus ``6N`` for the recurrence (forward
multiply-add 2N, backward reverse scan 2N and the dlam product-sum 2N). The elementwise gating products
(``3(N+M)``) are not counted.

Usage: ``python benchmarks/bench_recurrence.py [--quick] [--threads N]``; prints a markdown table and writes
it to ``benchmarks/results/recurrence.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Timing,
    add_common_arguments,
    environment_lines,
    load_average,
    markdown_table,
    matmul_gflops,
    set_threads,
    time_interleaved,
    write_result,
)

import rnnattn.models.gated_rnn as gated_rnn_module  # noqa: E402
from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig  # noqa: E402
from rnnattn.ops import diagonal_recurrence, diagonal_recurrence_ref  # noqa: E402


@dataclass(frozen=True)
class Case:
    B: int
    T: int
    N: int
    M: int
    d: int
    repeats: int  # timed repeats (fewer when the time budget runs out)
    budget_s: float  # per measurement (all variants together)
    warmup: int = 1

    @property
    def label(self) -> str:
        return f"B={self.B}, T={self.T}, N={self.N}, M={self.M}, d={self.d}"

    def step_flops(self) -> float:
        """FLOPs of one forward+backward step (see the module docstring)."""
        d, N, M = self.d, self.N, self.M
        per_token = 6 * (d + 1) * 2 * N + 6 * N * 2 * M + 6 * M * d + 6 * N
        return float(per_token * self.B * self.T)


CASES = [
    Case(64, 32, 100, 100, 4, repeats=30, budget_s=20),
    Case(16, 1024, 256, 256, 4, repeats=7, budget_s=60),
    Case(8, 4096, 1024, 1024, 4, repeats=3, budget_s=150, warmup=0),
]
QUICK_CASES = [
    Case(64, 32, 100, 100, 4, repeats=7, budget_s=3),
    Case(16, 1024, 256, 256, 4, repeats=2, budget_s=5, warmup=0),
]


@contextlib.contextmanager
def loop_recurrence():
    """Run GatedLinearRNN with the plain sequential loop in place of the fast op."""
    saved = gated_rnn_module.diagonal_recurrence
    gated_rnn_module.diagonal_recurrence = diagonal_recurrence_ref
    try:
        yield
    finally:
        gated_rnn_module.diagonal_recurrence = saved


def bench_op(c: Case) -> dict[str, Timing]:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(c.B, c.T, c.N, generator=g).requires_grad_()
    lam = torch.rand(c.N, generator=g).requires_grad_()
    w = torch.randn(c.B, c.T, c.N, generator=g)

    def fwd(op):
        with torch.no_grad():
            op(u, lam)

    def fwd_bwd(op):
        u.grad = lam.grad = None
        op(u, lam)[0].backward(w)

    ops = {"fast": diagonal_recurrence, "loop": diagonal_recurrence_ref}
    res = {}
    for kind, fn in (("fwd", fwd), ("fwdbwd", fwd_bwd)):
        t = time_interleaved(
            {k: (lambda op=op, fn=fn: fn(op)) for k, op in ops.items()}, c.repeats, c.warmup, c.budget_s
        )
        res.update({f"{k}_{kind}": v for k, v in t.items()})
    return res


def bench_step(c: Case) -> dict[str, object]:
    torch.manual_seed(0)
    model = GatedLinearRNN(GatedLinearRNNConfig(c.d, c.N, c.M, c.d))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(c.B, c.T, c.d, generator=g)
    y = torch.randn(c.B, c.T, c.d, generator=g)

    def step() -> float:
        model.zero_grad(set_to_none=True)
        loss = 0.5 * torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss.item()

    def step_loop() -> float:
        with loop_recurrence():
            return step()

    # the practical limit, on the same clock as the GFLOP/s column, probed before and after (the load drifts)
    peak_before = matmul_gflops(clock="cpu")
    loss_fast, loss_loop = step(), step_loop()
    if abs(loss_fast - loss_loop) > 1e-5 * max(1.0, abs(loss_loop)):
        raise SystemExit(f"error: fast and loop steps disagree on {c.label}: loss {loss_fast} vs {loss_loop}")
    res: dict[str, object] = dict(
        time_interleaved({"fast": step, "loop": step_loop}, c.repeats, max(c.warmup - 1, 0), c.budget_s)
    )
    res["peak"] = (peak_before + matmul_gflops(clock="cpu")) / 2
    return res


def op_row(c: Case, r: dict[str, Timing]) -> list[object]:
    """One row of table (a): the recurrence alone, fast op vs the sequential loop."""
    return [
        c.B,
        c.T,
        c.N,
        r["fast_fwd"].ms,
        r["loop_fwd"].ms,
        r["loop_fwd"].median / r["fast_fwd"].median,
        r["fast_fwdbwd"].ms,
        r["loop_fwdbwd"].ms,
        r["loop_fwdbwd"].median / r["fast_fwdbwd"].median,
        f"{r['fast_fwdbwd'].cpu_ms:.3g} / {r['loop_fwdbwd'].cpu_ms:.3g}",
        r["loop_fwdbwd"].cpu_median / r["fast_fwdbwd"].cpu_median,
        f"{r['fast_fwdbwd'].repeats}/{r['loop_fwdbwd'].repeats}",
    ]


def step_row(c: Case, s: dict[str, object]) -> list[object]:
    """One row of table (b): the training step, with GFLOP/s on both clocks against the matmul probe."""
    fast, loop, peak = s["fast"], s["loop"], s["peak"]
    flops = c.step_flops()
    fast_gf_wall, fast_gf = flops / fast.median / 1e9, flops / fast.cpu_median / 1e9
    return [
        c.B,
        c.T,
        c.N,
        c.M,
        c.d,
        flops / 1e9,
        fast.ms,
        loop.ms,
        loop.median / fast.median,
        f"{fast.cpu_ms:.3g} / {loop.cpu_ms:.3g}",
        loop.cpu_median / fast.cpu_median,
        fast_gf_wall,
        fast_gf,
        peak,
        f"{100 * fast_gf / peak:.0f}%",
        f"{fast.repeats}/{loop.repeats}",
    ]


OP_HEADER = [
    "B",
    "T",
    "N",
    "fast fwd ms",
    "loop fwd ms",
    "loop/fast",
    "fast fwd+bwd ms",
    "loop fwd+bwd ms",
    "loop/fast",
    "fwd+bwd CPU ms fast / loop",
    "loop/fast (CPU)",
    "repeats fast/loop",
]
STEP_HEADER = [
    "B",
    "T",
    "N",
    "M",
    "d",
    "GFLOP/step",
    "fast ms/step",
    "loop ms/step",
    "loop/fast",
    "CPU ms fast / loop",
    "loop/fast (CPU)",
    "fast GFLOP/s (wall)",
    "fast GFLOP/s (CPU)",
    "matmul GFLOP/s (CPU)",
    "fast / matmul (CPU)",
    "repeats fast/loop",
]


def render(env: list[str], op_rows: list[list[object]], step_rows: list[list[object]]) -> str:
    """The results page: environment notes, then tables (a) and (b)."""
    return "\n".join(
        [
            "# Diagonal recurrence and GatedLinearRNN training step (CPU)",
            "",
            *env,
            f"- load average at end: {load_average()}",
            "- fast and loop are timed alternately (fast, loop, fast, loop, ...) so that both see the same load",
            "- times are wall-clock medians of the repeats (CPU columns: median process CPU time, which "
            "excludes "
            "waiting for a core on this shared box); ratios compare the plain sequential loop "
            "(`diagonal_recurrence_ref`) with the fast op measured in the same run",
            "- the matmul probe (same thread count, CPU-time clock) is the practical limit; the step's "
            "GFLOP/s is given on both clocks and compared with it on CPU time (wall time here mostly "
            "measures other jobs' share of the cores)",
            "",
            "## (a) Recurrence alone, `u [B, T, N]` float32 (forward without autograd; forward+backward "
            "w.r.t. u and lam)",
            "",
            markdown_table(OP_HEADER, op_rows),
            "",
            "## (b) GatedLinearRNN forward+backward step (MSE loss), fast op vs loop",
            "",
            "FLOPs/token = 6(d+1)·2N + 6N·2M + 6M·d + 6N (Eq. 2 + the recurrence); "
            "matmul = dense 1024x1024 float32 product timed before and after each row (mean, CPU time).",
            "",
            markdown_table(STEP_HEADER, step_rows),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(p)
    p.add_argument("--out", default="recurrence.md", help="file name under benchmarks/results/")
    args = p.parse_args(argv)
    set_threads(args.threads)
    cases = QUICK_CASES if args.quick else CASES
    env = environment_lines()

    op_rows, step_rows = [], []
    for c in cases:
        print(f"# {c.label}: recurrence alone ...", file=sys.stderr, flush=True)
        op_rows.append(op_row(c, bench_op(c)))
        print(f"# {c.label}: training step ...", file=sys.stderr, flush=True)
        step_rows.append(step_row(c, bench_step(c)))

    text = render(env, op_rows, step_rows)
    print(text)
    path = write_result(args.out, text)
    print(f"# written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
