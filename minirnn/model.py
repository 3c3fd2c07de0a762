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
import dataclasses
from typing import List, NamedTuple, Optional

import numpy as np

from . import checks, layers, parallel
from .backend import complex_kept, device_name, get_xp, make_rng, to_device, to_numpy, xp_of
from .cells import CELLS, IMPLS, implementation
from .errors import ConfigError
from .initialization import INITS, Init
from .tree import leaves, structure, tree_map, unflatten

DTYPES = ('float32', 'float64')


def _option(default, help, **cli):
    """A ModelConfig field: its default, and its help text (the CLI's, written once here).

    cli: how the command line reads it: kind ('positive_int', 'positive_float', 'fraction')
    and choices (a function returning the allowed values, read when the parser is built).
    """
    return dataclasses.field(default=default, metadata={'help': help, **cli})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What a model is: RNNLM's arguments but vocab_size (the data's) and where it runs
    (device, seed, threads). The training configuration extends it (run.config.TrainConfig),
    a checkpoint stores it with vocab_size (RNNLM.config()), and the CLI adds one option per
    field to every subcommand that builds a model (cli.add_model_options). A new model option
    is a field here and its use in RNNLM; nothing else needs to change.
    """
    cell: str = _option('rnn', "recurrent cell (rnn: the book's vanilla cell)",
                        choices=lambda: sorted(CELLS))
    num_layers: int = _option(1, "recurrent layers stacked (the book's deep RNN)", kind='positive_int')
    num_hiddens: int = _option(512, 'hidden state size H', kind='positive_int')
    activation: str = _option('tanh', "the vanilla cell's nonlinearity (gated cells: tanh)",
                              choices=lambda: sorted({a for c in CELLS.values() for a in c.ACTIVATIONS}))
    embed_dim: Optional[int] = _option(None, 'learn an embedding of this size instead of one-hot input '
                                       '(none)', kind='positive_int')
    sigma: float = _option(0.01, 'standard deviation of the initial weights (--init normal)',
                           kind='positive_float')
    init: str = _option('normal', "normal: the book's N(0, sigma^2) weights, zero biases; uniform: "
                        "PyTorch's default, U(+-1/sqrt(H)) and an N(0, 1) embedding (initialization.py)",
                        choices=lambda: INITS)
    dropout: float = _option(0.0, "inverted dropout on each layer's output, in training (a new mask "
                             "at every step)", kind='fraction')
    # regularisation through time (docs/regularisation.md); each is off at 0, and acts in training
    # only, where its masks are drawn from the dropout Generator (evaluation: none, or expectations)
    dropout_input: float = _option(0.0, "variational (locked) dropout on the embedded input: one mask per "
                                   "sequence, the same at every step (Gal & Ghahramani 2016); needs "
                                   "--embed-dim", kind='fraction')
    dropout_output: float = _option(0.0, "variational dropout on each layer's output (into the layer above "
                                    "and the output layer): one mask per sequence and layer", kind='fraction')
    dropout_hidden: float = _option(0.0, "variational dropout on the recurrence: every product with a "
                                    "recurrent weight reads H_{t-1} times one mask per sequence and layer",
                                    kind='fraction')
    weight_drop: float = _option(0.0, "DropConnect on the recurrent weights (AWD-LSTM's weight drop): each "
                                 "entry of every W_h* dropped with this probability, one mask per batch "
                                 "and layer", kind='fraction')
    zoneout: float = _option(0.0, "zoneout (Krueger et al. 2016): each unit of H keeps its previous value "
                             "with this probability at every step; in evaluation H_t = p H_{t-1} + "
                             "(1 - p) H~_t", kind='probability')
    zoneout_cell: float = _option(0.0, "zoneout of the LSTM's memory C, likewise (lstm)", kind='probability')
    ar: float = _option(0.0, "activation regularisation: adds ar * mean(H_t^2) of the top layer's "
                        "dropped outputs to the training loss (AWD-LSTM's alpha)", kind='non_negative_float')
    tar: float = _option(0.0, "temporal activation regularisation: adds tar * mean((H_t - H_{t-1})^2) of "
                         "the top layer's outputs before dropout to the training loss (AWD-LSTM's beta)",
                         kind='non_negative_float')
    impl: str = _option('fast', "fast: the cells' fast paths (minirnn/cells/fast/); reference: the "
                        "book's equations as written (minirnn/cells/rnn.py, gru.py, lstm.py); the "
                        "same function either way", choices=lambda: IMPLS)
    dtype: str = _option('float32', 'floating-point type of parameters and activations',
                         choices=lambda: DTYPES)

    def __post_init__(self):
        checks.one_of('cell', self.cell, CELLS)
        checks.integer('num_layers', self.num_layers)
        checks.integer('num_hiddens', self.num_hiddens)
        checks.one_of('activation', self.activation, CELLS[self.cell].ACTIVATIONS)
        checks.integer('embed_dim', self.embed_dim, optional=True)
        checks.number('sigma', self.sigma, above=0)
        checks.one_of('init', self.init, INITS)
        checks.number('dropout', self.dropout, minimum=0, below=1)
        for name in ('dropout_input', 'dropout_output', 'dropout_hidden', 'weight_drop'):
            checks.number(name, getattr(self, name), minimum=0, below=1)
        for name in ('zoneout', 'zoneout_cell'):
            checks.number(name, getattr(self, name), minimum=0, maximum=1)
        for name in ('ar', 'tar'):
            checks.number(name, getattr(self, name), minimum=0)
        if self.dropout_input and self.embed_dim is None:
            raise ConfigError('dropout_input drops features of the embedded input; one-hot input has none '
                              'to drop: add embed_dim (--embed-dim)')
        supported = getattr(CELLS[self.cell], 'REGULARISERS', ())
        for name in IN_CELL:
            if getattr(self, name) and name not in supported:
                raise ConfigError(f'{name} acts inside the recurrence, and cell {self.cell!r} does not take it '
                                  f'(it takes {", ".join(supported) or "none"}; see its REGULARISERS)')
        checks.one_of('impl', self.impl, IMPLS)
        checks.one_of('dtype', str(self.dtype), DTYPES)

    @property
    def has_training_mode(self):
        """Whether training differs from evaluation: dropout of any kind, weight drop, zoneout or
        AR/TAR. A training pass then takes the dropout Generator (dropout_rng)."""
        return any(getattr(self, name) for name in REGULARISATION)

    @classmethod
    def of(cls, config):
        """The model part of a larger configuration (a TrainConfig), or of a dict."""
        get = config.get if isinstance(config, dict) else lambda name: getattr(config, name)
        return cls(**{f.name: get(f.name) for f in dataclasses.fields(cls)})


# the options that make training differ from evaluation (ModelConfig.has_training_mode)
REGULARISATION = ('dropout', 'dropout_input', 'dropout_output', 'dropout_hidden', 'weight_drop',
                  'zoneout', 'zoneout_cell', 'ar', 'tar')
# those that act inside a cell's recurrence: a cell lists the ones its forward takes in REGULARISERS
IN_CELL = ('dropout_hidden', 'zoneout', 'zoneout_cell')


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
    grads: parameter name -> gradient, each shaped as its parameter (of the objective, loss +
        penalty);
    state: the state after the last step (the next batch's initial state);
    dstate: dL/d(initial state), shaped as the state;
    dH_steps: None, or per layer the total gradient dL/dH_t reaching every hidden state,
        (T, B, H) time-major, step t at index t-1 (probes read it);
    penalty: AR/TAR's terms added to the objective in training: a 0-d array on the model's
        device, never read back by training (perplexities are the cross-entropy's, as
        AWD-LSTM reports them), or 0.0 when there are none.
    """
    loss: float
    grads: dict
    state: object
    dstate: object
    dH_steps: Optional[List[object]] = None
    penalty: object = 0.0


class Noise(NamedTuple):
    """The random draws of one training pass, on the model's device (RNNLM.noise); None: none.

    Rows are sequences and batch-major, so a thread split cuts them (`rows`): each slice of the
    batch gets the masks the whole batch drew. Weight drop's masks belong to the batch, not to
    a row, and every slice shares them.
    """
    dropout: Optional[tuple] = None   # per layer (B, T, H): dropout on the layer's output, per step
    input: object = None              # (B, E): variational dropout on the embedded input
    output: Optional[tuple] = None    # per layer (B, H): variational dropout on the layer's output
    hidden: Optional[tuple] = None    # per layer (B, H): variational dropout on H_{t-1} in the cell
    weights: Optional[tuple] = None   # per layer {recurrent weight's name: mask shaped as it}
    zoneout: Optional[tuple] = None   # per layer a tree shaped as the layer's state: (B, T, H) keep
                                      # masks, None for a state array that is not zoned

    def rows(self, lo, hi):
        """The masks of rows lo..hi-1 (a thread's slice of the batch)."""
        def cut(part):
            return None if part is None else tree_map(lambda a: None if a is None else a[lo:hi], part)
        return self._replace(dropout=cut(self.dropout), input=cut(self.input), output=cut(self.output),
                             hidden=cut(self.hidden), zoneout=cut(self.zoneout))


class LayerCache(NamedTuple):
    cell: object            # the cell's own cache
    dropout: object         # layers.DropoutCache, or None when this layer's output is not dropped
    locked: object = None   # layers.LockedDropoutCache of variational dropout on the output, or None
    params: dict = None     # the layer's parameters as its cell used them (weight drop: W * M)
    weight_masks: dict = None   # weight drop: recurrent weight's name -> its mask M, or None


class Tape(NamedTuple):
    """Everything one forward pass keeps for its backward pass (time-major)."""
    loss: float             # a Python float (complex when tape_at took a complex step)
    state: object           # final state (the model's state structure)
    params: dict            # the parameter arrays the forward used
    embedding: object       # layers.EmbeddingCache, or None for one-hot input
    layers: list            # one LayerCache per layer, bottom first
    output: object          # layers.LinearCache of the output layer
    softmax: object         # layers.SoftmaxCECache
    batch_size: int
    input: object = None    # layers.LockedDropoutCache of variational dropout on the input, or None
    penalty: object = 0.0   # AR/TAR's terms (a 0-d device array), or 0.0
    top: tuple = None       # with AR/TAR: the top layer's outputs (T, B, H) before and after dropout


class RNNLM:
    """A character (or word) language model: tokens -> L recurrent layers -> logits over the vocabulary.

    Args:
        vocab_size: V, the number of token ids.
        num_hiddens, activation, embed_dim, sigma, init, dtype, cell, num_layers, dropout,
            impl, and the regularisers dropout_input, dropout_output, dropout_hidden,
            weight_drop, zoneout, zoneout_cell, ar, tar: what the model is; ModelConfig
            documents each (and checks it).
        device: 'cpu', 'gpu' or 'auto' (see backend.get_xp).
        seed: int seed (or numpy Generator) for the initialisation.
        threads: CPU threads that may split a batch's rows (parallel.py) when the trainer,
            the evaluation or loss_and_grads run the model; None: every core. The model's
            own passes run on the calling thread.

    Attributes: params, a dict of arrays on the model's device (names in the module docstring).
    A state is the cell's state (an array, or a tuple such as an LSTM's (H, C)) for one layer,
    and a tuple of L such layer states for L > 1.
    """

    def __init__(self, vocab_size, num_hiddens, *, activation='tanh', embed_dim=None,
                 sigma=0.01, dtype='float32', device='cpu', seed=None, cell='rnn', num_layers=1,
                 dropout=0.0, threads=None, init='normal', impl='fast', dropout_input=0.0,
                 dropout_output=0.0, dropout_hidden=0.0, weight_drop=0.0, zoneout=0.0,
                 zoneout_cell=0.0, ar=0.0, tar=0.0):
        spec = ModelConfig(cell=cell, num_layers=num_layers, num_hiddens=num_hiddens,
                           activation=activation, embed_dim=embed_dim, sigma=sigma, init=init,
                           dropout=dropout, dropout_input=dropout_input, dropout_output=dropout_output,
                           dropout_hidden=dropout_hidden, weight_drop=weight_drop, zoneout=zoneout,
                           zoneout_cell=zoneout_cell, ar=ar, tar=tar, impl=impl, dtype=str(dtype))
        self.vocab_size = checks.integer('vocab_size', vocab_size)
        self.spec = spec
        self.num_hiddens, self.num_layers, self.embed_dim = spec.num_hiddens, spec.num_layers, spec.embed_dim
        self.cell_name, self.impl, self.activation = spec.cell, spec.impl, spec.activation
        self.sigma, self.init, self.dropout = spec.sigma, spec.init, spec.dropout
        self.dtype = np.dtype(spec.dtype)
        self.cell = implementation(spec.cell, spec.impl)
        self.xp = get_xp(device)
        self.threads = parallel.host_threads(self.xp, checks.integer('threads', threads, optional=True))

        # the book's get_params: every layer's cell parameters, then the output layer
        init = Init(spec.init, spec.sigma, spec.num_hiddens, make_rng(seed), self.xp, self.dtype)
        V, H = self.vocab_size, self.num_hiddens
        params = {}
        if self.embed_dim is not None:
            params['W_emb'] = init.embedding(V, self.embed_dim)
        for layer in range(self.num_layers):
            input_dim = (self.embed_dim or V) if layer == 0 else H
            cell_params = self.cell.init_params(init, input_dim, H)
            self._cell_param_names = tuple(cell_params)       # the cell's own (book) names
            params.update({param_name(k, layer): v for k, v in cell_params.items()})
        params['W_hq'] = init.weight(H, V)
        params['b_q'] = init.bias(V)
        self.params = params

    @classmethod
    def from_config(cls, vocab_size, config, **where):
        """RNNLM(vocab_size, **config), config a ModelConfig (or a TrainConfig: its model part);
        where: device, seed, threads."""
        return cls(vocab_size, **dataclasses.asdict(ModelConfig.of(config)), **where)

    def converted(self, dtype=None, device=None, impl=None, **regularisers):
        """A copy of this model with another dtype, device and/or impl, same parameters (cast).

        Probes and gradient checks run float64 copies of float32 models: in float32 a
        vanishing gradient underflows to zero and finite differences drown in rounding.
        regularisers: other values of the options in REGULARISATION (they change no parameter),
        e.g. the same weights under zoneout=0.5 (`probe --vary`).
        """
        unknown = sorted(set(regularisers) - set(REGULARISATION))
        if unknown:
            raise ConfigError(f'converted() changes only the regularisers ({", ".join(REGULARISATION)}), '
                              f'not {", ".join(unknown)}')
        config = {**self.config(), 'dtype': dtype or self.dtype.name, 'impl': impl or self.impl,
                  **regularisers}
        copy = RNNLM(**config, device=device or device_name(self.xp), seed=0,
                     threads=self.threads)
        for name, p in copy.params.items():
            p[...] = to_device(to_numpy(self.params[name]), copy.xp, copy.dtype)
        return copy

    def config(self):
        """vocab_size and the ModelConfig's fields, as a dict: what a checkpoint stores."""
        return {'vocab_size': self.vocab_size, **dataclasses.asdict(self.spec)}

    @property
    def has_training_mode(self):
        """Whether a training pass differs from evaluation (ModelConfig.has_training_mode): then
        the trainer passes the dropout Generator (dropout_rng) to every training pass."""
        return self.spec.has_training_mode

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

    # --- the public passes (single-threaded; parallel.py splits a batch's rows around them) ----

    def forward(self, X, state=None):
        """Logits for every position and the state after the last step (no dropout).

        Args: X (B, T) token ids (host or device array); state shaped as begin_state(B), or
              None for zeros.
        Returns: logits (B, T, V), state, both on the model's device.
        """
        X, _, state = self.inputs(X, None, state)
        ids, state = self._time_major(X, state)
        T, B = ids.shape
        logits, final, _ = self._forward(self.params, ids, state, None)
        logits = logits.reshape(T, B, -1).transpose(1, 0, 2)             # (B, T, V)
        return self.xp.ascontiguousarray(logits), final

    def loss(self, X, Y, state=None, *, dropout_rng=None, masks=None):
        """Mean cross-entropy over all B*T tokens, forward only (evaluation, finite differences).

        Args: X, Y (B, T) token ids; state or None; dropout_rng: None (evaluation: no dropout,
              zoneout's expectation) or an int seed / numpy Generator for a training pass's
              masks (noise()); masks: the draws themselves (a Noise, or dropout_masks()'s
              per-layer masks) instead.
        Returns: Forward(loss, state): a Python float and the state after the last step.
        """
        X, Y, state = self.inputs(X, Y, state)
        tape = self._tape(self.params, X, Y, state, self._noise(dropout_rng, masks, X.shape))
        return Forward(tape.loss, tape.state)

    def objective(self, X, Y, state=None, *, dropout_rng=None, masks=None):
        """What `gradients` differentiates, forward only: the mean cross-entropy plus, in a
        training pass (dropout_rng or masks given), AR/TAR's penalty. Finite differences of it
        check those gradients. Args as in `loss`.
        Returns: Forward(objective, state), the objective a Python float.
        """
        X, Y, state = self.inputs(X, Y, state)
        tape = self._tape(self.params, X, Y, state, self._noise(dropout_rng, masks, X.shape))
        return Forward(tape.loss + float(tape.penalty), tape.state)

    def gradients(self, X, Y, state=None, *, dropout_rng=None, masks=None, dfinal_state=None,
                  sweeps=None, record_steps=False):
        """Mean cross-entropy over all B*T tokens and its gradient for every parameter.

        The initial state is a constant of this call (the book's detach): gradients stop at
        it, and `dstate` reports dL/dstate.

        Args: X, Y (B, T) token ids, Y[:, t] the target after X[:, t]; state or None;
              dropout_rng: None (evaluation) or a seed / Generator for a training pass's
                  masks (noise()); masks: the draws themselves (a Noise) instead;
              dfinal_state: a gradient entering through the final state (shaped as the
                  state), or None;
              sweeps: None for exact BPTT, or a truncated one (truncation.py): a list of
                  (loss_steps, carry) pairs, one backward pass of the same forward pass per
                  pair (see backprop), whose gradients add up;
              record_steps: also return dH_steps.
        Returns: Gradients(loss, grads, state, dstate, dH_steps).
        """
        X, Y, state = self.inputs(X, Y, state)
        if dfinal_state is not None:
            if sweeps is not None:
                raise ConfigError('dfinal_state belongs to exact BPTT; it cannot be combined with sweeps')
            dfinal_state = self.check_state('dfinal_state', dfinal_state, X.shape[0])
        tape = self._tape(self.params, X, Y, state, self._noise(dropout_rng, masks, X.shape))
        if sweeps is None:
            return self.backprop(tape, dfinal_state=dfinal_state, record_steps=record_steps)
        return add_gradients([self.backprop(tape, loss_steps=loss_steps, carry=carry,
                                            record_steps=record_steps)
                              for loss_steps, carry in sweeps])

    def loss_and_grads(self, X, Y, state=None, *, dropout_rng=None):
        """The book-shaped entry: (loss, grads, state), grads with the params' keys plus 'state'.

        grads['state'] is dL/d(initial state), shaped as the state (the initial state is a
        constant here: the book's detach). It runs as training does: the batch's rows split
        over the model's threads (parallel.gradients). Args as in `gradients`.
        """
        result = parallel.gradients(self, X, Y, state, dropout_rng=dropout_rng)
        return result.loss, {**result.grads, 'state': result.dstate}, result.state

    def tape(self, X, Y, state=None, *, dropout_rng=None, masks=None, keep_params=False):
        """The forward pass alone, keeping what backprop needs.

        For backward passes that are not one call per batch (truncation.py): several
        backprops of one tape, or a backprop through an earlier batch's tape. keep_params
        copies the parameters, so the tape stays valid after the optimizer updates them.
        dropout_rng or masks: as in `gradients`. Returns: a Tape.
        """
        X, Y, state = self.inputs(X, Y, state)
        params = {k: v.copy() for k, v in self.params.items()} if keep_params else self.params
        return self._tape(params, X, Y, state, self._noise(dropout_rng, masks, X.shape))

    def tape_at(self, params, X, Y, state=None, *, dropout_rng=None, masks=None):
        """The forward pass at parameter values of the caller's, keeping its tape: gradient checks.

        Any parameter, and any array of the state, may be complex (complex128 for a float64
        model): the reference cells, the embedding, dropout and the loss then compute in
        complex, and a complex step x + ih on one entry gives that entry's derivative as
        Im(loss) / h, with no subtractive cancellation (gradcheck's complex step). The fast
        paths compute in real buffers, so a model whose cell is a fast path refuses complex
        values (ConfigError): use its converted(impl='reference') twin, the same function.

        Args: params, a dict with the keys of self.params (None: self.params), each array
              shaped as its parameter; X, Y (B, T) token ids; state shaped as begin_state(B),
              or None for zeros; dropout_rng or masks as in `loss`.
        Returns: a Tape; its loss is a Python float, or a complex when any input is complex,
            its state the final state.
        """
        X, Y, _ = self.inputs(X, Y)
        params = self.params if params is None else self._arrays_at(params)
        if state is not None:
            state = self._state_as('state', state, X.shape[0], self._array_at)
        arrays = list(params.values()) + ([] if state is None else leaves(state))
        if not any(a.dtype.kind == 'c' for a in arrays):
            return self._tape(params, X, Y, state, self._noise(dropout_rng, masks, X.shape))
        if self.cell is not CELLS[self.cell_name]:
            raise ConfigError('the fast paths compute in real buffers: complex parameters or states '
                              "need the reference cells (model.converted(impl='reference'))")
        # a cell of one's own (cells.register) may cast to a real dtype: that raises here
        with complex_kept(f'cell {self.cell_name!r}'):
            return self._tape(params, X, Y, state, self._noise(dropout_rng, masks, X.shape))

    def _arrays_at(self, params):
        """tape_at's params: the model's keys and shapes, on its device (see _array_at)."""
        if not isinstance(params, dict) or set(params) != set(self.params):
            raise ConfigError(f'params must be a dict with the keys {", ".join(self.params)}')
        params = {k: self._array_at(params[k]) for k in self.params}
        wrong = [k for k, v in params.items() if v.shape != self.params[k].shape]
        if wrong:
            raise ConfigError(f'params[{wrong[0]!r}] must have shape {self.params[wrong[0]].shape}, '
                              f'got {params[wrong[0]].shape}')
        return params

    def _array_at(self, a):
        """a on the model's device in the model's dtype, or in its complex counterpart when complex."""
        a = to_device(a, self.xp)
        dtype = np.result_type(self.dtype, np.complex64) if a.dtype.kind == 'c' else self.dtype
        return a if a.dtype == dtype else a.astype(dtype)

    # --- the math: forward (1)-(4) and backward (4)-(1), on the arguments as checked above --------

    def _time_major(self, X, state):
        """Checked X (B, T) as time-major ids (T, B); the state defaulted to zeros."""
        ids = self.xp.ascontiguousarray(X.T)                             # (T, B)
        return ids, self.begin_state(X.shape[0]) if state is None else state

    def _forward(self, params, ids, state, noise):
        """Steps (1)-(3): ids (T, B) -> logits (T*B, V), the final state, and the caches.

        noise: a training pass's draws (Noise), or None for evaluation.
        """
        T, B = ids.shape
        # (1) token input: one-hot ids go straight into layer 0's cell (X_t W_x is a row gather);
        #     with an embedding, layer 0 reads the looked-up vectors
        x, emb_cache, input_cache = ids, None, None
        if self.embed_dim is not None:
            x, emb_cache = layers.embedding_forward(ids, params['W_emb'])   # (T, B, E)
            if noise is not None and noise.input is not None:              # variational dropout
                x, input_cache = layers.locked_dropout_forward(x, noise.input)
        # (2) the layers: the recurrence (with its input term), dropout on the way up
        final, caches = [], []
        for layer, layer_state in enumerate(self._layer_states(state)):
            p, weight_masks = self.layer_params(layer, params), None
            if noise is not None and noise.weights is not None:           # weight drop: W * M
                weight_masks = noise.weights[layer]
                p = {**p, **{k: p[k] * m for k, m in weight_masks.items()}}
            Hs, last, cell_cache = self.cell.forward(p, x, layer_state, activation=self.activation,
                                                     **self._cell_regularisers(noise, layer, T))
            raw, drop_cache, locked_cache = Hs, None, None
            if noise is not None and noise.dropout is not None:
                Hs, drop_cache = layers.dropout_forward(Hs, noise.dropout[layer].transpose(1, 0, 2))
            if noise is not None and noise.output is not None:            # variational dropout
                Hs, locked_cache = layers.locked_dropout_forward(Hs, noise.output[layer])
            final.append(last)
            caches.append(LayerCache(cell_cache, drop_cache, locked_cache, p, weight_masks))
            x = Hs                                                        # (T, B, H)
        # (3) all outputs at once: one (T*B, H) x (H, V) GEMM, stored vocab-major for the softmax
        logits, out_cache = layers.linear_forward(x.reshape(T * B, -1), params['W_hq'], params['b_q'],
                                                  column_major=True)
        top = (raw, x) if noise is not None and (self.spec.ar or self.spec.tar) else None
        return logits, self._model_state(final), (emb_cache, input_cache, caches, out_cache, top)

    def _cell_regularisers(self, noise, layer, num_steps):
        """The keyword arguments of layer `layer`'s cell.forward beyond the book: hidden_mask and
        zoneout (cells/rnn.py), only those in use, so a cell of one's own never sees them."""
        options = {}
        rates = self._zoneout_rates()
        if noise is None:
            # evaluation: zoneout's expectation, M_t = p for every unit and step
            if rates is not None:
                options['zoneout'] = tree_map(
                    lambda p: self.xp.full((num_steps, 1, 1), p, dtype=self.dtype) if p else None, rates)
            return options
        if noise.hidden is not None:
            options['hidden_mask'] = noise.hidden[layer]
        if noise.zoneout is not None:           # (B, T, H) drawn, (T, B, H) read: time-major views
            options['zoneout'] = tree_map(lambda m: None if m is None else m.transpose(1, 0, 2),
                                          noise.zoneout[layer])
        return options

    def _zoneout_rates(self):
        """A tree shaped as a layer's state: zoneout's probability for the hidden part (the
        cell's `hidden`) and zoneout_cell's for the rest (an LSTM's C); None when both are 0."""
        if not (self.spec.zoneout or self.spec.zoneout_cell):
            return None
        template = self.cell.begin_state(1, 1, np, np.float64)
        target = self.cell.hidden(template)
        rates = [self.spec.zoneout if leaf is target else self.spec.zoneout_cell for leaf in leaves(template)]
        return unflatten(template, rates)

    def _tape(self, params, X, Y, state, noise):
        """The forward pass (1)-(4) with its caches. noise: a Noise, dropout_masks()'s per-layer
        masks (dropout between layers alone), or None (evaluation)."""
        if noise is not None and not isinstance(noise, Noise):
            noise = Noise(dropout=tuple(noise))
        ids, state = self._time_major(X, state)
        T, B = ids.shape
        y = self.xp.ascontiguousarray(Y.T).reshape(T * B)                # (T*B,) time-major
        logits, final, (emb_cache, input_cache, caches, out_cache, top) = \
            self._forward(params, ids, state, noise)
        # (4) loss
        loss, ce_cache = layers.softmax_cross_entropy_forward(logits, y)
        # a complex loss (tape_at's complex steps) keeps its imaginary part: it is the derivative
        loss = complex(loss) if loss.dtype.kind == 'c' else float(loss)
        penalty = 0.0 if top is None else self._penalty(*top)
        return Tape(loss, final, params, emb_cache, caches, out_cache, ce_cache, B, input_cache,
                    penalty, top)

    def _penalty(self, raw, dropped):
        """AR/TAR (Merity et al. 2017) on the top layer's outputs (T, B, H), as a 0-d device array:
        ar * mean(dropped^2) + tar * mean((raw_t - raw_{t-1})^2) over the batch's T - 1 pairs of
        steps (AR on the outputs after dropout, TAR before it, as AWD-LSTM has them)."""
        xp, penalty = self.xp, 0.0
        if self.spec.ar:
            penalty = penalty + self.spec.ar * xp.mean(dropped * dropped)
        if self.spec.tar and raw.shape[0] > 1:
            change = raw[1:] - raw[:-1]
            penalty = penalty + self.spec.tar * xp.mean(change * change)
        return penalty

    def _penalty_gradients(self, tape, loss_steps):
        """d penalty / d(dropped) and d penalty / d(raw), (T, B, H) each or None, for the steps in
        loss_steps (None: all): AR's term of step t and TAR's of the pair (t-1, t) belong to step
        t, as its loss term does, so truncated sweeps add up to the whole."""
        raw, dropped = tape.top
        T = raw.shape[0]
        steps = None
        if loss_steps is not None:                # (T, 1, 1) on the device, made on the host
            steps = to_device(np.asarray(loss_steps, dtype=self.dtype).reshape(T, 1, 1), self.xp)
        d_dropped = d_raw = None
        if self.spec.ar:
            d_dropped = dropped * (2 * self.spec.ar / dropped.size)
            if steps is not None:
                d_dropped *= steps
        if self.spec.tar and T > 1:
            change = (raw[1:] - raw[:-1]) * (2 * self.spec.tar / (raw.size - raw[0].size))
            if steps is not None:
                change *= steps[1:]
            d_raw = self.xp.zeros_like(raw)
            d_raw[1:] += change
            d_raw[:-1] -= change
        return d_dropped, d_raw

    def backprop(self, tape, *, dfinal_state=None, carry=None, loss_steps=None, record_steps=False):
        """The backward pass of one tape, steps (4) -> (1).

        Args: tape from `tape`; dfinal_state: a gradient entering through the final state, or
              None; carry: None or T numbers (cells/__init__.py), applied in every layer;
              loss_steps: None (every step's loss), or T booleans choosing the steps whose
              loss terms (and AR/TAR terms) are differentiated (the others contribute
              nothing); record_steps: keep every layer's dL/dH_t in the result.
        Returns: Gradients(loss, grads, state, dstate, dH_steps, penalty); loss, state and
            penalty are the tape's.
        """
        xp = self.xp
        B = tape.batch_size
        grads = {}
        # (4) -> (3): the softmax and the output layer, for all steps at once
        dlogits = layers.softmax_cross_entropy_backward(1.0, tape.softmax)   # (T*B, V)
        if loss_steps is not None:
            # the rows of the steps whose loss is not differentiated, as integer indices made on
            # the host: a boolean mask on the device would read its count back (a synchronisation)
            rows = np.flatnonzero(np.repeat(~np.asarray(loss_steps, dtype=bool), B))   # (<= T*B,)
            dlogits[to_device(rows, xp)] = 0
        dx, grads['W_hq'], grads['b_q'] = layers.linear_backward(dlogits, tape.output)
        T = dx.shape[0] // B
        dx = dx.reshape(T, B, -1)                                            # (T, B, H)
        d_dropped = d_raw = None
        if tape.top is not None:                                             # AR/TAR's terms
            d_dropped, d_raw = self._penalty_gradients(tape, loss_steps)
            if d_dropped is not None:
                dx = dx + d_dropped
        # (2) the layers, top to bottom: each gets dL/dHs from above (through its dropout)
        dfinal = [None] * self.num_layers if dfinal_state is None else self._layer_states(dfinal_state)
        dstate, dH_steps = [None] * self.num_layers, [None] * self.num_layers
        for layer in reversed(range(self.num_layers)):
            cache = tape.layers[layer]
            if cache.locked is not None:
                dx = layers.locked_dropout_backward(dx, cache.locked)
            if cache.dropout is not None:
                dx = layers.dropout_backward(dx, cache.dropout)
            if layer == self.num_layers - 1 and d_raw is not None:
                dx = dx + d_raw
            dH_out = xp.empty_like(dx) if record_steps else None
            cell_grads, dx, dstate[layer] = self.cell.backward(
                cache.params, dx, cache.cell, dfinal[layer], carry=carry, dH_out=dH_out)
            if cache.weight_masks is not None:        # weight drop: d(W * M)/dW = M
                cell_grads = {k: g * cache.weight_masks[k] if k in cache.weight_masks else g
                              for k, g in cell_grads.items()}
            dH_steps[layer] = dH_out
            grads.update({param_name(k, layer): g for k, g in cell_grads.items()})
        # (1) the embedding, when there is one (one-hot input ends at layer 0's cell)
        if self.embed_dim is not None:
            if tape.input is not None:
                dx = layers.locked_dropout_backward(dx, tape.input)
            grads['W_emb'] = layers.embedding_backward(dx, tape.embedding)     # (V, E)
        grads = {k: grads[k] for k in self.params}                          # the params' order
        return Gradients(tape.loss, grads, tape.state, self._model_state(dstate),
                         dH_steps if record_steps else None, tape.penalty)

    # --- arguments --------------------------------------------------------------------------------

    def inputs(self, X, Y=None, state=None):
        """The public passes' arguments, checked and moved to the model's device.

        X, Y (B, T) token ids (Y may be None), state shaped as begin_state(B) or None. Ids on
        the host are checked to lie in [0, V), where they are made (NumPy's gather would raise
        IndexError, CuPy's would wrap around silently); ids already on the device are trusted,
        since checking them would cost a device synchronisation per batch (the loaders and
        the corpus encoding only ever make ids of the vocabulary).
        Returns X, Y, state as arrays of the model's module.
        """
        X = self._ids('X', X)
        if X.ndim != 2:
            raise ConfigError(f'X must have shape (batch_size, num_steps), got {X.shape}')
        if Y is not None:
            Y = self._ids('Y', Y)
            if Y.shape != X.shape:
                raise ConfigError(f'Y must have the shape of X {X.shape}, got {Y.shape}')
        if state is not None:
            state = self.check_state('state', state, X.shape[0])
        return X, Y, state

    def _ids(self, name, ids):
        if xp_of(ids) is np:                     # a host array, a list: check here, for free
            ids = np.asarray(ids)
            if ids.size and (ids.dtype.kind not in 'iu' or ids.min() < 0 or ids.max() >= self.vocab_size):
                raise ConfigError(f'token ids must be integers in [0, {self.vocab_size}); {name} holds others')
        return to_device(ids, self.xp)

    def check_state(self, what, state, batch_size):
        """A state (or a gradient shaped like one) as arrays of the model's module and dtype."""
        return self._state_as(what, state, batch_size, lambda a: to_device(a, self.xp, self.dtype))

    def _state_as(self, what, state, batch_size, convert):
        """check_state with each array converted by `convert` (tape_at keeps complex arrays)."""
        expected = structure(self.begin_state(batch_size))
        try:
            state = tree_map(convert, state)
            ok = structure(state) == expected
        except (ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise ConfigError(f'{what} must be shaped like begin_state({batch_size}): {expected}')
        return state

    def dropout_masks(self, dropout_rng, batch_size, num_steps):
        """Per layer a mask (B, T, H) on the device for this batch, or None without dropout.

        Batch-major so that a thread split cuts the rows of one draw; a seed (an int) gives
        the same masks every call, which is what a gradient check needs. These are the
        per-step dropout's alone; noise() draws them first, then the regularisers'.
        """
        if dropout_rng is None or self.dropout == 0:
            return None
        rng = make_rng(dropout_rng)
        return tuple(to_device(layers.dropout_mask(rng, (batch_size, num_steps, self.num_hiddens),
                                                   self.dropout, self.dtype), self.xp)
                     for _ in range(self.num_layers))

    def noise(self, dropout_rng, batch_size, num_steps):
        """Everything a training pass over a (B, T) batch draws, as a Noise on the device; None
        for evaluation (dropout_rng None) or a model without a training mode.

        All of it is drawn on the host from the one Generator (an int seed: the same draws every
        call), in a fixed order: the per-step dropout masks first, exactly as dropout_masks()
        draws them (so a model without the other options draws what it always drew), then
        variational dropout's (input, output, hidden: (B, D) each), weight drop's (one per
        recurrent weight and layer) and zoneout's ((B, T, H) per zoned state array and layer),
        each only when its option is on.
        """
        if dropout_rng is None or not self.has_training_mode:
            return None
        rng, spec = make_rng(dropout_rng), self.spec
        B, T, H = batch_size, num_steps, self.num_hiddens

        def drop(shape, p):
            return to_device(layers.dropout_mask(rng, shape, p, self.dtype), self.xp)

        def per_layer(make):
            return tuple(make(layer) for layer in range(self.num_layers))
        dropout = self.dropout_masks(rng, B, T)
        inputs = drop((B, self.embed_dim), spec.dropout_input) if spec.dropout_input else None
        output = per_layer(lambda _: drop((B, H), spec.dropout_output)) if spec.dropout_output else None
        hidden = per_layer(lambda _: drop((B, H), spec.dropout_hidden)) if spec.dropout_hidden else None
        weights = None
        if spec.weight_drop:
            weights = per_layer(lambda layer: {
                k: drop(self.params[param_name(k, layer)].shape, spec.weight_drop)
                for k in self.cell.RECURRENT_WEIGHTS})
        zoneout, rates = None, self._zoneout_rates()
        if rates is not None:
            zoneout = per_layer(lambda _: tree_map(
                lambda p: to_device(layers.zoneout_mask(rng, (B, T, H), p, self.dtype), self.xp) if p else None,
                rates))
        return Noise(dropout, inputs, output, hidden, weights, zoneout)

    def _noise(self, dropout_rng, masks, shape):
        """The Noise of a pass: drawn from dropout_rng, or given (a Noise, or dropout_masks()'s
        per-layer masks: dropout between layers alone), or None (evaluation)."""
        if masks is not None and dropout_rng is not None:
            raise ConfigError('pass dropout_rng or masks, not both')
        return self.noise(dropout_rng, *shape) if masks is None else masks


def add_gradients(parts):
    """One Gradients from several backward passes of the same forward pass (truncation sweeps):
    their parameter, initial-state and per-step gradients add up; loss, penalty and final state
    are shared.
    """
    first = parts[0]
    grads = {k: sum(p.grads[k] for p in parts) for k in first.grads}
    dstate = tree_map(lambda *a: sum(a), *[p.dstate for p in parts])
    dH_steps = None if first.dH_steps is None else [sum(layer) for layer in zip(*[p.dH_steps for p in parts])]
    return Gradients(first.loss, grads, first.state, dstate, dH_steps, first.penalty)
