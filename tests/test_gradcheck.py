"""The gradient checker's verdicts: correct code never FAILs, planted bugs always do, and what
finite differences cannot settle reads INCONCLUSIVE with its reason.
"""
import numpy as np
import pytest

import minirnn
import minirnn.gradcheck as gc
from minirnn.initialization import Init
from minirnn import cells
from minirnn.backend import device_name
from minirnn.errors import ConfigError
from minirnn import gradsuite
from minirnn.gradsuite import BUGS, check_case
from minirnn.model import RNNLM
from minirnn.tree import leaves, tree_map


def test_the_module_is_the_module_and_calling_it_checks_a_model():
    assert minirnn.gradcheck is gc
    m = RNNLM(5, 3, sigma=0.5, dtype='float64', seed=0)
    rows = minirnn.gradcheck(m, np.zeros((2, 3), int), np.ones((2, 3), int))
    assert [r['name'] for r in rows] == list(m.params) + ['state']
    assert all(r['verdict'] == 'OK' and r['ok'] for r in rows)


INITS = {"the book's init": dict(sigma=0.01, num_steps=35), 'a larger init': dict(sigma=0.5, num_steps=10)}


def planted_model(cell, bug, sigma, num_layers=1, dropout=0.0):
    target = gradsuite.planted_target(cell, bug, layer=num_layers - 1)
    m = gradsuite.planted_model(bug, target, 9, 6, sigma=sigma, dtype='float64', seed=3, cell=cell,
                                num_layers=num_layers, dropout=dropout, threads=1)
    m.target = target
    return m


@pytest.mark.parametrize('init', INITS)
@pytest.mark.parametrize('bug', BUGS)
@pytest.mark.parametrize('cell', sorted(gradsuite.PLANT_IN))
def test_every_planted_bug_fails(cell, bug, init):
    sigma, T = INITS[init]['sigma'], INITS[init]['num_steps']
    m = planted_model(cell, bug, sigma)
    rng = np.random.default_rng(3)
    X, Y = rng.integers(0, 9, (3, T)), rng.integers(0, 9, (3, T))
    state_names = [n for n in gc.state_names(m.begin_state(3))]
    buggy = state_names if bug == 'state gradient zeroed' else [m.target]
    rows = gc.gradcheck_model(m, X, Y, tensors=buggy + ['b_q'], max_entries=None)
    verdicts = {r['name']: r['verdict'] for r in rows}
    assert all(verdicts[name] == 'FAIL' for name in buggy), gc.format_report([(bug, rows)])
    assert verdicts['b_q'] == 'OK'                   # the untouched tensor beside it passes
    failed = next(r for r in rows if r['verdict'] == 'FAIL')
    assert failed['worst'] and {'index', 'analytic', 'numeric'} <= set(failed['worst'][0])


def test_a_planted_bug_in_a_deep_layer_with_dropout_fails():
    m = planted_model('lstm', 'scaled by 1.01', 0.5, num_layers=2, dropout=0.3)
    rng = np.random.default_rng(4)
    X, Y = rng.integers(0, 9, (3, 6)), rng.integers(0, 9, (3, 6))
    rows = gc.gradcheck_model(m, X, Y, dropout_rng=7, tensors=['W_hc', 'W_hc_l1'], max_entries=None)
    assert [r['verdict'] for r in rows] == ['OK', 'FAIL']


# the configurations where the old per-entry check failed correct code, and more
GRID = [dict(sigma=s, num_steps=T, activation=a) for s in (0.01, 0.1, 0.5) for T in (1, 17, 50)
        for a in ('tanh', 'relu')]
GRID += [dict(sigma=0.1, num_steps=20, embed_dim=3), dict(sigma=0.01, num_steps=35, cell='gru'),
         dict(sigma=0.5, num_steps=20, cell='lstm'), dict(sigma=0.1, num_steps=12, cell='gru', num_layers=2)]


@pytest.mark.parametrize('config', GRID, ids=lambda c: ','.join(f'{k}={v}' for k, v in c.items()))
def test_correct_code_never_fails(config):
    config = dict(config)
    T = config.pop('num_steps')
    for seed in (0, 1):
        rows = check_case({'num_hiddens': 5, **config}, 3, T, True, seed=seed, max_entries=30)
        assert not [r for r in rows if r['verdict'] == 'FAIL'], gc.format_report([(str(config), rows)])


def test_the_books_init_reads_ok_where_entrywise_relative_errors_failed():
    """sigma 0.01, T=35: gradients of 1e-8..1e-4 next to a loss of 3.3; per-entry relative
    errors of 1e-5 and worse came from rounding alone."""
    m = RNNLM(28, 32, sigma=0.01, dtype='float64', seed=0, threads=1)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 28, (4, 35)), rng.integers(0, 28, (4, 35))
    rows = gc.gradcheck_model(m, X, Y, tensors=['W_hh', 'state'], max_entries=40)
    assert [r['verdict'] for r in rows] == ['OK', 'OK']
    # the old criterion on the same model: one step, each entry against its own size
    result = m.gradients(X, Y)
    idx = np.arange(0, m.params['W_hh'].size, 7)
    numeric = gc.numerical_gradient(lambda: m.loss(X, Y)[0], m.params['W_hh'], idx)
    assert gc.relative_error(result.grads['W_hh'].reshape(-1)[idx], numeric).max() > 1e-6


def test_a_kink_inside_every_step_is_inconclusive_not_a_fail():
    x = np.array([0.0, 0.3])
    kink = 1e-11                    # relu(x + 1e-11): a kink closer to x[0] than the smallest step

    def f():
        return float(np.maximum(0, x + kink).sum())
    row = gc.compare('relu', np.array([1.0, 1.0]), f, x)
    assert row['verdict'] == 'INCONCLUSIVE' and 'kink' in row['reason']
    assert np.array_equal(x, [0.0, 0.3])          # restored


def test_a_function_bending_faster_than_the_step_is_inconclusive():
    x, w = np.array([3e-10]), 1e9                  # sin(w x): a wavelength of 6e-9, far below h0 = 1e-5

    def f():
        return float(np.sin(w * x).sum())
    row = gc.compare('sin', w * np.cos(w * x), f, x)
    assert row['verdict'] == 'INCONCLUSIVE' and 'change with the step' in row['reason']
    # and with a wrong analytic value the same function still cannot FAIL without evidence
    row = gc.compare('sin', 2 * w * np.cos(w * x), f, x)
    assert row['verdict'] != 'OK'


def test_a_gradient_at_rounding_level_is_inconclusive_by_differences_and_ok_by_the_complex_step():
    m = RNNLM(10, 8, sigma=1e-5, dtype='float64', seed=0, threads=1)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 10, (3, 10)), rng.integers(0, 10, (3, 10))
    row, = gc.gradcheck_model(m, X, Y, tensors=['W_hh'], method='central')
    assert row['verdict'] == 'INCONCLUSIVE' and 'rounding' in row['reason'] and row['method'] == 'central'
    row, = gc.gradcheck_model(m, X, Y, tensors=['W_hh'])              # auto
    assert row['central_verdict'] == 'INCONCLUSIVE' and row['verdict'] == 'OK'
    assert row['method'] == 'central+complex' and row['complex_entries'] > 0
    assert row['max_rel_error'] < 1e-12 and row['steps'][0] == gc.COMPLEX_STEP


def test_a_zero_gradient_has_nothing_to_compare():
    x = np.array([1.0, 2.0])
    row = gc.compare('flat', np.zeros(2), lambda: 5.0, x)
    assert row['verdict'] == 'INCONCLUSIVE' and 'zero' in row['reason']


@pytest.mark.parametrize('impl', cells.IMPLS)
@pytest.mark.parametrize('name', sorted(gradsuite.PLANT_IN))
def test_every_cell_passes_the_cell_level_check(xp, name, impl):
    rows = gc.gradcheck_cell(name, device=device_name(xp), num_steps=6, impl=impl)
    cell = cells.CELLS[name]
    expected = list(cell.init_params(Init('normal', 0.1, 4, np.random.default_rng(0), np, np.float64), 4, 4)) + ['X']
    assert [r['name'] for r in rows][:len(expected)] == expected
    assert all(r['verdict'] == 'OK' for r in rows), gc.format_report([(name, rows)])


@pytest.mark.parametrize('impl', cells.IMPLS)
def test_the_cell_level_check_catches_a_bug_in_a_cells_backward(monkeypatch, impl):
    from minirnn.cells import lstm
    from minirnn.cells.fast import lstm as fast_lstm
    module = lstm if impl == 'reference' else fast_lstm
    real = module.backward

    def wrong(params, dHs, cache, dfinal_state=None, **options):
        grads, dX, dstate = real(params, dHs, cache, dfinal_state, **options)
        return {**grads, 'W_hf': grads['W_hf'] * 1.01}, dX, dstate
    monkeypatch.setattr(module, 'backward', wrong)
    rows = gc.gradcheck_cell('lstm', impl=impl)
    assert {r['name'] for r in rows if r['verdict'] == 'FAIL'} == {'W_hf'}


def test_the_report_shows_errors_scale_step_and_counts():
    rows = gc.gradcheck_model(planted_model('rnn', 'scaled by 1.01', 0.5), np.zeros((2, 4), int),
                              np.ones((2, 4), int), max_entries=10)
    report = gc.format_report([('planted', rows)])
    header, *lines = report.splitlines()
    assert all(col in header for col in ('step h', 'abs err', 'scale', 'rel err', 'verdict'))
    assert 'FAIL: ' in report and 'at (' in report and '10/36' in report   # worst entries; a sample
    assert lines[-1].startswith(f'{len(rows) - 1} OK, 1 FAIL, 0 INCONCLUSIVE')


def test_checks_need_float64_and_known_tensors():
    with pytest.raises(ConfigError, match='float64'):
        gc.gradcheck_model(RNNLM(5, 3, seed=0), np.zeros((1, 2), int), np.zeros((1, 2), int))
    m = RNNLM(5, 3, dtype='float64', seed=0)
    with pytest.raises(ConfigError, match='no tensor W_nope'):
        gc.gradcheck_model(m, np.zeros((1, 2), int), np.zeros((1, 2), int), tensors=['W_nope'])
    with pytest.raises(ConfigError, match='unknown cell'):
        gc.gradcheck_cell('nope')


# --- the complex step ---------------------------------------------------------------------------

COMPLEX_CASES = {
    'rnn tanh, a random state': (dict(), True),
    'rnn relu': (dict(activation='relu'), True),
    'gru': (dict(cell='gru'), True),
    'lstm': (dict(cell='lstm'), True),
    'an embedding': (dict(embed_dim=3), False),
    'lstm x2, dropout': (dict(cell='lstm', num_layers=2, dropout=0.3), True),
    'rnn x2, embedding, dropout': (dict(num_layers=2, embed_dim=3, dropout=0.3), True),
    'gru x2, the fast paths': (dict(cell='gru', num_layers=2, impl='fast'), True),
}


@pytest.mark.parametrize('case', COMPLEX_CASES)
def test_complex_step_values_are_the_analytic_gradient_to_rounding(case):
    """Every parameter and state array, every entry, of every cell, depth, embedding and dropout
    (a fixed mask), with a gradient entering through the final state: the complex step equals
    the backward pass to ~1e-15 of each tensor's scale (a fast model: through its reference twin)."""
    args, random_state = COMPLEX_CASES[case]
    m = RNNLM(7, 5, sigma=0.5, dtype='float64', seed=1, threads=1, **{'impl': 'reference', **args})
    rng = np.random.default_rng(1)
    X, Y, state = gradsuite.random_batch(m, 3, 6, rng, random_state)
    dropout = 4 if m.dropout else None
    dfinal = tree_map(lambda a: rng.standard_normal(a.shape), m.begin_state(3))
    result = m.gradients(X, Y, state, dropout_rng=dropout, dfinal_state=dfinal)
    analytic = {**result.grads, **dict(zip(gc.state_names(m.begin_state(3)), leaves(result.dstate)))}
    values = gc.complex_step_gradients(m, X, Y, state, dropout_rng=dropout, dfinal_state=dfinal)
    assert list(values) == list(analytic)
    for name, c in values.items():
        scale = np.abs(analytic[name]).max()
        assert np.abs(c - analytic[name]).max() <= 1e-13 * scale, name


def test_auto_settles_the_grus_reset_weights_at_the_books_init():
    """The issue's case, `gradcheck --cell gru --sigma 0.01`: dL/dW_hr ~ 1e-10 beside a loss of 3.3
    is at rounding level for every central step, and the complex step settles it."""
    m = RNNLM(28, 16, cell='gru', sigma=0.01, dtype='float64', seed=0, impl='reference', threads=1)
    X, Y, _ = gradsuite.random_batch(m, 4, 35, np.random.default_rng(0), False)
    row, = gc.gradcheck_model(m, X, Y, tensors=['W_hr'], method='central', max_entries=30)
    assert row['verdict'] == 'INCONCLUSIVE' and 'rounding level' in row['reason']
    for method in ('auto', 'complex'):
        row, = gc.gradcheck_model(m, X, Y, tensors=['W_hr'], method=method, max_entries=30)
        assert row['verdict'] == 'OK' and row['scale'] < 1e-9 and row['max_rel_error'] < 1e-13, method
        assert row['method'] == ('complex' if method == 'complex' else 'central+complex')


@pytest.mark.parametrize('bug', BUGS)
@pytest.mark.parametrize('cell', sorted(gradsuite.PLANT_IN))
def test_every_planted_bug_fails_by_the_complex_step_at_the_books_init(cell, bug):
    m = planted_model(cell, bug, 0.01)
    rng = np.random.default_rng(3)
    X, Y = rng.integers(0, 9, (3, 35)), rng.integers(0, 9, (3, 35))
    buggy = gc.state_names(m.begin_state(3)) if bug == 'state gradient zeroed' else [m.target]
    rows = gc.gradcheck_model(m, X, Y, tensors=buggy + ['b_q'], max_entries=None, method='complex')
    verdicts = {r['name']: r['verdict'] for r in rows}
    assert all(verdicts[name] == 'FAIL' for name in buggy), gc.format_report([(bug, rows)])
    assert verdicts['b_q'] == 'OK'


@pytest.mark.parametrize('bug', ['one entry 2% off', 'scaled by 1.01', 'transposed'])
def test_a_bug_that_central_differences_cannot_see_fails_under_auto(bug):
    """A bug planted in the GRU's W_hr at the book's init: central differences can only say
    INCONCLUSIVE there; auto hands the entries to the complex step, which FAILs them."""
    m = gradsuite.planted_model(bug, 'W_hr', 28, 16, cell='gru', sigma=0.01, dtype='float64', seed=0,
                                threads=1)
    X, Y, _ = gradsuite.random_batch(m, 4, 35, np.random.default_rng(0), False)
    row, = gc.gradcheck_model(m, X, Y, tensors=['W_hr'], max_entries=None)
    assert row['central_verdict'] == 'INCONCLUSIVE' and row['verdict'] == 'FAIL'
    assert 'by the complex step' in row['reason'] and row['worst'][0]['method'] == 'complex'


def relu_model_at_a_kink(offset):
    """A relu model whose pre-activation A_1[0, 2] = W_xh[X[0, 0], 2] + b_h[2] is `offset`."""
    m = RNNLM(6, 4, activation='relu', sigma=0.5, dtype='float64', seed=2, impl='reference', threads=1)
    X, Y = np.array([[1, 2, 3, 4]]), np.array([[2, 3, 4, 5]])
    m.params['b_h'][2] = offset - m.params['W_xh'][1, 2]
    return m, X, Y


def test_relus_kink_within_the_step_stays_inconclusive_with_its_reason():
    m, X, Y = relu_model_at_a_kink(1e-9)       # db_h[2] moves A_1[0, 2] one for one: 1e-9 from 0
    for method in ('auto', 'complex'):
        row, = gc.gradcheck_model(m, X, Y, tensors=['b_h'], method=method)
        assert row['verdict'] == 'INCONCLUSIVE' and 'kink' in row['reason'], method
    assert [w['index'] for w in row['worst']] == [(2,)]
    m, X, Y = relu_model_at_a_kink(0.3)        # far from the kink: every method settles it
    for method in gc.METHODS:
        row, = gc.gradcheck_model(m, X, Y, tensors=['b_h'], method=method)
        assert row['verdict'] == 'OK', method


def test_near_kink_reads_the_distance_along_the_step_from_the_complex_pre_activations():
    h = 1e-20
    A = np.array([0.5 + 2e-20j, -3e-6 + 1e-20j, 1e-3 + 0j])     # dA/dx = 2, 1, 0
    assert gc.near_kink([A], 1e-5, h)            # |-3e-6| < 1e-5 * 1
    assert not gc.near_kink([A], 1e-6, h)
    assert not gc.near_kink([np.array([0.0 + 0j])], 1e-5, h)   # exactly at 0, but x does not move it
    assert gc.near_kink([], 1e-5, h) is False and gc.near_kink(None, 1e-5, h) is None


def test_a_forward_pass_that_amplifies_rounding_is_not_failed_by_the_complex_step():
    """sigma 1, H=64, T=50: rounding-sized changes of the inputs move the gradient by 10%, so
    the analytic gradient (on the fast paths' rounding) and the complex step (on the reference
    twin's) differ that much. The jittered second step measures it: no FAIL, and the reason."""
    m = RNNLM(28, 64, sigma=1.0, dtype='float64', seed=0, threads=1)
    X, Y, _ = gradsuite.random_batch(m, 4, 50, np.random.default_rng(0), False)
    row, = gc.gradcheck_model(m, X, Y, tensors=['W_hh'], method='complex', max_entries=8)
    assert row['verdict'] == 'INCONCLUSIVE' and 'amplifies rounding' in row['reason']
    assert row['max_rel_error'] > 1e-3 and row['uncertainty'] > 1e-3


@pytest.mark.parametrize('impl', cells.IMPLS)
@pytest.mark.parametrize('name', sorted(gradsuite.PLANT_IN))
def test_every_cell_passes_the_cell_level_check_by_the_complex_step(xp, name, impl):
    rows = gc.gradcheck_cell(name, device=device_name(xp), num_steps=6, impl=impl, method='complex',
                             max_entries=20)
    assert all(r['verdict'] == 'OK' and r['method'] == 'complex' for r in rows), gc.format_report([(name, rows)])
    assert max(r['max_rel_error'] for r in rows) < 1e-13


def test_the_report_names_the_method_that_settled_each_tensor():
    m = RNNLM(10, 8, sigma=1e-5, dtype='float64', seed=0, threads=1)
    X, Y = np.zeros((2, 4), int), np.ones((2, 4), int)
    rows = gc.gradcheck_model(m, X, Y, tensors=['W_hh', 'b_q'], max_entries=10)
    header, first, second, summary = gc.format_report([('tiny', rows)]).splitlines()
    assert header.split()[-2:] == ['method', 'verdict']
    assert first.split()[-2:] == ['central+complex', 'OK'] and second.split()[-2:] == ['central', 'OK']
    assert 'tolerance 1e-06 x scale for central differences, 1e-10 for the complex step, which settled' in summary


def test_methods_are_checked():
    m = RNNLM(5, 3, dtype='float64', seed=0)
    with pytest.raises(ConfigError, match='method'):
        gc.gradcheck_model(m, np.zeros((1, 2), int), np.zeros((1, 2), int), method='forward')
    with pytest.raises(ConfigError, match='complex_f'):
        gc.compare('x', np.ones(2), lambda: 0.0, np.zeros(2), method='complex')
