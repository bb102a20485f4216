"""Where sweep runs execute: one :class:`Executor` interface, a local process pool or a Dask cluster.

* :class:`LocalExecutor` (the default): a ``concurrent.futures.ProcessPoolExecutor`` with one worker per core,
  each limited to one torch thread (with several threads per process under contention, OpenMP spinning made
  runs 10-50x slower on the 2-core machine: our measurement).
* :class:`DaskExecutor`: the user's Dask cluster, reached through ``distributed.Client(address)``, or a
  ``Client`` or cluster object (e.g. a ``LocalCluster``) they created. rnnattn never starts a scheduler of its
  own: scaling out is the cluster's business, rnnattn only submits runs and collects results.
* :class:`SerialExecutor`: runs in this process, one after another (debugging, notebooks, tiny sweeps).

Every executor calls the run function through :func:`execute`, which pins torch to the requested thread count,
times the call and turns an exception into an :class:`Outcome` carrying the traceback text, so a failing run
reports *which* run failed and why, whatever machine it ran on. :meth:`Executor.submit` returns a
:class:`Batch` whose iteration yields outcomes as they complete (``as_completed``), and whose
:meth:`Batch.cancel` drops the runs that have not started.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rnnattn.sweeps.spec import Run

RunFn = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Outcome:
    """What one run produced.

    Attributes:
        run: the run (id, index, parameters).
        ok: whether the function returned a mapping.
        result: the returned mapping (empty when not ``ok``).
        error: one line ``ExceptionType: message`` when not ``ok``.
        traceback: the full traceback text from the worker when not ``ok``.
        elapsed_s: wall time of the call on the worker.
        worker: ``host:pid`` that ran it.
    """

    run: Run
    ok: bool
    result: dict[str, Any]
    error: str = ""
    traceback: str = ""
    elapsed_s: float = 0.0
    worker: str = ""


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def execute(fn: RunFn, run: Run, threads: int | None = 1) -> Outcome:
    """Call ``fn(run.params)`` on this process and wrap the result (or the exception) in an :class:`Outcome`.

    ``KeyboardInterrupt``/``SystemExit`` propagate (Ctrl-C must stop a sweep); every other exception becomes a
    failed outcome. A non-mapping result is a failed outcome too, so a results table never gets shapeless
    rows.
    """
    _set_threads(threads)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    t0 = time.perf_counter()
    try:
        result = fn(dict(run.params))
        if not isinstance(result, dict):
            raise TypeError(f"run functions must return a dict of results, got {type(result).__name__}")
    except Exception as e:  # noqa: BLE001 — reported per run, never lost in a worker log
        msg = str(e).strip().splitlines()
        line = f"{type(e).__name__}: {msg[0]}" if msg else type(e).__name__
        return Outcome(run, False, {}, line, traceback.format_exc(), time.perf_counter() - t0, worker)
    return Outcome(run, True, result, "", "", time.perf_counter() - t0, worker)


class Batch(ABC):
    """Runs submitted together. Iterate to receive their outcomes in completion order."""

    @abstractmethod
    def __iter__(self) -> Iterator[Outcome]: ...

    @abstractmethod
    def cancel(self) -> int:
        """Cancel the runs that have not started; iteration then yields only the ones already running.
        Returns the number cancelled."""


class Executor(ABC):
    """Submit runs, receive outcomes as they finish. Use as a context manager to release workers."""

    #: short name shown in progress bars and reports
    kind: str = "executor"

    @property
    @abstractmethod
    def n_workers(self) -> int:
        """Runs that can execute at once."""

    @abstractmethod
    def submit(self, fn: RunFn, runs: Sequence[Run]) -> Batch:
        """Start ``fn`` on each run (up to ``n_workers`` at a time); returns the :class:`Batch`."""

    def close(self) -> None:  # noqa: B027 — optional hook: executors that own nothing keep the default
        """Release workers and connections this executor created (never the user's own cluster)."""

    def describe(self) -> str:
        return f"{self.kind} ({self.n_workers} workers)"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- in-process
# -----------------------------------------------------------------------------------------------------
class _SerialBatch(Batch):
    def __init__(self, fn: RunFn, runs: Sequence[Run], threads: int | None) -> None:
        self._fn, self._pending, self._threads = fn, list(runs), threads

    def __iter__(self) -> Iterator[Outcome]:
        while self._pending:
            yield execute(self._fn, self._pending.pop(0), self._threads)

    def cancel(self) -> int:
        n = len(self._pending)
        self._pending.clear()
        return n


class SerialExecutor(Executor):
    """Runs one after another in this process (no pickling: closures and lambdas work here, and only here)."""

    kind = "serial"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    @property
    def n_workers(self) -> int:
        return 1

    def submit(self, fn: RunFn, runs: Sequence[Run]) -> Batch:
        return _SerialBatch(fn, runs, self.threads)


# -- local process pool
# ---------------------------------------------------------------------------------------------
def default_workers() -> int:
    """Cores this process may use (respects CPU affinity, e.g. ``taskset`` or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _init_worker(threads: int) -> None:
    # Set before torch creates its thread pools; OMP_NUM_THREADS also covers numpy/scipy BLAS in the worker.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    _set_threads(threads)


def _check_picklable(fn: RunFn) -> None:
    import pickle

    try:
        pickle.dumps(fn)
    except Exception as e:  # noqa: BLE001 — say why here, not as an opaque error in a feeder thread
        raise ValueError(
            f"the run function {getattr(fn, '__qualname__', fn)!r} cannot be sent to worker processes ({e}); "
            "define it at module level, or use SerialExecutor"
        ) from None


class _FuturesBatch(Batch):
    def __init__(self, futures: dict[Any, Run], as_completed: Callable, fn: RunFn) -> None:
        self._futures, self._as_completed, self._fn = futures, as_completed, fn

    def __iter__(self) -> Iterator[Outcome]:
        for fut in self._as_completed(list(self._futures)):
            run = self._futures[fut]
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is not None:  # the worker itself died (killed, out of memory): the run did not report back
                line = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                yield Outcome(run, False, {}, f"worker failed: {line}", "".join(traceback.format_exception(exc)))
            else:
                yield fut.result()

    def cancel(self) -> int:
        return sum(1 for f in self._futures if f.cancel())


class LocalExecutor(Executor):
    """A pool of ``workers`` processes on this machine (default: one per core), ``threads`` torch threads
    each.

    Worker processes start with ``mp_context``: ``"forkserver"`` by default where available, with ``preload``
    imported once in the fork server, so each worker starts in milliseconds instead of importing torch again
    (seconds each on a small machine); ``"spawn"`` is the portable alternative. Plain ``"fork"`` of a process
    whose torch thread pools are running can deadlock, so it is not the default. Run functions must be
    importable module-level functions. (The fork server is per Python process: the first executor that starts
    it fixes its preload list.)
    """

    kind = "local"

    def __init__(
        self,
        workers: int | None = None,
        threads: int = 1,
        mp_context: str | None = None,
        preload: Sequence[str] = ("torch", "rnnattn"),
    ) -> None:
        import multiprocessing

        workers = default_workers() if workers is None else workers
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"LocalExecutor: workers must be a positive integer, got {workers!r}")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"LocalExecutor: threads must be a positive integer, got {threads!r}")
        methods = multiprocessing.get_all_start_methods()
        if mp_context is None:
            mp_context = "forkserver" if "forkserver" in methods else "spawn"
        if mp_context not in methods:
            raise ValueError(f"LocalExecutor: start method {mp_context!r} is not available here (have {methods})")
        ctx = multiprocessing.get_context(mp_context)
        if mp_context == "forkserver":
            ctx.set_forkserver_preload(list(preload))
        self._workers, self.threads = workers, threads
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(threads,),
        )

    @property
    def n_workers(self) -> int:
        return self._workers

    def submit(self, fn: RunFn, runs: Sequence[Run]) -> Batch:
        _check_picklable(fn)
        futures = {self._pool.submit(execute, fn, r, self.threads): r for r in runs}
        return _FuturesBatch(futures, cf.as_completed, fn)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- Dask
# ------------------------------------------------------------------------------------------------------------
class DaskExecutor(Executor):
    """Runs on a Dask cluster through ``distributed``.

    Args:
        address: a scheduler address (``"tcp://host:8786"``), an existing ``distributed.Client``, or a cluster
            object such as ``distributed.LocalCluster(n_workers=4, threads_per_worker=1)``. A client this
            executor creates is closed by :meth:`close`; the user's client or cluster is left running.
        threads: torch threads per run (1: give Dask workers one thread each, ``threads_per_worker=1``, so runs do not
            contend for cores).
        timeout: seconds to wait for the scheduler.

    Workers must have rnnattn (and the run function's module) installed; results travel back as plain dicts.
    :meth:`Batch.cancel` cancels every unfinished run here, including those already executing (their results are
    dropped; a resumed sweep reruns them).
    """

    kind = "dask"

    def __init__(self, address: Any, threads: int = 1, timeout: float = 30.0) -> None:
        try:
            import distributed
        except ImportError:
            raise ImportError("DaskExecutor needs Dask: pip install 'rnnattn[dask]'") from None
        self.threads = threads
        self._own_client = False
        if isinstance(address, distributed.Client):
            self.client = address
        elif isinstance(address, str):
            if not address.strip():
                raise ValueError("DaskExecutor: the scheduler address is empty")
            try:
                self.client = distributed.Client(address, timeout=timeout)
            except OSError as e:
                raise OSError(f"cannot reach the Dask scheduler at {address}: {e}") from None
            self._own_client = True
        elif hasattr(address, "scheduler_address"):  # a cluster object (LocalCluster, SLURMCluster, ...)
            self.client = distributed.Client(address, timeout=timeout)
            self._own_client = True
        else:
            raise ValueError(
                "DaskExecutor: give a scheduler address, a distributed.Client or a cluster, "
                f"got {type(address).__name__}"
            )
        self._as_completed = distributed.as_completed

    @property
    def n_workers(self) -> int:
        info = self.client.scheduler_info()
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    def describe(self) -> str:
        return f"dask {self.client.scheduler.address} ({self.n_workers} worker threads)"

    def submit(self, fn: RunFn, runs: Sequence[Run]) -> Batch:
        # pure=False: a run is an experiment, never deduplicated; the key names the run in the Dask dashboard.
        futures = {
            self.client.submit(
                execute, fn, r, self.threads, pure=False, key=f"rnnattn-{r.run_id}-{os.urandom(4).hex()}"
            ): r
            for r in runs
        }
        return _DaskBatch(futures, self._as_completed, fn, self.client)

    def close(self) -> None:
        if self._own_client:
            self.client.close()


class _DaskBatch(_FuturesBatch):
    def __init__(self, futures, as_completed, fn, client) -> None:
        super().__init__(futures, as_completed, fn)
        self._client = client

    def cancel(self) -> int:
        pending = [f for f in self._futures if f.status == "pending"]
        if pending:
            self._client.cancel(pending)
        return len(pending)

    def __iter__(self) -> Iterator[Outcome]:
        for fut in self._as_completed(list(self._futures)):
            run = self._futures[fut]
            if fut.status == "cancelled":
                continue
            if fut.status == "error":
                exc = fut.exception()
                yield Outcome(
                    run,
                    False,
                    {},
                    f"worker failed: {type(exc).__name__}: {exc}",
                    "".join(traceback.format_exception(exc)),
                )
            else:
                yield fut.result()


def make_executor(scheduler: str | None = None, workers: int | None = None, timeout: float = 30.0) -> Executor:
    """The executor a command line asks for: Dask at ``scheduler`` if given (waiting up to ``timeout``
    seconds for it), else a local pool of ``workers`` (``workers=1`` runs in-process, which avoids process start-up)."""
    if scheduler:
        return DaskExecutor(scheduler, timeout=timeout)
    if workers == 1:
        return SerialExecutor(threads=1)
    return LocalExecutor(workers)
