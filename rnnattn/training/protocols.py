"""Named training protocols: the paper's (App. B.1) and a faster identification protocol for teacher-student.

``protocol_defaults(name, task_name)`` returns ``(train_kwargs, model_kwargs)`` — TrainConfig fields and student
sizes — that the CLI uses as defaults (explicit options override them).

* ``paper``: AdamW, cosine 1e-3 -> 1e-6, weight decay 1e-4 except on ``nu``, batch 64; 781,250 steps with
  N = M = 100 for teacher-student, 300,000 steps with N = M = 80 for ICL.
* ``fast`` (teacher-student identification sooner; measured in ``benchmarks/bench_identification.py``):
  - a smaller over-parametrised student, N = M = 32 (still > 2x the 14 hidden / 10 gating units of the minimal
    construction; §3.2, Fig. 3A: ~2x over-parametrisation is needed);
  - base learning rate 2e-3 and a 10x learning rate on ``nu`` (our measurement: lambda becomes cleanly 0/1 sooner);
  - a 50k-step AdamW cosine (16x shorter than the paper's 781k);
  - then up to 16 rounds of 5 Levenberg-Marquardt iterations in float64 (:mod:`rnnattn.training.lm`), all on
    one fixed batch of 128 sequences (validated after each round), stopping as soon as the validation loss is
    <= 1e-6 (``target_loss``; the CLI's ``--target-loss`` overrides it). The task is realisable and noiseless (zero
    residual), so the Gauss-Newton model is accurate near the optimum and LM polishes where Adam's noisy steps
    stall at ~2e-5; strong-Wolfe L-BFGS (float32 or float64) was measured to barely move that plateau (-25% in
    1000 iterations), while LM takes it below 1e-6 in ~25 iterations.
  For ICL the same AdamW changes apply without polishing (its optimum has non-zero loss, so a fixed batch would be
  over-fitted).
* ``sparse`` (ours, teacher-student only): the ``fast`` protocol plus an L1 penalty ``1e-3 * sum |p|`` on every
  parameter but ``nu`` during the AdamW phase, then LM polishing that keeps the zeros it made
  (``polish_freeze_zeros = 1e-3``), up to 32 rounds, to a loss of 1e-7 (Table 1's scale). Why: a trained student
  can hold the construction mixed within its λ groups (:mod:`rnnattn.analysis.effective`), and nothing in the
  paper's loss or its L2 decay prefers the unmixed basis (both are invariant under orthogonal mixing); L1 is not,
  and favours the sparse, axis-aligned solution, so :func:`rnnattn.analysis.prune` finds the zero rows of Fig. 2A.
  Measured in ``reports/table1`` (the shipped ``teacher_student_d4_sparse``) beside the paper's protocol.
"""

from __future__ import annotations

from typing import Any

PROTOCOLS = ("paper", "fast", "sparse")
SPARSE_L1 = 1e-3


def protocol_defaults(name: str, task_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {PROTOCOLS}")
    if task_name not in ("teacher_student", "icl_regression"):
        raise ValueError(f"unknown task {task_name!r}")
    ts = task_name == "teacher_student"
    if name == "sparse":
        if not ts:
            raise ValueError("the sparse protocol is defined for teacher-student only")
        train, model = protocol_defaults("fast", task_name)
        train.update(l1=SPARSE_L1, polish_freeze_zeros=1e-3, polish_rounds=32, target_loss=1e-7, protocol="sparse")
        return train, model
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
            "polish_rounds": 16,
            "polish_iters": 5,
            "polish_batch": 128,
            "polish_method": "lm",
            "val_samples": 2048,
            "val_every": 2500,
            "target_loss": 1e-6,
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
