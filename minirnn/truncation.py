"""How far back BPTT carries a gradient: the truncation of backpropagation through time, as a choice.

    detach    the book's: a batch's backward pass stops at its initial state, which the
              sequential sampler hands over from the previous batch as a constant
    full      no detach (the 1st edition's exercise): batch i's gradient flows on through
              every earlier batch of the epoch, whose forward passes are kept (memory grows)
    regular   k1/k2 truncation (Williams and Peng): every k1 steps, the loss terms of those
              k1 steps are backpropagated k2 steps, never past the batch's start
    random    randomized truncation (the 2nd edition's BPTT section, after Tallec and
              Ollivier): what step t passes back to step t-1 is multiplied by xi_t, which is
              0 with probability 1 - pi and 1/pi with probability pi, so E[gradient] is exact

Each is a class with start_epoch(loader), gradients(model, X, Y, state, dropout_rng,
record_steps=False) -> model.Gradients, and next_state(result); the trainer calls nothing else.
Whether a batch starts from the state the previous one ended in is the truncation's call too:
it carries the state when the loader's batches continue each other (the sequential sampler). detach, regular and random
run the model's rows split over threads (parallel.gradients; regular and random are sums of
backward passes of one forward pass, model.gradients(sweeps=...)); full walks kept tapes on one
thread. Each holds `comm`, the processes that share a batch's rows (parallel.WHOLE: this one; an
MPI communicator, run/distributed.py): X and Y are the whole batch, the state this process's rows.
"""
import numpy as np

from . import checks, parallel
from .backend import make_rng
from .errors import ConfigError
from .model import Gradients

MODES = ('detach', 'full', 'regular', 'random')


def regular_sweeps(num_steps, k1, k2):
    """The (loss_steps, carry) pairs of k1/k2 truncation over one batch of T steps.

    Chunk c holds the steps (s, e], s = 0, k1, 2 k1, ..., e = min(s + k1, T). Its sweep
    differentiates only those steps' loss terms, through the k2 steps e - k2 + 1 .. e: the state
    before them is a constant (what step e - k2 + 1 passes back is cut), as the book's detach
    treats a batch's initial state. So each loss term reaches between k2 - k1 + 1 and k2 steps
    back, and with k2 >= T the sweeps add up to the book's BPTT over the batch (k2 > T also
    gives the same gradient w.r.t. the initial state).
    Example: T=6, k1=2, k2=3 gives loss steps {1,2}, {3,4}, {5,6}, cut after step 0, 2, 4
    (carry[1] = 0 means step 2 passes nothing back to step 1).
    Returns: a list of (loss_steps (T,) bool array, carry list of T floats).
    """
    sweeps = []
    for start in range(0, num_steps, k1):
        end = min(start + k1, num_steps)
        loss_steps = np.zeros(num_steps, dtype=bool)
        loss_steps[start:end] = True                          # steps start+1 .. end
        carry = [1.0] * num_steps
        first = end - k2 + 1                                  # the earliest step the sweep reaches
        if first >= 1:
            carry[first - 1] = 0.0                            # step `first` passes nothing back
        sweeps.append((loss_steps, carry))
    return sweeps


def random_carry(num_steps, keep_prob, rng):
    """xi_1..xi_T of randomized truncation: 1/pi with probability pi, else 0 (E[xi_t] = 1).

    xi_t multiplies what step t passes back to step t-1 (the state before the batch included),
    so the sum over paths that BPTT computes keeps its expectation: each path's weight is a
    product of independent xi's, each of mean 1.
    """
    keep = rng.random(num_steps) < keep_prob
    return list(np.where(keep, 1.0 / keep_prob, 0.0))


class Detach:
    """The book's truncation: exact BPTT within a batch, a constant initial state."""

    carry = True             # whether this epoch's batches hand their final state on
    comm = parallel.WHOLE    # the processes that share each batch's rows

    def start_epoch(self, loader=None):
        """A new epoch of `loader`'s batches (a SeqDataLoader): carry the state when they
        continue each other. None: batches handed in one by one, each with its own state."""
        self.carry = True if loader is None else loader.continues

    def next_state(self, result):
        """The state the next batch starts from: this batch's final state, or None (zeros)."""
        return result.state if self.carry else None

    def gradients(self, model, X, Y, state, dropout_rng, record_steps=False):
        return parallel.gradients(model, X, Y, state, dropout_rng=dropout_rng, record_steps=record_steps,
                                  comm=self.comm)


class Regular(Detach):
    """k1/k2 truncation within each batch (see regular_sweeps)."""

    def __init__(self, k1, k2):
        self.k1 = checks.integer('k1', k1)
        self.k2 = checks.integer('k2', k2)
        if self.k2 < self.k1:
            raise ConfigError(f'k2 ({k2}) must be at least k1 ({k1}): each loss term is '
                              'backpropagated at least through its own chunk')

    def gradients(self, model, X, Y, state, dropout_rng, record_steps=False):
        sweeps = regular_sweeps(np.shape(X)[1], self.k1, self.k2)
        return parallel.gradients(model, X, Y, state, dropout_rng=dropout_rng, sweeps=sweeps,
                                  record_steps=record_steps, comm=self.comm)


class Random(Detach):
    """Randomized truncation with keep probability pi, one draw of xi per batch and step."""

    def __init__(self, keep_prob, rng=None):
        self.keep_prob = checks.number('keep_prob', keep_prob, above=0)
        if self.keep_prob > 1:
            raise ConfigError(f'keep_prob must be in (0, 1], got {keep_prob!r}')
        self.rng = make_rng(rng)

    def gradients(self, model, X, Y, state, dropout_rng, record_steps=False):
        carry = random_carry(np.shape(X)[1], self.keep_prob, self.rng)
        return parallel.gradients(model, X, Y, state, dropout_rng=dropout_rng, sweeps=[(None, carry)],
                                  record_steps=record_steps, comm=self.comm)


class Full(Detach):
    """No detach: BPTT through every earlier batch of the epoch (the sequential sampler).

    Each batch's forward pass is kept as a tape, with a copy of the parameters it used (the
    optimizer changes them in place afterwards), until the epoch ends. Batch i's gradient is
    its own backward pass plus, for j = i-1 down to 1, batch j's backward pass driven only by
    the gradient arriving through its final state (its own loss terms were used at step j).
    Memory grows with the batches kept; max_tape_bytes bounds it with a clear error. Runs on
    one thread.
    """

    def __init__(self, max_tape_bytes=2 ** 30):
        self.max_tape_bytes = checks.integer('max_tape_bytes', max_tape_bytes)
        self.tapes = []

    def start_epoch(self, loader=None):
        super().start_epoch(loader)
        self.tapes = []

    def gradients(self, model, X, Y, state, dropout_rng, record_steps=False):
        X, Y, masks, weight = parallel.share(model, X, Y, dropout_rng, self.comm)   # sequential: weight > 0
        tape = model.tape(X, Y, state, masks=masks, keep_params=True)
        self.tapes.append(tape)
        kept = sum(tape_bytes(t) for t in self.tapes)
        if kept > self.max_tape_bytes:
            raise ConfigError(
                f'--truncation full keeps every batch of the epoch for its backward pass: '
                f'{len(self.tapes)} batches need {kept / 2**20:,.0f} MiB, above the limit of '
                f'{self.max_tape_bytes / 2**20:,.0f} MiB; use fewer tokens (--max-tokens), a '
                f'smaller model, or another --truncation')
        first = model.backprop(tape, record_steps=record_steps)    # dH_steps: this batch's
        grads, dstate = dict(first.grads), first.dstate
        no_loss = np.zeros(tape.softmax.y.shape[0] // tape.batch_size, dtype=bool)   # (T,): none
        for earlier in reversed(self.tapes[:-1]):
            part = model.backprop(earlier, dfinal_state=dstate, loss_steps=no_loss)
            for k, g in part.grads.items():
                grads[k] += g
            dstate = part.dstate
        return self.comm.merge(Gradients(first.loss, grads, first.state, dstate, first.dH_steps, first.penalty),
                               weight, model.params)


def tape_bytes(tree):
    """Bytes held by the arrays in a tape (NamedTuples, lists, dicts and arrays)."""
    if hasattr(tree, 'nbytes') and hasattr(tree, 'shape'):
        return int(tree.nbytes)
    if isinstance(tree, dict):
        return sum(tape_bytes(v) for v in tree.values())
    if isinstance(tree, (tuple, list)):
        return sum(tape_bytes(v) for v in tree)
    return 0


def from_config(config, rng=None, comm=parallel.WHOLE):
    """The truncation a TrainConfig asks for; rng draws randomized truncation's xi; comm: the
    processes that share each batch's rows."""
    truncation = make(config.truncation, k1=config.k1, k2=config.k2, keep_prob=config.keep_prob, rng=rng,
                      max_tape_bytes=config.max_tape_mb * 2 ** 20)
    truncation.comm = comm
    return truncation


def make(mode, *, k1=None, k2=None, keep_prob=None, rng=None, max_tape_bytes=2 ** 30):
    """The truncation named `mode` (one of MODES) with its settings."""
    checks.one_of('truncation', mode, MODES)
    if mode == 'regular':
        if k1 is None or k2 is None:
            raise ConfigError('--truncation regular needs --k1 and --k2')
        return Regular(k1, k2)
    if mode == 'random':
        if keep_prob is None:
            raise ConfigError('--truncation random needs --keep-prob')
        return Random(keep_prob, rng)
    if mode == 'full':
        return Full(max_tape_bytes)
    return Detach()
