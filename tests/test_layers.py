"""Each layer's _forward/_backward pair against central finite differences in float64."""
import numpy as np
import pytest

from minirnn import layers
from minirnn.backend import to_numpy
from minirnn.gradcheck import numerical_gradient, relative_error

TOL = 1e-7


def check(analytic, f, x):
    """All entries of the analytic gradient of f w.r.t. x against central differences."""
    numeric = numerical_gradient(f, x, np.arange(x.size))
    err = relative_error(to_numpy(analytic).reshape(-1), numeric)
    assert err.max() < TOL, f'max relative error {err.max():.2e}'


def test_embedding_is_a_row_gather_and_its_gradient_is_a_scatter_add(xp):
    rng = np.random.default_rng(0)
    ids = xp.asarray(rng.integers(0, 5, (3, 4)))
    W = xp.asarray(rng.standard_normal((5, 6)))
    dout = xp.asarray(rng.standard_normal((3, 4, 6)))   # random upstream gradient
    out, cache = layers.embedding_forward(ids, W)
    assert out.shape == (3, 4, 6)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(W)[to_numpy(ids)])
    dW = layers.embedding_backward(dout, cache)
    assert dW.shape == W.shape
    check(dW, lambda: float((layers.embedding_forward(ids, W)[0] * dout).sum()), W)


@pytest.mark.parametrize('bias', [True, False])
def test_linear(xp, bias):
    rng = np.random.default_rng(1)
    x = xp.asarray(rng.standard_normal((5, 3)))
    W = xp.asarray(rng.standard_normal((3, 4)))
    b = xp.asarray(rng.standard_normal(4)) if bias else None
    dy = xp.asarray(rng.standard_normal((5, 4)))
    y, cache = layers.linear_forward(x, W, b)
    dx, dW, db = layers.linear_backward(dy, cache)

    def f():
        return float((layers.linear_forward(x, W, b)[0] * dy).sum())
    check(dx, f, x)
    check(dW, f, W)
    if bias:
        check(db, f, b)
    else:
        assert db is None


def test_softmax_cross_entropy_gradient(xp):
    rng = np.random.default_rng(2)
    # unit-scale logits: probabilities near 1e-6 would give gradient entries below what
    # central differences resolve in float64 (~1e-11 absolute)
    logits = xp.asarray(rng.standard_normal((6, 5)))
    y = xp.asarray(rng.integers(0, 5, 6))
    loss, cache = layers.softmax_cross_entropy_forward(logits, y)
    dlogits = layers.softmax_cross_entropy_backward(1.0, cache)
    check(dlogits, lambda: float(layers.softmax_cross_entropy_forward(logits, y)[0]), logits)


def test_softmax_cross_entropy_matches_a_direct_formula(xp):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((7, 4))
    y = rng.integers(0, 4, 7)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.log(p[np.arange(7), y]).mean()
    loss, _ = layers.softmax_cross_entropy_forward(xp.asarray(logits), xp.asarray(y))
    assert float(loss) == pytest.approx(expected, rel=1e-12)


def test_uniform_logits_cost_log_v(xp):
    logits = xp.zeros((3, 28))
    loss, _ = layers.softmax_cross_entropy_forward(logits, xp.asarray([0, 5, 27]))
    assert float(loss) == pytest.approx(np.log(28))


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_softmax_cross_entropy_is_stable_at_huge_logits(xp, dtype):
    # rows with logits of +-1e4: a naive exp overflows, a naive log(softmax) takes log(0)
    logits = xp.asarray([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4 - 1, -1e4]], dtype=dtype)
    y = xp.asarray([1, 2, 0])
    loss, cache = layers.softmax_cross_entropy_forward(logits, y)
    dlogits = layers.softmax_cross_entropy_backward(1.0, cache)
    # exact values: row 0 costs 2e4, row 1 log 3, row 2 log(1 + e^-1)
    expected = (2e4 + np.log(3) + np.log1p(np.exp(-1))) / 3
    assert np.isfinite(float(loss))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(to_numpy(dlogits)).all()


def test_column_major_linear_gives_the_same_values_in_fortran_order(xp):
    rng = np.random.default_rng(4)
    x = xp.asarray(rng.standard_normal((6, 3)))
    W = xp.asarray(rng.standard_normal((3, 5)))
    b = xp.asarray(rng.standard_normal(5))
    y_rows, _ = layers.linear_forward(x, W, b)
    y_cols, _ = layers.linear_forward(x, W, b, column_major=True)
    assert y_cols.flags.f_contiguous
    np.testing.assert_allclose(to_numpy(y_cols), to_numpy(y_rows), rtol=1e-12)


def test_complex_logits_carry_a_complex_step_through_the_loss(xp):
    """The shift comes from the real parts and the rest is analytic, so Im(loss) / h of a
    complex step on one logit is d loss / d logit, equal to backward's, and the real part is
    the real loss."""
    rng = np.random.default_rng(5)
    logits = xp.asarray(rng.standard_normal((6, 5)) * 3)
    y = xp.asarray(rng.integers(0, 5, 6))
    loss, cache = layers.softmax_cross_entropy_forward(logits, y)
    dlogits = to_numpy(layers.softmax_cross_entropy_backward(1.0, cache))
    h = 1e-20
    for index in [(0, 0), (2, 3), (5, 4)]:
        z = logits.astype(np.complex128)
        z[index] += 1j * h
        complex_loss, complex_cache = layers.softmax_cross_entropy_forward(z, y)
        assert complex(complex_loss).real == pytest.approx(float(loss), rel=1e-15)
        assert complex(complex_loss).imag / h == pytest.approx(dlogits[index], rel=1e-13)
        assert float(abs(to_numpy(complex_cache.exp)).max()) <= 1 + 1e-15   # the real shift keeps |exp| <= 1


def test_a_complex_bias_widens_the_output_of_a_real_product(xp):
    rng = np.random.default_rng(6)
    x, W = xp.asarray(rng.standard_normal((4, 3))), xp.asarray(rng.standard_normal((3, 2)))
    b = xp.asarray(rng.standard_normal(2))
    bc = b.astype(np.complex128)
    bc[1] += 1e-20j
    for column_major in (False, True):
        y, _ = layers.linear_forward(x, W, b, column_major=column_major)
        yc, _ = layers.linear_forward(x, W, bc, column_major=column_major)
        assert y.dtype == np.float64 and yc.dtype == np.complex128
        np.testing.assert_array_equal(to_numpy(yc.real), to_numpy(y))
        np.testing.assert_array_equal(to_numpy(yc.imag / 1e-20), [[0, 1]] * 4)
