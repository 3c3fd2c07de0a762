"""Every cell in CELLS, under each implementation (the reference and its fast path): forward
against an independent per-step formulation, BPTT against finite differences (every parameter,
the input, every state component, a gradient entering through the final state), the per-step
gradients, and the carry that truncates."""
import numpy as np
import pytest

from minirnn.initialization import Init
from minirnn.backend import to_numpy
from minirnn.cells import CELLS, IMPLS, gru, implementation, lstm, rnn
from minirnn.cells.fast import FAST
from minirnn.errors import ConfigError
from minirnn.gradcheck import numerical_gradient, relative_error
from minirnn.tree import leaves, tree_map

T, B, H, D = 5, 3, 4, 6


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# One step of each cell written out plainly from the book, on NumPy, one step at a time:
# (params, X_t (B, D), state) -> state. Independent of the cells' own loops and caches.
def rnn_step(p, x, h, activation):
    phi = np.tanh if activation == 'tanh' else (lambda z: np.maximum(z, 0))
    return phi(x @ p['W_xh'] + h @ p['W_hh'] + p['b_h'])


def gru_step(p, x, h, activation):
    Z = _sigmoid(x @ p['W_xz'] + h @ p['W_hz'] + p['b_z'])
    R = _sigmoid(x @ p['W_xr'] + h @ p['W_hr'] + p['b_r'])
    H_tilda = np.tanh(x @ p['W_xh'] + (R * h) @ p['W_hh'] + p['b_h'])
    return Z * h + (1 - Z) * H_tilda


def lstm_step(p, x, state, activation):
    H, C = state
    I = _sigmoid(x @ p['W_xi'] + H @ p['W_hi'] + p['b_i'])
    F = _sigmoid(x @ p['W_xf'] + H @ p['W_hf'] + p['b_f'])
    O = _sigmoid(x @ p['W_xo'] + H @ p['W_ho'] + p['b_o'])
    C_tilda = np.tanh(x @ p['W_xc'] + H @ p['W_hc'] + p['b_c'])
    C = F * C + I * C_tilda
    return O * np.tanh(C), C


REFERENCE_STEPS = {'rnn': rnn_step, 'gru': gru_step, 'lstm': lstm_step}


def make(xp, name, seed=0, activation=None, impl='reference'):
    """Float64 params (sigma 0.5, random biases), a dense input X (T, B, D), a random initial
    state and upstream gradients, for cell `name` under `impl`."""
    cell = implementation(name, impl)
    rng = np.random.default_rng(seed)
    params = cell.init_params(Init('normal', 0.5, H, rng, xp, np.float64), D, H)
    for k, v in params.items():
        if v.ndim == 1:                      # biases start at zero: move them off it
            params[k] = xp.asarray(rng.standard_normal(v.shape) * 0.3)
    X = xp.asarray(rng.standard_normal((T, B, D)))
    state = tree_map(lambda a: xp.asarray(rng.standard_normal(a.shape) * 0.5),
                     cell.begin_state(B, H, xp, np.float64))
    dHs = xp.asarray(rng.standard_normal((T, B, H)))                  # random upstream gradient
    dfinal = tree_map(lambda a: xp.asarray(rng.standard_normal(a.shape)), state)
    return cell, params, X, state, dHs, dfinal, activation or cell.ACTIVATIONS[0]


def cases():
    return [(name, a, impl) for name, cell in CELLS.items() for a in cell.ACTIVATIONS for impl in IMPLS]


def each_cell():
    return [(name, impl) for name in CELLS for impl in IMPLS]


@pytest.mark.parametrize('name, activation, impl', cases())
def test_forward_matches_the_books_equations_step_by_step(xp, name, activation, impl):
    cell, params, X, state, _, _, _ = make(xp, name, impl=impl)
    Hs, final, _ = cell.forward(params, X, state, activation=activation)
    p = {k: to_numpy(v) for k, v in params.items()}
    s = tree_map(to_numpy, state)
    for t in range(1, T + 1):
        s = REFERENCE_STEPS[name](p, to_numpy(X)[t - 1], s, activation)
        np.testing.assert_allclose(to_numpy(Hs)[t - 1], to_numpy(cell.hidden(s)), rtol=1e-12, atol=1e-12)
    for got, want in zip(leaves(final), leaves(s)):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('name, activation, impl', cases())
def test_bptt_matches_finite_differences_for_every_input(xp, name, activation, impl):
    """f = sum(Hs * dHs) + sum(final * dfinal): gradients enter at every step and through the
    final state, so every path of the backward pass is exercised."""
    cell, params, X, state, dHs, dfinal, _ = make(xp, name, seed=1, impl=impl)
    _, _, cache = cell.forward(params, X, state, activation=activation)
    grads, dX, dstate = cell.backward(params, dHs, cache, dfinal)

    def f():
        Hs, final, _ = cell.forward(params, X, state, activation=activation)
        return float((Hs * dHs).sum()) + sum(float((a * b).sum()) for a, b in zip(leaves(final), leaves(dfinal)))
    checked = [(grads[k], params[k]) for k in params]
    checked += [(dX, X)] + list(zip(leaves(dstate), leaves(state)))
    assert set(grads) == set(params)
    for analytic, x in checked:
        numeric = numerical_gradient(f, x, np.arange(x.size))
        err = relative_error(to_numpy(analytic).reshape(-1), numeric)
        assert err.max() < 1e-6


@pytest.mark.parametrize('name, impl', each_cell())
def test_dH_out_is_the_total_gradient_reaching_each_state(xp, name, impl):
    """dL/dH_t = dHs_t (its own step) + what steps t+1..T send back; the latter is the dstate of
    the same recurrence started at step t+1 from the state after step t."""
    cell, params, X, state, dHs, dfinal, activation = make(xp, name, seed=2, impl=impl)
    _, _, cache = cell.forward(params, X, state, activation=activation)
    dH = xp.zeros((T, B, H))
    cell.backward(params, dHs, cache, dfinal, dH_out=dH)
    s = state
    for t in range(1, T + 1):
        _, s, _ = cell.forward(params, X[t - 1:t], s, activation=activation)     # the state after step t
        if t == T:
            future = cell.hidden(dfinal)
        else:
            _, _, sub = cell.forward(params, X[t:], s, activation=activation)
            future = cell.hidden(cell.backward(params, dHs[t:], sub, dfinal)[2])
        np.testing.assert_allclose(to_numpy(dH[t - 1]), to_numpy(dHs[t - 1] + future), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('name, impl', each_cell())
def test_a_zero_carry_cuts_the_sequence_in_two(xp, name, impl):
    """carry[k-1] = 0 stops what step k sends back: steps 1..k-1 and k..T then backpropagate as
    two sequences, the second one starting from the state after step k-1 as a constant."""
    cell, params, X, state, dHs, dfinal, activation = make(xp, name, seed=3, impl=impl)
    k = 3
    _, _, cache = cell.forward(params, X, state, activation=activation)
    carry = [1.0] * T
    carry[k - 1] = 0.0
    grads, dX, dstate = cell.backward(params, dHs, cache, dfinal, carry=carry)
    _, middle, first = cell.forward(params, X[:k - 1], state, activation=activation)
    _, _, second = cell.forward(params, X[k - 1:], middle, activation=activation)
    g1, dX1, dstate1 = cell.backward(params, dHs[:k - 1], first)
    g2, dX2, _ = cell.backward(params, dHs[k - 1:], second, dfinal)
    for key in grads:
        np.testing.assert_allclose(to_numpy(grads[key]), to_numpy(g1[key] + g2[key]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(dX), np.concatenate([to_numpy(dX1), to_numpy(dX2)]), rtol=1e-10, atol=1e-12)
    for got, want in zip(leaves(dstate), leaves(dstate1)):
        np.testing.assert_allclose(to_numpy(got), to_numpy(want), rtol=1e-10, atol=1e-12)
    # a carry of ones is no carry at all
    ones = cell.backward(params, dHs, cache, dfinal, carry=[1.0] * T)
    plain = cell.backward(params, dHs, cache, dfinal)
    np.testing.assert_array_equal(to_numpy(ones[1]), to_numpy(plain[1]))


def _arrays(tree):
    """Every array inside a cache: through tuples (NamedTuples too), lists and dicts."""
    if hasattr(tree, 'shape'):
        return [tree]
    if isinstance(tree, dict):
        tree = list(tree.values())
    if isinstance(tree, (tuple, list)):
        return [a for branch in tree for a in _arrays(branch)]
    return []


@pytest.mark.parametrize('name, impl', each_cell())
def test_backward_changes_neither_its_inputs_nor_the_cache(xp, name, impl):
    cell, params, X, state, dHs, dfinal, activation = make(xp, name, seed=4, impl=impl)
    _, _, cache = cell.forward(params, X, state, activation=activation)
    kept = _arrays(cache) + [X, dHs] + leaves(dfinal) + list(params.values())
    assert len(kept) > 4 + len(params)                       # the cache's arrays are among them
    snapshot = [to_numpy(a).copy() for a in kept]
    cell.backward(params, dHs, cache, dfinal, carry=[0.5] * T, dH_out=xp.zeros((T, B, H)))
    for a, b in zip(snapshot, [to_numpy(a) for a in kept]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('name, impl', each_cell())
def test_the_final_state_is_a_value_not_a_view(xp, name, impl):
    cell, params, X, state, _, _, activation = make(xp, name, seed=5, impl=impl)
    Hs, final, cache = cell.forward(params, X, state, activation=activation)
    kept = [to_numpy(a).copy() for a in leaves(final)]
    Hs[...] = 0            # scribbling over the outputs (and so the cache) leaves the state alone
    for a, b in zip(leaves(final), kept):
        np.testing.assert_array_equal(to_numpy(a), b)


@pytest.mark.parametrize('impl', IMPLS)
def test_unknown_activation(xp, impl):
    cell, params, X, state, _, _, _ = make(xp, 'rnn', impl=impl)
    with pytest.raises(ConfigError, match='activation'):
        cell.forward(params, X, state, activation='sigmoid')


def test_cells_are_found_by_name():
    assert CELLS['rnn'] is rnn and CELLS['gru'] is gru and CELLS['lstm'] is lstm
    assert set(REFERENCE_STEPS) == set(CELLS)           # every cell has its book-plain reference
    for name in CELLS:
        assert implementation(name, 'reference') is CELLS[name]
        assert implementation(name, 'fast') is FAST[name] and FAST[name].reference is CELLS[name]
    with pytest.raises(ConfigError, match='impl'):
        implementation('rnn', 'quick')


def test_token_ids_need_no_one_hot_and_get_no_gradient(xp):
    """Token ids (T, B) give the same states as their one-hot rows, and dX is None for them."""
    for impl in IMPLS:
        cell, params, _, state, dHs, dfinal, activation = make(xp, 'lstm', seed=6, impl=impl)
        ids = np.random.default_rng(6).integers(0, D, (T, B))
        one_hot = xp.asarray(np.eye(D)[ids])                            # (T, B, D)
        Hs, _, cache = cell.forward(params, xp.asarray(ids), state)
        Hs1, _, cache1 = cell.forward(params, one_hot, state)
        np.testing.assert_allclose(to_numpy(Hs), to_numpy(Hs1), rtol=1e-13, atol=1e-13)
        grads, dX, _ = cell.backward(params, dHs, cache, dfinal)
        grads1, _, _ = cell.backward(params, dHs, cache1, dfinal)
        assert dX is None
        np.testing.assert_allclose(to_numpy(grads['W_xi']), to_numpy(grads1['W_xi']), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize('name', CELLS)
def test_the_references_carry_a_complex_step(xp, name):
    """The references compute in the dtype of all their inputs, so a complex step h i on one
    entry of any input gives that entry's derivative as Im f / h, with no cancellation: it
    equals the backward pass's gradient to rounding. (The fast paths stay real.)"""
    cell, params, X, state, dHs, dfinal, activation = make(xp, name, seed=7)
    _, _, cache = cell.forward(params, X, state, activation=activation)
    grads, dX, dstate = cell.backward(params, dHs, cache, dfinal)

    def f(params, X, state):
        Hs, final, _ = cell.forward(params, X, state, activation=activation)
        return (Hs * dHs).sum() + sum((a * b).sum() for a, b in zip(leaves(final), leaves(dfinal)))
    h = 1e-20
    for key in params:
        bumped = dict(params)
        bumped[key] = params[key].astype(np.complex128)
        bumped[key].reshape(-1)[1] += h * 1j
        assert complex(f(bumped, X, state)).imag / h == pytest.approx(float(to_numpy(grads[key]).reshape(-1)[1]),
                                                                       rel=1e-12, abs=1e-14), key
    Xc = X.astype(np.complex128)
    Xc[2, 1, 3] += h * 1j
    assert complex(f(params, Xc, state)).imag / h == pytest.approx(float(to_numpy(dX)[2, 1, 3]), rel=1e-12)
    first = leaves(state)[0].astype(np.complex128)
    first[0, 2] += h * 1j
    complex_state = first if len(leaves(state)) == 1 else (first, *leaves(state)[1:])
    assert complex(f(params, X, complex_state)).imag / h == pytest.approx(
        float(to_numpy(leaves(dstate)[0])[0, 2]), rel=1e-12)


def test_the_vanilla_cell_gives_its_pre_activations_where_relus_kinks_lie(xp):
    """preactivations(params, cache) is A_t, whose relu is H_t, for token ids and a dense input,
    and carries a complex step (the gradient checks read dA/dx as Im A / h there)."""
    cell, params, X, state, _, _, _ = make(xp, 'rnn', seed=8)
    ids = xp.asarray(np.random.default_rng(8).integers(0, D, (T, B)))
    for inputs in (X, ids):
        Hs, _, cache = cell.forward(params, inputs, state, activation='relu')
        A = rnn.preactivations(params, cache)
        assert A.shape == (T, B, H) and (to_numpy(A) < 0).any()
        np.testing.assert_allclose(to_numpy(xp.maximum(A, 0)), to_numpy(Hs), rtol=1e-14, atol=1e-15)
    b = params['b_h'].astype(np.complex128)
    b[2] += 1e-20j
    _, _, cache = cell.forward({**params, 'b_h': b}, X, state, activation='relu')
    dA_first = to_numpy(rnn.preactivations({**params, 'b_h': b}, cache)).imag[0] / 1e-20
    np.testing.assert_array_equal(dA_first, np.tile(np.eye(H)[2], (B, 1)))     # dA_1 / db_h[2]
