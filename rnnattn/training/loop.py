"""``train(task, model, config, out_dir)``: the training loop (AdamW cosine phase, optional L-BFGS polishing).

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
from pathlib import Path
from typing import Any

import torch

from rnnattn.checkpoint import save as save_checkpoint
from rnnattn.tasks.base import Task
from rnnattn.training.config import TrainConfig, TrainResult
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
    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    model.to(device=device, dtype=dtype)
    engine = make_engine(model, task, config, device, dtype)
    run = RunDir(out_dir) if out_dir is not None else None
    if resume and run is None:
        raise ValueError("train: resume=True needs out_dir")

    step, rounds_done, wall_prev = 0, 0, 0.0
    if resume:
        tensors, info = run.load_state()
        _check_resume(info, config, task, run.state)
        engine.load_state_tensors({k: v.to(device) for k, v in tensors.items()}, info["step"])
        step, rounds_done, wall_prev = int(info["step"]), int(info["polish_round"]), float(info["wall_time"])
        run.truncate_log(step + rounds_done * config.polish_iters)
    elif run is not None:
        run.claim(force)

    need_val = config.val_every > 0 or config.target_loss is not None
    val_data = ref_val = None
    if need_val:
        val = task.validation_set(config.val_samples, config.val_seed)
        ref_val = task.reference_loss(val)
        val_data = engine.prepare_eval(val)
    stream = BlockStream(task, config.batch_size, config.seed, config.data_block, engine.prepare)

    t0 = time.perf_counter()
    history: list[dict[str, Any]] = []
    state = {"train": None, "val": None, "reached": False, "t_step": None, "t_time": None, "stop": False}

    def elapsed() -> float:
        return wall_prev + time.perf_counter() - t0

    def total_steps() -> int:
        return step + rounds_done * config.polish_iters

    def record(phase: str, lr: float | None, train_loss: float | None, validate: bool) -> None:
        row = {
            "step": total_steps(),
            "phase": phase,
            "lr": lr,
            "train_loss": train_loss,
            "val_loss": None,
            "ref_val_loss": None,
            "wall_s": round(elapsed(), 3),
        }
        if train_loss is not None:
            state["train"] = train_loss
        if validate and val_data is not None:
            engine.sync()
            row["val_loss"] = state["val"] = engine.eval_loss(val_data)
            row["ref_val_loss"] = ref_val
            tl = config.target_loss
            if tl is not None and not state["reached"] and row["val_loss"] <= tl:
                state.update(reached=True, t_step=total_steps(), t_time=row["wall_s"], stop=True)
        history.append(row)
        if run is not None:
            run.append_log(row)
        for cb in callbacks:
            if cb(dict(row)):
                state["stop"] = True

    def checkpoint(completed: bool) -> Path | None:
        if run is None:
            return None
        engine.sync()
        run.save_state(
            engine.state_tensors(),
            {
                "step": step,
                "polish_round": rounds_done,
                "config": config.to_dict(),
                "task": task.to_dict(),
                "engine": engine.name,
                "wall_time": elapsed(),
            },
        )
        extras = {"teacher": task.teacher} if getattr(task, "teacher", None) is not None else None
        training = {
            "config": config.to_dict(),
            "step": total_steps(),
            "adam_steps": step,
            "polish_rounds_done": rounds_done,
            "final_train_loss": state["train"],
            "final_val_loss": state["val"],
            "reference_val_loss": ref_val,
            "val_samples": config.val_samples if need_val else 0,
            "wall_time": elapsed(),
            "device": str(device),
            "torch_version": torch.__version__,
            "protocol": config.protocol,
            "engine": engine.name,
            "completed": completed,
            "reached_target": state["reached"],
            "target_step": state["t_step"],
            "target_time": state["t_time"],
        }
        return save_checkpoint(
            model,
            run.model,
            extras=extras,
            overwrite=True,
            task=task.to_dict(),
            training=training,
            reference=task.reference,
        )

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=config.steps + config.polish_rounds * config.polish_iters,
            initial=total_steps(),
            desc=f"train {task.name}",
            unit="step",
            dynamic_ncols=True,
        )
    acc, n_acc = None, 0
    with _SigintFlag(handle_sigint) as sigint:
        while step < config.steps and not state["stop"] and not sigint.hit:
            data, i = stream.get(step)
            lr = cosine_lr(step, config)
            loss = engine.step(data, i, lr)
            acc = loss if acc is None else acc + loss
            n_acc += 1
            step += 1
            last = step == config.steps
            do_log = step % config.log_every == 0 or last
            do_val = need_val and ((config.val_every and step % config.val_every == 0) or last)
            if do_log or do_val:
                tl = float(acc) / n_acc if n_acc else None
                acc, n_acc = None, 0
                if tl is not None and not math.isfinite(tl):
                    raise RuntimeError(
                        f"training diverged at step {step} (loss {tl}); lower the learning rate"
                    )
                record("adam", lr, tl, do_val)
                if bar is not None:
                    bar.update(total_steps() - bar.n)
                    bar.set_postfix(
                        loss=f"{state['train']:.3g}", val=f"{state['val']:.3g}" if state["val"] else "-"
                    )
            if config.checkpoint_every and step % config.checkpoint_every == 0 and not last:
                checkpoint(False)
        while (
            step >= config.steps
            and rounds_done < config.polish_rounds
            and not state["stop"]
            and not sigint.hit
        ):
            # L-BFGS draws a new batch each round; LM keeps one batch for every round: on a zero-residual task its
            # minimiser is the teacher's, and a new batch would restart LM's convergence (measured: 4x slower).
            b_idx = 0 if config.polish_method == "lm" else rounds_done
            batch = sample_steps(task, config.polish_batch, config.seed, range(b_idx, b_idx + 1), stream=1)
            data = engine.prepare_eval(type(batch)(*(t[0] for t in batch)))
            tl = engine.polish(data, config.polish_iters, config.polish_history)
            if not math.isfinite(tl):
                raise RuntimeError(f"L-BFGS polishing diverged in round {rounds_done}")
            rounds_done += 1
            record(config.polish_method, None, tl, need_val)
            if bar is not None:
                bar.update(total_steps() - bar.n)
                bar.set_postfix(loss=f"{tl:.3g}", val=f"{state['val']:.3g}" if state["val"] else "-")
            if config.checkpoint_every and rounds_done < config.polish_rounds:
                checkpoint(False)
        interrupted = sigint.hit
    if bar is not None:
        bar.close()
    engine.sync()
    completed = step >= config.steps and rounds_done >= config.polish_rounds
    path = checkpoint(completed or state["reached"])
    result = TrainResult(
        steps=total_steps(),
        final_train_loss=state["train"],
        final_val_loss=state["val"],
        reference_val_loss=ref_val,
        wall_time=elapsed(),
        checkpoint=path,
        interrupted=interrupted,
        reached_target=state["reached"],
        target_step=state["t_step"],
        target_time=state["t_time"],
        history=history,
    )
    if run is not None:
        run.write_summary(result.summary())
    return result
