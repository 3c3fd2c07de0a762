"""RNNLM: the book's recurrent language model, its parameters and its hand-written gradients.

The model owns its parameters, its array module `xp` (NumPy or CuPy, chosen once) and its
dtype. `loss_and_grads` reads top to bottom as the forward pass (1) input term, (2) cell,
(3) output layer, (4) softmax cross-entropy, then the backward pass in reverse (4) -> (1).

Legend: B = batch_size, T = num_steps, V = vocab_size, H = num_hiddens, E = embed_dim.
The public API is batch-major (B, T); inside, everything is time-major (T, B, ...). The
transpose happens only in `_time_major` and `forward`.
"""
import numpy as np

from . import layers, parallel
from .backend import get_xp, host_threads, make_rng, to_device
from .cells import CELLS
from .errors import ConfigError

DTYPES = ('float32', 'float64')


class RNNLM:
    """A character (or word) language model: tokens -> recurrent cell -> logits over the vocabulary.

    Args:
        vocab_size: V, the number of token ids.
        num_hiddens: H, the width of the hidden state.
        activation: 'tanh' (the book) or 'relu'.
        embed_dim: None for one-hot input (the book), or E to learn an embedding W_emb (V, E)
            in front of W_xh (E, H) (the book's exercise).
        sigma: standard deviation of the normal initialisation of the weights.
        dtype: 'float32' or 'float64' (float64 for gradient checks).
        device: 'cpu', 'gpu' or 'auto' (see backend.get_xp).
        seed: int seed (or numpy Generator) for the initialisation.
        cell: name of the recurrent cell in cells.CELLS.
        threads: CPU threads that split a batch's rows (parallel.py); None uses every core.
            The result is the same up to float rounding; 1 runs the reference path alone.

    Attributes: params, a dict of arrays on the model's device: W_xh (V, H) or (E, H),
    W_hh (H, H), b_h (H,), W_hq (H, V), b_q (V,), and W_emb (V, E) with embed_dim.
    """

    def __init__(self, vocab_size, num_hiddens, *, activation='tanh', embed_dim=None,
                 sigma=0.01, dtype='float32', device='cpu', seed=None, cell='rnn', threads=None):
        for name, value in (('vocab_size', vocab_size), ('num_hiddens', num_hiddens)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f'{name} must be a positive integer, got {value!r}')
        if embed_dim is not None and (isinstance(embed_dim, bool) or not isinstance(embed_dim, (int, np.integer))
                                      or embed_dim < 1):
            raise ConfigError(f'embed_dim must be a positive integer or None, got {embed_dim!r}')
        if str(dtype) not in DTYPES:
            raise ConfigError(f'dtype must be one of {", ".join(DTYPES)}, got {dtype!r}')
        if cell not in CELLS:
            raise ConfigError(f'unknown cell {cell!r}; choose one of {", ".join(CELLS)}')
        if activation not in CELLS[cell].ACTIVATIONS:
            raise ConfigError(f'unknown activation {activation!r}; choose one of '
                              f'{", ".join(CELLS[cell].ACTIVATIONS)}')
        if not sigma > 0:
            raise ConfigError(f'sigma must be positive, got {sigma!r}')
        self.vocab_size = int(vocab_size)
        self.num_hiddens = int(num_hiddens)
        self.activation = activation
        self.embed_dim = None if embed_dim is None else int(embed_dim)
        self.sigma = float(sigma)
        self.dtype = np.dtype(dtype)
        self.cell_name = cell
        self.cell = CELLS[cell]
        self.xp = get_xp(device)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                    or threads < 1):
            raise ConfigError(f'threads must be a positive integer or None, got {threads!r}')
        self.threads = host_threads(self.xp, threads)

        rng = make_rng(seed)
        V, H = self.vocab_size, self.num_hiddens
        params = {}
        if self.embed_dim is not None:
            params['W_emb'] = self._normal(rng, V, self.embed_dim)
        params.update(self.cell.init_params(rng, self.embed_dim or V, H, self.sigma,
                                            self.xp, self.dtype))
        params['W_hq'] = self._normal(rng, H, V)
        params['b_q'] = self.xp.zeros(V, dtype=self.dtype)
        self.params = params

    def _normal(self, rng, *shape):
        return self.xp.asarray((rng.standard_normal(shape) * self.sigma).astype(self.dtype))

    def config(self):
        """The constructor arguments (without device and seed), for checkpoints."""
        return {'vocab_size': self.vocab_size, 'num_hiddens': self.num_hiddens,
                'activation': self.activation, 'embed_dim': self.embed_dim,
                'sigma': self.sigma, 'dtype': self.dtype.name, 'cell': self.cell_name}

    def begin_state(self, batch_size):
        """The book's begin_state: zeros (B, H) on the model's device."""
        return self.xp.zeros((batch_size, self.num_hiddens), dtype=self.dtype)

    # --- the forward pass, shared by forward() and loss_and_grads() --------------------------

    def _inputs(self, X, Y, state):
        """The public methods' arguments, moved to the device once and checked.

        X, Y (B, T) token ids (Y may be None), state (B, H) or None. Ids outside [0, V) are an
        error: NumPy's gather would raise IndexError and CuPy's would silently wrap around.
        Returns X, Y, state as arrays of the model's module (state in its dtype, or None).
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
            state = to_device(state, xp, self.dtype)
            if state.shape != (X.shape[0], self.num_hiddens):
                raise ConfigError(f'state must have shape ({X.shape[0]}, {self.num_hiddens}), '
                                  f'got {state.shape}')
        return X, Y, state

    def _time_major(self, X, state):
        """Checked X (B, T) as time-major ids (T, B); the state defaulted to zeros."""
        ids = self.xp.ascontiguousarray(X.T)                             # (T, B)
        return ids, self.begin_state(X.shape[0]) if state is None else state

    def _forward(self, ids, state):
        """Steps (1)-(3): ids (T, B) -> logits (T*B, V), with the caches backward needs."""
        p = self.params
        T, B = ids.shape
        # (1) input term XW_t = x_t W_xh: a row gather for one-hot tokens
        if self.embed_dim is None:
            XW, emb_cache = layers.embedding_forward(ids, p['W_xh'])     # (T, B, H)
            in_cache = None
        else:
            E, emb_cache = layers.embedding_forward(ids, p['W_emb'])      # (T, B, E)
            XW, in_cache = layers.linear_forward(E.reshape(T * B, -1), p['W_xh'])  # no bias: b_h is the cell's
            XW = XW.reshape(T, B, -1)                                     # (T, B, H)
        # (2) the recurrence
        Hs, cell_cache = self.cell.forward(p, XW, state, activation=self.activation)  # (T, B, H)
        # (3) all outputs at once: one (T*B, H) x (H, V) GEMM, stored vocab-major for the softmax
        logits, out_cache = layers.linear_forward(Hs.reshape(T * B, -1), p['W_hq'], p['b_q'],
                                                  column_major=True)
        return logits, Hs[-1], (emb_cache, in_cache, cell_cache, out_cache)

    def forward(self, X, state=None):
        """Logits for every position and the state after the last step.

        Args: X (B, T) token ids (host or device array); state (B, H) or None for zeros.
        Returns: logits (B, T, V), state (B, H), both on the model's device.
        """
        X, _, state = self._inputs(X, None, state)
        ids, state = self._time_major(X, state)
        T, B = ids.shape
        logits, state, _ = self._forward(ids, state)
        logits = logits.reshape(T, B, -1).transpose(1, 0, 2)             # (B, T, V)
        return self.xp.ascontiguousarray(logits), state.copy()

    def loss(self, X, Y, state=None):
        """Mean cross-entropy over all B*T tokens, forward only (evaluation, finite differences).

        Args: X, Y (B, T) token ids; state (B, H) or None.
        Returns: loss (Python float), state (B, H) after the last step.
        """
        X, Y, state = self._inputs(X, Y, state)
        slices = parallel.plan(len(X), self.num_hiddens, self.threads)
        if slices == 1:
            return self._loss(X, Y, state)
        weights, parts = parallel.map_rows(self._loss, slices, X, Y, state)
        return (sum(w * loss for w, (loss, _) in zip(weights, parts)),
                self.xp.concatenate([s for _, s in parts]))

    def loss_and_grads(self, X, Y, state=None):
        """Mean cross-entropy over all B*T tokens and its gradient for every parameter.

        The initial state is a constant of this call (the book's detach): gradients stop at
        it, and grads['state'] reports dL/dstate for inspection and gradient checks.
        On the CPU, threads may each take a slice of the rows (parallel.py); the mean loss's
        gradient is then the row-weighted mean of theirs.

        Args: X, Y (B, T) token ids, Y[:, t] the target after X[:, t]; state (B, H) or None.
        Returns: loss (Python float), grads (dict: the params' keys + 'state'),
                 state (B, H) after the last step.
        """
        X, Y, state = self._inputs(X, Y, state)
        slices = parallel.plan(len(X), self.num_hiddens, self.threads)
        if slices == 1:
            return self._loss_and_grads(X, Y, state)
        weights, parts = parallel.map_rows(self._loss_and_grads, slices, X, Y, state)
        xp = self.xp
        loss = sum(w * loss for w, (loss, _, _) in zip(weights, parts))
        grads = {k: sum(w * g[k] for w, (_, g, _) in zip(weights, parts)) for k in self.params}
        grads['state'] = xp.concatenate([w * g['state'] for w, (_, g, _) in zip(weights, parts)])
        return loss, grads, xp.concatenate([s for _, _, s in parts])

    def _loss(self, X, Y, state):
        """The reference forward pass of loss(), on all rows in this thread (inputs checked)."""
        ids, state = self._time_major(X, state)
        T, B = ids.shape
        y = self.xp.ascontiguousarray(Y.T).reshape(T * B)
        logits, last_state, _ = self._forward(ids, state)
        loss, _ = layers.softmax_cross_entropy_forward(logits, y)
        return float(loss), last_state.copy()

    def _loss_and_grads(self, X, Y, state):
        """The reference forward and backward pass of loss_and_grads(), on all rows in this thread
        (inputs checked by _inputs)."""
        xp = self.xp
        ids, state = self._time_major(X, state)
        T, B = ids.shape
        y = xp.ascontiguousarray(Y.T).reshape(T * B)                     # (T*B,) time-major
        logits, last_state, caches = self._forward(ids, state)
        emb_cache, in_cache, cell_cache, out_cache = caches
        # (4) loss
        loss, ce_cache = layers.softmax_cross_entropy_forward(logits, y)

        # backward, in reverse: (4) -> (3) -> (2) -> (1)
        grads = {}
        dlogits = layers.softmax_cross_entropy_backward(1.0, ce_cache)   # (T*B, V)
        dH, grads['W_hq'], grads['b_q'] = layers.linear_backward(dlogits, out_cache)
        cell_grads, dXW, grads['state'] = self.cell.backward(
            self.params, dH.reshape(T, B, -1), cell_cache)               # dXW (T, B, H)
        grads.update(cell_grads)
        if self.embed_dim is None:
            grads['W_xh'] = layers.embedding_backward(dXW, emb_cache)     # (V, H)
        else:
            dE, grads['W_xh'], _ = layers.linear_backward(dXW.reshape(T * B, -1), in_cache)
            grads['W_emb'] = layers.embedding_backward(dE, emb_cache)    # (V, E)
        return float(loss), grads, last_state.copy()
