"""How a model's parameters start: one policy, drawn on the host, used by the cells and the model.

    normal    the book's: every weight ~ N(0, sigma^2), every bias zero, an embedding
              ~ N(0, sigma^2) too
    uniform   PyTorch's default for nn.RNN/GRU/LSTM and nn.Linear (and char-rnn's): every
              weight and bias ~ U(-k, k), k = 1/sqrt(H), which keeps each pre-activation's
              variance about 1/3 whatever H is; an embedding ~ N(0, 1), as nn.Embedding's.
              The embedded inputs are then about 1 in size instead of sigma, which lets a
              large model leave its first, flat epochs much sooner (docs/results.md, held-out quality).

Every draw comes from one host numpy Generator in the order the parameters are made, so CPU
and GPU runs with the same seed start from the same numbers.
"""
import numpy as np

INITS = ('normal', 'uniform')


class Init:
    """The policy `kind` (one of INITS) for a model of width `num_hiddens`.

    A cell's init_params(init, input_dim, num_hiddens) calls init.weight and init.bias for its
    parameters; the model calls them for the output layer and init.embedding for W_emb. Each
    returns an array of module `xp` and dtype `dtype`, drawn from `rng`.
    """

    def __init__(self, kind, sigma, num_hiddens, rng, xp, dtype):
        self.kind, self.sigma, self.rng, self.xp, self.dtype = kind, sigma, rng, xp, dtype
        self.bound = 1.0 / np.sqrt(num_hiddens)          # k of the uniform policy

    def _array(self, host):
        return self.xp.asarray(host.astype(self.dtype))

    def weight(self, *shape):
        """A weight matrix: N(0, sigma^2) (normal) or U(-k, k) (uniform)."""
        if self.kind == 'uniform':
            return self._array(self.rng.uniform(-self.bound, self.bound, shape))
        return self._array(self.rng.standard_normal(shape) * self.sigma)

    def bias(self, *shape):
        """A bias vector: zeros (normal, the book's) or U(-k, k) (uniform)."""
        if self.kind == 'uniform':
            return self._array(self.rng.uniform(-self.bound, self.bound, shape))
        return self.xp.zeros(shape, dtype=self.dtype)

    def embedding(self, *shape):
        """An embedding table (V, E): N(0, sigma^2) (normal) or N(0, 1) (uniform, nn.Embedding's)."""
        scale = 1.0 if self.kind == 'uniform' else self.sigma
        return self._array(self.rng.standard_normal(shape) * scale)
