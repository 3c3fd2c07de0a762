"""A cell written here, through the public cell interface alone, trains, checkpoints, resumes,
splits over threads and passes the gradient check: nothing else in the package assumes the
vanilla cell or a one-array state.

The toy cell: no bias, and a two-array state (H, M), M a leaky memory of H that feeds back:
    H_t = tanh(X_t W_xh + H_{t-1} W_hh + M_{t-1}),    M_t = (M_{t-1} + H_t) / 2
"""
import types

import numpy as np
import pytest

from minirnn import cells, layers
from minirnn.run import checkpoint
from minirnn.run.config import TrainConfig
from minirnn.gradcheck import gradcheck_model as gradcheck
from minirnn.model import RNNLM
from minirnn.run import fit
from minirnn.tree import leaves


def init_params(init, input_dim, num_hiddens):
    return {'W_xh': init.weight(input_dim, num_hiddens), 'W_hh': init.weight(num_hiddens, num_hiddens)}


def begin_state(batch_size, num_hiddens, xp, dtype):
    return (xp.zeros((batch_size, num_hiddens), dtype), xp.zeros((batch_size, num_hiddens), dtype))


def forward(params, X, state, *, activation='tanh'):
    XW, x_cache = layers.input_forward(X, params['W_xh'])        # (T, B, H), a gather for ids
    T = XW.shape[0]
    H = np.empty((T + 1,) + state[0].shape, XW.dtype)
    M = np.empty_like(H)
    H[0], M[0] = state
    for t in range(1, T + 1):
        H[t] = np.tanh(XW[t - 1] + H[t - 1] @ params['W_hh'] + M[t - 1])
        M[t] = (M[t - 1] + H[t]) / 2
    return H[1:], (H[T].copy(), M[T].copy()), (H, M, x_cache)


def backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None):
    H, M, x_cache = cache
    T = dHs.shape[0]
    dH_next, dM_next = (np.zeros_like(H[0]), np.zeros_like(M[0])) if dfinal_state is None \
        else (dfinal_state[0].copy(), dfinal_state[1].copy())
    dA = np.empty_like(dHs)
    for t in range(T, 0, -1):
        dH = dHs[t - 1] + dH_next + dM_next / 2          # M_t = (M_{t-1} + H_t) / 2
        if dH_out is not None:
            dH_out[t - 1] = dH
        dA[t - 1] = dH * (1 - H[t] ** 2)
        dH_next = dA[t - 1] @ params['W_hh'].T
        dM_next = dM_next / 2 + dA[t - 1]
        c = 1 if carry is None else carry[t - 1]
        dH_next, dM_next = c * dH_next, c * dM_next
    dW_hh = np.einsum('tbi,tbj->ij', H[:-1], dA)
    dX, dW_xh = layers.input_backward(dA, x_cache)
    return {'W_xh': dW_xh, 'W_hh': dW_hh}, dX, (dH_next, dM_next)


TOY = types.SimpleNamespace(ACTIVATIONS=('tanh',), INPUT_WEIGHTS=('W_xh',),
                            RECURRENT_WEIGHTS=('W_hh',), init_params=init_params,
                            begin_state=begin_state, hidden=lambda state: state[0],
                            forward=forward, backward=backward)


@pytest.fixture(autouse=True)
def toy(monkeypatch):
    monkeypatch.setitem(cells.CELLS, 'toy', cells.CELLS.get('toy'))   # restored afterwards
    cells.register('toy', TOY)


def test_an_incomplete_cell_is_refused():
    from minirnn.errors import ConfigError
    with pytest.raises(ConfigError, match='lacks backward'):
        cells.register('half', types.SimpleNamespace(**{k: 1 for k in cells.INTERFACE if k != 'backward'}))


@pytest.mark.parametrize('num_layers', [1, 2])
def test_the_toy_cell_passes_the_gradient_check(num_layers):
    rng = np.random.default_rng(0)
    model = RNNLM(6, 4, sigma=0.5, dtype='float64', cell='toy', num_layers=num_layers, seed=0)
    X, Y = rng.integers(0, 6, (3, 5)), rng.integers(0, 6, (3, 5))
    state = model.begin_state(3)
    state = tuple(a + rng.standard_normal(a.shape) * 0.3 for a in state) if num_layers == 1 else \
        tuple(tuple(a + rng.standard_normal(a.shape) * 0.3 for a in layer) for layer in state)
    rows = gradcheck(model, X, Y, state)
    names = {r['name'] for r in rows}
    assert len([n for n in names if n.startswith('state')]) == 2 * num_layers
    assert all(r['ok'] for r in rows), rows


def test_a_cell_that_casts_complex_values_to_real_is_told_so_by_the_complex_step():
    """The toy cell allocates its states in the input term's dtype: a complex W_hh would be cast
    to real there, dropping the derivative. That raises instead of giving a wrong zero; auto
    keeps the central differences' verdict, which settles every tensor here."""
    from minirnn.errors import ConfigError
    rng = np.random.default_rng(2)
    model = RNNLM(6, 4, sigma=0.5, dtype='float64', cell='toy', seed=2)
    X, Y = rng.integers(0, 6, (3, 5)), rng.integers(0, 6, (3, 5))
    with pytest.raises(ConfigError, match="cell 'toy' casts complex values to real"):
        gradcheck(model, X, Y, tensors=['W_hh'], method='complex')
    row, = gradcheck(model, X, Y, tensors=['W_xh'], method='complex')    # X W_xh is complex: it carries
    assert row['verdict'] == 'OK'
    rows = gradcheck(model, X, Y, method='auto')
    assert all(r['verdict'] == 'OK' and r['method'] == 'central' for r in rows)
    tiny = RNNLM(6, 4, sigma=1e-5, dtype='float64', cell='toy', seed=2)     # W_hh's gradient at rounding level
    row, = gradcheck(tiny, X, Y, tensors=['W_hh'], method='auto')
    assert row['verdict'] == 'INCONCLUSIVE' and 'rounding level' in row['reason']
    assert 'the complex step is unavailable' in row['reason']


def test_threads_splitting_the_batch_give_the_reference_result(monkeypatch):
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, 6, (5, 4)), rng.integers(0, 6, (5, 4))
    one = RNNLM(6, 4, sigma=0.5, dtype='float64', cell='toy', num_layers=2, seed=1, threads=1)
    two = RNNLM(6, 4, sigma=0.5, dtype='float64', cell='toy', num_layers=2, seed=1, threads=2)
    a = one.gradients(X, Y, record_steps=True)
    b = parallel.gradients(two, X, Y, record_steps=True)
    assert b.loss == pytest.approx(a.loss, rel=1e-12)
    for k in a.grads:
        np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=1e-10, atol=1e-14)
    for x, y in zip(leaves(a.state) + leaves(a.dstate) + a.dH_steps,
                    leaves(b.state) + leaves(b.dstate) + b.dH_steps):
        np.testing.assert_allclose(y, x, rtol=1e-10, atol=1e-14)


def test_the_toy_cell_trains_checkpoints_and_resumes_exactly(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    config = TrainConfig(data='timemachine', max_tokens=2000, batch_size=8, num_steps=10,
                         num_hiddens=16, cell='toy', num_layers=2, sigma=0.1, lr=1.0,
                         num_epochs=2, prefixes=('time',), num_preds=5)
    first = fit(config, tmp_path / 'a', quiet=True)
    assert first.history[-1]['train_ppl'] < first.history[0]['train_ppl'] * 1.05
    fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 4}), tmp_path / 'a', resume=True, quiet=True)
    full = fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 4}), tmp_path / 'b', quiet=True)
    resumed = checkpoint.load(tmp_path / 'a' / 'model.npz')
    assert resumed.model.cell_name == 'toy' and resumed.model.num_layers == 2
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[k], v)


def test_ctrl_c_mid_epoch_keeps_the_carried_two_array_state_of_every_layer(tmp_path, data_dir, monkeypatch, ctrl_c_after):
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    config = TrainConfig(data='timemachine', max_tokens=3000, batch_size=8, num_steps=10,
                         num_hiddens=16, cell='toy', num_layers=2, sigma=0.1, num_epochs=2,
                         dropout=0.2, prefixes=())
    full = fit(config, tmp_path / 'full', quiet=True)
    ctrl_c_after(50)   # mid epoch 2
    assert not fit(config, tmp_path / 'cut', quiet=True).finished
    saved = checkpoint.load(tmp_path / 'cut' / 'model.npz').meta['position']['progress']['state']
    assert len(saved) == 4 and np.shape(saved[0]) == (8, 16)     # (H, M) for each of 2 layers
    ctrl_c_after(None)
    fit(config, tmp_path / 'cut', resume=True, quiet=True)
    resumed = checkpoint.load(tmp_path / 'cut' / 'model.npz').model
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed.params[k], v)
