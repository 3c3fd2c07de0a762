"""RNNLM: the book's recurrent language model, its parameters and its hand-written gradients.

The model owns its parameters, its array module `xp` (NumPy or CuPy, chosen once) and its
dtype. The forward pass reads top to bottom: (1) token input, (2) a loop over layers, each
a recurrent cell (its input term X_t W_x included) and (between layers) dropout, (3) the
output layer, (4) softmax cross-entropy. `backprop` walks the same steps in reverse, (4) -> (1), one call
per step, the layer loop reversed.

Legend: B = batch_size, T = num_steps, V = vocab_size, H = num_hiddens, E = embed_dim,
L = num_layers, G = the cell's gate blocks. The public API is batch-major (B, T); inside,
everything is time-major (T, B, ...). The transpose happens only in `_time_major`/`forward`.

Parameter names: layer 0 uses the book's names exactly (W_xh, W_hh, b_h for the vanilla cell;
the GRU's and LSTM's from their modules); layer l >= 1 appends `_l<l>` (W_xh_l1, W_hh_l1, ...),
as PyTorch's weight_hh_l1. The output layer is W_hq (H, V), b_q (V,); an embedding W_emb (V, E).
"""
from typing import List, NamedTuple, Optional

import numpy as np

from . import checks, layers, parallel
from .backend import device_name, get_xp, make_rng, to_device, to_numpy
from .cells import CELLS, IMPLS, implementation
from .errors import ConfigError
from .tree import structure, tree_map

DTYPES = ('float32', 'float64')

# How the parameters start. 'normal' is the book's: every weight ~ N(0, sigma^2), biases zero.
# 'uniform' is PyTorch's default for nn.RNN/GRU/LSTM and nn.Linear (and char-rnn's): every
# weight and bias of the cells and the output layer ~ U(-1/sqrt(H), 1/sqrt(H)), an embedding
# ~ N(0, 1) as nn.Embedding's. The embedded inputs are then about 1 in size instead of sigma,
# which lets a large model leave its first, flat epochs much sooner (see README, held-out quality).
INITS = ('normal', 'uniform')


def param_name(name, layer):
    """The key of a layer's parameter in model.params: the book's name, suffixed `_l<layer>` above layer 0."""
    return name if layer == 0 else f'{name}_l{layer}'


class Forward(NamedTuple):
    """What loss() returns: the mean loss and the state after the last step."""
    loss: float
    state: object


class Gradients(NamedTuple):
    """What a backward pass returns; only parameters travel in `grads`.

    loss: the mean cross-entropy over the B*T tokens (Python float);
    grads: parameter name -> gradient, each shaped as its parameter;
    state: the state after the last step (the next batch's initial state);
    dstate: dL/d(initial state), shaped as the state;
    dH_steps: None, or per layer the total gradient dL/dH_t reaching every hidden state,
        (T, B, H) time-major, step t at index t-1 (probes read it).
    """
    loss: float
    grads: dict
    state: object
    dstate: object
    dH_steps: Optional[List[object]] = None


class LayerCache(NamedTuple):
    cell: object            # the cell's own cache
    dropout: object         # layers.DropoutCache, or None when this layer's output is not dropped


class Tape(NamedTuple):
    """Everything one forward pass keeps for its backward pass (time-major)."""
    loss: float
    state: object           # final state (the model's state structure)
    params: dict            # the parameter arrays the forward used
    embedding: object       # layers.EmbeddingCache, or None for one-hot input
    layers: list            # one LayerCache per layer, bottom first
    output: object          # layers.LinearCache of the output layer
    softmax: object         # layers.SoftmaxCECache
    batch_size: int


class RNNLM:
    """A character (or word) language model: tokens -> L recurrent layers -> logits over the vocabulary.

    Args:
        vocab_size: V, the number of token ids.
        num_hiddens: H, the width of every layer's hidden state.
        activation: the vanilla cell's 'tanh' (the book) or 'relu'; gated cells take 'tanh'.
        embed_dim: None for one-hot input (the book), or E to learn an embedding W_emb (V, E)
            in front of layer 0 (the book's exercise).
        sigma: standard deviation of the normal initialisation of the weights.
        init: 'normal' (the book's: N(0, sigma^2) weights, zero biases) or 'uniform'
            (PyTorch's default; sigma unused): see INITS.
        dtype: 'float32' or 'float64' (float64 for gradient checks).
        device: 'cpu', 'gpu' or 'auto' (see backend.get_xp).
        seed: int seed (or numpy Generator) for the initialisation.
        cell: name of the recurrent cell in cells.CELLS: 'rnn', 'gru', 'lstm'.
        num_layers: L, recurrent layers stacked (the book's deep RNN): layer l's hidden
            states are layer l+1's inputs.
        dropout: p, inverted dropout on each layer's output (before the next layer and
            before the output layer), in training only (when a dropout_rng is passed).
        threads: CPU threads that split a batch's rows (parallel.py); None uses every core.
            The result is the same up to float rounding; 1 keeps the batch in one thread.
        impl: 'fast' (the default: the cell's fast path where it has one, cells/fast/) or
            'reference' (the book's equations as written, cells/rnn.py, gru.py, lstm.py).
            Both compute the same function; tests hold them equal.

    Attributes: params, a dict of arrays on the model's device (names in the module docstring).
    A state is the cell's state (an array, or a tuple such as an LSTM's (H, C)) for one layer,
    and a tuple of L such layer states for L > 1.
    """

    def __init__(self, vocab_size, num_hiddens, *, activation='tanh', embed_dim=None,
                 sigma=0.01, dtype='float32', device='cpu', seed=None, cell='rnn', num_layers=1,
                 dropout=0.0, threads=None, init='normal', impl='fast'):
        self.vocab_size = checks.integer('vocab_size', vocab_size)
        self.num_hiddens = checks.integer('num_hiddens', num_hiddens)
        self.embed_dim = checks.integer('embed_dim', embed_dim, optional=True)
        self.num_layers = checks.integer('num_layers', num_layers)
        self.dtype = np.dtype(checks.one_of('dtype', str(dtype), DTYPES))
        self.cell_name = checks.one_of('cell', cell, CELLS)
        self.impl = checks.one_of('impl', impl, IMPLS)
        self.cell = implementation(cell, impl)
        self.activation = checks.one_of('activation', activation, self.cell.ACTIVATIONS)
        self.sigma = checks.number('sigma', sigma, above=0)
        self.init = checks.one_of('init', init, INITS)
        self.dropout = checks.number('dropout', dropout, minimum=0, below=1)
        self.xp = get_xp(device)
        self.threads = parallel.host_threads(self.xp, checks.integer('threads', threads, optional=True))

        rng = make_rng(seed)
        V, H = self.vocab_size, self.num_hiddens
        params = {}
        if self.embed_dim is not None:
            params['W_emb'] = self._normal(rng, V, self.embed_dim)
        for layer in range(self.num_layers):
            input_dim = (self.embed_dim or V) if layer == 0 else H
            cell_params = self.cell.init_params(rng, input_dim, H, self.sigma, self.xp, self.dtype)
            self._cell_param_names = tuple(cell_params)       # the cell's own (book) names
            params.update({param_name(k, layer): v for k, v in cell_params.items()})
        params['W_hq'] = self._normal(rng, H, V)
        params['b_q'] = self.xp.zeros(V, dtype=self.dtype)
        if self.init == 'uniform':
            params = self._uniform_init(rng, params)
        self.params = params

    def _uniform_init(self, rng, params):
        """PyTorch's default start, drawn over the book's shapes (see INITS).

        Every cell and output parameter, biases included, ~ U(-k, k) with k = 1/sqrt(H), which
        keeps each pre-activation's variance about 1/3 whatever H is; W_emb ~ N(0, 1).
        """
        k = 1.0 / np.sqrt(self.num_hiddens)
        out = {}
        for name, p in params.items():
            if name == 'W_emb':
                draw = rng.standard_normal(p.shape)
            else:
                draw = rng.uniform(-k, k, p.shape)
            out[name] = self.xp.asarray(draw.astype(self.dtype))
        return out

    def _normal(self, rng, *shape):
        return self.xp.asarray((rng.standard_normal(shape) * self.sigma).astype(self.dtype))

    def converted(self, dtype=None, device=None, impl=None):
        """A copy of this model with another dtype, device and/or impl, same parameters (cast).

        Probes and gradient checks run float64 copies of float32 models: in float32 a
        vanishing gradient underflows to zero and finite differences drown in rounding.
        """
        config = {**self.config(), 'dtype': dtype or self.dtype.name, 'impl': impl or self.impl}
        copy = RNNLM(**config, device=device or device_name(self.xp), seed=0,
                     threads=self.threads)
        for name, p in copy.params.items():
            p[...] = to_device(to_numpy(self.params[name]), copy.xp, copy.dtype)
        return copy

    def config(self):
        """The constructor arguments (without device, seed and threads), for checkpoints."""
        return {'vocab_size': self.vocab_size, 'num_hiddens': self.num_hiddens,
                'activation': self.activation, 'embed_dim': self.embed_dim,
                'sigma': self.sigma, 'dtype': self.dtype.name, 'cell': self.cell_name,
                'num_layers': self.num_layers, 'dropout': self.dropout, 'init': self.init,
                'impl': self.impl}

    def layer_params(self, layer, params=None):
        """Layer `layer`'s parameters under the cell's own (book) names, e.g. {'W_hh': params['W_hh_l1']}."""
        params = self.params if params is None else params
        return {k: params[param_name(k, layer)] for k in self._cell_param_names}

    def begin_state(self, batch_size):
        """The book's begin_state: every layer's zero state on the model's device.

        Returns the cell's state for one layer ((B, H) for the vanilla cell, (H, C) for an
        LSTM), and a tuple of L layer states for L > 1.
        """
        batch_size = checks.integer('batch_size', batch_size)
        states = tuple(self.cell.begin_state(batch_size, self.num_hiddens, self.xp, self.dtype)
                       for _ in range(self.num_layers))
        return states[0] if self.num_layers == 1 else states

    def _layer_states(self, state):
        return [state] if self.num_layers == 1 else list(state)

    def _model_state(self, layer_states):
        return layer_states[0] if self.num_layers == 1 else tuple(layer_states)

    # --- arguments ------------------------------------------------------------------------------

    def _inputs(self, X, Y, state):
        """The public methods' arguments, moved to the device once and checked.

        X, Y (B, T) token ids (Y may be None), state shaped as begin_state(B) or None. Ids
        outside [0, V) are an error: NumPy's gather would raise IndexError and CuPy's would
        silently wrap around. Returns X, Y, state as arrays of the model's module.
        """
        xp = self.xp
        X = to_device(X, xp)
        if X.ndim != 2:
            raise ConfigError(f'X must have shape (batch_size, num_steps), got {X.shape}')
        ids = [X]
        if Y is not None:
            Y = to_device(Y, xp)
            if Y.shape != X.shape:
                raise ConfigError(f'Y must have the shape of X {X.shape}, got {Y.shape}')
            ids.append(Y)
        if any(bool(((a < 0) | (a >= self.vocab_size)).any()) for a in ids):   # one sync each
            raise ConfigError(f'token ids must lie in [0, {self.vocab_size})')
        if state is not None:
            state = self._check_state('state', state, X.shape[0])
        return X, Y, state

    def _check_state(self, what, state, batch_size):
        """A state (or a gradient shaped like one) as arrays of the model's module and dtype."""
        expected = structure(self.begin_state(batch_size))
        try:
            state = tree_map(lambda a: to_device(a, self.xp, self.dtype), state)
            ok = structure(state) == expected
        except (ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise ConfigError(f'{what} must be shaped like begin_state({batch_size}): {expected}')
        return state

    def _dropout_masks(self, dropout_rng, batch_size, num_steps):
        """Per layer a host mask (B, T, H) for this batch, or None without dropout.

        Batch-major so that a thread split cuts the rows of one draw; a seed (an int) gives
        the same masks every call, which is what a gradient check needs.
        """
        if dropout_rng is None or self.dropout == 0:
            return None
        rng = make_rng(dropout_rng)
        return tuple(to_device(layers.dropout_mask(rng, (batch_size, num_steps, self.num_hiddens),
                                                   self.dropout, self.dtype), self.xp)
                     for _ in range(self.num_layers))

    # --- the public passes ----------------------------------------------------------------------

    def forward(self, X, state=None):
        """Logits for every position and the state after the last step (no dropout).

        Args: X (B, T) token ids (host or device array); state shaped as begin_state(B), or
              None for zeros.
        Returns: logits (B, T, V), state, both on the model's device.
        """
        X, _, state = self._inputs(X, None, state)
        ids, state = self._time_major(X, state)
        T, B = ids.shape
        logits, final, _ = self._forward(self.params, ids, state, None)
        logits = logits.reshape(T, B, -1).transpose(1, 0, 2)             # (B, T, V)
        return self.xp.ascontiguousarray(logits), final

    def loss(self, X, Y, state=None, *, dropout_rng=None):
        """Mean cross-entropy over all B*T tokens, forward only (evaluation, finite differences).

        Args: X, Y (B, T) token ids; state or None; dropout_rng: None (no dropout, evaluation)
              or an int seed / numpy Generator for the training-time dropout masks.
        Returns: Forward(loss, state): a Python float and the state after the last step.
        """
        X, Y, state = self._inputs(X, Y, state)
        masks = self._dropout_masks(dropout_rng, *X.shape)
        return parallel.split_rows(self._loss, self.threads, self.num_hiddens, X, Y, state, masks)

    def gradients(self, X, Y, state=None, *, dropout_rng=None, dfinal_state=None, sweeps=None,
                  record_steps=False):
        """Mean cross-entropy over all B*T tokens and its gradient for every parameter.

        The initial state is a constant of this call (the book's detach): gradients stop at
        it, and `dstate` reports dL/dstate. On the CPU, threads may each take a slice of the
        rows (parallel.py); their results are merged exactly (parallel.MERGE).

        Args: X, Y (B, T) token ids, Y[:, t] the target after X[:, t]; state or None;
              dropout_rng: None or a seed / Generator for the dropout masks (training);
              dfinal_state: a gradient entering through the final state (shaped as the
                  state), or None;
              sweeps: None for exact BPTT, or a truncated one (truncation.py): a list of
                  (loss_steps, carry) pairs, one backward pass of the same forward pass per
                  pair (see backprop), whose gradients add up;
              record_steps: also return dH_steps.
        Returns: Gradients(loss, grads, state, dstate, dH_steps).
        """
        X, Y, state = self._inputs(X, Y, state)
        if dfinal_state is not None:
            if sweeps is not None:
                raise ConfigError('dfinal_state belongs to exact BPTT; it cannot be combined with sweeps')
            dfinal_state = self._check_state('dfinal_state', dfinal_state, X.shape[0])
        masks = self._dropout_masks(dropout_rng, *X.shape)

        def one_thread(X, Y, state, masks, dfinal_state):
            tape = self._tape(self.params, X, Y, state, masks)
            if sweeps is None:
                return self.backprop(tape, dfinal_state=dfinal_state, record_steps=record_steps)
            return add_gradients([self.backprop(tape, loss_steps=loss_steps, carry=carry,
                                                record_steps=record_steps)
                                  for loss_steps, carry in sweeps])
        return parallel.split_rows(one_thread, self.threads, self.num_hiddens, X, Y, state, masks,
                                   dfinal_state)

    def loss_and_grads(self, X, Y, state=None, *, dropout_rng=None):
        """The book-shaped entry: (loss, grads, state), grads with the params' keys plus 'state'.

        grads['state'] is dL/d(initial state), shaped as the state (the initial state is a
        constant here: the book's detach). Args and threads as in `gradients`.
        """
        result = self.gradients(X, Y, state, dropout_rng=dropout_rng)
        return result.loss, {**result.grads, 'state': result.dstate}, result.state

    def tape(self, X, Y, state=None, *, dropout_rng=None, keep_params=False):
        """The forward pass alone, keeping what backprop needs (single-threaded).

        For backward passes that are not one call per batch (truncation.py): several
        backprops of one tape, or a backprop through an earlier batch's tape. keep_params
        copies the parameters, so the tape stays valid after the optimizer updates them.
        Returns: a Tape.
        """
        X, Y, state = self._inputs(X, Y, state)
        params = {k: v.copy() for k, v in self.params.items()} if keep_params else self.params
        return self._tape(params, X, Y, state, self._dropout_masks(dropout_rng, *X.shape))

    # --- the single-threaded passes, on all rows in this thread (inputs checked) ----------------

    def _time_major(self, X, state):
        """Checked X (B, T) as time-major ids (T, B); the state defaulted to zeros."""
        ids = self.xp.ascontiguousarray(X.T)                             # (T, B)
        return ids, self.begin_state(X.shape[0]) if state is None else state

    def _forward(self, params, ids, state, masks):
        """Steps (1)-(3): ids (T, B) -> logits (T*B, V), the final state, and the caches."""
        T, B = ids.shape
        # (1) token input: one-hot ids go straight into layer 0's cell (X_t W_x is a row gather);
        #     with an embedding, layer 0 reads the looked-up vectors
        x, emb_cache = ids, None
        if self.embed_dim is not None:
            x, emb_cache = layers.embedding_forward(ids, params['W_emb'])   # (T, B, E)
        # (2) the layers: the recurrence (with its input term), dropout on the way up
        final, caches = [], []
        for layer, layer_state in enumerate(self._layer_states(state)):
            p = self.layer_params(layer, params)
            Hs, last, cell_cache = self.cell.forward(p, x, layer_state, activation=self.activation)
            drop_cache = None
            if masks is not None:
                Hs, drop_cache = layers.dropout_forward(Hs, masks[layer].transpose(1, 0, 2))
            final.append(last)
            caches.append(LayerCache(cell_cache, drop_cache))
            x = Hs                                                        # (T, B, H)
        # (3) all outputs at once: one (T*B, H) x (H, V) GEMM, stored vocab-major for the softmax
        logits, out_cache = layers.linear_forward(x.reshape(T * B, -1), params['W_hq'], params['b_q'],
                                                  column_major=True)
        return logits, self._model_state(final), (emb_cache, caches, out_cache)

    def _tape(self, params, X, Y, state, masks):
        ids, state = self._time_major(X, state)
        T, B = ids.shape
        y = self.xp.ascontiguousarray(Y.T).reshape(T * B)                # (T*B,) time-major
        logits, final, (emb_cache, caches, out_cache) = self._forward(params, ids, state, masks)
        # (4) loss
        loss, ce_cache = layers.softmax_cross_entropy_forward(logits, y)
        return Tape(float(loss), final, params, emb_cache, caches, out_cache, ce_cache, B)

    def _loss(self, X, Y, state, masks):
        tape = self._tape(self.params, X, Y, state, masks)
        return Forward(tape.loss, tape.state)

    def backprop(self, tape, *, dfinal_state=None, carry=None, loss_steps=None, record_steps=False):
        """The backward pass of one tape, steps (4) -> (1) (single-threaded).

        Args: tape from `tape`; dfinal_state: a gradient entering through the final state, or
              None; carry: None or T numbers (cells/__init__.py), applied in every layer;
              loss_steps: None (every step's loss), or T booleans choosing the steps whose
              loss terms are differentiated (the others contribute nothing); record_steps:
              keep every layer's dL/dH_t in the result.
        Returns: Gradients(loss, grads, state, dstate, dH_steps); loss and state are the tape's.
        """
        xp, p = self.xp, tape.params
        B = tape.batch_size
        grads = {}
        # (4) -> (3): the softmax and the output layer, for all steps at once
        dlogits = layers.softmax_cross_entropy_backward(1.0, tape.softmax)   # (T*B, V)
        if loss_steps is not None:
            rows = np.repeat(~np.asarray(loss_steps, dtype=bool), B)        # (T*B,) host mask
            dlogits[to_device(rows, xp)] = 0
        dx, grads['W_hq'], grads['b_q'] = layers.linear_backward(dlogits, tape.output)
        T = dx.shape[0] // B
        dx = dx.reshape(T, B, -1)                                            # (T, B, H)
        # (2) the layers, top to bottom: each gets dL/dHs from above (through its dropout)
        dfinal = [None] * self.num_layers if dfinal_state is None else self._layer_states(dfinal_state)
        dstate, dH_steps = [None] * self.num_layers, [None] * self.num_layers
        for layer in reversed(range(self.num_layers)):
            cache = tape.layers[layer]
            lp = self.layer_params(layer, p)
            if cache.dropout is not None:
                dx = layers.dropout_backward(dx, cache.dropout)
            dH_out = xp.empty_like(dx) if record_steps else None
            cell_grads, dx, dstate[layer] = self.cell.backward(
                lp, dx, cache.cell, dfinal[layer], carry=carry, dH_out=dH_out)
            dH_steps[layer] = dH_out
            grads.update({param_name(k, layer): g for k, g in cell_grads.items()})
        # (1) the embedding, when there is one (one-hot input ends at layer 0's cell)
        if self.embed_dim is not None:
            grads['W_emb'] = layers.embedding_backward(dx, tape.embedding)     # (V, E)
        grads = {k: grads[k] for k in self.params}                          # the params' order
        return Gradients(tape.loss, grads, tape.state, self._model_state(dstate),
                         dH_steps if record_steps else None)


def add_gradients(parts):
    """One Gradients from several backward passes of the same forward pass (truncation sweeps):
    their parameter, initial-state and per-step gradients add up; loss and final state are shared.
    """
    first = parts[0]
    grads = {k: sum(p.grads[k] for p in parts) for k in first.grads}
    dstate = tree_map(lambda *a: sum(a), *[p.dstate for p in parts])
    dH_steps = None if first.dH_steps is None else [sum(layer) for layer in zip(*[p.dH_steps for p in parts])]
    return Gradients(first.loss, grads, first.state, dstate, dH_steps)
