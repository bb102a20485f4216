"""Train K gated RNNs of one config at once (the seeds of a sweep point) in one batched computation.

API for sweeps and studies (``rnnattn.sweeps``, ``analysis/*.py``)::

    from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig
    from rnnattn.training import TrainConfig, train_batched

    seeds = [0, 1, 2, 3]
    models = []
    for s in seeds:                       # one init per seed, as `rnnattn train --seed s` does
        torch.manual_seed(s)
        models.append(GatedLinearRNN(GatedLinearRNNConfig(4, 32, 32, 4)))
    results = train_batched(task, models, TrainConfig(steps=50_000, ...), seeds=seeds, out_dir=None)
    results[k].final_val_loss            # one TrainResult per model; models[k] holds its trained weights

``train_batched(task, models, config, seeds)[k]`` equals ``train(task, models[k], config.replace(seed=seeds[k]))``
up to float rounding (tested in ``tests/training/test_train.py``): same data stream per seed, same AdamW and
schedule. Differences: no polishing phase, no ``target_loss``, no resume and no periodic checkpoints (sweeps re-run
a failed point); validation (when ``config.val_every > 0``) only once at the end; ``history`` rows carry only
``step``, ``train_loss`` and ``wall_s``. Requirements: diagonal :class:`GatedLinearRNN` models sharing one config
and a task with loss on every step or on the last step only (both paper tasks).

Every kernel of :class:`~rnnattn.training.fast.StackedGatedRNN` runs once for all K models (batched matmuls over a
leading model axis; one flat AdamW over ``[K, P]``), which amortises the per-op overhead of small models on CPU. Each
model gets its own data stream (data seed ``seeds[k]``) and its own loss; the models never interact. Measured
against one-by-one training in ``benchmarks/bench_training.py`` (results/training.md, case C).

Final weights are written back into ``models``; with ``out_dir`` each is saved as ``out_dir/model_{k}.safetensors``
with the same metadata schema as :func:`rnnattn.training.train`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from rnnattn.models.gated_rnn import GatedLinearRNN
from rnnattn.tasks.base import Batch, Task
from rnnattn.training import fast
from rnnattn.training.budget import check_training_memory
from rnnattn.training.config import TrainConfig, TrainingDiverged, TrainResult
from rnnattn.training.data import sample_steps
from rnnattn.training.engines import _chunked_eval, _last_only
from rnnattn.training.loop import resolve_device, save_run_checkpoint
from rnnattn.training.optim import cosine_lr, flat_multipliers


def _block(task: Task, net, config: TrainConfig, seeds: list[int], k0: int, last: bool):
    """Data of steps ``[k0, k0 + data_block)`` for every model: ``z [S, K, T*B, d+1]``, targets ``[S, K, R, ·]``."""
    K, B, T = len(seeds), config.batch_size, task.seq_len
    steps = range(k0, min(k0 + config.data_block, config.steps))
    like = dict(device=net.device, dtype=net.dtype)
    z = torch.empty(len(steps), K, T * B, net.d_in, **like)
    t = torch.empty(len(steps), K, B if last else T * B, net.d_out, **like)
    for k, s in enumerate(seeds):  # each model's block, prepared straight into its column (treats S as models)
        b = sample_steps(task, B, s, steps)  # [S, B, T, ·]
        net.prepare(b.x, b.y, last, out=(z[:, k], t[:, k]))
    return z, t


def _adam_phase(task: Task, net, opt, config: TrainConfig, seeds: list[int], last: bool):
    """All AdamW steps; returns (last logged train loss per model, history per model)."""
    K, T = len(seeds), task.seq_len
    t0 = time.perf_counter()
    acc = torch.zeros(K, dtype=torch.float64)
    n_acc = 0
    history: list[list[dict[str, Any]]] = [[] for _ in range(K)]
    train_loss: list[float | None] = [None] * K
    for s in range(config.steps):
        if s % config.data_block == 0:
            zb, yb = _block(task, net, config, seeds, s, last)
        i = s % config.data_block
        losses = net.loss_and_grad(zb[i], yb[i], T, last)
        opt.step(cosine_lr(s, config))
        acc += losses.double().cpu()
        n_acc += 1
        if (s + 1) % config.log_every == 0 or s + 1 == config.steps:
            train_loss = (acc / n_acc).tolist()
            acc.zero_()
            n_acc = 0
            if not all(v == v and abs(v) != float("inf") for v in train_loss):
                raise TrainingDiverged(f"train_batched: a model diverged at step {s + 1}; lower the learning rate")
            for k in range(K):
                history[k].append({"step": s + 1, "train_loss": train_loss[k], "wall_s": time.perf_counter() - t0})
    return train_loss, history


def _save(task: Task, model, path: Path, config: TrainConfig, seed: int, res: TrainResult, K: int, device) -> Path:
    training = {
        "config": config.replace(seed=seed).to_dict(),
        "step": config.steps,
        "adam_steps": config.steps,
        "polish_rounds_done": 0,
        "final_train_loss": res.final_train_loss,
        "final_val_loss": res.final_val_loss,
        "reference_val_loss": res.reference_val_loss,
        "val_samples": config.val_samples,
        "wall_time": res.wall_time,
        "device": str(device),
        "torch_version": torch.__version__,
        "protocol": config.protocol,
        "engine": f"batched[{K}]",
        "completed": True,
        "reached_target": False,
        "target_step": None,
        "target_time": None,
    }
    return save_run_checkpoint(model, path, task, training=training)


def train_batched(
    task: Task,
    models: list[GatedLinearRNN],
    config: TrainConfig,
    seeds: list[int] | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
) -> list[TrainResult]:
    """Train ``models`` (diagonal GatedLinearRNNs sharing one config) simultaneously; returns one result each.

    Args:
        task: the task (loss on every step, or on the last step only).
        models: K models; their weights are updated in place.
        config: shared :class:`TrainConfig` (``polish_*`` and ``target_loss`` are ignored).
        seeds: data seed per model (default ``config.seed + k``).
        out_dir: where to save ``model_{k}.safetensors`` (refuses to overwrite without ``force``).
    """
    K = len(models)
    seeds = list(seeds) if seeds is not None else [config.seed + k for k in range(K)]
    if len(seeds) != K:
        raise ValueError(f"train_batched: {K} models but {len(seeds)} seeds")
    last = _last_only(task)
    if task.loss_positions is not None and not last:
        raise ValueError("train_batched: supports loss on every step or on the last step only")
    check_training_memory(task, models[0], config, K)
    device, dtype = resolve_device(config.device), getattr(torch, config.dtype)
    paths = [Path(out_dir) / f"model_{k}.safetensors" for k in range(K)] if out_dir is not None else []
    clash = [p for p in paths if p.exists()]
    if clash and not force:
        raise FileExistsError(f"{clash[0]} exists (pass force=True / --force to overwrite)")
    net = fast.StackedGatedRNN(models, device=device, dtype=dtype)
    mult, wd, l1 = flat_multipliers(net.slices(), net.P, {"nu"}, config)
    opt = fast.FlatAdamW(net.flat, net.grad, mult.to(device), wd.to(device), tuple(config.betas), config.eps, l1)
    t0 = time.perf_counter()
    train_loss, history = _adam_phase(task, net, opt, config, seeds, last)
    wall = time.perf_counter() - t0
    net.write_back(models)
    val_loss: list[float | None] = [None] * K
    ref = None
    if config.val_every:
        val = task.validation_set(config.val_samples, config.val_seed)
        ref = task.reference_loss(val)
        z, y = net.prepare(val.x[None].expand(K, *val.x.shape), val.y[None].expand(K, *val.y.shape), last)
        val_loss = _chunked_eval(net, z, y, task.seq_len, last, config.val_samples)
    results = []
    for k, m in enumerate(models):
        res = TrainResult(
            steps=config.steps,
            final_train_loss=train_loss[k],
            final_val_loss=val_loss[k],
            reference_val_loss=ref,
            wall_time=wall,
            history=history[k],
        )
        if paths:
            res.checkpoint = _save(task, m, paths[k], config, seeds[k], res, K, device)
        results.append(res)
    return results


__all__ = ["train_batched", "Batch"]
