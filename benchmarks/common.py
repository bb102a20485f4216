"""Shared helpers for the benchmarks: threads, median timing, an in-process dense-matmul GFLOP/s probe,
markdown.

The dev/CI box has 2 cores shared by other processes, so every benchmark (a) pins torch to a fixed thread
count (1 by default: with 2 threads under contention OpenMP spinning was 10-50x slower, our measurement), (b) reports
medians of repeats, and (c) compares against a baseline measured *in the same run* (the sequential loop, a
dense matmul), so that ratios stay meaningful even when absolute times drift with the load. The load average
is recorded with the results for the same reason.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Timing:
    """Seconds per call: wall-clock median (the reported figure), min, every repeat, and the median process
    CPU time (on a shared box wall time includes waiting for a core; CPU time shows the work itself)."""

    median: float
    min: float
    times: tuple[float, ...]
    cpu_median: float = float("nan")

    @property
    def repeats(self) -> int:
        return len(self.times)

    @property
    def ms(self) -> float:
        return 1e3 * self.median

    @property
    def cpu_ms(self) -> float:
        return 1e3 * self.cpu_median


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and the smaller configurations only")


def set_threads(n: int) -> None:
    if n < 1:
        raise SystemExit(f"error: --threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def time_call(
    fn: Callable[[], object],
    repeats: int = 5,
    warmup: int = 1,
    budget_s: float | None = None,
    min_repeats: int = 1,
) -> Timing:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones.

    With ``budget_s``, stops early once the timed calls used that many seconds (but never before
    ``min_repeats``): slow baselines get fewer repeats instead of being skipped.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    cpu: list[float] = []
    spent = 0.0
    for i in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        cpu.append(time.process_time() - c0)
        times.append(dt)
        spent += dt
        if budget_s is not None and spent >= budget_s and i + 1 >= min_repeats:
            break
    return Timing(statistics.median(times), min(times), tuple(times), statistics.median(cpu))


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int = 5,
    warmup: int = 1,
    budget_s: float | None = None,
    min_repeats: int = 1,
) -> dict[str, Timing]:
    """Like :func:`time_call` for several variants, timed in rounds (A, B, A, B, ...) so that every variant
    sees the same load on a shared machine; a ratio of two medians is then a fair comparison. ``budget_s``
    caps the total time of all variants."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    spent = 0.0
    for i in range(repeats):
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            cpu[k].append(time.process_time() - c0)
            times[k].append(dt)
            spent += dt
        if budget_s is not None and spent >= budget_s and i + 1 >= min_repeats:
            break
    return {
        k: Timing(statistics.median(times[k]), min(times[k]), tuple(times[k]), statistics.median(cpu[k]))
        for k in fns
    }


def matmul_gflops(
    n: int = 1024, repeats: int = 5, dtype: torch.dtype = torch.float32, clock: str = "wall"
) -> float:
    """Dense ``[n, n] @ [n, n]`` throughput in GFLOP/s (``2 n^3`` flops per product, median of ``repeats``):
    the machine's practical limit for the current thread count, measured in this process. ``clock="cpu"``
    divides by process CPU time instead of wall time."""
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g, dtype=dtype)
    b = torch.randn(n, n, generator=g, dtype=dtype)
    out = torch.empty(n, n, dtype=dtype)
    t = time_call(lambda: torch.mm(a, b, out=out), repeats=repeats, warmup=1)
    return 2 * n**3 / (t.median if clock == "wall" else t.cpu_median) / 1e9


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_lines() -> list[str]:
    """Provenance of a benchmark run: when, where, with what, under which load."""
    return [
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- cpu: {cpu_name()} ({os.cpu_count()} logical cores), torch {torch.__version__}, "
        f"python {platform.python_version()}, threads {torch.get_num_threads()}",
        f"- load average (1/5/15 min) at start: {load_average()}",
        f"- command: `python {' '.join(sys.argv)}`",
    ]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are printed with 3 significant digits."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, text: str) -> Path:
    """Write ``benchmarks/results/<name>`` atomically (a benchmark's own result file is replaced each run)."""
    from rnnattn.checkpoint import atomic_write_bytes

    return atomic_write_bytes(RESULTS_DIR / name, text.encode(), overwrite=True)
