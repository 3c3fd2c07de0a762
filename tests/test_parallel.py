"""The thread split (parallel.py): threads that each take a slice of a batch's rows give the
single-threaded result, up to the order of float additions, for every path of the model."""
import math
import warnings

import numpy as np
import pytest

from minirnn.errors import ConfigError
from minirnn.model import RNNLM


def data(rng, V, B, T):
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


@pytest.mark.parametrize('dtype, rtol', [('float64', 1e-12), ('float32', 2e-5)])
@pytest.mark.parametrize('threads, batch_size', [(2, 6), (3, 7), (2, 1)])
def test_threads_splitting_the_batch_give_the_reference_result(monkeypatch, dtype, rtol, threads, batch_size):
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)    # split even these tiny batches
    rng = np.random.default_rng(8)
    X, Y = data(rng, 13, batch_size, 9)
    state = rng.standard_normal((batch_size, 12)) * 0.3
    ref = RNNLM(13, 12, sigma=0.3, dtype=dtype, seed=8, threads=1, embed_dim=5)
    par = RNNLM(13, 12, sigma=0.3, dtype=dtype, seed=8, threads=threads, embed_dim=5)
    assert parallel.plan(batch_size, 12, par.threads) == min(threads, batch_size)
    l1, g1, s1 = ref.loss_and_grads(X, Y, state)
    l2, g2, s2 = par.loss_and_grads(X.tolist(), Y.tolist(), state)     # any array-like input
    assert l2 == pytest.approx(l1, rel=rtol) and type(l2) is float
    assert all(g2[k].dtype == np.dtype(dtype) for k in g2) and s2.dtype == np.dtype(dtype)
    np.testing.assert_allclose(s2, s1, rtol=rtol, atol=1e-7)
    for k in g1:
        scale = np.abs(g1[k]).max()
        np.testing.assert_allclose(g2[k], g1[k], rtol=rtol, atol=rtol * scale, err_msg=k)
    loss, last = parallel.loss(par, X, Y, state)
    assert loss == pytest.approx(l1, rel=rtol) and last.shape == (batch_size, 12)


def test_threads_splitting_the_batch_keep_the_callers_floating_point_error_handling(monkeypatch):
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)
    X, Y = data(np.random.default_rng(0), 5, 4, 3)
    model = RNNLM(5, 6, seed=0, threads=2, dtype='float32')
    model.params['W_xh'][...] = 10.0          # H_t = tanh(...) = 1 everywhere
    model.params['W_hq'][...] = 3e38          # so H W_hq = 6 x 3e38 overflows float32
    with np.errstate(over='raise', invalid='raise'):   # as np.errstate asks, in every thread
        with pytest.raises(FloatingPointError):
            parallel.loss(model, X, Y)
    with np.errstate(all='ignore'), warnings.catch_warnings():
        warnings.simplefilter('error')        # a RuntimeWarning from a pool thread would fail here
        assert not math.isfinite(parallel.loss(model, X, Y)[0])


def test_threads_are_checked_and_one_means_the_reference_path():
    from minirnn import parallel
    with pytest.raises(ConfigError, match='threads'):
        RNNLM(5, 3, threads=0)
    assert RNNLM(5, 3, threads=1).threads == 1
    assert RNNLM(5, 3).threads == parallel.cpu_count()
    assert parallel.plan(32, 512, 2) == 2 and parallel.plan(1, 256, 2) == 1
    assert parallel.plan(2, 8, 2) == 1       # too little work per step to pay for a thread


# --- deep stacks and dropout -----------------------------------------------------------------


def test_threads_with_dropout_give_the_reference_result(monkeypatch):
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)
    rng = np.random.default_rng(6)
    X, Y = data(rng, 9, 6, 5)
    ref = RNNLM(9, 8, sigma=0.3, dtype='float64', seed=6, threads=1, num_layers=2, dropout=0.3)
    par = RNNLM(9, 8, sigma=0.3, dtype='float64', seed=6, threads=2, num_layers=2, dropout=0.3)
    a = ref.gradients(X, Y, dropout_rng=3, record_steps=True)
    b = parallel.gradients(par, X, Y, dropout_rng=3, record_steps=True)
    assert b.loss == pytest.approx(a.loss, rel=1e-12)
    for k in a.grads:
        np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=1e-10, atol=1e-14)
    for x, y in zip(a.dH_steps, b.dH_steps):
        np.testing.assert_allclose(y, x, rtol=1e-10, atol=1e-14)


def test_a_batch_is_checked_whole_before_its_rows_are_cut_for_dropout():
    from minirnn import parallel
    model = RNNLM(5, 4, seed=0, dropout=0.5)
    with pytest.raises(ConfigError, match=r'X must have shape \(batch_size, num_steps\), got \(6,\)'):
        parallel.gradients(model, np.zeros(6, int), np.zeros(6, int), dropout_rng=0)
    with pytest.raises(ConfigError, match=r'token ids must be integers in \[0, 5\)'):
        parallel.gradients(model, [[0, 9]], [[1, 2]], dropout_rng=0)
