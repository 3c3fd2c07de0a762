"""Regularisation through time: variational dropout (input, output, hidden), weight drop, zoneout
and AR/TAR. What each one is (its masks, its training and evaluation forms) and the proofs the
issue asks for: a variational mask is constant through time and differs across sequences;
weight drop's masked weights get zero gradient and the rest exact; zoneout with p = 0 is the
plain cell and with p = 1 passes the state through; the gradient check covers every method
(gradsuite.DEFAULT_CASES, run by tests/test_model.py); fast == reference is in
tests/test_fast_cells.py, the GPU rules in tests/test_standin.py.
"""
import numpy as np
import pytest

import minirnn.gradcheck as gc
from minirnn import cells, parallel
from minirnn.backend import device_name, to_numpy
from minirnn.errors import ConfigError
from minirnn.initialization import Init
from minirnn.model import REGULARISATION, ModelConfig, Noise, RNNLM
from minirnn.tree import leaves, tree_map

V, H, E, B, T = 9, 5, 4, 4, 7
EVERYTHING = dict(embed_dim=E, dropout=0.2, dropout_input=0.25, dropout_output=0.3, dropout_hidden=0.3,
                  weight_drop=0.4, zoneout=0.3, ar=1.5, tar=0.7)


def model(xp=np, **options):
    """A small float64 model; the reference cells unless options say otherwise (tests read their caches)."""
    options = {'impl': 'reference', **options}
    return RNNLM(V, H, sigma=0.5, dtype='float64', device=device_name(xp), seed=2, threads=1, **options)


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def everything(cell):
    return dict(EVERYTHING, cell=cell, **({'zoneout_cell': 0.4} if cell == 'lstm' else {}))


# --- the options ------------------------------------------------------------------------------

def test_every_option_is_off_by_default_and_then_training_is_evaluation():
    config = ModelConfig()
    assert all(getattr(config, name) == 0 for name in REGULARISATION)
    assert not config.has_training_mode
    m = model()
    assert m.noise(3, B, T) is None
    X, Y = batch()
    assert m.loss(X, Y, dropout_rng=3).loss == m.loss(X, Y).loss
    for name in REGULARISATION:
        value = {'zoneout_cell': 0.5}.get(name, 0.3)
        assert ModelConfig(**{name: value, 'cell': 'lstm', 'embed_dim': 3}).has_training_mode, name


def test_with_dropout_alone_a_pass_draws_what_it_always_drew():
    """noise() draws dropout's masks first, as dropout_masks() does, and nothing more: a run
    without the new options takes the same masks and leaves the Generator where it did."""
    m = model(dropout=0.3, num_layers=2)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    noise = m.noise(a, B, T)
    legacy = m.dropout_masks(b, B, T)
    assert noise == Noise(dropout=noise.dropout)
    for x, y in zip(noise.dropout, legacy):
        np.testing.assert_array_equal(x, y)
    assert a.random() == b.random()
    X, Y = batch()
    new, old = m.gradients(X, Y, dropout_rng=5), m.gradients(X, Y, masks=m.dropout_masks(5, B, T))
    assert new.loss == old.loss and all(np.array_equal(new.grads[k], old.grads[k]) for k in new.grads)


@pytest.mark.parametrize('options, match', [
    (dict(dropout_input=0.2), 'embed_dim'),
    (dict(cell='gru', zoneout_cell=0.2), 'zoneout_cell'),
    (dict(zoneout=1.5), 'zoneout'),
    (dict(weight_drop=1.0), 'weight_drop'),
    (dict(dropout_hidden=-0.1), 'dropout_hidden'),
    (dict(ar=-1.0), 'ar'),
])
def test_bad_settings_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**options)


def test_a_cell_without_regularisers_refuses_the_ones_inside_the_recurrence(monkeypatch):
    from test_toy_cell import TOY         # a cell of one's own, written without REGULARISERS
    monkeypatch.setitem(cells.CELLS, 'toy', TOY)
    with pytest.raises(ConfigError, match='zoneout'):
        ModelConfig(cell='toy', zoneout=0.3)
    # what acts outside the cell works for any cell
    m = RNNLM(V, H, cell='toy', embed_dim=E, dropout_input=0.2, dropout_output=0.3, weight_drop=0.3,
              ar=1.0, tar=1.0, dtype='float64', seed=0, threads=1, sigma=0.5)
    X, Y = batch()
    rows = gc.gradcheck_model(m, X, Y, dropout_rng=1, max_entries=20)
    assert all(r['verdict'] == 'OK' for r in rows), gc.format_report([('toy', rows)])


def test_checkpoints_record_the_regularisers_and_older_ones_load_without_them(tmp_path):
    from minirnn.run import checkpoint
    from minirnn.text import Vocab
    vocab = Vocab(list('abcdefgh'))
    m = RNNLM(len(vocab), 4, num_layers=2, seed=0, **dict(everything('lstm'), dropout=0.1))
    checkpoint.save(tmp_path / 'm.npz', m, vocab)
    loaded = checkpoint.load(tmp_path / 'm.npz').model
    assert loaded.config() == m.config() and loaded.spec.zoneout_cell == 0.4
    # a version 3 file: no regularisers in its model settings
    arrays, meta = checkpoint.read(tmp_path / 'm.npz')
    meta['version'] = 3
    for name in REGULARISATION:
        if name != 'dropout':
            del meta['model'][name]
    import json
    np.savez(tmp_path / 'v3.npz', **arrays, meta=np.array(json.dumps(meta)))
    old = checkpoint.load(tmp_path / 'v3.npz')
    assert old.meta['version'] == checkpoint.VERSION
    assert not any(getattr(old.model.spec, n) for n in REGULARISATION if n != 'dropout')


# --- variational dropout -----------------------------------------------------------------------

def test_a_variational_mask_is_constant_through_time_and_differs_across_sequences(xp):
    m = model(xp, embed_dim=E, dropout_input=0.4, dropout_output=0.4, num_layers=2)
    X, Y = batch()
    tape = m.tape(X, Y, dropout_rng=3)
    # the output layer's input: the top layer's states through its mask, at every step
    raw = to_numpy(tape.layers[-1].cell.H[1:])                         # (T, B, H)
    dropped = to_numpy(tape.output.x).reshape(T, B, H)
    ratio = dropped / raw
    for step in range(T):
        np.testing.assert_allclose(ratio[step], ratio[0], rtol=1e-12)   # the same mask at every t
    dead = ratio[0] == 0
    assert dead.any() and (~dead).any()
    assert len({tuple(row) for row in dead}) > 1                          # sequences differ
    np.testing.assert_allclose(ratio[0][~dead], 1 / 0.6)
    # the embedded input: one (B, E) mask for every step
    embedded = to_numpy(m.params['W_emb'])[np.asarray(X).T]               # (T, B, E)
    layer0_in = to_numpy(tape.input.mask)
    assert layer0_in.shape == (B, E)
    assert len({tuple(row) for row in layer0_in}) > 1
    cell_input = to_numpy(tape.layers[0].cell.X.inner.x).reshape(T, B, E)    # what layer 0 read
    np.testing.assert_allclose(cell_input, embedded * layer0_in, rtol=1e-12)
    # another batch, other masks
    assert not np.array_equal(to_numpy(m.noise(np.random.default_rng(0), B, T).output[0]),
                              to_numpy(m.noise(np.random.default_rng(1), B, T).output[0]))


def test_the_recurrent_mask_multiplies_h_prev_at_every_step():
    """dropout_hidden: the vanilla cell's A_t = X_t W_xh + (H_{t-1} * m) W_hh + b_h, one m for all t."""
    m = model(dropout_hidden=0.5)
    X, Y = batch()
    tape = m.tape(X, Y, dropout_rng=4)
    mask = m.noise(4, B, T).hidden[0]
    assert mask.shape == (B, H) and len({tuple(row) for row in mask}) > 1
    p, Hs = m.params, tape.layers[0].cell.H
    h = np.zeros((B, H))
    for step in range(T):
        h = np.tanh(p['W_xh'][X[:, step]] + (h * mask) @ p['W_hh'] + p['b_h'])
        np.testing.assert_allclose(Hs[step + 1], h, rtol=1e-12, atol=1e-15)


# --- weight drop -------------------------------------------------------------------------------

@pytest.mark.parametrize('cell', ['rnn', 'gru', 'lstm'])
def test_weight_drop_masked_weights_get_zero_gradient_and_the_rest_is_exact(cell):
    p = 0.5
    m = model(cell=cell, weight_drop=p, num_layers=2)
    X, Y = batch()
    result = m.gradients(X, Y, dropout_rng=6)
    masks = m.noise(6, B, T).weights
    # the same pass by hand: a model without weight drop whose recurrent weights are W * M
    plain = model(cell=cell, num_layers=2)
    for layer, layer_masks in enumerate(masks):
        for name, mask in layer_masks.items():
            key = name if layer == 0 else f'{name}_l{layer}'
            assert set(np.unique(mask)) == {0, 1 / (1 - p)}
            plain.params[key] *= mask
    expected = plain.gradients(X, Y)
    assert result.loss == pytest.approx(expected.loss, rel=1e-14)
    for layer, layer_masks in enumerate(masks):
        for name, mask in layer_masks.items():
            key = name if layer == 0 else f'{name}_l{layer}'
            g = result.grads[key]
            assert np.all(g[mask == 0] == 0)                         # no gradient through a dropped entry
            assert np.abs(g[mask != 0]).min() > 0
            np.testing.assert_allclose(g, expected.grads[key] * mask, rtol=1e-12, atol=1e-16)   # scaled 1/(1-p)
    rows = gc.gradcheck_model(m, X, Y, dropout_rng=6, max_entries=None,
                              tensors=[k for k in m.params if k.startswith('W_h') and k != 'W_hq'])
    assert all(r['verdict'] == 'OK' for r in rows), gc.format_report([('weight drop', rows)])
    # evaluation uses the weights themselves (the mask's expectation is 1)
    assert m.loss(X, Y).loss == model(cell=cell, num_layers=2).loss(X, Y).loss


# --- zoneout -----------------------------------------------------------------------------------

def cell_case(name, impl, seed=0):
    cell = cells.implementation(name, impl)
    rng = np.random.default_rng(seed)
    params = cell.init_params(Init('normal', 0.5, H, rng, np, np.float64), H, H)
    params = {k: rng.standard_normal(v.shape) * 0.5 for k, v in params.items()}
    X = rng.standard_normal((T, B, H))
    state = tree_map(lambda a: rng.standard_normal(a.shape) * 0.5, cell.begin_state(B, H, np, np.float64))
    dHs = rng.standard_normal((T, B, H))
    dfinal = tree_map(lambda a: rng.standard_normal(a.shape), state)
    return cell, params, X, state, dHs, dfinal


def zone_like(state, value, evaluation=False):
    shape = (T, 1, 1) if evaluation else (T, B, H)
    return tree_map(lambda a: np.full(shape, value), state)


@pytest.mark.parametrize('evaluation', [False, True], ids=['training', 'evaluation'])
@pytest.mark.parametrize('impl', cells.IMPLS)
@pytest.mark.parametrize('name', ['rnn', 'gru', 'lstm'])
def test_zoneout_at_0_is_the_plain_cell_and_at_1_passes_the_state_through(name, impl, evaluation):
    cell, params, X, state, dHs, dfinal = cell_case(name, impl)
    Hs, final, cache = cell.forward(params, X, state)
    grads, dX, dstate = cell.backward(params, dHs, cache, dfinal)
    # p = 0: every mask entry 0 (training) or M = 0 (evaluation): the plain cell, to the last bit
    Hs0, final0, cache0 = cell.forward(params, X, state, zoneout=zone_like(state, 0.0, evaluation))
    grads0, dX0, dstate0 = cell.backward(params, dHs, cache0, dfinal)
    np.testing.assert_array_equal(Hs0, Hs)
    for a, b in zip(leaves((final0, dstate0, dX0)), leaves((final, dstate, dX))):
        np.testing.assert_array_equal(a, b)
    for k in grads:
        np.testing.assert_array_equal(grads0[k], grads[k])
    # p = 1: every unit keeps its value; nothing passes through the cell's weights
    Hs1, final1, cache1 = cell.forward(params, X, state, zoneout=zone_like(state, 1.0, evaluation))
    grads1, dX1, dstate1 = cell.backward(params, dHs, cache1, dfinal)
    hidden0 = cell.hidden(state)
    for step in range(T):
        np.testing.assert_array_equal(Hs1[step], hidden0)
    for a, b in zip(leaves(final1), leaves(state)):
        np.testing.assert_array_equal(a, b)
    assert all(not np.any(g) for g in grads1.values()) and not np.any(dX1)
    # dL/dstate: the final state's gradient, plus every step's dL/dH_t for the hidden part
    expected = tree_map(lambda d, s: d + dHs.sum(axis=0) if s is hidden0 else d, dfinal, state)
    for a, b in zip(leaves(dstate1), leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14 * np.abs(b).max())   # summed in another order


@pytest.mark.parametrize('impl', cells.IMPLS)
def test_zoneout_evaluation_is_the_expectation_of_training(impl):
    """The vanilla cell: H_t = p H_{t-1} + (1 - p) tanh(A_t) in evaluation, by hand."""
    p = 0.3
    m = model(zoneout=p, impl=impl)
    X, _ = batch()
    _, final = m.forward(X)
    w, h = m.params, np.zeros((B, H))
    for step in range(T):
        h = p * h + (1 - p) * np.tanh(w['W_xh'][X[:, step]] + h @ w['W_hh'] + w['b_h'])
    np.testing.assert_allclose(final, h, rtol=1e-12)
    # and the mean of many training passes approaches it (one step from a random state)
    state = np.random.default_rng(1).standard_normal((B, H))
    one = X[:, :1]
    samples = np.array([m.loss(one, one, state, dropout_rng=s).state for s in range(400)])
    error = np.abs(samples.mean(axis=0) - m.forward(one, state)[1])
    assert np.all(error <= 4 * samples.std(axis=0) / np.sqrt(len(samples)) + 1e-12)


@pytest.mark.parametrize('cell', ['rnn', 'gru', 'lstm'])
def test_the_evaluation_forms_gradients_pass_the_check(cell):
    m = model(**everything(cell), num_layers=2)
    X, Y = batch()
    rows = gc.gradcheck_model(m, X, Y, max_entries=25)                    # dropout_rng None: evaluation
    assert all(r['verdict'] == 'OK' for r in rows), gc.format_report([(cell, rows)])


@pytest.mark.parametrize('impl', cells.IMPLS)
def test_the_cell_level_check_covers_the_regularisers_inside_the_recurrence(impl):
    for name in ('rnn', 'gru', 'lstm'):
        rows = gc.gradcheck_cell(name, impl=impl, dropout_hidden=0.4, zoneout=0.3,
                                 zoneout_cell=0.5 if name == 'lstm' else 0.0)
        assert all(r['verdict'] == 'OK' for r in rows), gc.format_report([(name, rows)])
    with pytest.raises(ConfigError, match='zoneout_cell'):
        gc.gradcheck_cell('gru', zoneout_cell=0.3)


# --- AR/TAR ------------------------------------------------------------------------------------

def test_ar_and_tar_add_awd_lstms_terms_in_training_only():
    m = model(ar=2.0, tar=3.0, dropout_output=0.3, num_layers=2)
    X, Y = batch()
    tape = m.tape(X, Y, dropout_rng=2)
    raw = tape.layers[-1].cell.H[1:]                                       # (T, B, H), before dropout
    dropped = tape.output.x.reshape(T, B, H)
    expected = 2.0 * np.mean(dropped ** 2) + 3.0 * np.mean((raw[1:] - raw[:-1]) ** 2)
    assert float(tape.penalty) == pytest.approx(expected, rel=1e-13)
    assert m.objective(X, Y, dropout_rng=2).loss == pytest.approx(tape.loss + expected, rel=1e-14)
    assert m.loss(X, Y, dropout_rng=2).loss == tape.loss                   # the cross-entropy alone
    result = m.gradients(X, Y, dropout_rng=2)
    assert result.loss == tape.loss and float(result.penalty) == pytest.approx(expected, rel=1e-13)
    assert m.objective(X, Y).loss == m.loss(X, Y).loss                     # evaluation: no penalty
    assert m.gradients(X, Y).penalty == 0.0


def test_truncated_sweeps_add_up_to_the_whole_penalty():
    """AR's term of step t and TAR's of (t-1, t) go with step t's loss: the k1/k2 sweeps that
    cover every step with no cut add up to exact BPTT, penalty included."""
    from minirnn.truncation import regular_sweeps
    m = model(cell='lstm', ar=2.0, tar=1.0, zoneout=0.2, num_layers=2)
    X, Y = batch()
    whole = m.gradients(X, Y, dropout_rng=1)
    parts = m.gradients(X, Y, dropout_rng=1, sweeps=regular_sweeps(T, 3, T + 1))
    for k in whole.grads:
        np.testing.assert_allclose(parts.grads[k], whole.grads[k], rtol=1e-11, atol=1e-15)


# --- the thread split and the trainer ------------------------------------------------------------

@pytest.mark.parametrize('cell', ['rnn', 'lstm'])
def test_the_thread_split_equals_one_thread_with_every_regulariser(cell):
    m = RNNLM(V, 64, sigma=0.3, dtype='float64', seed=2, num_layers=2, **everything(cell))
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, V, (128, 5)), rng.integers(0, V, (128, 5))
    one = parallel.gradients(m, X, Y, dropout_rng=9, threads=1)
    two = parallel.gradients(m, X, Y, dropout_rng=9, threads=2)
    assert parallel.plan(128, 64, 2) == 2
    assert two.loss == pytest.approx(one.loss, rel=1e-12)
    assert float(two.penalty) == pytest.approx(float(one.penalty), rel=1e-12)
    for k in one.grads:
        np.testing.assert_allclose(two.grads[k], one.grads[k], rtol=1e-10, atol=1e-14)


def test_training_draws_masks_for_any_regulariser_and_resumes_exactly(tmp_path, small, saved_params):
    """AR alone gives a model a training mode, so the trainer passes the dropout Generator; a
    run with regularisers, interrupted and resumed, ends bit for bit where the whole run does."""
    from minirnn.run.config import TrainConfig
    from minirnn.run.trainer import fit
    config = TrainConfig(**dict(small, cell='lstm', num_layers=2, embed_dim=8, dropout_input=0.1,
                                dropout_output=0.2, dropout_hidden=0.1, weight_drop=0.3, zoneout=0.1,
                                zoneout_cell=0.3, ar=1.0, tar=1.0, num_epochs=2, threads=1))
    whole = fit(config, tmp_path / 'whole', quiet=True)
    assert whole.finished and all(r['train_ppl'] < 40 for r in whole.history)
    fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 1}), tmp_path / 'split', quiet=True)
    fit(config, tmp_path / 'split', resume=True, quiet=True)
    a, b = saved_params(tmp_path / 'whole'), saved_params(tmp_path / 'split')
    assert all(np.array_equal(a[k], b[k]) for k in a)
    ar_only = RNNLM(V, H, ar=1.0)
    assert ar_only.has_training_mode and ar_only.noise(0, B, T) == Noise()


def test_the_quality_benchmark_runs_the_regularised_presets_against_what_pytorch_can_train(books):
    """benchmarks/quality.py: each regularised row's PyTorch run is its unregularised preset (with
    the dropout tried), and another book scales the number of epochs, the same for both."""
    import sys
    from pathlib import Path
    from minirnn.run.config import PRESETS, make_config
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
    try:
        import quality
    finally:
        sys.path.pop(0)
    assert set(quality.ROWS) <= set(PRESETS) and {'tm-lstm2-awd', 'tm-rnn-reg'} <= set(quality.ROWS)
    for row, base in quality.TORCH_ROW.items():
        assert make_config(row).has_training_mode and make_config(row).model != make_config(base).model
        options = quality.torch_options(row, dropout=0.5)
        assert options == dict(quality.torch_options(base), dropout=0.5)
    ratio = quality.train_tokens('timemachine') / quality.train_tokens('war_of_the_worlds')
    assert 0.4 < ratio < 0.7
    assert quality.epochs_for('tm-lstm2-awd', 'war_of_the_worlds') == round(make_config('tm-lstm2-awd').num_epochs * ratio)
    assert quality.torch_options('tm-lstm2', 'war_of_the_worlds')['num_epochs'] == round(8 * ratio)
