"""Clipping, the optimizers' update rules and perplexity, on known numbers."""
import math

import numpy as np
import pytest

from minirnn.backend import to_numpy
from minirnn.errors import ConfigError
from minirnn.optim import SGD, Adagrad, Adam, clip_grad_norm, perplexity


def test_clip_scales_all_gradients_together(xp):
    grads = {'a': xp.asarray([3.0, 0.0]), 'b': xp.asarray([[0.0, 4.0]]), 'state': xp.asarray([100.0])}
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)            # the state is not a parameter
    np.testing.assert_allclose(to_numpy(grads['a']), [0.6, 0.0])
    np.testing.assert_allclose(to_numpy(grads['b']), [[0.0, 0.8]])
    np.testing.assert_allclose(to_numpy(grads['state']), [100.0])
    assert clip_grad_norm(grads, 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize('max_norm', [10.0, 0, None])
def test_clip_leaves_small_norms_and_disabled_clipping_alone(xp, max_norm):
    grads = {'a': xp.asarray([3.0, 4.0])}
    assert clip_grad_norm(grads, max_norm) == pytest.approx(5.0)
    np.testing.assert_allclose(to_numpy(grads['a']), [3.0, 4.0])


def test_sgd_is_the_book_update(xp):
    p = {'w': xp.asarray([1.0, 2.0])}
    SGD(0.5).step(p, {'w': xp.asarray([2.0, -2.0]), 'state': xp.asarray([9.0])})
    np.testing.assert_allclose(to_numpy(p['w']), [0.0, 3.0])


def test_adagrad_two_steps(xp):
    p = {'w': xp.asarray([1.0])}
    opt = Adagrad(0.1, eps=0.0)
    opt.step(p, {'w': xp.asarray([2.0])})          # m = 4:  w -= 0.1 * 2/2
    opt.step(p, {'w': xp.asarray([1.0])})          # m = 5:  w -= 0.1 * 1/sqrt(5)
    assert float(p['w'][0]) == pytest.approx(1 - 0.1 - 0.1 / math.sqrt(5))


def test_adam_matches_the_paper(xp):
    p = {'w': xp.asarray([1.0])}
    opt = Adam(0.1, beta1=0.9, beta2=0.999, eps=0.0)
    w, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -1.0, 2.0], start=1):
        opt.step(p, {'w': xp.asarray([g])})
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= 0.1 * (m / (1 - 0.9 ** t)) / math.sqrt(v / (1 - 0.999 ** t))
    assert float(p['w'][0]) == pytest.approx(w, rel=1e-12)


def test_optimizer_state_round_trips(xp):
    p = {'w': xp.asarray([1.0, 2.0])}
    a = Adam(0.01)
    a.step(p, {'w': xp.asarray([0.3, -0.1])})
    b = Adam(0.01)
    b.load_state_dict(a.state_dict(), xp)
    g = {'w': xp.asarray([0.2, 0.5])}
    pa, pb = {'w': p['w'].copy()}, {'w': p['w'].copy()}
    a.step(pa, g)
    b.step(pb, g)
    np.testing.assert_array_equal(to_numpy(pa['w']), to_numpy(pb['w']))


@pytest.mark.parametrize('lr', [0, -1, float('nan'), float('inf'), '1'])
def test_bad_learning_rates(lr):
    with pytest.raises(ConfigError, match='learning rate'):
        SGD(lr)


def test_perplexity():
    assert perplexity(math.log(28)) == pytest.approx(28)
    assert perplexity(0.0) == 1.0
    assert perplexity(1e6) == math.inf
