"""The RNN cell: forward against a plain per-step loop, BPTT against finite differences."""
import numpy as np
import pytest

from minirnn.backend import to_numpy
from minirnn.cells import CELLS, rnn
from minirnn.errors import ConfigError
from minirnn.gradcheck import numerical_gradient, relative_error

T, B, H = 4, 3, 5


def make(xp, seed=0):
    rng = np.random.default_rng(seed)
    params = rnn.init_params(rng, 6, H, 0.5, xp, np.float64)
    params['b_h'] = xp.asarray(rng.standard_normal(H) * 0.1)
    XW = xp.asarray(rng.standard_normal((T, B, H)))
    h0 = xp.asarray(rng.standard_normal((B, H)) * 0.5)
    dHs = xp.asarray(rng.standard_normal((T, B, H)))   # random upstream gradient
    return params, XW, h0, dHs


@pytest.mark.parametrize('activation', rnn.ACTIVATIONS)
def test_forward_matches_the_equation_step_by_step(xp, activation):
    params, XW, h0, _ = make(xp)
    Hs, cache = rnn.forward(params, XW, h0, activation=activation)
    phi = np.tanh if activation == 'tanh' else (lambda z: np.maximum(z, 0))
    W_hh, b_h, h = to_numpy(params['W_hh']), to_numpy(params['b_h']), to_numpy(h0)
    for t in range(T):
        h = phi(to_numpy(XW)[t] + h @ W_hh + b_h)
        np.testing.assert_allclose(to_numpy(Hs)[t], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(to_numpy(cache.H[0]), to_numpy(h0))


@pytest.mark.parametrize('activation', rnn.ACTIVATIONS)
def test_bptt_matches_finite_differences(xp, activation):
    params, XW, h0, dHs = make(xp, seed=1)
    _, cache = rnn.forward(params, XW, h0, activation=activation)
    grads, dXW, dh0 = rnn.backward(params, dHs, cache)

    def f():
        return float((rnn.forward(params, XW, h0, activation=activation)[0] * dHs).sum())
    for analytic, x in ((grads['W_hh'], params['W_hh']), (grads['b_h'], params['b_h']),
                        (dXW, XW), (dh0, h0)):
        numeric = numerical_gradient(f, x, np.arange(x.size))
        err = relative_error(to_numpy(analytic).reshape(-1), numeric)
        assert err.max() < 1e-7


def test_backward_does_not_change_the_forward_cache(xp):
    params, XW, h0, dHs = make(xp, seed=2)
    _, cache = rnn.forward(params, XW, h0)
    before = to_numpy(cache.H).copy()
    rnn.backward(params, dHs, cache)
    np.testing.assert_array_equal(to_numpy(cache.H), before)


def test_unknown_activation(xp):
    params, XW, h0, _ = make(xp)
    with pytest.raises(ConfigError, match='activation'):
        rnn.forward(params, XW, h0, activation='sigmoid')


def test_cells_are_found_by_name():
    assert CELLS['rnn'] is rnn
