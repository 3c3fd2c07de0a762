"""Truncation modes against the exact gradient they approximate or extend, for every cell."""
import numpy as np
import pytest

from minirnn import truncation
from minirnn.cells import CELLS
from minirnn.errors import ConfigError
from minirnn.model import RNNLM
from minirnn.tree import leaves

V, H, B, T = 7, 5, 3, 6
BUILTIN = [name for name in CELLS if name in ('rnn', 'gru', 'lstm')]


def model(cell='rnn', **kwargs):
    return RNNLM(V, H, sigma=0.5, dtype='float64', seed=0, cell=cell, threads=1, **kwargs)


def batch(seed, steps=T):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, steps)), rng.integers(0, V, (B, steps))


def assert_grads_equal(a, b, rtol=1e-10):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-14, err_msg=k)


def test_regular_sweeps_cut_where_the_docstring_says():
    sweeps = truncation.regular_sweeps(6, 2, 3)
    assert [list(np.flatnonzero(s) + 1) for s, _ in sweeps] == [[1, 2], [3, 4], [5, 6]]
    # chunk (0, 2] reaches step 0 (the initial state: no cut), (2, 4] is cut below step 2,
    # (4, 6] below step 4
    assert [[t + 1 for t, c in enumerate(carry) if c == 0] for _, carry in sweeps] == [[], [2], [4]]
    assert [list(np.flatnonzero(s) + 1) for s, _ in truncation.regular_sweeps(5, 2, 2)] == [[1, 2], [3, 4], [5]]


@pytest.mark.parametrize('cell', BUILTIN)
@pytest.mark.parametrize('k1', [1, 2, 4, 6])
def test_regular_truncation_with_k2_at_least_T_is_exact_bptt(cell, k1):
    m = model(cell, num_layers=2)
    X, Y = batch(1)
    exact = m.gradients(X, Y)
    cut = truncation.Regular(k1, T).gradients(m, X, Y, None, None)
    assert cut.loss == exact.loss
    assert_grads_equal(cut.grads, exact.grads)
    # k2 = T treats the batch's initial state as a constant, as detach does; k2 > T also
    # forms its gradient, which then matches too
    beyond = truncation.Regular(k1, T + 1).gradients(m, X, Y, None, None)
    assert_grads_equal(beyond.grads, exact.grads)
    for a, b in zip(leaves(beyond.dstate), leaves(exact.dstate)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize('cell', BUILTIN)
def test_regular_truncation_with_k1_equal_to_k2_is_detaching_every_k_steps(cell):
    """k1 = k2 = k: each window of k steps is a batch of its own, from the carried state as a
    constant; the windows' mean losses weigh k/T each in the batch's mean."""
    m = model(cell)
    X, Y = batch(2)
    k = 2
    cut = truncation.Regular(k, k).gradients(m, X, Y, None, None)
    total, state = {key: 0 for key in m.params}, None
    for lo in range(0, T, k):
        part = m.gradients(X[:, lo:lo + k], Y[:, lo:lo + k], state)
        for key in total:
            total[key] = total[key] + part.grads[key] * (k / T)
        state = part.state
    assert_grads_equal(cut.grads, total)


@pytest.mark.parametrize('cell', BUILTIN)
def test_full_bptt_over_two_batches_is_the_gradient_of_the_concatenated_sequence(cell):
    """Without an update in between, batch 1's gradient plus batch 2's full-BPTT gradient is
    the gradient of L1 + L2 = 2 L(concatenated), computed by one exact pass over 2T steps."""
    m = model(cell, num_layers=2, dropout=0.3)
    X, Y = batch(3, steps=2 * T)
    full = truncation.Full()
    full.start_epoch()
    first = full.gradients(m, X[:, :T], Y[:, :T], None, 5)
    second = full.gradients(m, X[:, T:], Y[:, T:], first.state, 6)
    # the same dropout masks: batch i drew them from seed 5, 6, layer by layer, as (B, T, H)
    from minirnn import layers
    rngs = [np.random.default_rng(s) for s in (5, 6)]
    per_seed = [[layers.dropout_mask(r, (B, T, H), 0.3, m.dtype) for _ in range(2)] for r in rngs]
    masks = tuple(np.concatenate([per_seed[0][layer], per_seed[1][layer]], axis=1) for layer in range(2))
    tape = m._tape(m.params, *m.inputs(X, Y, None), masks)
    whole = m.backprop(tape)
    assert_grads_equal({k: first.grads[k] + second.grads[k] for k in m.params},
                       {k: 2 * g for k, g in whole.grads.items()})
    # dL1/dS0 + dL2/dS0 (through both batches) = 2 dL/dS0, S0 the epoch's initial state
    for a1, a2, b in zip(leaves(first.dstate), leaves(second.dstate), leaves(whole.dstate)):
        np.testing.assert_allclose(a1 + a2, 2 * b, rtol=1e-9, atol=1e-14)


def test_full_bptt_names_its_memory_limit():
    m = model()
    full = truncation.Full(max_tape_bytes=20_000)
    X, Y = batch(4)
    state = None
    with pytest.raises(ConfigError, match=r'truncation full keeps every batch.*MiB.*--max-tokens'):
        for _ in range(50):
            state = full.gradients(m, X, Y, state, None).state


@pytest.mark.parametrize('cell', BUILTIN)
def test_randomized_truncation_is_unbiased(cell):
    """The mean of N draws approaches the exact gradient: every entry within 5 standard errors
    (the draws' own spread / sqrt(N)) plus 1e-12; a cut-everything estimator would not be."""
    m = model(cell)
    X, Y = batch(5)
    exact = m.gradients(X, Y).grads
    estimator = truncation.Random(0.6, rng=0)
    draws = [estimator.gradients(m, X, Y, None, None).grads for _ in range(2000)]
    for k in exact:
        samples = np.stack([d[k] for d in draws])
        mean, sem = samples.mean(axis=0), samples.std(axis=0) / np.sqrt(len(draws))
        assert (np.abs(mean - exact[k]) <= 5 * sem + 1e-12).all(), k
    # and single draws do differ from the exact gradient (else the test would prove nothing)
    assert sum(not np.allclose(d[k], exact[k]) for d in draws[:20] for k in exact) > 0


def test_randomized_truncation_keeping_every_step_is_exact():
    m = model()
    X, Y = batch(6)
    assert_grads_equal(truncation.Random(1.0, rng=0).gradients(m, X, Y, None, None).grads,
                       m.gradients(X, Y).grads)


def test_truncations_split_over_threads_like_the_reference(monkeypatch):
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)
    X, Y = batch(7)
    one = RNNLM(V, H, sigma=0.5, dtype='float64', seed=0, threads=1)
    two = RNNLM(V, H, sigma=0.5, dtype='float64', seed=0, threads=2)
    assert_grads_equal(truncation.Regular(2, 3).gradients(two, X, Y, None, None).grads,
                       truncation.Regular(2, 3).gradients(one, X, Y, None, None).grads)
    assert_grads_equal(truncation.Random(0.5, rng=1).gradients(two, X, Y, None, None).grads,
                       truncation.Random(0.5, rng=1).gradients(one, X, Y, None, None).grads)


@pytest.mark.parametrize('kwargs, match', [
    (dict(mode='regular'), '--k1 and --k2'), (dict(mode='regular', k1=3, k2=2), 'at least k1'),
    (dict(mode='random'), '--keep-prob'), (dict(mode='random', keep_prob=1.5), r'\(0, 1\]'),
    (dict(mode='random', keep_prob=0), 'keep_prob'), (dict(mode='sideways'), 'truncation')])
def test_bad_truncation_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        truncation.make(kwargs.pop('mode'), **kwargs)
