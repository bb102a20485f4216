"""Local process pool and a real Dask LocalCluster give the same numbers as running in-process."""

from pathlib import Path

import pandas as pd
import pytest
import sweep_runfns as fns

from rnnattn.sweeps import DaskExecutor, LocalExecutor, SerialExecutor, SweepError, SweepSpec, run_sweep

SPEC = SweepSpec(name="tiny", fn="sweep_runfns:tiny_train", grid={"n_hidden": (3, 6)}, seeds=(0, 1), base={"steps": 6})
COLUMNS = ["run_id", "n_hidden", "seed", "loss", "first_loss", "n_parameters"]


@pytest.fixture(scope="module")
def serial_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "r.jsonl"
    df = run_sweep(fns.tiny_train, SPEC, SerialExecutor(threads=1), results_path=path, progress=False)
    assert (df["loss"] < df["first_loss"]).all()  # it is training, not returning constants
    return df


def test_local_pool_equals_serial(serial_table, tmp_path):
    with LocalExecutor(workers=2, preload=("torch", "rnnattn", "sweep_runfns", "distributed")) as ex:
        assert ex.n_workers == 2
        df = run_sweep(fns.tiny_train, SPEC, ex, results_path=tmp_path / "r.jsonl", progress=False)
    pd.testing.assert_frame_equal(df[COLUMNS], serial_table[COLUMNS])
    assert df["pid"].nunique() >= 1 and set(df["worker"]) != set(serial_table["worker"])


def test_dask_local_cluster_equals_local(serial_table, tmp_path):
    distributed = pytest.importorskip("distributed")
    import dask

    # Worker processes fork from the fork server the local-pool test started (torch already imported there):
    # seconds saved per worker on a 2-core machine; the cluster is a standard one either way.
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        )
    with cluster:
        with DaskExecutor(cluster) as ex:
            assert ex.n_workers == 2
            df = run_sweep(fns.tiny_train, SPEC, ex, results_path=tmp_path / "r.jsonl", progress=False)
            # A failing run on the cluster comes back as a SweepError naming the run; the rest are recorded.
            log = tmp_path / "calls.txt"
            Path(str(log) + ".fail").write_text("2")
            spec = SweepSpec(name="f", fn="sweep_runfns:counted", grid={"x": (1, 2)}, base={"log": str(log)})
            with pytest.raises(SweepError, match="x=2.*boom at x=2"):
                run_sweep(fns.counted, spec, ex, results_path=tmp_path / "f.jsonl", progress=False)
        assert cluster.scheduler_address  # the user's cluster is still theirs
    pd.testing.assert_frame_equal(df[COLUMNS], serial_table[COLUMNS])
    assert df["pid"].nunique() == 2  # both worker processes took runs


def test_closures_cannot_go_to_worker_processes(tmp_path):
    with (
        LocalExecutor(workers=1) as ex,
        pytest.raises(ValueError, match="cannot be sent to worker processes"),
    ):
        run_sweep(lambda p: {}, SPEC, ex, results_path=tmp_path / "r.jsonl", progress=False)


def test_bad_executor_arguments():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        LocalExecutor(workers=0)
    with pytest.raises(ValueError, match="scheduler address, a distributed.Client or a cluster"):
        DaskExecutor(42)
    with pytest.raises(OSError, match="cannot reach the Dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:1", timeout=0.5)
