"""Recurrent cells: each module owns one recurrence and its backpropagation through time.

A cell is a plain module found by name in CELLS. To add one, write a module with:

    GATES              int G: the input term XW has G blocks of H columns per step
    ACTIVATIONS        the activation names forward accepts (the first is the default)
    INPUT_WEIGHTS      names of the (D, H) input weights, in the order of XW's column blocks;
                       the layer loop (model.py) concatenates them and computes
                       XW = x [W_1 | ... | W_G] (a row gather for one-hot tokens)
    RECURRENT_WEIGHTS  names of the (H, H) weights that multiply the previous state (probes
                       report their spectra)
    init_params(rng, input_dim, num_hiddens, sigma, xp, dtype) -> dict of arrays, every
                       input weight, recurrent weight and bias under its book name
    begin_state(batch_size, num_hiddens, xp, dtype) -> state: an array, or a tuple of arrays
                       (an LSTM's (H, C)); a state is a value the caller owns
    hidden(state) -> H (B, H): the part of the state the layer passes upward
    forward(params, XW, state, *, activation) -> (Hs, final_state, cache)
                       XW (T, B, G*H), Hs (T, B, H) = H_1..H_T, final_state shaped as state
    backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None)
                       -> (grads, dXW, dstate)
                       dHs (T, B, H) = dL/dH_t from above; dfinal_state: a gradient entering
                       through the final state (None: zero), shaped as the state; carry: None
                       or T numbers, carry[t-1] scales what flows from step t back to step
                       t-1 (0 truncates); dH_out: None or a (T, B, H) array that receives
                       the total gradient dL/dH_t of every step; grads has a key per
                       parameter except the input weights (the layer loop differentiates
                       those), dXW (T, B, G*H), dstate shaped as the state.

The model, the trainer, generation, the thread split and the gradient checks use nothing else,
so a new cell needs no change elsewhere: `register('mine', module)` makes it available as
RNNLM(cell='mine') and TrainConfig(cell='mine') (tests/test_toy_cell.py adds one this way).
Steps are numbered t = 1..T as in the book; arrays over steps hold step t at index t-1.
"""
from ..errors import ConfigError
from . import gru, lstm, rnn

CELLS = {'rnn': rnn, 'gru': gru, 'lstm': lstm}

INTERFACE = ('GATES', 'ACTIVATIONS', 'INPUT_WEIGHTS', 'RECURRENT_WEIGHTS', 'init_params',
             'begin_state', 'hidden', 'forward', 'backward')


def register(name, cell):
    """Make `cell` (a module, or any object with the INTERFACE attributes) available under `name`."""
    missing = [a for a in INTERFACE if not hasattr(cell, a)]
    if missing:
        raise ConfigError(f'cell {name!r} lacks {", ".join(missing)}; see minirnn/cells/__init__.py')
    if not isinstance(name, str) or not name:
        raise ConfigError(f'a cell needs a non-empty name, got {name!r}')
    CELLS[name] = cell
