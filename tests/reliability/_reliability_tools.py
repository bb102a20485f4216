"""Shared tools of the reliability suite: building hostile checkpoint files, classifying what loading them does,
per-case timeouts, and the counters reported at the end of the run (inputs tried, kills survived, files lost)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch

import rnnattn
from rnnattn.checkpoint import CheckpointError, CheckpointWarning, load_checkpoint
from rnnattn.models.base import Model

REPO = Path(__file__).resolve().parents[2]
COUNTS: Counter[str] = Counter()  # printed by conftest.pytest_terminal_summary
CASE_TIMEOUT_S = float(os.environ.get("RNNATTN_FUZZ_CASE_TIMEOUT", "60"))  # generous: 2 cores shared by many


# -- files -----------------------------------------------------------------------------------------------------
def split(raw: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """``(safetensors header without __metadata__, rnnattn info, tensor data)`` of a checkpoint's bytes."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    info = json.loads(header.pop("__metadata__")["rnnattn"])
    return header, info, raw[8 + n :]


def assemble(
    header: dict[str, Any],
    info: Any,
    data: bytes,
    *,
    info_text: str | None = None,
    header_text: bytes | None = None,
) -> bytes:
    """Bytes of a safetensors file with the given tensor entries, rnnattn info (any JSON value or raw text), data."""
    if header_text is None:
        h = dict(header)
        h["__metadata__"] = {"rnnattn": info_text if info_text is not None else json.dumps(info)}
        header_text = json.dumps(h).encode()
    return struct.pack("<Q", len(header_text)) + header_text + data


def small_models() -> dict[str, tuple[Model, dict[str, Model]]]:
    """Small real checkpoints of every zoo family (model, extras), seeded."""
    from rnnattn.lsrl.modules import CompiledLSRL, CompiledLSRLConfig

    torch.manual_seed(0)
    glr = rnnattn.GatedLinearRNN(rnnattn.GatedLinearRNNConfig(d_input=2, n_hidden=3, n_gating=3, d_output=2))
    seq = rnnattn.SequenceModel(
        rnnattn.SequenceModelConfig(
            d_input=2,
            d_output=2,
            d_model=3,
            layers=({"class": "LRU", "d_state": 2, "variant": "in_out"}, {"class": "GRU"}),
        )
    )
    lsa = rnnattn.LinearSelfAttention(rnnattn.LinearSelfAttentionConfig(d_input=2))
    dense = rnnattn.GatedLinearRNN(
        rnnattn.GatedLinearRNNConfig(d_input=1, n_hidden=2, n_gating=2, d_output=1, recurrence="dense")
    )
    lstm = rnnattn.LSTM(rnnattn.LSTMConfig(d_input=2, d_hidden=2))
    lsrl = CompiledLSRL(CompiledLSRLConfig(d_input=1, d_output=1, kinds=("relu", "state"), widths=(2, 1)))
    return {
        "glrnn": (glr, {}),
        "seq+teacher": (seq, {"teacher": lsa}),
        "dense": (dense, {}),
        "lstm": (lstm, {}),
        "lsrl": (lsrl, {}),
    }


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- outcomes --------------------------------------------------------------------------------------------------
class CaseTimeout(BaseException):
    """Raised by the per-case alarm; a BaseException so that no ``except Exception`` in the loader can swallow it."""


@contextlib.contextmanager
def deadline(seconds: float = CASE_TIMEOUT_S):
    """Fail the case if it runs longer than ``seconds`` (a hang), main thread only."""

    def on_alarm(signum, frame):
        raise CaseTimeout(f"case still running after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def load_outcome(path: Path, kind: str = "fuzz") -> str:
    """Load ``path`` and classify: ``"error"`` (a one-line CheckpointError), ``"ok"`` or ``"warned"`` (loaded; only
    CheckpointWarning may be emitted). Any other exception, or a hang, propagates and fails the test."""
    COUNTS[f"inputs: {kind}"] += 1
    with deadline(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ck = load_checkpoint(path)
        except CheckpointError as e:
            msg = str(e)
            assert msg and "\n" not in msg and len(msg) < 2000, f"CheckpointError message not one short line: {msg!r}"
            return "error"
        check_loaded(ck)
    foreign = [w for w in caught if not issubclass(w.category, CheckpointWarning)]
    assert not foreign, [str(w.message) for w in foreign]
    return "warned" if caught else "ok"


def check_loaded(ck: rnnattn.Checkpoint) -> None:
    """A successfully loaded checkpoint is fully consistent: real tensors whose shapes its config implies, a JSON
    metadata dict, and a model that runs."""
    for m in [ck.model, *ck.extras.values()]:
        assert isinstance(m, Model)
        assert isinstance(m.metadata, dict)
        with torch.device("meta"):
            expected = {k: v.shape for k, v in type(m)(m.config).state_dict().items()}
        got = {k: v.shape for k, v in m.state_dict().items()}
        assert got == expected
        assert all(not v.is_meta for v in m.state_dict().values())
        dtype = next(m.parameters()).dtype
        if dtype in (torch.float32, torch.float64):  # half precision forward is not promised on CPU
            with torch.no_grad():
                m(torch.zeros(1, 2, m.d_input, dtype=dtype))


# -- CLI -------------------------------------------------------------------------------------------------------
def cli(argv: list[str], kind: str = "cli") -> tuple[int, str, str]:
    """Run ``rnnattn ARGV`` in this process; returns ``(exit code, stdout, stderr)``."""
    from rnnattn.cli.main import main

    COUNTS[f"inputs: {kind}"] += 1
    out, err = io.StringIO(), io.StringIO()
    with (
        deadline(),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse errors and --help
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return rc, out.getvalue(), err.getvalue()


def assert_clean_error(rc: int, stderr: str, argv: list[str] | None = None) -> None:
    """The contract for every failed command: non-zero exit, exactly one line ``rnnattn: error: ...`` on stderr, no
    traceback, not the 'internal error' last line of defence."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    where = f"rnnattn {' '.join(argv or [])}"
    assert rc not in (0, None), f"{where}: exit code {rc}, stderr {stderr!r}"
    assert "Traceback" not in stderr, f"{where}: traceback on stderr:\n{stderr}"
    assert len(lines) == 1, f"{where}: expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("rnnattn: error: "), f"{where}: {lines[0]!r}"
    assert "internal error" not in lines[0], f"{where}: {lines[0]!r}"


def cli_subprocess(
    argv: list[str], cwd: Path | None = None, timeout: float = 300, **kw: Any
) -> subprocess.CompletedProcess:
    """Run ``python -m rnnattn ARGV`` as a real process (what a user sees, exit codes included)."""
    COUNTS["inputs: cli subprocess"] += 1
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rnnattn", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
        **kw,
    )


def available_commands() -> set[str]:
    from rnnattn.cli.main import _commands

    return set(_commands())


#: commands the reliability suite exercises: a test must fail, never skip, when one of them disappears
EXPECTED_COMMANDS = frozenset({"info", "report", "sweep", "train"})


def require_command(name: str) -> None:
    """Fail (not skip) if the ``rnnattn`` command ``name`` is gone: a vanished command is a regression."""
    assert name in EXPECTED_COMMANDS, f"{name} is not in EXPECTED_COMMANDS"
    have = available_commands()
    assert name in have, f"the rnnattn command {name!r} disappeared (have {sorted(have)})"


# -- time and memory caps ----------------------------------------------------------------------------------------
# Extra address space one case may use. Address space, not RSS: new threads reserve stacks and malloc arenas, so the
# cap leaves room for them; raise it with RNNATTN_CASE_MEMORY_MB on a many-core machine if thread starts fail.
MEMORY_CAP_MB = int(os.environ.get("RNNATTN_CASE_MEMORY_MB", "2048"))


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def capped(seconds: float = CASE_TIMEOUT_S, extra_mb: int = MEMORY_CAP_MB):
    """Run a case in this process under a time limit (:func:`deadline`) and a memory cap: the soft address-space
    limit is set to the current size plus ``extra_mb``, so a case that tries to allocate gigabytes gets a
    ``MemoryError`` (and fails) instead of swapping CI to death. Restored afterwards."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_bytes() + extra_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        with deadline(seconds):
            yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


REPORT_MEMORY_MB = 6144  # a report imports plotting and PDF libraries: more address space, still a cap


def cli_capped(
    argv: list[str], kind: str = "cli capped", seconds: float = CASE_TIMEOUT_S, extra_mb: int = MEMORY_CAP_MB
) -> tuple[int, str, str]:
    """:func:`cli` under :func:`capped`: a hang or a memory bomb fails the case instead of hanging CI."""
    with capped(seconds, extra_mb):
        return cli(argv, kind)


def cli_subprocess_capped(
    argv: list[str], cwd: Path | None = None, timeout: float = 120, memory_mb: int = 3072
) -> subprocess.CompletedProcess:
    """``python -m rnnattn ARGV`` in a real process with a wall-clock timeout and ``RLIMIT_AS`` of ``memory_mb``
    (what a user's shell sees, exit code and stderr included). A timeout raises ``subprocess.TimeoutExpired``."""
    import resource

    limit = memory_mb * 2**20

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return cli_subprocess(argv, cwd=cwd, timeout=timeout, preexec_fn=cap)
