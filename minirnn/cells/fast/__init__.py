"""Fast paths for the CPU: the reference cells' math, computed with fewer and cheaper passes.

Each fast cell has its reference cell's parameters, state and interface (cells/__init__.py);
only forward and backward differ. A FastCell makes every gate's input term with one product
(layers.projection_forward: X [W_x1 | ... | W_xG], a single row gather for token ids) and
hands the (T, B, G*H) result to its recurrence module (rnn.py, gru.py, lstm.py here), whose
forward(params, XW, state, activation) and backward(params, dHs, cache, dfinal_state, carry,
dH_out) -> (grads without the input weights, dXW, dstate) work on that joined layout.

The references stay the only statement of the math: a fast path is chosen when a model is
built (RNNLM(impl='fast'), the default), recorded in checkpoints, and tests/test_fast_cells.py
holds every one of them equal to its reference.
"""
from typing import NamedTuple

from ... import layers
from ...checks import one_of
from .. import gru as gru_reference, lstm as lstm_reference, rnn as rnn_reference
from . import gru, lstm, rnn


class FastCache(NamedTuple):
    projection: object      # layers.ProjectionCache of XW = X [W_x1 | ... | W_xG]
    recurrence: object      # the recurrence module's own cache


class FastCell:
    """The cell interface over a reference cell (for its parameters and state) and a recurrence."""

    INTERFACE_FROM_REFERENCE = ('ACTIVATIONS', 'INPUT_WEIGHTS', 'RECURRENT_WEIGHTS', 'REGULARISERS',
                                'init_params', 'begin_state', 'hidden')

    def __init__(self, reference, recurrence):
        self.reference, self.recurrence = reference, recurrence
        for name in self.INTERFACE_FROM_REFERENCE:
            setattr(self, name, getattr(reference, name))

    def forward(self, params, X, state, *, activation='tanh', **regularisers):
        """As the reference's forward: X token ids (T, B) or dense (T, B, D) -> (Hs, final_state, cache).

        regularisers: hidden_mask, zoneout, as the reference takes them (its REGULARISERS)."""
        one_of('activation', activation, self.ACTIVATIONS)
        XW, projection = layers.projection_forward(X, [params[k] for k in self.INPUT_WEIGHTS])
        Hs, final, cache = self.recurrence.forward(params, XW, state, activation=activation, **regularisers)
        return Hs, final, FastCache(projection, cache)

    def backward(self, params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None):
        """As the reference's backward: -> (grads of every parameter, dX or None, dstate)."""
        grads, dXW, dstate = self.recurrence.backward(params, dHs, cache.recurrence, dfinal_state,
                                                      carry=carry, dH_out=dH_out)
        dX, dW_in = layers.projection_backward(dXW, cache.projection)
        grads.update(zip(self.INPUT_WEIGHTS, dW_in))
        return grads, dX, dstate


FAST = {'rnn': FastCell(rnn_reference, rnn),
        'gru': FastCell(gru_reference, gru),
        'lstm': FastCell(lstm_reference, lstm)}
