"""The gated cells (gru, lstm) beyond the generic cell tests: their gradients against torch
autograd on the book's equations, whole models of them (one and two layers, with and without
dropout) against finite differences, and an LSTM stack trained, resumed and used by the CLI."""
import json

import numpy as np
import pytest

from minirnn.initialization import Init
from minirnn import cli
from minirnn.run import checkpoint
from minirnn.cells import IMPLS, implementation
from minirnn.run.config import TrainConfig
from minirnn.gradcheck import numerical_gradient
from minirnn.model import RNNLM
from minirnn.run import fit
from minirnn.tree import leaves, tree_map

T, B, H, D = 6, 3, 4, 5


# --- an independent check: the book's equations in torch, differentiated by autograd ----------

def _torch_layer(torch, name, p, X, state, carry):
    """One layer of the book's cell over the sequence X (T, B, D), on torch tensors.

    carry[t-1] scales the gradient flowing from step t back into the state it reads: the
    value x * c + x.detach() * (1 - c) is x, and its gradient is c times x's.
    """
    def scaled(x, c):
        return x if c == 1 else x * c + x.detach() * (1 - c)
    outputs = []
    for t in range(X.shape[0]):
        x = X[t]
        if name == 'gru':
            h = scaled(state, carry[t])
            Z = torch.sigmoid(x @ p['W_xz'] + h @ p['W_hz'] + p['b_z'])
            R = torch.sigmoid(x @ p['W_xr'] + h @ p['W_hr'] + p['b_r'])
            H_tilda = torch.tanh(x @ p['W_xh'] + (R * h) @ p['W_hh'] + p['b_h'])
            state = Z * h + (1 - Z) * H_tilda
            outputs.append(state)
        else:
            h, c = scaled(state[0], carry[t]), scaled(state[1], carry[t])
            I = torch.sigmoid(x @ p['W_xi'] + h @ p['W_hi'] + p['b_i'])
            F = torch.sigmoid(x @ p['W_xf'] + h @ p['W_hf'] + p['b_f'])
            O = torch.sigmoid(x @ p['W_xo'] + h @ p['W_ho'] + p['b_o'])
            C_tilda = torch.tanh(x @ p['W_xc'] + h @ p['W_hc'] + p['b_c'])
            c = F * c + I * C_tilda
            state = (O * torch.tanh(c), c)
            outputs.append(state[0])
    return torch.stack(outputs), state


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('name', ['gru', 'lstm'])
@pytest.mark.parametrize('carry', [None, [1.0, 0.5, 1.0, 0.0, 2.0, 1.0]], ids=['no carry', 'carry'])
def test_bptt_equals_torch_autograd_on_the_books_equations(name, carry, impl):
    """The cell (its input terms included) against torch autograd, float64, every gradient:
    the parameters (input weights included), the input X, every component of the initial
    state, with gradients entering at every step and through the final state."""
    torch = pytest.importorskip('torch')
    cell = implementation(name, impl)
    rng = np.random.default_rng(0)
    params = cell.init_params(Init('normal', 0.5, H, rng, np, np.float64), D, H)
    params = {k: v + rng.standard_normal(v.shape) * 0.3 if v.ndim == 1 else v for k, v in params.items()}
    X = rng.standard_normal((T, B, D))
    state = tree_map(lambda a: rng.standard_normal(a.shape) * 0.5, cell.begin_state(B, H, np, np.float64))
    dHs = rng.standard_normal((T, B, H))
    dfinal = tree_map(lambda a: rng.standard_normal(a.shape), state)

    # minirnn: the cell's forward and backward
    Hs, final, cache = cell.forward(params, X, state)
    grads, dX, dstate = cell.backward(params, dHs, cache, dfinal, carry=carry)

    # torch: the same equations, autograd
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tX = torch.tensor(X, requires_grad=True)
    tstate = tree_map(lambda a: torch.tensor(a, requires_grad=True), state)
    tHs, tfinal = _torch_layer(torch, name, tp, tX, tstate, carry or [1.0] * T)
    f = (tHs * torch.tensor(dHs)).sum()
    f = f + sum((a * torch.tensor(g)).sum() for a, g in zip(leaves(tfinal), leaves(dfinal)))
    f.backward()

    np.testing.assert_allclose(Hs, tHs.detach().numpy(), rtol=1e-12, atol=1e-12)
    for got, want in zip(leaves(final), leaves(tfinal)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert set(grads) == set(params)
    for k in params:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(dX, tX.grad.numpy(), rtol=1e-10, atol=1e-12)
    for got, want in zip(leaves(dstate), leaves(tstate)):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-10, atol=1e-12)


# --- whole models of gated cells against finite differences ----------------------------------

@pytest.mark.parametrize('name', ['gru', 'lstm'])
@pytest.mark.parametrize('num_layers, dropout', [(1, 0.0), (1, 0.3), (2, 0.0), (2, 0.3)],
                         ids=['one layer', 'one layer, dropout', 'two layers', 'two layers, dropout'])
def test_models_of_gated_cells_match_finite_differences(name, num_layers, dropout):
    """Every parameter and every state component of every layer, with a fixed dropout mask
    (an int dropout_rng) and a gradient entering through the final state too."""
    rng = np.random.default_rng(4)
    m = RNNLM(7, 5, sigma=0.5, dtype='float64', seed=4, cell=name, num_layers=num_layers,
              dropout=dropout)
    for k, v in m.params.items():           # biases start at zero: move them off it
        if v.ndim == 1:
            v += rng.standard_normal(v.shape) * 0.3
    X, Y = rng.integers(0, 7, (3, 4)), rng.integers(0, 7, (3, 4))
    state = tree_map(lambda a: rng.standard_normal(a.shape) * 0.5, m.begin_state(3))
    G = tree_map(lambda a: rng.standard_normal(a.shape), state)
    drop = 11 if dropout else None                        # an int seed: the same masks every call
    result = m.gradients(X, Y, state, dropout_rng=drop, dfinal_state=G)

    def f():
        loss, final = m.loss(X, Y, state, dropout_rng=drop)
        return loss + sum(float((s * g).sum()) for s, g in zip(leaves(final), leaves(G)))
    checked = [(k, result.grads[k], p) for k, p in m.params.items()]
    checked += [(f'state[{i}]', d, s) for i, (d, s) in enumerate(zip(leaves(result.dstate), leaves(state)))]
    assert len(leaves(state)) == num_layers * (2 if name == 'lstm' else 1)
    for label, analytic, x in checked:
        a = analytic.reshape(-1)
        n = numerical_gradient(f, x, np.arange(x.size))
        # the error against the tensor's scale: a tiny entry's own relative error is rounding
        assert np.abs(a - n).max() <= 1e-6 * np.abs(a).max(), label


def test_gated_parameter_names_follow_the_book_and_the_layer_suffix():
    m = RNNLM(11, 6, cell='lstm', num_layers=2, seed=0)
    gates = ('i', 'f', 'o', 'c')
    expected = {f'{w}{g}' for g in gates for w in ('W_x', 'W_h', 'b_')}
    assert set(m.params) == expected | {f'{k}_l1' for k in expected} | {'W_hq', 'b_q'}
    assert m.params['W_xi'].shape == (11, 6) and m.params['W_xi_l1'].shape == (6, 6)
    g = RNNLM(11, 6, cell='gru', seed=0)
    assert list(g.params) == ['W_xz', 'W_hz', 'b_z', 'W_xr', 'W_hr', 'b_r', 'W_xh', 'W_hh', 'b_h',
                              'W_hq', 'b_q']
    # the book's initialisation: zero biases, N(0, sigma^2) weights
    assert all(float(abs(v).sum()) == 0 for k, v in g.params.items() if k.startswith('b_'))
    H0, C0 = m.begin_state(2)[1]
    assert H0.shape == C0.shape == (2, 6)


# --- an LSTM stack end to end: train with the carried (H, C) per layer, resume, CLI -----------

def test_a_two_layer_lstm_with_dropout_trains_resumes_exactly_and_serves_the_cli(
        tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    config = TrainConfig(data='timemachine', max_tokens=2000, batch_size=8, num_steps=10,
                         num_hiddens=16, cell='lstm', num_layers=2, dropout=0.2, sigma=0.1,
                         lr=2.0, num_epochs=2, sampler='sequential', prefixes=(), num_preds=5)
    four = TrainConfig(**{**config.to_dict(), 'num_epochs': 4})
    fit(config, tmp_path / 'a', quiet=True)
    fit(four, tmp_path / 'a', resume=True, quiet=True)
    full = fit(four, tmp_path / 'b', quiet=True)
    assert full.history[-1]['train_ppl'] < full.history[0]['train_ppl']
    resumed = checkpoint.load(tmp_path / 'a' / 'model.npz')
    assert resumed.model.cell_name == 'lstm' and resumed.model.num_layers == 2
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[k], v)
    assert [r['train_ppl'] for r in resumed.meta['history']] == [r['train_ppl'] for r in full.history]

    ckpt = str(tmp_path / 'a' / 'model.npz')
    assert cli.main(['generate', '--checkpoint', ckpt, '--prefix', 'the time', '--num-preds', '12']) == 0
    out = capsys.readouterr().out.rstrip('\n')        # a young model may continue with spaces
    assert out.startswith('the time') and len(out) == len('the time') + 12
    assert cli.main(['eval', '--checkpoint', ckpt, '--data', 'timemachine', '--max-tokens', '3000']) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report['tokens'] == 3000 and 1 < report['perplexity'] < 28


def test_presets_are_the_books_gated_and_deep_runs():
    from minirnn.run.config import make_config

    def settings(name):
        c = make_config(name)
        return (c.cell, c.num_layers, c.num_hiddens, c.batch_size, c.num_steps, c.lr, c.num_epochs,
                c.clip, c.sampler, c.max_tokens)
    assert settings('d2l-v1-gru') == ('gru', 1, 256, 32, 35, 1.0, 500, 1.0, 'sequential', 10000)
    assert settings('d2l-v1-lstm') == ('lstm', 1, 256, 32, 35, 1.0, 500, 1.0, 'sequential', 10000)
    assert settings('d2l-v1-deep') == ('lstm', 2, 256, 32, 35, 2.0, 500, 1.0, 'sequential', 10000)
    assert settings('d2l-v2-gru') == ('gru', 1, 32, 1024, 32, 4.0, 50, 1.0, 'windows', None)
    assert settings('d2l-v2-lstm') == ('lstm', 1, 32, 1024, 32, 4.0, 50, 1.0, 'windows', None)
    assert settings('d2l-v2-deep') == ('rnn', 2, 32, 1024, 32, 2.0, 100, 1.0, 'windows', None)
    assert (make_config('d2l-v2-gru').num_train_windows, make_config('d2l-v2-gru').num_val_windows) == (10000, 5000)
    assert make_config('d2l-v1-gru').sigma == 0.01 and make_config('d2l-v1-deep').sigma == 0.036
    assert make_config('d2l-v1') == make_config()        # the plain presets are unchanged
    assert make_config('d2l-v1').num_hiddens == 512 and make_config('d2l-v1').cell == 'rnn'


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_the_gate_sigmoid_is_the_logistic_function_without_overflow_warnings(dtype):
    import warnings
    from minirnn.cells.fast.gates import sigmoid_of_negated_
    from minirnn.cells.sigmoid import sigmoid
    A = np.concatenate([np.linspace(-30, 30, 601), [-1e4, -200, -89, 89, 200, 1e4]]).astype(dtype)
    S = -A
    with warnings.catch_warnings():
        warnings.simplefilter('error')                   # an overflow warning fails the test
        out = sigmoid_of_negated_(S)
    assert out is S                                      # in place
    want = 1 / (1 + np.exp(-A.astype(np.float64).clip(-700, 700)))
    np.testing.assert_allclose(out, want, rtol=1e-6 if dtype == 'float32' else 1e-14, atol=1e-30)
    assert out[-1] == 1 and out[-6] < 1e-34              # saturates cleanly at both ends
    # a view is changed in place, its neighbours are not
    block = np.zeros((2, 6), dtype)
    sigmoid_of_negated_(block[:, :3])
    assert (block[:, :3] == 0.5).all() and (block[:, 3:] == 0).all()
    # the references' sigmoid: the same function, never an overflow either
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        reference = sigmoid(A)
    np.testing.assert_allclose(reference, want, rtol=1e-6 if dtype == 'float32' else 1e-14, atol=1e-30)
    assert reference.dtype == A.dtype
