"""Crash safety with real processes: writers SIGKILLed at random moments (many of them mid-write) never leave a
damaged or missing checkpoint, never roll one back, never clobber a file that appeared meanwhile, and readers never
pair one checkpoint's metadata with another's weights.

Writers are forked from the test process (torch already imported, so a kill loop costs milliseconds, not an import),
and killed with SIGKILL: no Python cleanup, no ``finally``, exactly like ``kill -9`` or the OOM killer. Writes are
slowed inside the child (chunked writes, slow fsync) so that most kills land inside a checkpoint write."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from _reliability_tools import COUNTS, deadline

import rnnattn
from rnnattn.checkpoint import CheckpointError, atomic_write_bytes


def fork(fn, *args) -> int:
    """Run ``fn(*args)`` in a forked child that exits with its return value (never returns into pytest)."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            code = int(fn(*args) or 0)
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            code = 70
        finally:
            os._exit(code)
    return pid


def wait(pid: int, timeout: float = 120) -> int:
    t0 = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"child {pid} still running after {timeout} s")
        time.sleep(0.005)


def slow_writes(chunk: int = 1 << 14, pause: float = 0.0005, fsync_pause: float = 0.01) -> None:
    """In a child: make every file write go out in small chunks with pauses and make fsync slow, so that a random
    kill usually lands in the middle of a checkpoint write (between mkstemp and the rename)."""
    real_fdopen, real_fsync = os.fdopen, os.fsync

    class Slow:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            view = memoryview(data)
            for i in range(0, len(view), chunk):
                self.f.write(view[i : i + chunk])
                self.f.flush()
                time.sleep(pause)
            return len(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    os.fdopen = lambda *a, **k: Slow(real_fdopen(*a, **k))  # type: ignore[assignment]
    os.fsync = lambda fd: (time.sleep(fsync_pause), real_fsync(fd))[1]  # type: ignore[assignment]


def _model() -> rnnattn.GatedLinearRNN:
    torch.manual_seed(0)
    return rnnattn.GatedLinearRNN(rnnattn.GatedLinearRNNConfig(d_input=4, n_hidden=128, n_gating=128, d_output=4))


def _stamp(model: torch.nn.Module, step: int) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float(step))


def _stamped_step(ck: rnnattn.Checkpoint) -> int:
    """The step in the metadata, after checking that every weight carries that same step (one consistent file)."""
    step = ck.metadata["step"]
    for k, v in ck.model.state_dict().items():
        assert torch.all(v == float(step)), f"weights {k} do not belong to step {step}: {v.flatten()[:3]}"
    return step


def _saver(path: Path, slow: bool) -> int:
    if slow:
        slow_writes()
    model = _model()
    step = rnnattn.load_checkpoint(path).metadata["step"] if path.exists() else 0
    while True:
        step += 1
        _stamp(model, step)
        rnnattn.save(model, path, overwrite=True, step=step)


def _kill_loop(tmp_path: Path, kills: int, seed: int) -> dict[str, int]:
    path = tmp_path / "run" / "model.safetensors"
    path.parent.mkdir()
    rnd = random.Random(seed)
    last, stats = 0, {"kills": 0, "mid_write": 0, "lost": 0, "rolled_back": 0}
    for _ in range(kills):
        pid = fork(_saver, path, True)
        time.sleep(rnd.uniform(0.0, 0.25))
        os.kill(pid, signal.SIGKILL)
        assert wait(pid) == -signal.SIGKILL
        stats["kills"] += 1
        temps = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
        stats["mid_write"] += bool(temps)
        for t in temps:  # a temp file is never something a user (or glob("*.safetensors")) takes for a checkpoint
            assert t.name.startswith(".") and not t.name.endswith(".safetensors")
            with pytest.raises(CheckpointError):  # and it is (usually) partial: loading it fails cleanly, or
                try:  # it is complete and consistent
                    _stamped_step(rnnattn.load_checkpoint(t))
                    raise CheckpointError("complete")
                finally:
                    t.unlink()
        assert sorted(p.name for p in path.parent.glob("*.safetensors")) == (
            [path.name] if last or path.exists() else []
        )
        if not path.exists():
            stats["lost"] += last > 0
            continue
        try:
            step = _stamped_step(rnnattn.load_checkpoint(path))
        except CheckpointError:
            stats["lost"] += 1
            continue
        stats["rolled_back"] += step < last
        last = step
    COUNTS["kills survived: rnnattn.save loop"] += stats["kills"]
    COUNTS["kills that landed mid-write: rnnattn.save loop"] += stats["mid_write"]
    COUNTS["checkpoints lost or rolled back"] += stats["lost"] + stats["rolled_back"]
    assert stats["lost"] == 0 and stats["rolled_back"] == 0, stats
    assert last > 0, "the writer never completed a checkpoint: the test tested nothing"
    return stats


def test_save_survives_sigkill_at_random_moments(tmp_path):
    stats = _kill_loop(tmp_path, kills=25, seed=1)
    assert stats["mid_write"] >= 3, stats  # most kills must hit a write in progress, or this proves little


@pytest.mark.slow
def test_save_survives_sigkill_at_random_moments_slow(tmp_path):
    stats = _kill_loop(tmp_path, kills=400, seed=2)
    assert stats["mid_write"] >= 100, stats


def test_readers_never_mix_two_checkpoints(tmp_path):
    """``load`` while another process replaces the file in a tight loop: metadata and weights always come from the
    same file (the loader reads header and data through one open file descriptor)."""
    path = tmp_path / "model.safetensors"
    model = _model()
    _stamp(model, 1)
    rnnattn.save(model, path, step=1)

    def writer():
        m = _model()
        step = 1
        while True:
            step += 1
            _stamp(m, step)
            rnnattn.save(m, path, overwrite=True, step=step)

    pid = fork(writer)
    try:
        seen = set()
        with deadline(300):
            for _ in range(40):
                seen.add(_stamped_step(rnnattn.load_checkpoint(path)))
                COUNTS["inputs: concurrent reads"] += 1
        assert len(seen) > 5, "the writer did not make progress: the race was not exercised"
    finally:
        os.kill(pid, signal.SIGKILL)
        wait(pid)


def _create(path: Path, payload: bytes, go: int) -> int:
    os.read(go, 1)  # all children start writing together
    try:
        atomic_write_bytes(path, payload, overwrite=False)
    except FileExistsError:
        return 3
    return 0


@pytest.mark.parametrize("rounds", [8])
def test_concurrent_creators_never_overwrite(tmp_path, rounds):
    """Several processes create the same file with overwrite=False at the same instant: exactly one wins and the
    file holds the winner's bytes (link(2) refuses to replace a file that appeared after the exists() check)."""
    for r in range(rounds):
        path = tmp_path / f"out{r}.bin"
        read_end, write_end = os.pipe()
        payloads = [os.urandom(1 << 16) for _ in range(5)]
        pids = [fork(_create, path, p, read_end) for p in payloads]
        os.write(write_end, b"x" * len(pids))
        codes = [wait(pid) for pid in pids]
        os.close(read_end)
        os.close(write_end)
        COUNTS["inputs: concurrent creators"] += len(pids)
        assert sorted(codes) == [0, 3, 3, 3, 3], codes
        assert path.read_bytes() == payloads[codes.index(0)]
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# -- the trainer: SIGKILL at random moments, then --resume, to the same final weights --------------------------------
TRAIN_ARGS = [
    "train",
    "teacher-student",
    "--protocol",
    "fast",
    "--steps",
    "300",
    "--checkpoint-every",
    "10",
    "--val-every",
    "0",
    "--log-every",
    "10",
    "--d",
    "2",
    "--seq-len",
    "8",
    "--hidden",
    "6",
    "--gating",
    "6",
    "--batch-size",
    "8",
    "--polish-rounds",
    "0",
    "--no-progress",
]


def _train_child(out: Path, extra: list[str], slow: bool, steps: int = 300) -> int:
    import contextlib
    import io

    from rnnattn.cli.main import main

    if slow:
        slow_writes(chunk=256, pause=0.002, fsync_pause=0.02)
    # --resume takes the saved run's options; anything else would be refused
    argv = TRAIN_ARGS[:2] + ["--no-progress"] if "--resume" in extra else _with_steps(steps)
    with contextlib.redirect_stdout(io.StringIO()):
        return main([*argv, "--out", str(out), *extra])


def _observe_run(out: Path, last: dict[str, int]) -> dict[str, int]:
    """Check what a killed trainer left: each file absent or complete, never older than before. Returns the steps."""
    from rnnattn.training.state import RunDir

    seen = {}
    names = sorted(p.name for p in out.glob("*.safetensors"))
    assert set(names) <= {"model.safetensors", "state.safetensors"}, names
    if (out / "model.safetensors").exists():
        ck = rnnattn.load_checkpoint(out / "model.safetensors")  # a CheckpointError here is a lost checkpoint
        seen["model"] = int(ck.metadata["training"]["step"])
    if (out / "state.safetensors").exists():
        _, info = RunDir(out).load_state()
        seen["state"] = int(info["step"])
    for k, v in last.items():
        assert k in seen, f"{k} checkpoint disappeared"
        assert seen[k] >= v, f"{k} checkpoint rolled back from step {v} to {seen[k]}"
    return seen


def _with_steps(steps: int) -> list[str]:
    argv = list(TRAIN_ARGS)
    argv[argv.index("--steps") + 1] = str(steps)
    return argv


def _trainer_kill_loop(tmp_path: Path, kills: int, seed: int, steps: int = 300) -> None:
    from rnnattn.checkpoint import load

    ref = tmp_path / "reference"
    assert wait(fork(_train_child, ref, [], False, steps), timeout=1200) == 0
    reference = load(ref / "model.safetensors")

    out = tmp_path / "killed"
    rnd = random.Random(seed)
    last: dict[str, int] = {}
    mid_write = 0
    for _ in range(kills):
        extra = ["--resume"] if (out / "state.safetensors").exists() else ["--force"]
        pid = fork(_train_child, out, extra, True, steps)
        if extra == ["--force"]:  # let the first checkpoint appear, so that later kills have something to lose
            t0 = time.monotonic()
            while not (out / "state.safetensors").exists() and time.monotonic() - t0 < 300:
                time.sleep(0.01)
        time.sleep(rnd.uniform(0.0, 1.5))
        os.kill(pid, signal.SIGKILL)
        code = wait(pid, timeout=600)
        if code != -signal.SIGKILL:  # it finished before the kill: only fine near the end of the run
            assert code == 0 and last.get("state", 0) > 0, f"trainer exited with {code}"
            break
        mid_write += any(p.name.endswith(".tmp") for p in out.iterdir()) if out.exists() else 0
        for t in out.glob(".*.tmp") if out.exists() else []:
            t.unlink()  # stale temp files from killed writers are garbage, never mistaken for checkpoints
        last = _observe_run(out, last) if out.exists() else last
        COUNTS["kills survived: trainer"] += 1
    COUNTS["kills that landed mid-write: trainer"] += mid_write
    assert last.get("state", 0) > 0, "no checkpoint was ever written before a kill: the test tested nothing"
    # resume to completion: the same weights, bit for bit, as the run that was never interrupted
    assert wait(fork(_train_child, out, ["--resume"], False), timeout=600) == 0
    final = load(out / "model.safetensors")
    assert final.metadata["training"]["completed"] is True
    for k, v in reference.state_dict().items():
        assert torch.equal(final.state_dict()[k], v), f"{k} differs from the uninterrupted run after {kills} kills"
    assert (out / "summary.json").exists()
    # the log has every row once, as if the run had never been interrupted (wall times aside)
    import csv

    def rows(run: Path) -> list[tuple]:
        with open(run / "log.csv", newline="") as f:
            return [(r["step"], r["phase"], r["lr"], r["train_loss"]) for r in csv.DictReader(f)]

    assert rows(out) == rows(ref)


def test_trainer_survives_sigkill_and_resumes_exactly(tmp_path):
    from _reliability_tools import require_command

    require_command("train")
    _trainer_kill_loop(tmp_path, kills=6, seed=3)


@pytest.mark.slow
def test_trainer_survives_sigkill_and_resumes_exactly_slow(tmp_path):
    _trainer_kill_loop(tmp_path, kills=60, seed=4, steps=5000)
