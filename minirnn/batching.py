"""Minibatches (X, Y) of token indices from a 1-D corpus, with the book's three samplers.

B = batch_size, T = num_steps. Every batch is a pair of (B, T) C-contiguous int32 host
arrays with Y[b, t] the token after X[b, t]. Random choices come from a NumPy Generator, so a
seed fixes every batch of every epoch. SeqDataLoader adds epochs, len() and a resumable state;
moving to the GPU is backend.to_device's job, at the edge.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import checks
from .backend import make_rng, to_device, to_numpy
from .errors import CheckpointError, ConfigError, DataError

SAMPLERS = ('sequential', 'random', 'windows')


# ---------------------------------------------------------------- checks and counts

def _as_corpus(corpus):
    corpus = to_numpy(corpus)
    if corpus.ndim != 1 or not np.issubdtype(corpus.dtype, np.integer):
        raise DataError(f'a corpus must be a 1-D integer array of token indices, got shape '
                        f'{corpus.shape} and dtype {corpus.dtype}')
    return corpus


def _check_positive(**values):
    for name, value in values.items():
        checks.integer(name, value)


def min_corpus_length(sampler, batch_size, num_steps, start=0, num_windows=1):
    """Fewest tokens for which `sampler` yields at least one batch whatever offset it draws.

    random needs (B+1)*T (offset T-1, then B subsequences of T plus one target token);
    sequential (B+1)*T + 1 (offset T, then B rows of T plus one); windows start + num_windows + T.
    """
    if sampler == 'random':
        return (batch_size + 1) * num_steps
    if sampler == 'sequential':
        return (batch_size + 1) * num_steps + 1
    return start + num_windows + num_steps


def _check_length(corpus, sampler, batch_size, num_steps, start=0, num_windows=1):
    need = min_corpus_length(sampler, batch_size, num_steps, start, num_windows)
    if len(corpus) < need:
        if sampler == 'windows':
            what = f'start={start}, num_windows={num_windows} and num_steps={num_steps}'
            fix = 'fewer windows (--num-train-windows, --num-val-windows) or a smaller --num-steps'
        else:
            what = f'batch_size={batch_size} and num_steps={num_steps}'
            fix = 'a smaller --batch-size or --num-steps'
        raise DataError(f'the corpus has {len(corpus)} tokens, but the {sampler} sampler needs at least '
                        f'{need} for {what}; use a longer text or {fix}')


def _num_batches(sampler, n, batch_size, num_steps, offset, num_windows=None):
    """How many batches a sampler yields from n tokens (the book's formulas)."""
    if sampler == 'random':
        return (n - 1 - offset) // num_steps // batch_size
    if sampler == 'sequential':
        return (n - offset - 1) // batch_size // num_steps
    return -(-num_windows // batch_size)  # partial last batch kept (drop_last=False)


def _draw_offset(sampler, num_steps, rng):
    # random: offset in [0, T-1] (random.randint(0, num_steps - 1)); sequential: [0, T]
    if sampler == 'windows':
        return None
    return int(rng.integers(num_steps if sampler == 'random' else num_steps + 1))


# ---------------------------------------------------------------- batch generators

def _window_batches(corpus, starts, batch_size, num_steps):
    """Batches of the windows corpus[s:s+T+1] for s in starts, B at a time (the last may be short)."""
    windows = sliding_window_view(corpus, num_steps + 1)  # (N-T, T+1), a view: no copy
    for i in range(0, len(starts), batch_size):
        W = windows[starts[i:i + batch_size]]  # (B, T+1), a fancy-index copy
        yield np.ascontiguousarray(W[:, :-1], np.int32), np.ascontiguousarray(W[:, 1:], np.int32)


def _random_starts(n, batch_size, num_steps, offset, rng):
    num_subseqs = (n - 1 - offset) // num_steps
    num_batches = num_subseqs // batch_size
    starts = offset + rng.permutation(num_subseqs) * num_steps  # shuffled grid of subsequence starts
    return starts[:num_batches * batch_size]


def _sequential_batches(corpus, batch_size, num_steps, offset):
    num_tokens = (len(corpus) - offset - 1) // batch_size * batch_size
    Xs = corpus[offset:offset + num_tokens].reshape(batch_size, -1)  # (B, N') one contiguous row each
    Ys = corpus[offset + 1:offset + 1 + num_tokens].reshape(batch_size, -1)
    num_batches = Xs.shape[1] // num_steps
    for i in range(0, num_steps * num_batches, num_steps):
        yield (np.ascontiguousarray(Xs[:, i:i + num_steps], np.int32),
               np.ascontiguousarray(Ys[:, i:i + num_steps], np.int32))


def _window_order(start, num_windows, shuffle, rng):
    return start + (rng.permutation(num_windows) if shuffle else np.arange(num_windows))


def _batches(sampler, corpus, batch_size, num_steps, offset, rng, start=0, num_windows=None, shuffle=True):
    """Draw what the epoch needs from rng now (not lazily), then return the batch generator."""
    if sampler == 'random':
        return _window_batches(corpus, _random_starts(len(corpus), batch_size, num_steps, offset, rng),
                               batch_size, num_steps)
    if sampler == 'sequential':
        return _sequential_batches(corpus, batch_size, num_steps, offset)
    return _window_batches(corpus, _window_order(start, num_windows, shuffle, rng), batch_size, num_steps)


# ---------------------------------------------------------------- the book's samplers

def seq_data_iter_random(corpus, batch_size, num_steps, rng=None):
    """The book's random sampling: shuffled, non-overlapping subsequences on one num_steps grid.

    Starts at a random offset in [0, num_steps-1]; cuts num_subseqs = (N-1-offset)//num_steps
    subsequences; yields num_subseqs//batch_size batches. Adjacent batches are not adjacent in
    the text, so the hidden state must be reset between them.

    Example: corpus = 0..34, B=2, T=5, offset 2 -> subsequences start at 2, 7, 12, 17, 22, 27
    (6 of them, 3 batches); a batch might be X = [[17..21], [2..6]], Y = [[18..22], [3..7]].

    Args: corpus (N,) integers; rng a numpy Generator, an int seed or None.
    Returns: a generator of (X, Y), each (batch_size, num_steps) int32.
    """
    return _one_epoch('random', corpus, batch_size, num_steps, rng)


def seq_data_iter_sequential(corpus, batch_size, num_steps, rng=None):
    """The book's sequential partitioning: batch_size contiguous rows, read num_steps at a time.

    Starts at a random offset in [0, num_steps]; keeps num_tokens = ((N-offset-1)//B)*B tokens
    as B rows; yields (num_tokens//B)//num_steps batches. Row b of batch i+1 continues row b of
    batch i, which is why the hidden state can be carried (and detached) between batches.

    Example: corpus = 0..34, B=2, T=5, offset 2 -> num_tokens = 32, rows 2..17 and 18..33,
    3 batches: X0 = [[2..6], [18..22]], X1 = [[7..11], [23..27]], X2 = [[12..16], [28..32]].

    Args: corpus (N,) integers; rng a numpy Generator, an int seed or None.
    Returns: a generator of (X, Y), each (batch_size, num_steps) int32.
    """
    return _one_epoch('sequential', corpus, batch_size, num_steps, rng)


def _one_epoch(sampler, corpus, batch_size, num_steps, rng):
    """Check the arguments, draw the epoch's offset and return its batches (random or sequential)."""
    corpus = _as_corpus(corpus)
    _check_positive(batch_size=batch_size, num_steps=num_steps)
    _check_length(corpus, sampler, batch_size, num_steps)
    rng = make_rng(rng)
    return _batches(sampler, corpus, batch_size, num_steps, _draw_offset(sampler, num_steps, rng), rng)


def _window_range(corpus, num_steps, start, num_windows):
    checks.integer('start', start, 0)
    if num_windows is None:
        return max(len(corpus) - num_steps - start, 1)  # every window from start (or a too-short error)
    _check_positive(num_windows=num_windows)
    return num_windows


def seq_data_iter_windows(corpus, batch_size, num_steps, rng=None, *, start=0, num_windows=None, shuffle=True):
    """The 2nd edition's sampler (d2l.TimeMachine): every window of num_steps+1 tokens is an example.

    Window i is corpus[i:i+num_steps+1], X = window[:-1], Y = window[1:]. This yields windows
    start .. start+num_windows-1 (default: all that fit), shuffled when `shuffle`, in batches of
    batch_size with the last partial batch kept (the book's DataLoader, drop_last=False).
    The book trains on windows 0..9999 (shuffled) and validates on 10000..14999 (in order):
    start=0, num_windows=10000 and start=10000, num_windows=5000, shuffle=False. Those windows
    overlap, so the book's first validation windows share up to num_steps characters with its
    last training windows; text.split_corpus (--val-fraction) gives a clean tail instead.

    Example: corpus = 0..9, T=3 -> windows [0,1,2,3], [1,2,3,4], ..., [6,7,8,9] (7 of them);
    window 1 gives X = [1, 2, 3], Y = [2, 3, 4].

    Args: corpus (N,) integers; rng a numpy Generator, an int seed or None.
    Returns: a generator of (X, Y), each (b, num_steps) int32 with b = batch_size except maybe last.
    """
    corpus = _as_corpus(corpus)
    _check_positive(batch_size=batch_size, num_steps=num_steps)
    num_windows = _window_range(corpus, num_steps, start, num_windows)
    _check_length(corpus, 'windows', batch_size, num_steps, start, num_windows)
    return _batches('windows', corpus, batch_size, num_steps, None, make_rng(rng), start, num_windows, shuffle)


# ---------------------------------------------------------------- epochs

class SeqDataLoader:
    """Epochs of batches from one sampler, moved onto `xp`, reproducible from one seed.

    The loader holds its Generator, so each epoch differs but the whole run is fixed by the
    seed: epoch k equals the k-th call of seq_data_iter_<sampler> on one Generator of that seed.
    The next epoch's offset is drawn ahead, so len() is the exact number of batches the next
    iter() yields, and state_dict() (taken between epochs) resumes with the same batches.
    """

    def __init__(self, corpus, batch_size, num_steps, sampler='sequential', rng=None, xp=np,
                 *, start=None, num_windows=None, shuffle=None):
        """corpus (N,) integers; sampler one of SAMPLERS; start/num_windows/shuffle only for 'windows'."""
        if sampler not in SAMPLERS:
            raise ConfigError(f'unknown sampler {sampler!r}; choose one of {", ".join(SAMPLERS)}')
        if sampler != 'windows' and (start, num_windows, shuffle) != (None, None, None):
            raise ConfigError(f'start, num_windows and shuffle apply to the windows sampler only, not {sampler}')
        self.corpus = _as_corpus(corpus)
        _check_positive(batch_size=batch_size, num_steps=num_steps)
        self.batch_size, self.num_steps, self.sampler, self.xp = batch_size, num_steps, sampler, xp
        self.start = 0 if start is None else start
        self.shuffle = True if shuffle is None else bool(shuffle)
        self.num_windows = (_window_range(self.corpus, num_steps, self.start, num_windows)
                            if sampler == 'windows' else None)
        _check_length(self.corpus, sampler, batch_size, num_steps, self.start, self.num_windows or 1)
        self.rng = make_rng(rng)
        self._offset = _draw_offset(sampler, num_steps, self.rng)  # the next epoch's

    def __len__(self):
        return _num_batches(self.sampler, len(self.corpus), self.batch_size, self.num_steps,
                            self._offset, self.num_windows)

    @property
    def continues(self):
        """Whether batch i+1 continues batch i row by row (the sequential sampler), so that a
        batch's final state is the right start for the next one (truncation.py decides)."""
        return self.sampler == 'sequential'

    def max_len(self):
        """The most batches any epoch yields (offset 0), the same for every epoch of the run."""
        return _num_batches(self.sampler, len(self.corpus), self.batch_size, self.num_steps,
                            None if self.sampler == 'windows' else 0, self.num_windows)

    def __iter__(self):
        # all of this epoch's draws (and the next offset) happen here, so an epoch cut short
        # leaves the Generator exactly where a finished one would
        batches = _batches(self.sampler, self.corpus, self.batch_size, self.num_steps, self._offset,
                           self.rng, self.start, self.num_windows, self.shuffle)
        self._offset = _draw_offset(self.sampler, self.num_steps, self.rng)
        return ((to_device(X, self.xp), to_device(Y, self.xp)) for X, Y in batches)

    def state_dict(self):
        """JSON-ready state: the sampler, the Generator's bit_generator.state and the next offset."""
        return {'sampler': self.sampler, 'rng': self.rng.bit_generator.state, 'offset': self._offset}

    def load_state_dict(self, state):
        """Continue from a state_dict(): the next iter() yields what the saved loader's would have."""
        if not isinstance(state, dict) or state.get('sampler') != self.sampler:
            found = state.get('sampler') if isinstance(state, dict) else state
            raise ConfigError(f'the saved loader state is for sampler {found!r}, not {self.sampler!r}; '
                              f'resume with --sampler {found}')
        offset, top = state.get('offset'), {'random': self.num_steps - 1, 'sequential': self.num_steps}
        if (offset is None) != (self.sampler == 'windows') or (
                offset is not None and not (isinstance(offset, int) and 0 <= offset <= top[self.sampler])):
            raise CheckpointError(f'the saved loader state has offset {offset!r}, which does not fit '
                                  f'the {self.sampler} sampler with num_steps={self.num_steps}')
        try:
            self.rng.bit_generator.state = state['rng']
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f'the saved loader state has an unusable random state ({exc})') from None
        self._offset = offset
