"""The probe's per-step numbers against finite differences of the forward pass alone, for every cell."""
import numpy as np
import pytest

from minirnn.cells import CELLS
from minirnn.model import RNNLM
from minirnn.probe import probe, spectra
from minirnn.tree import leaves, unflatten

BUILTIN = [name for name in CELLS if name in ('rnn', 'gru', 'lstm')]
V, H, B, T = 6, 3, 2, 4


def setup(cell, seed=0, sigma=0.6):
    rng = np.random.default_rng(seed)
    m = RNNLM(V, H, sigma=sigma, dtype='float64', seed=seed, cell=cell, threads=1)
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    return m, X, Y


def nudged(model, state, b, i, h):
    """The state with its hidden part's entry [b, i] moved by h (the rest, e.g. an LSTM's C, kept)."""
    target = model.cell.hidden(state)
    flat = [a.copy() for a in leaves(state)]
    k = [j for j, a in enumerate(leaves(state)) if a is target][0]
    flat[k][b, i] += h
    return unflatten(state, flat)


def last_step_loss(model, X, Y, t, state):
    """l_T: the mean cross-entropy of the last step, running steps t+1..T from `state`."""
    if t < T:
        z = model.forward(X[:, t:], state)[0][:, -1, :]
    else:                      # the state after the last step: only the output layer is left
        z = model.cell.hidden(state) @ model.params['W_hq'] + model.params['b_q']
    logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    return -logp[np.arange(B), Y[:, -1]].mean()


@pytest.mark.parametrize('cell', BUILTIN)
def test_per_step_gradients_and_jacobians_match_finite_differences(cell):
    m, X, Y = setup(cell)
    result = probe(m, X, Y, jacobian_probes=H)        # probes >= H: the exact Jacobian
    layer = result['layers'][0]
    assert result['jacobian'] == 'exact' and layer['distance'] == [3, 2, 1, 0]
    h = 1e-6
    for t in range(1, T + 1):
        _, state = m.forward(X[:, :t])                 # the state after step t
        grad = np.zeros((B, H))
        J = np.zeros((B, H, H))                        # J[b, i, :] = d H_T[b] / d H_t[b, i]
        for b in range(B):
            for i in range(H):
                up, down = nudged(m, state, b, i, h), nudged(m, state, b, i, -h)
                grad[b, i] = (last_step_loss(m, X, Y, t, up) - last_step_loss(m, X, Y, t, down)) / (2 * h)
                if t < T:
                    hi = m.cell.hidden(m.forward(X[:, t:], up)[1])[b]
                    lo = m.cell.hidden(m.forward(X[:, t:], down)[1])[b]
                    J[b, i] = (hi - lo) / (2 * h)
                else:
                    J[b, i, i] = 1
        assert layer['grad_norm_last'][t - 1] == pytest.approx(np.linalg.norm(grad), rel=1e-6, abs=1e-12)
        gain = np.sqrt((J ** 2).sum(axis=(1, 2)).mean() / H)
        assert layer['jacobian_gain'][t - 1] == pytest.approx(gain, rel=1e-6)


def test_the_random_jacobian_estimate_approaches_the_exact_value():
    m, X, Y = setup('rnn', seed=1)
    exact = probe(m, X, Y, jacobian_probes=H)['layers'][0]['jacobian_gain']
    estimate = probe(m, X, Y, jacobian_probes=2000, seed=3)['layers'][0]['jacobian_gain']
    np.testing.assert_allclose(estimate, exact, rtol=0.1)


@pytest.mark.parametrize('cell', ['rnn', 'gru', 'lstm'])
def test_full_loss_norms_are_what_the_backward_pass_records(cell):
    m, X, Y = setup(cell, seed=2)
    m2 = RNNLM(V, H, sigma=0.6, dtype='float64', seed=2, num_layers=2, threads=1, cell=cell)
    for model in (m, m2):
        result = probe(model, X, Y)
        dH = model.gradients(X, Y, record_steps=True).dH_steps
        for layer, d in zip(result['layers'], dH):
            np.testing.assert_allclose(layer['grad_norm_full'], np.linalg.norm(d.reshape(T, -1), axis=1))
            assert layer['grad_ratio_first_last'] == pytest.approx(layer['grad_norm_full'][0] / layer['grad_norm_full'][-1])


def test_the_books_init_vanishes_and_a_large_one_explodes():
    rng = np.random.default_rng(4)
    X, Y = rng.integers(0, 28, (4, 35)), rng.integers(0, 28, (4, 35))
    small = probe(RNNLM(28, 32, sigma=0.01, dtype='float64', seed=4), X, Y)['layers'][0]
    large = probe(RNNLM(28, 32, sigma=0.5, dtype='float64', seed=4), X, Y)['layers'][0]
    # 34 steps from the loss: sigma=0.01 has spectral radius ~0.06, so ~0.06^34
    assert small['grad_norm_last'][0] < 1e-20 * small['grad_norm_last'][-1]
    assert large['grad_norm_last'][0] > large['grad_norm_last'][-1]
    assert small['recurrent_weights']['W_hh']['spectral_radius'] < 0.1 < 1 < \
        large['recurrent_weights']['W_hh']['spectral_radius']


def test_spectra_of_every_recurrent_weight_of_every_layer():
    m = RNNLM(V, 5, seed=5, num_layers=2, sigma=0.3)
    got = spectra(m)
    assert set(got) == {'W_hh', 'W_hh_l1'}
    W = m.params['W_hh_l1'].astype(np.float64)
    assert got['W_hh_l1']['spectral_radius'] == pytest.approx(np.abs(np.linalg.eigvals(W)).max())
    assert got['W_hh_l1']['max_singular_value'] == pytest.approx(np.linalg.svd(W, compute_uv=False)[0])
    assert got['W_hh']['spectral_radius'] <= got['W_hh']['max_singular_value'] + 1e-12


def test_cli_probe_of_two_checkpoints_prints_two_json_lines_and_draws_one_png(tmp_path, data_dir, monkeypatch, capsys):
    import json
    from minirnn.cli import main
    from minirnn.run.config import TrainConfig
    from minirnn.run import fit
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    paths = []
    for cell, layers in (('rnn', 1), ('rnn', 2)):
        config = TrainConfig(max_tokens=2000, batch_size=4, num_steps=8, num_hiddens=8, num_epochs=1,
                             cell=cell, num_layers=layers, prefixes=())
        fit(config, tmp_path / f'{cell}{layers}', quiet=True)
        paths.append(str(tmp_path / f'{cell}{layers}' / 'model.npz'))
    png = tmp_path / 'flow.png'
    assert main(['probe', '--checkpoint', *paths, '--batch-size', '3', '--num-steps', '6',
                 '--plot', str(png)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r['label'] for r in lines] == paths and [r['num_layers'] for r in lines] == [1, 2]
    assert all(len(layer['grad_norm_full']) == 6 for r in lines for layer in r['layers'])
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_cli_probe_of_a_fresh_model_and_a_batch_too_long_for_the_text(tmp_path, data_dir, monkeypatch, capsys):
    import json
    from minirnn.cli import main
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    assert main(['probe', '--cell', 'rnn', '--num-hiddens', '8', '--num-steps', '5', '--batch-size', '2',
                 '--sigma', '0.5', '--plot', str(tmp_path / 'p.png')]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['layers'][0]['recurrent_weights']['W_hh']['spectral_radius'] > 0
    text = tmp_path / 'short.txt'
    text.write_text('a tiny text')
    assert main(['probe', '--data', str(text), '--num-steps', '50', '--plot', str(tmp_path / 'q.png')]) == 1
    assert 'too few' in capsys.readouterr().err


@pytest.mark.parametrize('cell', ['rnn', 'lstm'])
def test_a_fresh_probe_reads_the_reference_cells_and_the_fast_path_gives_the_same_flow(cell, data_dir, monkeypatch):
    from minirnn.probe import probe_batch
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    options = dict(cell=cell, num_hiddens=6, sigma=0.3)
    (_, reference, X, Y), = probe_batch(batch_size=3, num_steps=7, model_options=options)
    (_, fast, X2, Y2), = probe_batch(batch_size=3, num_steps=7, model_options={**options, 'impl': 'fast'})
    assert reference.impl == 'reference' and fast.impl == 'fast'
    assert np.array_equal(X, X2) and np.array_equal(Y, Y2)
    a, b = probe(reference, X, Y, jacobian_probes=8), probe(fast, X, Y, jacobian_probes=8)
    for la, lb in zip(a['layers'], b['layers']):
        np.testing.assert_allclose(la['grad_norm_full'], lb['grad_norm_full'], rtol=1e-10)
        np.testing.assert_allclose(la['jacobian_gain'], lb['jacobian_gain'], rtol=1e-10)


# --- the regularisers through time: a training pass with fixed masks -----------------------------

def test_a_training_pass_probe_reports_what_its_backward_pass_carries():
    """probe(dropout_rng=s): the norms are those of model.gradients with the same masks, and weight
    drop's Jacobians are those of the weights the pass used (W * M)."""
    from minirnn.probe import step_norms
    m = RNNLM(V, H, sigma=0.6, dtype='float64', seed=1, cell='lstm', num_layers=2, threads=1,
              dropout_output=0.3, dropout_hidden=0.3, weight_drop=0.5, zoneout=0.2, zoneout_cell=0.4, ar=1.0)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    result = probe(m, X, Y, jacobian_probes=H, dropout_rng=4)
    assert result['training_pass'] and result['regularisers']['weight_drop'] == 0.5
    trained = m.gradients(X, Y, dropout_rng=4, record_steps=True)
    for layer, dH in zip(result['layers'], trained.dH_steps):
        np.testing.assert_allclose(layer['grad_norm_full'], step_norms(dH), rtol=1e-12)
    # evaluation (no masks) differs: the masks are what the training-pass probe shows
    plain = probe(m, X, Y, jacobian_probes=H)
    assert not plain['training_pass'] and plain['layers'][0]['grad_norm_full'] != result['layers'][0]['grad_norm_full']
    # weight drop alone: the Jacobians of a training pass are those of a model holding W * M
    dropped = RNNLM(V, H, sigma=0.6, dtype='float64', seed=1, cell='lstm', num_layers=2, threads=1, weight_drop=0.5)
    by_hand = RNNLM(V, H, sigma=0.6, dtype='float64', seed=1, cell='lstm', num_layers=2, threads=1)
    for layer, masks in enumerate(dropped.noise(4, B, T).weights):
        for name, mask in masks.items():
            by_hand.params[name if layer == 0 else f'{name}_l{layer}'] *= mask
    a, b = probe(dropped, X, Y, jacobian_probes=H, dropout_rng=4), probe(by_hand, X, Y, jacobian_probes=H)
    for la, lb in zip(a['layers'], b['layers']):
        np.testing.assert_allclose(la['jacobian_gain'], lb['jacobian_gain'], rtol=1e-12)
        np.testing.assert_allclose(la['grad_norm_last'], lb['grad_norm_last'], rtol=1e-12)


@pytest.mark.parametrize('training', [True, False], ids=['training pass', 'evaluation'])
@pytest.mark.parametrize('cell', BUILTIN)
def test_zoneout_carries_the_gradient_further_back(cell, training):
    """The same weights with and without zoneout (p = 0.5): what the last step's loss sends back
    over 30 steps, relative to what reaches the last step, is larger with zoneout (a unit that
    keeps its value passes its gradient on unchanged)."""
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, V, (4, 30)), rng.integers(0, V, (4, 30))
    base = RNNLM(V, 16, sigma=0.2, dtype='float64', seed=0, cell=cell, threads=1)
    ratios = []
    for model in (base, base.converted(zoneout=0.5)):
        last = probe(model, X, Y, jacobian_probes=2, dropout_rng=3 if training else None)['layers'][0]['grad_norm_last']
        ratios.append(last[0] / last[-1])
    assert ratios[1] > 10 * ratios[0], ratios


def test_cli_probe_varies_the_regularisers_on_the_same_weights(tmp_path, data_dir, monkeypatch, capsys):
    import json
    from minirnn.cli import main
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    png = tmp_path / 'reg.png'
    assert main(['probe', '--cell', 'lstm', '--num-hiddens', '8', '--num-steps', '6', '--batch-size', '2',
                 '--masks', '0', '--vary', 'zoneout=0.5', 'weight-drop=0.5,zoneout_cell=0.3',
                 '--plot', str(png)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r['regularisers'] for r in lines] == [{}, {'zoneout': 0.5}, {'weight_drop': 0.5, 'zoneout_cell': 0.3}]
    assert lines[1]['label'].endswith(', zoneout=0.5') and all(r['training_pass'] for r in lines)
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert main(['probe', '--vary', 'num_hiddens=3', '--plot', str(png)]) == 2
    assert 'OPTION=VALUE' in capsys.readouterr().err
    assert main(['probe', '--cell', 'gru', '--vary', 'zoneout_cell=0.3', '--plot', str(png)]) == 1
    assert 'zoneout_cell' in capsys.readouterr().err
