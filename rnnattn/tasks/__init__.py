"""Tasks of Zucchet et al.: teacher-student (LSA teacher) and in-context linear regression, plus one-step GD.

``task_from_dict(d)`` rebuilds a task from the ``metadata["task"]`` of a checkpoint (the teacher, if saved as an
extra, can be passed in).
"""

from __future__ import annotations

from typing import Any

from rnnattn.tasks.base import Batch, Task, masked_half_mse
from rnnattn.tasks.gd import gd_loss, one_step_gd_predict, optimal_gd_learning_rate, optimal_gd_loss
from rnnattn.tasks.icl_regression import InContextRegression, InContextRegressionConfig
from rnnattn.tasks.teacher_student import TeacherStudent, TeacherStudentConfig, make_teacher

TASKS: dict[str, tuple[type[Task], type]] = {
    "teacher_student": (TeacherStudent, TeacherStudentConfig),
    "icl_regression": (InContextRegression, InContextRegressionConfig),
}


def task_from_dict(data: dict[str, Any], teacher=None) -> Task:
    """Rebuild a task from ``task.to_dict()`` (derived keys such as ``eta_star`` are ignored)."""
    if not isinstance(data, dict) or data.get("name") not in TASKS:
        raise ValueError(
            f"unknown task {data.get('name') if isinstance(data, dict) else data!r}; known: {sorted(TASKS)}"
        )
    cls, cfg_cls = TASKS[data["name"]]
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    cfg = cfg_cls.from_dict({k: v for k, v in data.items() if k in fields})
    return cls(cfg, teacher=teacher) if cls is TeacherStudent else cls(cfg)


__all__ = [
    "Batch",
    "Task",
    "masked_half_mse",
    "TeacherStudent",
    "TeacherStudentConfig",
    "make_teacher",
    "InContextRegression",
    "InContextRegressionConfig",
    "optimal_gd_learning_rate",
    "optimal_gd_loss",
    "gd_loss",
    "one_step_gd_predict",
    "task_from_dict",
    "TASKS",
]
