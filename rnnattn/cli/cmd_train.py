"""``rnnattn train teacher-student|icl-regression``: train a gated RNN student on one of the paper's tasks.

Examples:
    rnnattn train teacher-student --out runs/ts --protocol fast
    rnnattn train icl-regression --out runs/icl --steps 30000 --hidden 32 --gating 32
    rnnattn train teacher-student --out runs/ts --resume          # continue exactly where it stopped
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# rnnattn.training.protocols.PROTOCOLS, repeated so that `--help` does not import torch (a test keeps them equal)
PROTOCOLS = ("paper", "fast", "sparse")

HELP = "train a gated RNN on teacher-student or in-context regression (resumable, Ctrl-C saves)"

# option -> TrainConfig field; None defaults mean "take the protocol's value".
_TRAIN_OPTS = {
    "steps": ("steps", int, "AdamW steps (the cosine schedule spans them)"),
    "batch_size": ("batch_size", int, "sequences per step"),
    "lr": ("lr", float, "base learning rate"),
    "lr_min": ("lr_min", float, "learning-rate floor at the end of the cosine"),
    "warmup": ("warmup_steps", int, "linear warm-up steps"),
    "weight_decay": ("weight_decay", float, "AdamW decay of the non-recurrence parameters"),
    "l1": ("l1", float, "L1 penalty on the non-recurrence parameters during AdamW (--protocol sparse: 1e-3)"),
    "nu_lr_mult": ("recurrence_lr_mult", float, "learning-rate multiplier of the recurrence (nu)"),
    "nu_weight_decay": ("recurrence_weight_decay", float, "weight decay of the recurrence"),
    "seed": ("seed", int, "data seed (also seeds the student's init)"),
    "dtype": ("dtype", str, "float32 or float64"),
    "engine": ("engine", str, "auto, fast or autograd"),
    "log_every": ("log_every", int, "steps between log rows"),
    "val_every": ("val_every", int, "steps between validations (0: only at the end)"),
    "val_samples": ("val_samples", int, "validation sequences (>= 1e5 for ICL)"),
    "checkpoint_every": ("checkpoint_every", int, "steps between checkpoints (0: only at the end)"),
    "polish_rounds": ("polish_rounds", int, "polishing rounds after AdamW (see --polish-method)"),
    "polish_method": ("polish_method", str, "lbfgs, or lm (float64 Levenberg-Marquardt; --protocol fast uses it)"),
    "polish_iters": ("polish_iters", int, "polishing iterations per round"),
    "polish_batch": ("polish_batch", int, "sequences in each round's fixed batch"),
    "freeze_zeros": ("polish_freeze_zeros", float, "LM polishing keeps entries below this x their tensor's max "
                     "at 0 (--protocol sparse: 1e-3)"),
    "target_loss": ("target_loss", float, "stop when the validation loss reaches this"),
}
_TASK_OPTS = {
    "teacher-student": {
        "d": (int, 4, "token size"),
        "seq_len": (int, 32, "sequence length"),
        "teacher_std": (float, None, "teacher weight std (default 1/sqrt(d))"),
        "input_dist": (str, "normal", "normal or uniform"),
        "input_std": (float, 1.0, "input std"),
        "teacher_seed": (int, 0, "seed of the teacher's weights"),
    },
    "icl-regression": {
        "d_x": (int, 3, "input size"),
        "d_y": (int, 3, "output size"),
        "n_context": (int, 12, "context pairs"),
        "w_var": (float, 1 / 3, "variance of W* entries (training)"),
        "val_w_var": (float, 2 / 3, "variance of W* entries (validation)"),
        "x_dist": (str, "uniform", "uniform or normal"),
        "x_var": (float, 1.0, "variance of x entries"),
    },
}


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="task", metavar="TASK", parser_class=type(p), required=True)
    for task, opts in _TASK_OPTS.items():
        sp = sub.add_parser(
            task, help=f"train on {task}", description=f"Train a gated RNN student on {task}."
        )
        sp.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
        )
        sp.add_argument("--out", required=True, type=Path, help="run directory (checkpoint, state, log)")
        sp.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
        sp.add_argument("--force", action="store_true", help="overwrite another run's files in --out")
        sp.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default auto)")
        sp.add_argument("--protocol", choices=PROTOCOLS, default=None,
                        help="defaults: the paper's protocol (App. B.1, the default), the fast one, or sparse (ours: "
                        "fast + L1, teacher-student)")
        sp.add_argument("--hidden", type=int, default=None, help="recurrent neurons N")
        sp.add_argument("--gating", type=int, default=None, help="output-gating rows M")
        sp.add_argument(
            "--recurrence", choices=("diagonal", "dense"), default=None, help="recurrence of the student"
        )
        sp.add_argument("--no-progress", action="store_true", help="no progress bar")
        for name, (_, typ, hlp) in _TRAIN_OPTS.items():
            sp.add_argument(_opt(name), type=typ, default=None, help=hlp)
        for name, (typ, _, hlp) in opts.items():
            sp.add_argument(_opt(name), type=typ, default=None, help=hlp)


def _explicit(args: argparse.Namespace, names) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def run(args: argparse.Namespace) -> int:
    import torch

    from rnnattn.checkpoint import load_checkpoint
    from rnnattn.cli.main import UsageError
    from rnnattn.models import GatedLinearRNN, GatedLinearRNNConfig
    from rnnattn.safeio import printable
    from rnnattn.tasks import InContextRegressionConfig, TeacherStudentConfig, task_from_dict
    from rnnattn.training import TrainConfig, train
    from rnnattn.training.budget import build_within_budget
    from rnnattn.training.protocols import protocol_defaults
    from rnnattn.training.state import RunDir

    torch.set_num_threads(1) if torch.get_num_threads() > 1 and not torch.cuda.is_available() else None
    task_name = args.task.replace("-", "_")
    task_opts = _TASK_OPTS[args.task]
    device = args.device or "auto"
    if args.resume:
        changed = _explicit(args, [*_TRAIN_OPTS, *task_opts, "protocol", "hidden", "gating", "recurrence"])
        if changed:
            raise UsageError(f"--resume continues the saved run; drop {', '.join(_opt(k) for k in changed)}")
        _, info = RunDir(args.out).load_state()  # validated whole: task is an object with a string name, ...
        if info["task"]["name"] != task_name:
            raise UsageError(
                f"{printable(args.out)} holds a {printable(repr(info['task']['name']), 80)} run, not {task_name}"
            )
        ck = load_checkpoint(RunDir(args.out).model)
        task = task_from_dict(info["task"], teacher=ck.extras.get("teacher"))
        config = TrainConfig.from_dict({**info["config"], "device": device})
        model = ck.model
    else:
        train_kw, model_kw = protocol_defaults(args.protocol or "paper", task_name)
        for name, (field, _, _) in _TRAIN_OPTS.items():
            if getattr(args, name) is not None:
                train_kw[field] = getattr(args, name)
        if args.protocol is None:
            train_kw["protocol"] = "custom" if _explicit(args, _TRAIN_OPTS) else "paper"
        train_kw["device"] = device
        config = TrainConfig(**train_kw)
        tcfg = {k: v for k, v in _explicit(args, task_opts).items()}
        if task_name == "teacher_student":
            from rnnattn.tasks import TeacherStudent

            task = TeacherStudent(TeacherStudentConfig(**tcfg))
        else:
            from rnnattn.tasks import InContextRegression

            task = InContextRegression(InContextRegressionConfig(**tcfg))
        n = args.hidden or model_kw["n_hidden"]
        m = args.gating or model_kw["n_gating"]
        mcfg = GatedLinearRNNConfig(task.d_input, n, m, task.d_output, recurrence=args.recurrence or "diagonal")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_within_budget(lambda: GatedLinearRNN(mcfg), task, config)
    result = train(
        task,
        model,
        config,
        out_dir=args.out,
        resume=args.resume,
        force=args.force,
        progress=not args.no_progress,
    )
    print(json.dumps(result.summary(), default=str))
    return 130 if result.interrupted else 0
