"""The fast paths (cells/fast/) against the references (cells/rnn.py, gru.py, lstm.py): whole models
built both ways from one seed give the same loss, every gradient, the final state and dL/dstate,
for every cell, depth 1-3, dropout, the regularisers through time (training and evaluation
forms), an embedding, every truncation mode and odd sizes. float64 agrees to 1e-12 relative
(against each tensor's scale), float32 to float32 rounding."""
import numpy as np
import pytest

from minirnn.run import checkpoint
from minirnn.backend import device_name, to_numpy
from minirnn.cells import CELLS
from minirnn.cells.fast import FastCell
from minirnn.model import RNNLM
from minirnn.tree import leaves, tree_map
from minirnn import truncation

# odd sizes everywhere: V, H, E, B, T all distinct and prime-ish, so a transposed or
# mis-sliced block cannot pass by symmetry
V, H, E, B, T = 11, 7, 5, 3, 9
TOLERANCE = {'float64': 1e-12, 'float32': 2e-5}


def pair(xp, cell, num_layers=1, dropout=0.0, embed_dim=None, dtype='float64', activation='tanh',
         **regularisers):
    """The same model (one seed) under both implementations, biases moved off zero."""
    models = []
    for impl in ('reference', 'fast'):
        m = RNNLM(V, H, cell=cell, num_layers=num_layers, dropout=dropout, embed_dim=embed_dim,
                  dtype=dtype, sigma=0.4, seed=3, device=device_name(xp), activation=activation,
                  threads=1, impl=impl, **regularisers)
        rng = np.random.default_rng(5)
        for k, v in m.params.items():
            if k.startswith('b_'):
                v += xp.asarray(rng.standard_normal(v.shape) * 0.3, dtype=v.dtype)
        models.append(m)
    assert models[0].impl == 'reference' and models[1].impl == 'fast'
    assert models[0].cell is CELLS[cell] and isinstance(models[1].cell, FastCell)
    return models


def batch(model, seed=7):
    rng = np.random.default_rng(seed)
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = tree_map(lambda a: rng.standard_normal(a.shape).astype(model.dtype) * 0.5,
                     tree_map(to_numpy, model.begin_state(B)))
    return X, Y, state


def assert_close(got, want, dtype, what):
    assert got.dtype == want.dtype == np.dtype(dtype), what      # no silent promotion either side
    got, want = to_numpy(got).astype(np.float64), to_numpy(want).astype(np.float64)
    scale = max(np.abs(want).max(), 1e-30)
    assert np.abs(got - want).max() <= TOLERANCE[dtype] * scale, what


def assert_same_result(a, b, dtype):
    assert abs(a.loss - b.loss) <= TOLERANCE[dtype] * abs(b.loss)
    assert list(a.grads) == list(b.grads)
    for k in a.grads:
        assert_close(a.grads[k], b.grads[k], dtype, k)
    for what in ('state', 'dstate'):
        x, y = leaves(getattr(a, what)), leaves(getattr(b, what))
        assert len(x) == len(y)
        for i, (u, v) in enumerate(zip(x, y)):
            assert_close(u, v, dtype, f'{what}[{i}]')
    assert (a.dH_steps is None) == (b.dH_steps is None)
    for i, (x, y) in enumerate(zip(a.dH_steps or [], b.dH_steps or [])):
        assert_close(x, y, dtype, f'dH_steps[{i}]')
    assert len(a.dH_steps or []) == len(b.dH_steps or [])


@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('num_layers', [1, 2, 3])
@pytest.mark.parametrize('cell', sorted(CELLS))
def test_fast_equals_reference(xp, cell, num_layers, dtype):
    """Exact BPTT with a gradient entering through the final state, per-step gradients kept."""
    reference, fast = pair(xp, cell, num_layers, dtype=dtype)
    X, Y, state = batch(reference)
    dfinal = tree_map(lambda a: a * 0.7 + 0.1, state)
    a = reference.gradients(X, Y, state, dfinal_state=dfinal, record_steps=True)
    b = fast.gradients(X, Y, state, dfinal_state=dfinal, record_steps=True)
    assert_same_result(b, a, dtype)
    logits_a, _ = reference.forward(X, state)
    logits_b, _ = fast.forward(X, state)
    assert_close(logits_b, logits_a, dtype, 'logits')


@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('embed_dim', [None, E], ids=['one-hot', 'embedding'])
@pytest.mark.parametrize('cell, activation', [('rnn', 'relu'), ('rnn', 'tanh'), ('gru', 'tanh'), ('lstm', 'tanh')])
@pytest.mark.parametrize('num_layers', [1, 2])
def test_fast_equals_reference_with_dropout(xp, cell, activation, num_layers, embed_dim, dtype):
    reference, fast = pair(xp, cell, num_layers, dropout=0.3, embed_dim=embed_dim, activation=activation,
                           dtype=dtype)
    X, Y, state = batch(reference)
    a = reference.gradients(X, Y, state, dropout_rng=11)
    b = fast.gradients(X, Y, state, dropout_rng=11)
    assert ('W_emb' in a.grads) == (embed_dim is not None)
    assert_same_result(b, a, dtype)


# the regularisers inside the recurrence, one at a time and together; the others act in the
# model's layer loop, the same code under either impl, and ride along in 'everything'
REGULARISERS = {'dropout_hidden': dict(dropout_hidden=0.4), 'zoneout': dict(zoneout=0.3),
                'zoneout_cell': dict(zoneout_cell=0.5),
                'everything': dict(dropout_hidden=0.3, zoneout=0.3, zoneout_cell=0.4, weight_drop=0.3,
                                   dropout_output=0.2, dropout=0.2, ar=1.0, tar=1.0)}


@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('training', [True, False], ids=['training', 'evaluation'])
@pytest.mark.parametrize('num_layers', [1, 2])
@pytest.mark.parametrize('regulariser', sorted(REGULARISERS))
@pytest.mark.parametrize('cell, activation', [('rnn', 'relu'), ('rnn', 'tanh'), ('gru', 'tanh'), ('lstm', 'tanh')])
def test_fast_equals_reference_with_the_regularisers(xp, cell, activation, regulariser, num_layers, training, dtype):
    """Masks fixed by a seed (training) or zoneout's expectation (evaluation), a gradient entering
    through the final state, the per-step gradients kept."""
    options = dict(REGULARISERS[regulariser])
    if cell != 'lstm':
        if regulariser == 'zoneout_cell':
            pytest.skip('only the LSTM has a memory cell to zone')
        options.pop('zoneout_cell', None)
    reference, fast = pair(xp, cell, num_layers, dtype=dtype, activation=activation, **options)
    X, Y, state = batch(reference)
    dfinal = tree_map(lambda a: a * 0.7 + 0.1, state)
    drop = 11 if training else None
    a = reference.gradients(X, Y, state, dropout_rng=drop, dfinal_state=dfinal, record_steps=True)
    b = fast.gradients(X, Y, state, dropout_rng=drop, dfinal_state=dfinal, record_steps=True)
    assert_same_result(b, a, dtype)
    assert abs(float(a.penalty) - float(b.penalty)) <= TOLERANCE[dtype] * max(abs(float(a.penalty)), 1e-30)


@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('num_layers', [1, 2])
@pytest.mark.parametrize('mode', truncation.MODES)
@pytest.mark.parametrize('cell', sorted(CELLS))
def test_fast_equals_reference_under_every_truncation(xp, cell, mode, num_layers, dtype):
    """Three batches in a row, each starting from the last one's state, as training runs them,
    with the per-step gradients the monitor reads."""
    options = {'regular': dict(k1=2, k2=4), 'random': dict(keep_prob=0.6)}.get(mode, {})
    results = []
    for model in pair(xp, cell, num_layers, dtype=dtype):
        trunc = truncation.make(mode, rng=np.random.default_rng(1), **options)
        trunc.start_epoch()
        X, Y, state = batch(model)
        rows = []
        for i in range(3):
            result = trunc.gradients(model, X, Y, state, None, record_steps=True)
            assert result.dH_steps is not None
            rows.append(result)
            state = result.state
            X, Y = np.roll(X, i + 1, axis=1), np.roll(Y, i + 1, axis=1)
        results.append(rows)
    for a, b in zip(*results):
        assert_same_result(b, a, dtype)


def test_the_impl_is_recorded_in_checkpoints(tmp_path):
    from minirnn.text import Vocab
    vocab = Vocab(list('abcdefghij'))
    for impl in ('reference', 'fast'):
        model = RNNLM(len(vocab), 4, cell='gru', seed=0, impl=impl)
        checkpoint.save(tmp_path / f'{impl}.npz', model, vocab)
        loaded = checkpoint.load(tmp_path / f'{impl}.npz')
        assert loaded.model.impl == impl and loaded.model.config()['impl'] == impl


def test_a_model_converts_to_the_other_impl_with_the_same_weights():
    fast = RNNLM(V, H, cell='lstm', seed=2)
    reference = fast.converted(dtype='float64', impl='reference')
    assert reference.impl == 'reference' and reference.cell is CELLS['lstm']
    assert fast.converted().impl == 'fast' and isinstance(fast.converted().cell, FastCell)
    for k, p in fast.params.items():
        np.testing.assert_array_equal(to_numpy(reference.params[k]), to_numpy(p).astype(np.float64))
