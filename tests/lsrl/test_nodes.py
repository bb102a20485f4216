import numpy as np
import pytest

from rnnattn.lsrl import (
    Concat,
    Input,
    Linear,
    LinState,
    LSRLValidationError,
    Multiplicative,
    Program,
    ReLU,
    Slice,
    Variable,
    run,
)


def test_dims_and_sugar():
    x = Input(3)
    assert (x + 1).dim == 3 and (x - x).dim == 3 and (2 * x).dim == 3 and (x / 2).dim == 3
    assert x[1].dim == 1 and x[0:2].dim == 2 and x[-1].dim == 1
    assert isinstance(x[1], Slice) and isinstance(x[1], Linear)
    assert Concat([x, x]).dim == 6 and Multiplicative(Concat([x, x])).dim == 3
    y = run((x + x) * 2 - 1 + (1 - x[0:3]) / 4, [[1, 2, 3]], mode="exact")
    assert y[0].tolist() == [3 + 0, 7 - 0.25, 11 - 0.5]


@pytest.mark.parametrize(
    "bad",
    [
        lambda x: x + Input(2),
        lambda x: x * x,
        lambda x: x / 0,
        lambda x: x[::2],
        lambda x: x[5],
        lambda x: Multiplicative(x),
        lambda x: Linear(x, np.ones((2, 2))),
        lambda x: LinState(x, np.eye(2), np.ones((3, 3))),
        lambda x: Slice(x, 2, 1),
    ],
)
def test_rejects_invalid_construction(bad):
    with pytest.raises((ValueError, TypeError, IndexError)):
        bad(Input(3))


def test_validation_lists_reasons_per_node():
    a, b = Input(1, name="a"), Input(1, name="b")
    with pytest.raises(LSRLValidationError, match="exactly one Input") as e:
        Program(a + b).validate()
    assert e.value.issues

    class Weird(Variable):
        kind = "Weird"

    w = Weird([Input(1)], 1, name="weird")
    with pytest.raises(LSRLValidationError, match="weird: unsupported node type"):
        Program(ReLU(w)).validate()


def test_program_stats_and_topology():
    x = Input(2)
    s = LinState(ReLU(x), np.eye(2), np.eye(2))
    p = Program(s + x)
    assert p.nodes[0] is x and p.output_dim == 2 and p.input_dim == 2
    st = p.stats()
    assert st.state_dim == 2 and st.by_kind["LinState"] == 1 and st.nnz > 0
    assert p.consumers()[x]
