"""Recurrent cells: each module owns one recurrence and its backpropagation through time.

rnn.py, gru.py and lstm.py are the references: the book's sections as runnable code, one line
per equation. fast/ holds faster versions of the same math (chosen with RNNLM(impl=...)),
each tested equal to its reference. A cell is a plain module found by name in CELLS. To add
one, write a module with:

    ACTIVATIONS        the activation names forward accepts (the first is the default)
    INPUT_WEIGHTS      (optional: only a fast path reads it) names of the (D, H) weights that
                       multiply the layer's input X_t
    RECURRENT_WEIGHTS  names of the (H, H) weights that multiply the previous state (probes
                       report their spectra; weight drop masks them, in the model)
    REGULARISERS       (optional) the model options that act inside this cell's recurrence
                       and that its forward takes: 'dropout_hidden' (forward's hidden_mask),
                       'zoneout' (forward's zoneout, for the hidden part of the state),
                       'zoneout_cell' (zoneout for the rest of it); a cell without it takes none
    init_params(init, input_dim, num_hiddens) -> dict of arrays, every input weight,
                       recurrent weight and bias under its book name, each drawn by
                       init.weight(*shape) or init.bias(*shape) (initialization.Init)
    begin_state(batch_size, num_hiddens, xp, dtype) -> state: an array, or a tuple of arrays
                       (an LSTM's (H, C)); a state is a value the caller owns
    hidden(state) -> H (B, H): the part of the state the layer passes upward
    forward(params, X, state, *, activation) -> (Hs, final_state, cache)
                       X the layer's input: token ids (T, B) (one-hot input; X_t W is a row
                       gather, layers.input_forward) or dense (T, B, D); Hs (T, B, H) =
                       H_1..H_T; final_state shaped as state. A cell with REGULARISERS also
                       takes hidden_mask (B, H), the variational dropout mask that every
                       product with a recurrent weight reads H_{t-1} through, and zoneout, a
                       tree shaped as the state whose arrays are (T, B, H) keep masks
                       (training) or (T, 1, 1) holding the probability (evaluation), None for
                       a state array not zoned; the model passes only those in use, and the
                       backward pass finds them in the cache
    backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None)
                       -> (grads, dX, dstate)
                       dHs (T, B, H) = dL/dH_t from above; dfinal_state: a gradient entering
                       through the final state (None: zero), shaped as the state; carry: None
                       or T numbers, carry[t-1] scales what flows from step t back to step
                       t-1 (0 truncates); dH_out: None or a (T, B, H) array that receives
                       the total gradient dL/dH_t of every step; grads has a key per
                       parameter, dX (T, B, D) (None for token ids), dstate shaped as the state.

The model, the trainer, generation, the thread split and the gradient checks use nothing else,
so a new cell needs no change elsewhere: `register('mine', module)` makes it available as
RNNLM(cell='mine') and TrainConfig(cell='mine') (tests/test_toy_cell.py adds one this way);
such a cell runs as it is written, under either impl.
Steps are numbered t = 1..T as in the book; arrays over steps hold step t at index t-1.
"""
from ..checks import one_of
from ..errors import ConfigError
from . import gru, lstm, rnn
from .fast import FAST

CELLS = {'rnn': rnn, 'gru': gru, 'lstm': lstm}

IMPLS = ('fast', 'reference')

INTERFACE = ('ACTIVATIONS', 'RECURRENT_WEIGHTS', 'init_params',
             'begin_state', 'hidden', 'forward', 'backward')


def register(name, cell):
    """Make `cell` (a module, or any object with the INTERFACE attributes) available under `name`."""
    missing = [a for a in INTERFACE if not hasattr(cell, a)]
    if missing:
        raise ConfigError(f'cell {name!r} lacks {", ".join(missing)}; see minirnn/cells/__init__.py')
    if not isinstance(name, str) or not name:
        raise ConfigError(f'a cell needs a non-empty name, got {name!r}')
    CELLS[name] = cell


def implementation(name, impl='fast'):
    """The cell module (or FastCell) that runs cell `name` under `impl` ('fast' or 'reference').

    'fast' picks the cell's fast path where one exists (fast.FAST) and the cell as written
    otherwise, so a registered cell of one's own runs under either.
    """
    one_of('cell', name, CELLS)
    one_of('impl', impl, IMPLS)
    if impl == 'fast' and name in FAST and CELLS[name] is FAST[name].reference:
        return FAST[name]
    return CELLS[name]
