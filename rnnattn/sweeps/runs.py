"""Run functions for sweeps: train one model of the zoo on one of the paper's tasks, return its losses.

``train_run(params) -> dict`` is what the reproduction studies (``analysis/fig3.py``, ``analysis/fig4.py``)
sweep over; name it in a spec as ``"rnnattn.sweeps.runs:train_run"``. Everything the run needs is in
``params`` (plain JSON), so it runs identically in this process, in a local worker or on a Dask worker:

* ``task``: ``"teacher_student"`` or ``"icl_regression"``; ``task_options``: that task's config fields (e.g.
  ``{"d": 6}``).
* ``arch``: one of :data:`ARCHITECTURES`; ``size``: the hidden width (gated RNN: hidden neurons, and gating
  rows unless ``n_gating`` is given; LSTM/GRU/LRU: the model width = state size, as in the paper §3.3);
  ``n_layers``.
* ``train``: :class:`rnnattn.training.TrainConfig` fields (``steps``, ``lr``, ...); ``protocol``: start from
  the named protocol's defaults (``"paper"``/``"fast"``), which ``train`` then overrides.
* ``seed``: seeds both the model initialisation and the data.
* ``eval_samples``: size of the final evaluation on fresh training-distribution samples (and on the validation
  distribution), with the task's reference (one-step GD for ICL, the teacher for teacher-student) on the same
  samples.
* ``plateau``: ``{"patience": P, "min_rel": r, "min_steps": s}`` stops a single run once the validation loss
  (needs ``train.val_every``) has not improved by a relative ``r`` (default 0.01) for ``P`` validations in a row,
  never before step ``s`` (default 0; models that sit on an early plateau before they learn): "trained until the
  loss stops improving", within the ``train.steps`` budget (:func:`plateau_stopper`).
* ``save_dir``: if given, the trained model is saved there as ``<hash of params>.safetensors``, and single runs
  keep the trainer's resume state in ``<hash>.run/``, so an interrupted long run continues where it stopped (on
  a remote cluster this must be a filesystem the workers share).

Grid axes may use dotted names (``"train.steps"``, ``"task_options.d"``) to reach nested fields.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from rnnattn.models import (
    GatedLinearRNN,
    GatedLinearRNNConfig,
    Model,
    SequenceModel,
    SequenceModelConfig,
)
from rnnattn.sweeps.registry import run_function
from rnnattn.sweeps.spec import canonical_json
from rnnattn.training.budget import build_within_budget, check_before_building

#: architecture name -> (description, layer spec for SequenceModel or None for the Eq. 2 model)
ARCHITECTURES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "gated_diagonal": ("gated RNN, Eq. 2, diagonal recurrence (construction baseline)", None),
    "gated_dense": ("gated RNN, Eq. 2, dense recurrence", None),
    "lstm": ("LSTM (torch default)", {"class": "LSTM"}),
    "gru": ("GRU (torch default)", {"class": "GRU"}),
    "lru_out": ("LRU Out (vanilla LRU, output GLU)", {"class": "LRU", "variant": "out"}),
    "lru_in_out": ("LRU In+Out (input and output GLU)", {"class": "LRU", "variant": "in_out"}),
    "lru_in_skip": (
        "LRU In+Skip (input GLU, output gate reads the layer input)",
        {"class": "LRU", "variant": "in_skip"},
    ),
}


def unflatten(params: dict[str, Any]) -> dict[str, Any]:
    """Fold dotted keys into nested mappings: ``{"train.steps": 5, "train": {"lr": 1}}`` ->
    ``{"train": {"lr": 1, "steps": 5}}`` (a dotted key overrides the nested one)."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if "." not in k:
            out[k] = dict(v) if isinstance(v, dict) else v
    for k, v in params.items():
        if "." in k:
            head, rest = k.split(".", 1)
            sub = dict(out.get(head) or {})
            sub.update(unflatten({rest: v}))
            out[head] = sub
    return out


def build_model(
    arch: str, d_input: int, d_output: int, size: int, n_layers: int = 1, n_gating: int | None = None
) -> Model:
    """One model of the Fig. 4 comparison.

    ``gated_*``: the Eq. 2 model (``n_layers`` stacked Eq. 2 layers through a SequenceModel when > 1) with
    ``size`` hidden neurons and ``n_gating`` (default ``size``) output-gating rows. Others: linear embedding
    -> ``n_layers`` recurrent layers of width ``size`` -> linear readout (no norm, dropout or skips; LRU state
    = width).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    if not isinstance(size, int) or size < 1 or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"size and n_layers must be positive integers, got size={size!r}, n_layers={n_layers!r}")
    layer = ARCHITECTURES[arch][1]
    if layer is None:
        recurrence = arch.split("_", 1)[1]
        gating = size if n_gating is None else n_gating
        if n_layers == 1:
            return GatedLinearRNN(
                GatedLinearRNNConfig(
                    d_input=d_input, n_hidden=size, n_gating=gating, d_output=d_output, recurrence=recurrence
                )
            )
        layers = tuple(
            {"class": "GatedLinearRNN", "n_hidden": size, "n_gating": gating, "recurrence": recurrence}
            for _ in range(n_layers)
        )
        return SequenceModel(SequenceModelConfig(d_input=d_input, d_output=d_output, d_model=size, layers=layers))
    spec = dict(layer)
    if spec["class"] == "LRU":
        spec["d_state"] = size
    return SequenceModel(
        SequenceModelConfig(
            d_input=d_input,
            d_output=d_output,
            d_model=size,
            layers=tuple(dict(spec) for _ in range(n_layers)),
        )
    )


def make_task(name: str, options: dict[str, Any] | None = None):
    """The task ``name`` with config fields ``options``."""
    from rnnattn.tasks import TASKS

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    cls, cfg_cls = TASKS[name]
    return cls(cfg_cls.from_dict(dict(options or {})))


def params_digest(params: dict[str, Any]) -> str:
    """File name stem of a run's saved model and resume folder: 16 hex of the sha1 of its canonical JSON."""
    return hashlib.sha1(canonical_json(params).encode()).hexdigest()[:16]


@torch.no_grad()
def evaluate(model: Model, task, n: int, seed: int, validation: bool = False, chunk: int = 8192) -> tuple[float, float]:
    """``(model loss, reference loss)`` on ``n`` fresh sequences drawn with ``seed`` (same samples for
    both)."""
    g = torch.Generator().manual_seed(int(seed))
    dtype = next(model.parameters()).dtype
    tot = ref = 0.0
    done = 0
    while done < n:
        b = min(chunk, n - done)
        batch = task.sample(b, g, validation=True) if validation else task.sample(b, g)
        pred = model(batch.x.to(dtype))
        tot += float(task.loss(pred.float(), batch.y, batch.mask)) * b
        ref += float(task.reference_loss(batch)) * b
        done += b
    return tot / n, ref / n


def plateau_stopper(patience: int, min_rel: float = 0.01, min_steps: int = 0):
    """A :func:`rnnattn.training.train` callback: True (stop) once ``patience`` validations in a row have not
    improved the best validation loss by a relative ``min_rel``, from step ``min_steps`` on."""
    state = {"best": math.inf, "since": 0}

    def stop(row: dict[str, Any]) -> bool:
        v = row.get("val_loss")
        if v is None:
            return False
        if v < state["best"] * (1.0 - min_rel):
            state.update(best=v, since=0)
        else:
            state["since"] += 1
        return state["since"] >= patience and row.get("step", 0) >= min_steps

    return stop


def loss_curve(history: list[dict[str, Any]], points: int = 60) -> list[list[float | None]]:
    """``[step, train_loss, val_loss]`` rows of a training history, thinned to about ``points`` rows (the last
    row always kept): what a study needs to show that a run converged."""
    rows = [[r["step"], r.get("train_loss"), r.get("val_loss")] for r in history]
    stride = max(1, len(rows) // points)
    thin = rows[::stride]
    if rows and thin[-1] is not rows[-1]:
        thin.append(rows[-1])
    return thin


def _prepare(params: dict[str, Any]):
    from rnnattn.training import TrainConfig
    from rnnattn.training.protocols import protocol_defaults

    p = unflatten(dict(params))
    seed = int(p.get("seed", 0))
    task = make_task(p.get("task", "teacher_student"), p.get("task_options"))
    train_kwargs: dict[str, Any] = {}
    if p.get("protocol"):
        train_kwargs.update(protocol_defaults(p["protocol"], task.name)[0])
    train_kwargs["val_every"] = 0  # the final evaluation below replaces periodic validation (unless asked for)
    train_kwargs.update(p.get("train") or {})
    train_kwargs["seed"] = seed
    return p, seed, task, TrainConfig.from_dict(train_kwargs)


def _metrics(model: Model, task, n_eval: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n_parameters": model.n_parameters()}
    # float32 on CPU: 4x cheaper than float64 for 1e5 sequences, and its rounding (~1e-7 relative) is far below the
    # losses compared here (the identification analyses themselves run in float64, in rnnattn.analysis).
    m = model.to(device="cpu", dtype=torch.float32).eval()
    out["train_loss"], out["reference_train_loss"] = evaluate(m, task, n_eval, seed=10_000 + seed)
    out["gap"] = out["train_loss"] - out["reference_train_loss"]
    if task.name == "icl_regression":
        out["val_loss"], out["reference_val_loss"] = evaluate(m, task, n_eval, seed=20_000 + seed, validation=True)
    else:
        out["val_loss"], out["reference_val_loss"] = out["train_loss"], out["reference_train_loss"]
    if isinstance(m, GatedLinearRNN) and m.config.recurrence == "diagonal":
        lam = m.lam.detach()
        out["n_memory"] = int((lam > 0.99).sum())
        out["n_forget"] = int((lam < 0.01).sum())
    return out


def _save(model: Model, task, params: dict[str, Any], p: dict[str, Any], summary: dict[str, Any]) -> str:
    from rnnattn.training.loop import save_run_checkpoint

    path = Path(p["save_dir"]) / f"{params_digest(params)}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_run_checkpoint(model.float(), path, task, sweep_params=json.loads(json.dumps(params)), train_result=summary)
    return str(path)


@run_function(output_paths=("save_dir",))
def train_run(params: dict[str, Any]) -> dict[str, Any]:
    """Train one model per ``params`` (see the module docstring); returns its losses and size.

    With ``replicas: K > 1`` (diagonal gated RNN only), trains the K models with seeds ``seed, ..., seed + K -
    1`` at once through :func:`rnnattn.training.train_batched` (one batched computation: faster than K runs on
    CPU) and returns lists, one entry per replica, plus ``seeds``.

    Returns:
        ``train_loss`` / ``reference_train_loss``: final loss and the reference's on ``eval_samples`` fresh
        training-distribution sequences; ``gap`` = their difference (Fig. 3B's "loss - L*"); ``val_loss`` /
        ``reference_val_loss`` the same on the validation distribution (ICL: ``W*`` variance 2/3);
        ``log_train_loss``: the trainer's last logged training loss; ``n_parameters``, ``steps``,
        ``wall_time``, ``cpu_time`` (CPU seconds of this process; a batched run's is split evenly over its
        replicas), ``loss_curve`` (:func:`loss_curve`), ``stopped_early`` (single runs: a ``plateau`` stop);
        for the Eq. 2 model ``n_memory`` / ``n_forget`` (lambda > 0.99 / < 0.01);
        ``checkpoint`` if saved.
    """
    params = json.loads(json.dumps(dict(params)))  # plain lists/dicts: what the results file records
    c0 = time.process_time()
    p, seed, task, config = _prepare(params)
    if int(p.get("replicas", 1)) > 1:
        return _train_replicas(params, p, seed, task, config, c0)
    return _train_single(params, p, seed, task, config, c0)


def _train_replicas(params: dict[str, Any], p: dict[str, Any], seed: int, task, config, c0: float) -> dict[str, Any]:
    """:func:`train_run` with ``replicas: K > 1``: K diagonal gated RNNs (seeds ``seed .. seed + K - 1``) trained
    in one batched computation; returns one list per result key (one entry per replica) plus ``seeds``.
    ``c0``: the process time at the start of the run (its CPU time is split evenly over the replicas)."""
    from rnnattn.training import train_batched

    arch, size, n_layers = p.get("arch", "gated_diagonal"), int(p["size"]), int(p.get("n_layers", 1))
    replicas = int(p["replicas"])
    n_eval = int(p.get("eval_samples", 20_000))
    if arch != "gated_diagonal" or n_layers != 1:
        raise ValueError("replicas > 1 (batched training) needs arch='gated_diagonal' with one layer")
    seeds = [seed + r for r in range(replicas)]

    def build():
        return build_model(arch, task.d_input, task.d_output, size, 1, p.get("n_gating"))

    check_before_building(build, task, config, replicas)  # once for all replicas (they share one config)
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(build())
    t0 = time.perf_counter()
    results = train_batched(task, models, config.replace(val_every=0), seeds=seeds)
    wall = time.perf_counter() - t0
    rows = []
    for s, m, r in zip(seeds, models, results, strict=True):
        row = {
            "steps": r.steps,
            "wall_time": wall,
            "log_train_loss": r.final_train_loss,
            **_metrics(m, task, n_eval, s),
        }
        if p.get("save_dir"):
            row["checkpoint"] = _save(m, task, {**params, "seed": s, "replicas": 1}, p, r.summary())
        row["loss_curve"] = loss_curve(r.history)
        rows.append(row)
    cpu = (time.process_time() - c0) / replicas
    return {"seeds": seeds, **{k: [row.get(k) for row in rows] for k in rows[0]}, "cpu_time": [cpu] * replicas}


def _train_single(params: dict[str, Any], p: dict[str, Any], seed: int, task, config, c0: float) -> dict[str, Any]:
    """:func:`train_run` for one model: trained through :func:`rnnattn.training.train` (resumable when
    ``save_dir`` is given; stopped early by ``plateau`` if asked). ``c0``: the process time at the start of
    the run."""
    from rnnattn.training import train

    arch, size, n_layers = p.get("arch", "gated_diagonal"), int(p["size"]), int(p.get("n_layers", 1))
    n_eval = int(p.get("eval_samples", 20_000))
    torch.manual_seed(seed)
    model = build_within_budget(
        lambda: build_model(arch, task.d_input, task.d_output, size, n_layers, p.get("n_gating")), task, config
    )
    # With a save_dir, the trainer keeps its resume state there (every checkpoint_every steps): a long run that
    # is killed (or a cluster worker that dies) continues from its last state when the sweep is resumed.
    run_dir = Path(p["save_dir"]) / f"{params_digest(params)}.run" if p.get("save_dir") else None
    resume = run_dir is not None and (run_dir / "state.safetensors").exists()
    plateau = p.get("plateau")
    callbacks = []
    if plateau:
        min_rel, min_steps = float(plateau.get("min_rel", 0.01)), int(plateau.get("min_steps", 0))
        callbacks.append(plateau_stopper(int(plateau["patience"]), min_rel, min_steps))
    t0 = time.perf_counter()
    result = train(
        task,
        model,
        config,
        out_dir=run_dir,
        resume=resume,
        force=not resume,
        progress=bool(p.get("progress", False)),
        handle_sigint=False,
        callbacks=callbacks,
    )
    out: dict[str, Any] = {
        "steps": result.steps,
        "wall_time": time.perf_counter() - t0,
        "log_train_loss": result.final_train_loss,
        **_metrics(model, task, n_eval, seed),
        "loss_curve": loss_curve(result.history),
        "stopped_early": bool(plateau) and not result.interrupted and result.steps < config.steps,
    }
    if p.get("save_dir"):
        out["checkpoint"] = _save(model, task, params, p, result.summary())
    out["cpu_time"] = time.process_time() - c0
    return out
