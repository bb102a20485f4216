"""Sweeps that scale out: a grid of runs (:class:`SweepSpec`), executed locally or on a Dask cluster,
streamed into one resumable results table (:func:`run_sweep`).

Sits at the training level: it may import tasks, training and models, never analysis or report.
"""

from rnnattn.sweeps.executors import (
    DaskExecutor,
    Executor,
    LocalExecutor,
    Outcome,
    SerialExecutor,
    default_workers,
    make_executor,
)
from rnnattn.sweeps.registry import RunFunction, registered_run_functions, run_function
from rnnattn.sweeps.run import SweepError, load_results, read_records, run_sweep
from rnnattn.sweeps.spec import Run, SweepSpec, run_id_for

__all__ = [
    "SweepSpec",
    "Run",
    "run_id_for",
    "Executor",
    "LocalExecutor",
    "DaskExecutor",
    "SerialExecutor",
    "Outcome",
    "default_workers",
    "make_executor",
    "run_sweep",
    "load_results",
    "read_records",
    "SweepError",
    "run_function",
    "registered_run_functions",
    "RunFunction",
]
