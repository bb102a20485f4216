"""Issue 12 (LSRL items): dimensions are bounded before anything is allocated, non-nodes are validation errors,
and every runner names the width it got and the width it expects."""

import resource

import numpy as np
import pytest
import torch

from rnnattn.limits import MAX_LSRL_DIM
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
    compile,
)


@pytest.mark.parametrize("dim", [10**9, MAX_LSRL_DIM + 1, 0, -3, 2.5, True, "7"])
def test_input_dimension_bounded(dim):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(LSRLValidationError, match="dimension") as e:
        Input(dim)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing big allocated


def test_largest_dimension_allowed():
    assert Input(MAX_LSRL_DIM).dim == MAX_LSRL_DIM


@pytest.mark.parametrize(
    "build",
    [
        lambda: ReLU(3),
        lambda: Linear("x", [[1]]),
        lambda: Slice(None, 0, 1),
        lambda: Concat([Input(1), 2.0]),
        lambda: LinState(object(), 1, 1),
        lambda: Multiplicative([Input(2)]),
    ],
)
def test_non_node_inputs_are_validation_errors(build):
    with pytest.raises(LSRLValidationError, match="LSRL nodes"):
        build()


def test_non_node_smuggled_into_inputs():
    x = Input(1)
    r = ReLU(x)
    r.inputs = (x, 5)
    with pytest.raises(LSRLValidationError, match="int"):
        Program(r)


@pytest.mark.parametrize("mode", ["exact", "float64"])
@pytest.mark.parametrize("width", [1, 3])
def test_compiled_run_checks_width(mode, width):
    x = Input(2)
    cp = compile(LinState(x, 1, np.eye(2)) * 2, mode=mode)
    xs = np.ones((4, width))
    with pytest.raises(ValueError, match=f"input has width {width}, the program expects 2"):
        cp.run(xs)
    if mode == "float64":
        with pytest.raises(ValueError, match=f"input has width {width}, the program expects 2"):
            cp.run(np.ones((2, 4, width)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_module_checks_width(dtype):
    x = Input(2)
    m = compile(LinState(x, 1, np.eye(2)) * 2).to_module(dtype)
    with pytest.raises(ValueError, match="input has width 3, the program expects 2"):
        m(torch.ones(1, 4, 3, dtype=dtype))
