"""``train(task, model, config, out_dir)``: the training loop (AdamW cosine phase, optional polishing phase), run by a
small :class:`Trainer` object whose mutable progress lives in one typed :class:`TrainState`.

Checkpoint schema (``out_dir/model.safetensors``, an ordinary rnnattn checkpoint of the student; read it with
``rnnattn.load_checkpoint``):

    extras:    {"teacher": LinearSelfAttention}            (teacher-student only)
    metadata:
      "task":      task.to_dict()  — {"name": "teacher_student" | "icl_regression", every distribution parameter}
      "training":  {"config": TrainConfig.to_dict(), "step": int (AdamW steps + L-BFGS iterations done),
                    "adam_steps": int, "polish_rounds_done": int, "final_train_loss": float | None,
                    "final_val_loss": float | None, "reference_val_loss": float | None, "val_samples": int,
                    "wall_time": float (s), "device": str, "torch_version": str, "protocol": str,
                    "engine": "fast" | "autograd", "completed": bool, "reached_target": bool,
                    "target_step": int | None, "target_time": float | None}
      "reference": "teacher" | "one_step_gd"   (what the validation loss is compared with)

Resume (``resume=True``) restores weights, optimiser moments and the step from ``state.safetensors``; data are
regenerated from ``(seed, step)``, so the resumed run reaches exactly the weights of an uninterrupted one (tested
bit for bit on CPU). SIGINT during ``train`` (main thread only) finishes the current step, writes the checkpoint and
the state, and returns with ``interrupted=True`` (the CLI then exits 130); a second SIGINT aborts at once.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnattn.checkpoint import save as save_checkpoint
from rnnattn.tasks.base import Task
from rnnattn.training.budget import check_training_memory
from rnnattn.training.config import TrainConfig, TrainingDiverged, TrainResult
from rnnattn.training.data import BlockStream, sample_steps
from rnnattn.training.engines import make_engine
from rnnattn.training.optim import cosine_lr
from rnnattn.training.state import RunDir

Callback = Callable[[dict[str, Any]], bool | None]
_RESUME_FREE = {
    "device",
    "log_every",
    "checkpoint_every",
}  # may change on resume without changing the weights


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return dev


class _SigintFlag:
    """Turns the first SIGINT into a flag the loop polls; restores the previous handler on exit."""

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.hit = False
        self._old = None

    def __enter__(self):
        if self.active:
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc):
        if self.active:
            signal.signal(signal.SIGINT, self._old)
        return False


def _check_resume(info: dict[str, Any], config: TrainConfig, task: Task, path: Path) -> None:
    old = {k: v for k, v in info.get("config", {}).items() if k not in _RESUME_FREE}
    new = {k: v for k, v in config.to_dict().items() if k not in _RESUME_FREE}
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise ValueError(f"{path}: cannot resume with a different config ({', '.join(diff)} changed)")
    if info.get("task") != task.to_dict():
        raise ValueError(f"{path}: cannot resume with a different task")


@dataclass
class TrainState:
    """Everything a run changes while it goes (the rest of :class:`Trainer` is fixed at construction).

    Attributes:
        step: AdamW steps done; rounds_done: polishing rounds done (each counts ``polish_iters`` steps).
        wall_prev: seconds spent by earlier (resumed) calls.
        train_loss, val_loss: the latest logged losses.
        reached, target_step, target_time: ``target_loss`` reached, and where.
        stop: a callback or the target asked to stop.
    """

    step: int = 0
    rounds_done: int = 0
    wall_prev: float = 0.0
    train_loss: float | None = None
    val_loss: float | None = None
    reached: bool = False
    target_step: int | None = None
    target_time: float | None = None
    stop: bool = False


def save_run_checkpoint(model: torch.nn.Module, path: str | Path, task: Task, **metadata: Any) -> Path:
    """Write a trained model's checkpoint (replacing the run's previous one): the task, its reference and
    ``metadata`` (e.g. ``training``), and the task's teacher (if it has one) as the extra ``teacher``."""
    teacher = getattr(task, "teacher", None)
    return save_checkpoint(
        model,
        path,
        extras={"teacher": teacher} if teacher is not None else None,
        overwrite=True,
        task=task.to_dict(),
        **metadata,
        reference=task.reference,
    )


class Trainer:
    """One training run: construction validates and sets up (engine, run directory, resume, validation set, data
    stream); :meth:`run` executes the AdamW phase, then the polishing phase, and returns a :class:`TrainResult`.
    Arguments are those of :func:`train`."""

    def __init__(
        self,
        task: Task,
        model: torch.nn.Module,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        resume: bool = False,
        force: bool = False,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
        if (
            getattr(model, "d_input", task.d_input) != task.d_input
            or getattr(model, "d_output", task.d_output) != task.d_output
        ):
            raise ValueError(
                f"train: model maps {model.d_input} -> {model.d_output} features, the task needs "
                f"{task.d_input} -> {task.d_output}"
            )
        check_training_memory(task, model, config)
        self.task, self.model, self.config, self.callbacks = task, model, config, tuple(callbacks)
        self.device = resolve_device(config.device)
        model.to(device=self.device, dtype=getattr(torch, config.dtype))
        self.engine = make_engine(model, task, config, self.device, getattr(torch, config.dtype))
        self.run_dir = RunDir(out_dir) if out_dir is not None else None
        self.state = TrainState()
        self.history: list[dict[str, Any]] = []
        if resume:
            self._resume()
        elif self.run_dir is not None:
            self.run_dir.claim(force)
        self.need_val = config.val_every > 0 or config.target_loss is not None
        self.val_data, self.ref_val = None, None
        if self.need_val:
            val = task.validation_set(config.val_samples, config.val_seed)
            self.ref_val = task.reference_loss(val)
            self.val_data = self.engine.prepare_eval(val)
        self.stream = BlockStream(task, config.batch_size, config.seed, config.data_block, self.engine.prepare)
        self._t0 = time.perf_counter()

    def _resume(self) -> None:
        if self.run_dir is None:
            raise ValueError("train: resume=True needs out_dir")
        tensors, info = self.run_dir.load_state()
        _check_resume(info, self.config, self.task, self.run_dir.state)
        self.engine.load_state_tensors({k: v.to(self.device) for k, v in tensors.items()}, info["step"])
        s = self.state
        s.step, s.rounds_done, s.wall_prev = int(info["step"]), int(info["polish_round"]), float(info["wall_time"])
        self.run_dir.truncate_log(self.total_steps())

    # -- bookkeeping ---------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.state.wall_prev + time.perf_counter() - self._t0

    def total_steps(self) -> int:
        return self.state.step + self.state.rounds_done * self.config.polish_iters

    def record(self, phase: str, lr: float | None, train_loss: float | None, validate: bool) -> None:
        """Append a log row (validating first when asked), check the target, and call the callbacks."""
        s = self.state
        row = {
            "step": self.total_steps(),
            "phase": phase,
            "lr": lr,
            "train_loss": train_loss,
            "val_loss": None,
            "ref_val_loss": None,
            "wall_s": round(self.elapsed(), 3),
        }
        if train_loss is not None:
            s.train_loss = train_loss
        if validate and self.val_data is not None:
            self.engine.sync()
            row["val_loss"] = s.val_loss = self.engine.eval_loss(self.val_data)
            row["ref_val_loss"] = self.ref_val
            tl = self.config.target_loss
            if tl is not None and not s.reached and row["val_loss"] <= tl:
                s.reached, s.target_step, s.target_time, s.stop = True, self.total_steps(), row["wall_s"], True
        self.history.append(row)
        if self.run_dir is not None:
            self.run_dir.append_log(row)
        for cb in self.callbacks:
            if cb(dict(row)):
                s.stop = True

    def training_metadata(self, completed: bool) -> dict[str, Any]:
        """The checkpoint's ``metadata["training"]`` (schema in the module docstring)."""
        s, c = self.state, self.config
        return {
            "config": c.to_dict(),
            "step": self.total_steps(),
            "adam_steps": s.step,
            "polish_rounds_done": s.rounds_done,
            "final_train_loss": s.train_loss,
            "final_val_loss": s.val_loss,
            "reference_val_loss": self.ref_val,
            "val_samples": c.val_samples if self.need_val else 0,
            "wall_time": self.elapsed(),
            "device": str(self.device),
            "torch_version": torch.__version__,
            "protocol": c.protocol,
            "engine": self.engine.name,
            "completed": completed,
            "reached_target": s.reached,
            "target_step": s.target_step,
            "target_time": s.target_time,
        }

    def checkpoint(self, completed: bool) -> Path | None:
        """Write the resume state and the student checkpoint (no-op without a run directory)."""
        if self.run_dir is None:
            return None
        self.engine.sync()
        s = self.state
        info = {
            "step": s.step,
            "polish_round": s.rounds_done,
            "config": self.config.to_dict(),
            "task": self.task.to_dict(),
            "engine": self.engine.name,
            "wall_time": self.elapsed(),
        }
        self.run_dir.save_state(self.engine.state_tensors(), info)
        training = self.training_metadata(completed)
        return save_run_checkpoint(self.model, self.run_dir.model, self.task, training=training)

    # -- phases --------------------------------------------------------------------------------------------------
    def adam_phase(self, sigint: _SigintFlag, bar: _Progress) -> None:
        """AdamW steps until ``config.steps``, a stop request or SIGINT; logs the mean loss of each interval."""
        c, s = self.config, self.state
        acc, n_acc = None, 0
        while s.step < c.steps and not s.stop and not sigint.hit:
            data, i = self.stream.get(s.step)
            lr = cosine_lr(s.step, c)
            loss = self.engine.step(data, i, lr)
            acc = loss if acc is None else acc + loss
            n_acc += 1
            s.step += 1
            last = s.step == c.steps
            do_log = s.step % c.log_every == 0 or last
            do_val = self.need_val and ((c.val_every and s.step % c.val_every == 0) or last)
            if do_log or do_val:
                tl = float(acc) / n_acc
                acc, n_acc = None, 0
                if not math.isfinite(tl):
                    raise TrainingDiverged(f"training diverged at step {s.step} (loss {tl}); lower the learning rate")
                self.record("adam", lr, tl, do_val)
                bar.update(self.total_steps(), s)
            if c.checkpoint_every and s.step % c.checkpoint_every == 0 and not last:
                self.checkpoint(False)

    def polish_phase(self, sigint: _SigintFlag, bar: _Progress) -> None:
        """``polish_rounds`` rounds of L-BFGS or LM after the AdamW phase, validating after each round."""
        c, s = self.config, self.state
        while s.step >= c.steps and s.rounds_done < c.polish_rounds and not s.stop and not sigint.hit:
            # L-BFGS draws a new batch each round; LM keeps one batch for every round: on a zero-residual task its
            # minimiser is the teacher's, and a new batch would restart LM's convergence (measured: 4x slower).
            b_idx = 0 if c.polish_method == "lm" else s.rounds_done
            batch = sample_steps(self.task, c.polish_batch, c.seed, range(b_idx, b_idx + 1), stream=1)
            data = self.engine.prepare_eval(type(batch)(*(t[0] for t in batch)))
            tl = self.engine.polish(data, c.polish_iters, c.polish_history)
            if not math.isfinite(tl):
                raise TrainingDiverged(f"{c.polish_method} polishing diverged in round {s.rounds_done}")
            s.rounds_done += 1
            self.record(c.polish_method, None, tl, self.need_val)
            bar.update(self.total_steps(), s)
            if c.checkpoint_every and s.rounds_done < c.polish_rounds:
                self.checkpoint(False)

    def run(self, progress: bool = True, handle_sigint: bool = True) -> TrainResult:
        """Both phases, the final checkpoint and summary; returns the :class:`TrainResult`."""
        c, s = self.config, self.state
        bar = _Progress(progress, c.steps + c.polish_rounds * c.polish_iters, self.total_steps(), self.task.name)
        with _SigintFlag(handle_sigint) as sigint:
            self.adam_phase(sigint, bar)
            self.polish_phase(sigint, bar)
        bar.close()
        self.engine.sync()
        completed = s.step >= c.steps and s.rounds_done >= c.polish_rounds
        path = self.checkpoint(completed or s.reached)
        result = TrainResult(
            steps=self.total_steps(),
            final_train_loss=s.train_loss,
            final_val_loss=s.val_loss,
            reference_val_loss=self.ref_val,
            wall_time=self.elapsed(),
            checkpoint=path,
            interrupted=sigint.hit,
            reached_target=s.reached,
            target_step=s.target_step,
            target_time=s.target_time,
            history=self.history,
        )
        if self.run_dir is not None:
            self.run_dir.write_summary(result.summary())
        return result


class _Progress:
    """An optional tqdm bar showing the latest train / validation loss."""

    def __init__(self, enabled: bool, total: int, initial: int, name: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=f"train {name}", unit="step", dynamic_ncols=True)

    def update(self, n: int, s: TrainState) -> None:
        if self.bar is not None:
            self.bar.update(n - self.bar.n)
            loss = f"{s.train_loss:.3g}" if s.train_loss is not None else "-"
            self.bar.set_postfix(loss=loss, val=f"{s.val_loss:.3g}" if s.val_loss else "-")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(
    task: Task,
    model: torch.nn.Module,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    handle_sigint: bool = True,
) -> TrainResult:
    """Train ``model`` on ``task``; a pure function of its arguments (plus files in ``out_dir`` when resuming).

    Args:
        task: a :class:`rnnattn.tasks.Task`.
        model: an rnnattn model whose input/output sizes match the task (moved to ``config.device``/``dtype``).
        config: the :class:`TrainConfig`.
        out_dir: run directory (checkpoint, state, log); None trains in memory only.
        resume: continue the run in ``out_dir`` exactly where its state left it.
        force: overwrite another run's files in ``out_dir``.
        callbacks: ``fn(row) -> stop?`` called at every log/validation row (a truthy return stops the run).
        progress: show a tqdm bar.
        handle_sigint: turn Ctrl-C into "save and return" (main thread only).
    Returns:
        A :class:`TrainResult`.
    """
    trainer = Trainer(task, model, config, out_dir, resume=resume, force=force, callbacks=callbacks)
    return trainer.run(progress=progress, handle_sigint=handle_sigint)
