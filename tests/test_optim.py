"""Clipping, the optimizers' update rules, weight decay, schedules and perplexity, on known numbers."""
import math

import numpy as np
import pytest

from minirnn.backend import to_numpy
from minirnn.errors import ConfigError
from minirnn.optim import DEFAULT_LR, SGD, Adagrad, Adam, Schedule, bias_lr_mults, clip_grad_norm, perplexity


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


# --- default learning rates, weight decay, schedules --------------------------------------------

def test_each_optimizer_has_its_own_default_learning_rate():
    assert (SGD().lr, Adagrad().lr, Adam().lr) == (1.0, 0.1, 2e-3)    # the book, min-char-rnn, char-rnn
    assert DEFAULT_LR == {'sgd': 1.0, 'adagrad': 0.1, 'adam': 2e-3}
    assert Adam(0.01).lr == 0.01


def test_a_step_may_take_its_learning_rate_from_a_schedule(xp):
    p = {'w': xp.asarray([1.0])}
    opt = SGD(0.5)
    opt.step(p, {'w': xp.asarray([1.0])}, lr=0.25)
    assert float(p['w'][0]) == pytest.approx(0.75) and opt.last_lr == 0.25 and opt.lr == 0.5
    opt.step(p, {'w': xp.asarray([1.0])})
    assert float(p['w'][0]) == pytest.approx(0.25) and opt.last_lr == 0.5


def test_sgd_weight_decay_is_l2_on_the_weight_matrices_only(xp):
    W, b = xp.asarray([[2.0, -4.0]]), xp.asarray([2.0])
    gW, gb = xp.asarray([[1.0, 1.0]]), xp.asarray([1.0])
    SGD(0.1, weight_decay=0.5).step({'W': W, 'b': b}, {'W': gW, 'b': gb})
    # W - lr * (g + wd * W): [2 - 0.1 * (1 + 1), -4 - 0.1 * (1 - 2)]; the bias only sees its gradient
    np.testing.assert_allclose(to_numpy(W), [[1.8, -3.9]])
    np.testing.assert_allclose(to_numpy(b), [1.9])


def test_adagrad_weight_decay_is_l2_in_both_lines(xp):
    W = xp.asarray([[2.0]])
    Adagrad(0.1, eps=0.0, weight_decay=0.5).step({'W': W}, {'W': xp.asarray([[1.0]])})
    g = 1.0 + 0.5 * 2.0                      # the L2 term joins the gradient, and so the sum of squares
    assert float(W[0, 0]) == pytest.approx(2.0 - 0.1 * g / math.sqrt(g * g))


def test_adam_weight_decay_is_decoupled(xp):
    plain, decayed = Adam(0.1, eps=0.0), Adam(0.1, eps=0.0, weight_decay=0.2)
    p, q = {'W': xp.asarray([[1.0]])}, {'W': xp.asarray([[1.0]])}
    for g in [0.5, -1.0, 2.0]:
        before_p, before_q = float(p['W'][0, 0]), float(q['W'][0, 0])
        plain.step(p, {'W': xp.asarray([[g]])})
        decayed.step(q, {'W': xp.asarray([[g]])})
        adam_step = float(p['W'][0, 0]) - before_p       # a function of the gradients only
        # AdamW: p <- (1 - lr * wd) p, then the very step Adam takes without decay
        assert float(q['W'][0, 0]) == pytest.approx((1 - 0.1 * 0.2) * before_q + adam_step, rel=1e-12)
    for slot in ('m', 'v'):       # the decay never enters the moments
        np.testing.assert_array_equal(to_numpy(plain.slots['W'][slot]), to_numpy(decayed.slots['W'][slot]))


@pytest.mark.parametrize('wd', [-0.1, float('nan'), True])
def test_bad_weight_decay(wd):
    with pytest.raises(ConfigError, match='weight decay'):
        Adam(weight_decay=wd)


def test_bias_lr_mults_names_the_cell_biases_of_every_layer():
    params = {'W_emb': 0, 'W_xh': 0, 'W_hh': 0, 'b_h': 0, 'W_xh_l1': 0, 'b_h_l1': 0, 'b_f_l1': 0,
              'W_hq': 0, 'b_q': 0}
    assert bias_lr_mults(params, 2) == {'b_h': 2.0, 'b_h_l1': 2.0, 'b_f_l1': 2.0}
    assert bias_lr_mults(params, 1) == {}
    for bad in (0, -1.0, float('inf'), True):
        with pytest.raises(ConfigError, match='bias_lr_mult'):
            bias_lr_mults(params, bad)
    with pytest.raises(ConfigError, match='factor of b_h'):
        Adam(lr_mults={'b_h': 0.0})


@pytest.mark.parametrize('make', [lambda m: SGD(0.1, lr_mults=m), lambda m: Adagrad(0.1, lr_mults=m),
                                  lambda m: Adam(0.1, lr_mults=m, weight_decay=0.3)],
                         ids=['sgd', 'adagrad', 'adam'])
def test_a_bias_at_twice_the_rate_moves_as_two_biases_sharing_its_gradient(xp, make):
    """PyTorch's b_ih + b_hh, both given the bias gradient and each updated as usual, move their sum
    as one bias with lr_mults 2 does, under every optimizer; the weights are untouched by it."""
    rng = np.random.default_rng(0)
    start_W, start_b = rng.standard_normal((2, 3)), rng.standard_normal(3)
    one = {'W_xh': xp.array(start_W), 'b_h': xp.array(start_b)}       # copies: updated in place
    two = {'W_xh': xp.array(start_W), 'b_ih': xp.array(start_b), 'b_hh': xp.zeros(3)}
    plain = {'W_xh': xp.array(start_W), 'b_h': xp.array(start_b)}
    fast, split, slow = make(bias_lr_mults(one, 2)), make(None), make(None)
    for _ in range(5):
        gW, gb = xp.asarray(rng.standard_normal((2, 3))), xp.asarray(rng.standard_normal(3))
        fast.step(one, {'W_xh': gW.copy(), 'b_h': gb.copy()})
        split.step(two, {'W_xh': gW.copy(), 'b_ih': gb.copy(), 'b_hh': gb.copy()})
        slow.step(plain, {'W_xh': gW.copy(), 'b_h': gb.copy()})
    np.testing.assert_allclose(to_numpy(one['b_h']), to_numpy(two['b_ih'] + two['b_hh']), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(one['b_h']) - start_b, 2 * (to_numpy(plain['b_h']) - start_b),
                               rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(one['W_xh']), to_numpy(plain['W_xh']))
    np.testing.assert_array_equal(to_numpy(one['W_xh']), to_numpy(two['W_xh']))


def test_ema_is_the_moving_average_of_the_weights_with_its_zero_start_corrected(xp):
    """averaged_params = sum_s (1 - D) D^(t-s) p_s / (1 - D^t) over the weights p_1..p_t the steps made."""
    D = 0.8
    opt = SGD(0.5, ema=D)
    p = {'W': xp.asarray([[1.0, -2.0]])}
    assert opt.averaged_params() is None and SGD(0.5).averaged_params() is None
    made = []
    for g in ([0.5, 1.0], [-1.0, 2.0], [3.0, 0.0], [0.25, -4.0]):
        opt.step(p, {'W': xp.asarray([g])})
        made.append(to_numpy(p['W']).copy())
        t = len(made)
        expected = sum((1 - D) * D ** (t - s) * made[s - 1] for s in range(1, t + 1)) / (1 - D ** t)
        np.testing.assert_allclose(to_numpy(opt.averaged_params()['W']), expected, rtol=1e-12)
    # the first step's average is that step's weights: nothing of the zero start remains
    first = SGD(0.5, ema=D)
    q = {'W': xp.asarray([[1.0, -2.0]])}
    first.step(q, {'W': xp.asarray([[0.5, 1.0]])})
    np.testing.assert_allclose(to_numpy(first.averaged_params()['W']), to_numpy(q['W']), rtol=1e-12)
    # the training weights are SGD's own: the average never feeds back
    np.testing.assert_allclose(made[-1], [[1.0 - 0.5 * 2.75, -2.0 - 0.5 * -1.0]], rtol=1e-12)


@pytest.mark.parametrize('ema', [0.0, 1.0, -0.5, float('nan'), True])
def test_bad_ema(ema):
    with pytest.raises(ConfigError, match='ema'):
        Adam(ema=ema)


def test_ema_travels_with_the_optimizer_state(xp):
    """A resumed optimizer continues the same average (the 'avg' slot is saved with the moments)."""
    rng = np.random.default_rng(0)
    grads = [{'W': xp.asarray(rng.standard_normal((2, 2)))} for _ in range(5)]
    a, pa = Adam(0.1, ema=0.9), {'W': xp.asarray(np.ones((2, 2)))}
    for g in grads:
        a.step(pa, {'W': g['W'].copy()})
    b, pb = Adam(0.1, ema=0.9), {'W': xp.asarray(np.ones((2, 2)))}
    for g in grads[:3]:
        b.step(pb, {'W': g['W'].copy()})
    c = Adam(0.1, ema=0.9)
    c.load_state_dict(b.state_dict(), xp)
    for g in grads[3:]:
        c.step(pb, {'W': g['W'].copy()})
    np.testing.assert_array_equal(to_numpy(c.averaged_params()['W']), to_numpy(a.averaged_params()['W']))


def test_constant_schedule_with_a_linear_warm_up():
    s = Schedule(0.4, 'constant', warmup_steps=4)
    assert [s(step, 1) for step in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    assert Schedule(0.4)(1000, 99) == 0.4


def test_step_schedule_decays_as_char_rnn():
    # char-rnn: learning_rate_decay 0.97 after epoch 10, then every epoch
    s = Schedule(2e-3, 'step', decay=0.97, decay_every=1, decay_after=10)
    assert [s(0, e) for e in (1, 10, 11, 12, 20)] == pytest.approx(
        [2e-3, 2e-3, 2e-3 * 0.97, 2e-3 * 0.97 ** 2, 2e-3 * 0.97 ** 10])
    # halve every 3 epochs (decay_after = decay_every): epochs 1-3, 4-6, 7-9 ...
    s = Schedule(1.0, 'step', decay=0.5, decay_every=3, decay_after=3)
    assert [s(0, e) for e in range(1, 10)] == [1, 1, 1, .5, .5, .5, .25, .25, .25]
    assert Schedule(1.0, 'step', decay=0.5, decay_every=1, decay_after=0)(0, 1) == 0.5


def test_cosine_schedule_falls_to_zero_after_its_warm_up():
    s = Schedule(1.0, 'cosine', warmup_steps=10, total_steps=110)
    assert s(0, 1) == pytest.approx(0.1) and s(9, 1) == pytest.approx(1.0)     # warm-up
    assert s(10, 1) == pytest.approx(1.0)
    assert s(60, 1) == pytest.approx(0.5)                                      # half way: (1 + cos(pi/2)) / 2
    assert s(110, 9) == pytest.approx(0.0, abs=1e-12) and s(500, 9) == pytest.approx(0.0, abs=1e-12)
    lrs = [s(step, 1) for step in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))                          # never rises again


@pytest.mark.parametrize('kind, kwargs, match', [
    ('linear', {}, 'unknown lr schedule'), ('step', {'decay': 0.5}, 'step schedule needs'),
    ('cosine', {}, 'total_steps')])
def test_bad_schedules(kind, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Schedule(1.0, kind, **kwargs)
