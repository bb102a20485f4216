import numpy as np
import pytest

from rnnattn.lsrl import Concat, Input, Interpreter, LinState, Multiplicative, ReLU, f_larger, run


def _prog():
    x = Input(2)
    s = LinState(x, [[1, 0], [1, 0]], np.eye(2), init_state=[1, -1])
    return Multiplicative(Concat([ReLU(s - 1), x])) + f_larger(s, 2)


@pytest.mark.parametrize("mode", ["exact", "float64"])
def test_step_equals_run(mode):
    p = _prog()
    xs = [[1, -2], [0.5, 3], [-1, 1], [2, 2]]
    whole = run(p, xs, mode=mode)
    it = Interpreter(p, mode)
    steps = [it.step(x) for x in xs]
    got = np.asarray([np.asarray(s).reshape(-1) for s in steps], dtype=float)
    np.testing.assert_allclose(got, np.asarray(whole, dtype=float))


def test_exact_and_float_agree_and_batching():
    p = _prog()
    rng = np.random.default_rng(0)
    xs = np.round(rng.normal(size=(3, 5, 2)) * 8) / 8
    batched = run(p, xs)
    for b in range(3):
        np.testing.assert_allclose(batched[b], run(p, xs[b]))
        np.testing.assert_allclose(batched[b], np.asarray(run(p, xs[b], mode="exact"), dtype=float))


def test_record_gives_every_node():
    p = _prog()
    ys, rec = run(p, [[1, 2], [3, 4]], mode="exact", record=True)
    assert len(rec) == len(Interpreter(p).program.nodes)
    assert all(v.shape[0] == 2 for v in rec.values())


def test_wrong_token_width():
    with pytest.raises(ValueError):
        run(_prog(), [[1, 2, 3]], mode="exact")
