from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
import sympy

from rnnattn.lsrl.numeric import Mode, SparseMatrix, as_mode, as_vector, canonical, sparse_matvec, to_mode


def test_canonical_keeps_exact_values():
    assert canonical(3) == 3 and type(canonical(3)) is int
    assert canonical(2.0) == 2 and type(canonical(2.0)) is int
    assert canonical(0.5) == 0.5 and type(canonical(0.5)) is float
    assert canonical(Fraction(6, 3)) == 2 and type(canonical(Fraction(6, 3))) is int
    assert canonical(sympy.Rational(1, 3)) == Fraction(1, 3)
    assert canonical(np.int64(4)) == 4
    assert abs(canonical(sympy.cos(sympy.pi / 7)) - np.cos(np.pi / 7)) < 1e-15
    for bad in (float("nan"), float("inf"), 1j, "x"):
        with pytest.raises((ValueError, TypeError)):
            canonical(bad)


def test_to_mode_is_exact_binary_rational():
    assert to_mode(0.1, Mode.EXACT) == Fraction(0.1)
    assert to_mode(Fraction(1, 3), Mode.FLOAT64) == pytest.approx(1 / 3)
    assert as_mode("exact") is Mode.EXACT
    with pytest.raises(ValueError, match="numeric mode"):
        as_mode("symbolic")


@pytest.mark.parametrize(
    "src",
    [
        [[1, 0], [0.5, -2]],
        np.array([[1, 0], [0.5, -2]]),
        sp.csr_matrix(np.array([[1, 0], [0.5, -2]])),
        sympy.Matrix([[1, 0], [sympy.Rational(1, 2), -2]]),
    ],
)
def test_sparse_matrix_from_any(src):
    m = SparseMatrix.from_any(src)
    assert m.shape == (2, 2) and m.nnz == 3
    np.testing.assert_array_equal(m.to_numpy(), [[1, 0], [0.5, -2]])
    np.testing.assert_array_equal(m.to_scipy().toarray(), m.to_numpy())
    assert sparse_matvec(m.in_mode(Mode.EXACT), [2, 4]) == [2, -7]


def test_sparse_matrix_shapes_and_scalars():
    assert SparseMatrix.from_any(3, (2, 2)).to_dense_list() == [[3, 0], [0, 3]]
    with pytest.raises(ValueError):
        SparseMatrix.from_any([[1, 2]], (2, 1))
    with pytest.raises(ValueError):
        SparseMatrix.from_any([[1, 2], [3]])
    assert as_vector(2, 3) == (2, 2, 2)
    with pytest.raises(ValueError):
        as_vector([1, 2], 3)
