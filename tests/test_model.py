"""RNNLM: the API contract, every gradient against finite differences, and learning behaviour."""
import math

import numpy as np
import pytest

from minirnn.gradcheck import format_report, gradcheck_model as gradcheck
from minirnn.gradsuite import DEFAULT_CASES, run_default_cases
from minirnn.backend import device_name, to_numpy
from minirnn.cells import rnn
from minirnn.errors import ConfigError
from minirnn.model import RNNLM
from minirnn.optim import SGD, clip_grad_norm, perplexity
from minirnn.tree import leaves


def data(rng, V, B, T):
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def test_params_have_the_contracted_names_and_shapes(xp):
    m = RNNLM(28, 16, device=device_name(xp), seed=0)
    assert {k: v.shape for k, v in m.params.items()} == {
        'W_xh': (28, 16), 'W_hh': (16, 16), 'b_h': (16,), 'W_hq': (16, 28), 'b_q': (28,)}
    assert all(type(v) is xp.ndarray and v.dtype == np.float32 for v in m.params.values())
    e = RNNLM(28, 16, embed_dim=8, device=device_name(xp), seed=0)
    assert {k: v.shape for k, v in e.params.items()} == {
        'W_emb': (28, 8), 'W_xh': (8, 16), 'W_hh': (16, 16), 'b_h': (16,), 'W_hq': (16, 28), 'b_q': (28,)}
    # the book's initialisation: normal * sigma, zero biases
    assert float(m.params['b_h'].sum()) == 0 and float(m.params['b_q'].sum()) == 0
    assert 0.005 < float(m.params['W_hh'].std()) < 0.015
    assert m.begin_state(3).shape == (3, 16) and float(abs(m.begin_state(3)).sum()) == 0


@pytest.mark.parametrize('cell', ['rnn', 'gru', 'lstm'])
def test_the_uniform_init_is_pytorchs_default(xp, cell):
    """init='uniform': cell and output parameters, biases too, ~ U(-1/sqrt(H), 1/sqrt(H)); W_emb ~ N(0, 1)."""
    H = 64
    m = RNNLM(28, H, embed_dim=16, num_layers=2, cell=cell, init='uniform', sigma=5.0,
              device=device_name(xp), seed=0)
    k = 1 / math.sqrt(H)
    for name, p in m.params.items():
        p = to_numpy(p)
        assert p.dtype == np.float32
        if name == 'W_emb':
            assert 0.9 < p.std() < 1.1 and abs(p.mean()) < 0.1
        else:               # sigma plays no part: every entry within the bound, spread over it
            assert np.abs(p).max() <= k and np.abs(p).max() > 0.9 * k, name
            assert abs(p.std() - k / math.sqrt(3)) < 0.25 * k, name
    assert m.config()['init'] == 'uniform'
    # the same seed gives the same start; the default stays the book's
    again = RNNLM(28, H, embed_dim=16, num_layers=2, cell=cell, init='uniform', device=device_name(xp), seed=0)
    for name, p in m.params.items():
        np.testing.assert_array_equal(to_numpy(p), to_numpy(again.params[name]))
    assert RNNLM(28, H, cell=cell, seed=0).config()['init'] == 'normal'
    with pytest.raises(ConfigError, match='init'):
        RNNLM(28, H, cell=cell, init='xavier')


def test_forward_shapes_and_the_state_carries_across_calls(xp):
    rng = np.random.default_rng(0)
    m = RNNLM(11, 7, sigma=0.3, device=device_name(xp), seed=0)
    X, _ = data(rng, 11, 2, 6)
    logits, state = m.forward(X)
    assert logits.shape == (2, 6, 11) and state.shape == (2, 7)
    # running the first 4 steps and then the last 2 from the carried state is the same
    la, sa = m.forward(X[:, :4])
    lb, sb = m.forward(X[:, 4:], sa)
    np.testing.assert_allclose(to_numpy(logits), np.concatenate([to_numpy(la), to_numpy(lb)], 1),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(state), to_numpy(sb), rtol=1e-5, atol=1e-6)


def test_loss_is_the_mean_cross_entropy_of_the_logits(xp):
    rng = np.random.default_rng(1)
    m = RNNLM(9, 5, sigma=0.5, dtype='float64', device=device_name(xp), seed=1)
    X, Y = data(rng, 9, 3, 4)
    logits = to_numpy(m.forward(X)[0])
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(logp, Y[..., None], -1).mean()
    loss, grads, state = m.loss_and_grads(X, Y)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert m.loss(X, Y)[0] == pytest.approx(expected, rel=1e-12)
    assert set(grads) == set(m.params) | {'state'}
    assert all(grads[k].shape == m.params[k].shape for k in m.params)
    assert grads['state'].shape == (3, 5)


@pytest.mark.parametrize('case', DEFAULT_CASES, ids=[c[0] for c in DEFAULT_CASES])
def test_every_gradient_matches_finite_differences(xp, case):
    """Every parameter and every state array of every default case, each judged OK."""
    _, args, batch_size, _, _ = case
    results = run_default_cases(device=device_name(xp), cases=(case,))
    (label, rows), = results
    model = RNNLM(7, args.get('num_hiddens', 6), dtype='float64',
                  **{k: v for k, v in args.items() if k not in ('sigma', 'num_hiddens')})
    names = [r['name'] for r in rows]
    assert names[:len(model.params)] == list(model.params)
    assert len(names) == len(model.params) + len(leaves(model.begin_state(batch_size)))
    bad = [(r['name'], r['verdict']) for r in rows if r['verdict'] != 'OK']
    assert not bad, format_report(results)


def test_large_tensors_are_sampled_with_a_seed(xp):
    rng = np.random.default_rng(5)
    m = RNNLM(30, 20, sigma=0.3, dtype='float64', device=device_name(xp), seed=5)
    X, Y = data(rng, 30, 2, 3)
    rows = gradcheck(m, X, Y, max_entries=25, seed=3)
    assert {r['name']: r['checked'] for r in rows}['W_hh'] == 25
    assert all(r['ok'] for r in rows)


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    real_backward = rnn.backward

    def off_by_one_percent(params, dHs, cache, dfinal_state=None, **options):
        grads, dXW, dh0 = real_backward(params, dHs, cache, dfinal_state, **options)
        grads['W_hh'] = grads['W_hh'] * 1.01
        return grads, dXW, dh0
    monkeypatch.setattr(rnn, 'backward', off_by_one_percent)
    (label, rows), = run_default_cases(cases=(DEFAULT_CASES[0],))
    failed = {r['name'] for r in rows if not r['ok']}
    assert failed == {'W_hh'}
    assert 'FAIL' in format_report([(label, rows)])


def test_gradcheck_refuses_float32():
    m = RNNLM(5, 3, seed=0)
    with pytest.raises(ConfigError, match='float64'):
        gradcheck(m, np.zeros((1, 2), int), np.zeros((1, 2), int))


def test_loss_at_initialisation_is_close_to_log_v(xp):
    rng = np.random.default_rng(2)
    m = RNNLM(28, 64, device=device_name(xp), seed=2)   # the book's sigma = 0.01
    X, Y = data(rng, 28, 8, 10)
    loss, _, _ = m.loss_and_grads(X, Y)
    assert abs(loss - np.log(28)) < 0.01


def test_float32_and_float64_agree_to_float32_precision(xp):
    rng = np.random.default_rng(3)
    X, Y = data(rng, 12, 4, 6)
    m32 = RNNLM(12, 10, sigma=0.3, dtype='float32', device=device_name(xp), seed=4)
    m64 = RNNLM(12, 10, sigma=0.3, dtype='float64', device=device_name(xp), seed=4)
    l32, g32, _ = m32.loss_and_grads(X, Y)
    l64, g64, _ = m64.loss_and_grads(X, Y)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for k in g64:
        np.testing.assert_allclose(to_numpy(g32[k]), to_numpy(g64[k]), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize('kwargs', [{}, {'activation': 'relu'}, {'embed_dim': 8}],
                         ids=['tanh', 'relu', 'embedding'])
def test_memorises_a_repeated_string(xp, kwargs):
    # "hello world " repeated: every next character is determined by the last few
    text = 'hello world ' * 20
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text])
    X = np.stack([ids[i:i + 24] for i in range(0, 192, 24)])          # (8, 24)
    Y = np.stack([ids[i + 1:i + 25] for i in range(0, 192, 24)])
    m = RNNLM(len(chars), 32, sigma=0.1, device=device_name(xp), seed=0, **kwargs)
    opt = SGD(lr=1.0)
    start = perplexity(m.loss(X, Y)[0])
    for _ in range(300):
        loss, grads, _ = m.loss_and_grads(X, Y)
        clip_grad_norm(grads, 1.0)
        opt.step(m.params, grads)
    end = perplexity(m.loss(X, Y)[0])
    assert start > 5 and end < 1.1


@pytest.mark.parametrize('kwargs, match', [
    ({'vocab_size': 0}, 'vocab_size'), ({'num_hiddens': -1}, 'num_hiddens'),
    ({'num_hiddens': 2.5}, 'num_hiddens'), ({'activation': 'sigmoid'}, 'activation'),
    ({'dtype': 'float16'}, 'dtype'), ({'embed_dim': 0}, 'embed_dim'), ({'sigma': 0}, 'sigma'),
    ({'device': 'tpu'}, 'device'), ({'cell': 'transformer'}, 'cell')])
def test_bad_constructor_arguments_are_config_errors(kwargs, match):
    args = {'vocab_size': 5, 'num_hiddens': 3, **kwargs}
    with pytest.raises(ConfigError, match=match):
        RNNLM(args.pop('vocab_size'), args.pop('num_hiddens'), **args)


def test_a_state_of_the_wrong_shape_is_refused():
    m = RNNLM(5, 3, seed=0)
    with pytest.raises(ConfigError, match='state'):
        m.forward(np.zeros((2, 4), int), np.zeros((3, 3)))


@pytest.mark.parametrize('X, Y', [([[0, 5]], [[1, 2]]), ([[0, -1]], [[1, 2]]),
                                  ([[0, 1]], [[1, 5]]), ([[0, 1]], [[-1, 2]])])
def test_token_ids_outside_the_vocabulary_are_refused(X, Y):
    # NumPy's gather would raise IndexError on some of these and wrap others; CuPy wraps all
    m = RNNLM(5, 3, seed=0)
    with pytest.raises(ConfigError, match=r'\[0, 5\)'):
        m.loss_and_grads(X, Y)
    with pytest.raises(ConfigError, match=r'\[0, 5\)'):
        m.loss(X, Y)


def test_y_must_match_x():
    with pytest.raises(ConfigError, match='shape of X'):
        RNNLM(5, 3, seed=0).loss(np.zeros((2, 4), int), np.zeros((2, 3), int))


def test_cpu_and_gpu_agree(xp):
    """The same model on NumPy and on the GPU module (the stand-in, or real CuPy)."""
    if xp is np:
        pytest.skip('compares NumPy with a GPU module')
    rng = np.random.default_rng(6)
    X, Y = data(rng, 28, 4, 7)
    state = rng.standard_normal((4, 16)) * 0.1
    cpu = RNNLM(28, 16, sigma=0.2, dtype='float64', device='cpu', seed=6)
    gpu = RNNLM(28, 16, sigma=0.2, dtype='float64', device='gpu', seed=6)
    lc, gcpu, sc = cpu.loss_and_grads(X, Y, state)
    lg, ggpu, sg = gpu.loss_and_grads(X, Y, state)
    assert lc == pytest.approx(lg, rel=1e-10)
    np.testing.assert_allclose(to_numpy(cpu.forward(X, state)[0]), to_numpy(gpu.forward(X, state)[0]),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(sc), to_numpy(sg), rtol=1e-10, atol=1e-12)
    for k in gcpu:
        np.testing.assert_allclose(to_numpy(gcpu[k]), to_numpy(ggpu[k]), rtol=1e-8, atol=1e-12)


def test_deeper_layers_are_named_with_a_layer_suffix(xp):
    m = RNNLM(11, 6, num_layers=3, embed_dim=4, device=device_name(xp), seed=0)
    assert {k: v.shape for k, v in m.params.items()} == {
        'W_emb': (11, 4), 'W_xh': (4, 6), 'W_hh': (6, 6), 'b_h': (6,),
        'W_xh_l1': (6, 6), 'W_hh_l1': (6, 6), 'b_h_l1': (6,),
        'W_xh_l2': (6, 6), 'W_hh_l2': (6, 6), 'b_h_l2': (6,), 'W_hq': (6, 11), 'b_q': (11,)}
    state = m.begin_state(2)
    assert isinstance(state, tuple) and len(state) == 3 and all(s.shape == (2, 6) for s in state)
    _, final = m.forward(np.zeros((2, 3), int))
    assert len(final) == 3


def test_one_layer_keeps_the_books_seeded_initialisation():
    # adding layers must not change what a seed gives the one-layer model
    one = RNNLM(9, 5, seed=3)
    two = RNNLM(9, 5, seed=3, num_layers=2)
    for k in ('W_xh', 'W_hh'):
        np.testing.assert_array_equal(one.params[k], two.params[k])


@pytest.mark.parametrize('kwargs', [dict(num_layers=2), dict(num_layers=2, dropout=0.4),
                                    dict(num_layers=3, dropout=0.3, embed_dim=3, activation='relu')],
                         ids=['two layers', 'two layers, dropout', 'three layers, dropout, embedding, relu'])
def test_deep_stacks_match_finite_differences_with_a_fixed_dropout_mask(xp, kwargs):
    from minirnn.gradcheck import numerical_gradient
    from minirnn.tree import leaves
    rng = np.random.default_rng(4)
    m = RNNLM(7, 5, sigma=0.5, dtype='float64', device=device_name(xp), seed=4, **kwargs)
    X, Y = data(rng, 7, 3, 4)
    state = tuple(xp.asarray(rng.standard_normal((3, 5)) * 0.5) for _ in range(m.num_layers))
    result = m.gradients(X, Y, state, dropout_rng=11)      # an int seed: the same masks every call

    def f():
        return m.loss(X, Y, state, dropout_rng=11).loss
    checked = [(result.grads[k], p) for k, p in m.params.items()]
    checked += list(zip(leaves(result.dstate), leaves(state)))
    for analytic, x in checked:
        a = to_numpy(analytic).reshape(-1)
        n = numerical_gradient(f, x, np.arange(x.size))
        # the error against the tensor's scale: a tiny entry's own relative error is rounding
        assert np.abs(a - n).max() <= 1e-6 * np.abs(a).max()


def test_dropout_applies_in_training_only_and_keeps_the_expectation():
    rng = np.random.default_rng(5)
    m = RNNLM(7, 64, sigma=0.3, dropout=0.5, seed=5, dtype='float64')
    X, Y = data(rng, 7, 16, 8)
    plain = m.loss(X, Y).loss
    assert m.loss(X, Y, dropout_rng=None).loss == plain               # evaluation: no dropout
    assert m.loss(X, Y, dropout_rng=1).loss != plain
    assert m.loss(X, Y, dropout_rng=1).loss == m.loss(X, Y, dropout_rng=1).loss
    from minirnn.layers import dropout_mask
    mask = dropout_mask(np.random.default_rng(0), (200, 300), 0.3, np.dtype('float32'))
    assert abs((mask == 0).mean() - 0.3) < 0.01 and abs(mask.mean() - 1) < 0.01
    assert set(np.unique(mask)) == {0, np.float32(1 / 0.7)}


def test_gradients_names_its_result_and_keeps_the_state_out_of_grads():
    rng = np.random.default_rng(7)
    m = RNNLM(9, 4, sigma=0.3, dtype='float64', seed=7)
    X, Y = data(rng, 9, 2, 3)
    result = m.gradients(X, Y, record_steps=True)
    assert set(result.grads) == set(m.params)
    assert result.dstate.shape == (2, 4) and result.state.shape == (2, 4)
    assert [d.shape for d in result.dH_steps] == [(3, 2, 4)]
    loss, grads, state = m.loss_and_grads(X, Y)
    assert loss == result.loss and set(grads) == set(m.params) | {'state'}
    np.testing.assert_array_equal(grads['state'], result.dstate)


def test_a_gradient_entering_through_the_final_state_is_backpropagated():
    """d/dθ [L + sum(final_state * G)] equals gradients(..., dfinal_state=G)."""
    from minirnn.gradcheck import numerical_gradient, relative_error
    rng = np.random.default_rng(8)
    m = RNNLM(6, 4, sigma=0.5, dtype='float64', seed=8, num_layers=2)
    X, Y = data(rng, 6, 2, 3)
    G = tuple(rng.standard_normal((2, 4)) for _ in range(2))
    result = m.gradients(X, Y, dfinal_state=G)

    def f():
        loss, final = m.loss(X, Y)
        return loss + sum(float((s * g).sum()) for s, g in zip(final, G))
    for k, p in m.params.items():
        err = relative_error(result.grads[k].reshape(-1), numerical_gradient(f, p, np.arange(p.size)))
        assert err.max() < 1e-6, k


def test_one_schema_for_a_model_its_training_configuration_checkpoint_and_options():
    """ModelConfig is declared once: the training configuration's first fields, what a model and
    its checkpoint store, and one option per field (its help text the field's) in every command
    that builds a model."""
    import dataclasses
    from minirnn import cli
    from minirnn.model import ModelConfig
    from minirnn.run.config import TrainConfig
    fields = dataclasses.fields(ModelConfig)
    names = [f.name for f in fields]
    assert [f.name for f in dataclasses.fields(TrainConfig)][:len(names)] == names
    assert TrainConfig(cell='gru', dropout=0.2).model == ModelConfig(cell='gru', dropout=0.2)
    model = RNNLM.from_config(5, TrainConfig(cell='lstm', num_hiddens=4, init='uniform'), seed=0)
    assert set(model.config()) == {'vocab_size', *names} and model.spec == ModelConfig(
        cell='lstm', num_hiddens=4, init='uniform')
    parser = cli.build_parser('minirnn')
    for command, skip in (('train', ()), ('bench', ()), ('gradcheck', ('dtype',)), ('probe', ('dtype',))):
        options = {a.dest: a for a in parser.commands[command]._actions}
        for field in fields:
            if field.name not in skip:
                assert field.metadata['help'] in options[field.name].help, (command, field.name)
    with pytest.raises(ConfigError, match='dropout'):
        ModelConfig(dropout=1.0)


def test_tape_at_is_the_forward_pass_at_given_parameters_and_carries_complex_steps():
    """Real parameters give loss()'s loss to the bit; a complex step on a parameter or the state
    gives its derivative as Im(loss) / h, on the reference cells; the fast paths refuse it."""
    rng = np.random.default_rng(9)
    m = RNNLM(7, 4, sigma=0.5, dtype='float64', seed=9, num_layers=2, embed_dim=3, dropout=0.3,
              impl='reference')
    X, Y = data(rng, 7, 2, 5)
    state = tuple(rng.standard_normal((2, 4)) for _ in range(2))
    tape = m.tape_at(dict(m.params), X, Y, state, dropout_rng=3)
    assert isinstance(tape.loss, float) and tape.loss == m.loss(X, Y, state, dropout_rng=3).loss
    result = m.gradients(X, Y, state, dropout_rng=3)
    h = 1e-20
    for name in ('W_emb', 'W_hh_l1', 'b_q'):
        z = m.params[name].astype(np.complex128)
        z.reshape(-1)[1] += 1j * h
        loss = m.tape_at({**m.params, name: z}, X, Y, state, dropout_rng=3).loss
        assert isinstance(loss, complex) and loss.real == pytest.approx(tape.loss, rel=1e-15)
        assert loss.imag / h == pytest.approx(result.grads[name].reshape(-1)[1], rel=1e-12), name
    z = state[0].astype(np.complex128)
    z[1, 2] += 1j * h
    loss = m.tape_at(None, X, Y, (z, state[1]), dropout_rng=3).loss
    assert loss.imag / h == pytest.approx(result.dstate[0][1, 2], rel=1e-12)
    fast = m.converted(impl='fast')
    with pytest.raises(ConfigError, match='reference cells'):
        fast.tape_at({**m.params, 'b_q': m.params['b_q'].astype(np.complex128)}, X, Y)
    assert fast.tape_at(None, X, Y).loss == pytest.approx(m.loss(X, Y).loss, rel=1e-13)   # real: fine
    with pytest.raises(ConfigError, match='keys'):
        m.tape_at({'W_hq': m.params['W_hq']}, X, Y)
    with pytest.raises(ConfigError, match='shape'):
        m.tape_at({**m.params, 'b_q': np.zeros(3)}, X, Y)
