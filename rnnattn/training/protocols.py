"""Named training protocols: the paper's (App. B.1) and a faster identification protocol for teacher-student.

``protocol_defaults(name, task_name)`` returns ``(train_kwargs, model_kwargs)`` — TrainConfig fields and student
sizes — that the CLI uses as defaults (explicit options override them).

* ``paper``: AdamW, cosine 1e-3 -> 1e-6, weight decay 1e-4 except on ``nu``, batch 64; 781,250 steps with
  N = M = 100 for teacher-student, 300,000 steps with N = M = 80 for ICL.
* ``fast`` (teacher-student identification sooner; measured in ``benchmarks/bench_identification.py``):
  - a smaller over-parametrised student, N = M = 32 (still > 2x the 14 hidden / 10 gating units of the minimal
    construction, spec §2.3; spec §1.3: ~2x over-parametrisation is needed);
  - base learning rate 2e-3 and a 10x learning rate on ``nu`` (spec §4: lambda becomes cleanly 0/1 sooner);
  - a 50k-step AdamW cosine (16x shorter than the paper's 781k);
  - then 10 rounds of 100 strong-Wolfe L-BFGS iterations, each on a fixed batch of 256 sequences. The task is
    realisable and noiseless, so a fixed large batch has the same minimiser as the population loss and a
    quasi-Newton method can polish where Adam's noisy steps stall.
  For ICL the same AdamW changes apply without polishing (its optimum has non-zero loss, so a fixed batch would be
  over-fitted).
"""

from __future__ import annotations

from typing import Any

PROTOCOLS = ("paper", "fast")


def protocol_defaults(name: str, task_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {PROTOCOLS}")
    if task_name not in ("teacher_student", "icl_regression"):
        raise ValueError(f"unknown task {task_name!r}")
    ts = task_name == "teacher_student"
    if name == "paper":
        train = {
            "steps": 781_250 if ts else 300_000,
            "lr": 1e-3,
            "lr_min": 1e-6,
            "weight_decay": 1e-4,
            "recurrence_lr_mult": 1.0,
            "batch_size": 64,
            "protocol": "paper",
        }
        model = {"n_hidden": 100 if ts else 80, "n_gating": 100 if ts else 80}
        if not ts:
            train.update(val_samples=100_000, val_every=10_000)
        return train, model
    if ts:
        train = {
            "steps": 50_000,
            "lr": 2e-3,
            "lr_min": 1e-6,
            "weight_decay": 1e-4,
            "recurrence_lr_mult": 10.0,
            "batch_size": 64,
            "polish_rounds": 10,
            "polish_iters": 100,
            "polish_batch": 256,
            "val_samples": 2048,
            "val_every": 2500,
            "protocol": "fast",
        }
        return train, {"n_hidden": 32, "n_gating": 32}
    train = {
        "steps": 100_000,
        "lr": 3e-3,
        "lr_min": 1e-6,
        "weight_decay": 1e-4,
        "recurrence_lr_mult": 10.0,
        "batch_size": 64,
        "val_samples": 100_000,
        "val_every": 10_000,
        "protocol": "fast",
    }
    return train, {"n_hidden": 80, "n_gating": 80}
