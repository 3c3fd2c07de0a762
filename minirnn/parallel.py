"""Data parallelism over the batch on the CPU: threads split the rows of a minibatch.

The rows of a minibatch are independent sequences, so a thread per slice of rows can run the
whole forward and backward pass, and the gradients of the mean loss are the token-weighted
average of the slices' gradients: the same result as one pass, up to the order of float
additions. It pays because NumPy runs elementwise work (tanh, exp, the softmax) on one core
and releases the GIL while it runs. BLAS must then run on one thread: its own idle workers
spin on the cores for a while after each multi-threaded call, so loops that call the model
many times (training, the benchmark) hold `single_threaded_blas()` around the whole loop.
The single-threaded pass is what the split is held to; tests hold the two together.

The model's own passes (model.loss, model.gradients) run on the calling thread; `loss` and
`gradients` below run them on slices of the rows and merge the results. The trainer (through
its truncation), the evaluation and the benchmark call these, and so does the book-shaped
RNNLM.loss_and_grads.

Processes can split a batch's rows too (run/distributed.py: MPI ranks): `gradients` takes a
communicator, whose rows() says which rows this process computes and whose merge() joins its
result to the other processes'. WHOLE, the default, is one process holding every row.
"""
import contextlib
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .backend import xp_of
from .tree import leaves, tree_map

# a slice should carry at least this many hidden units per time step (rows * H); below it the
# per-step Python overhead, which holds the GIL, outweighs the second core
MIN_WORK_PER_STEP = 4096

_pools = {}
_controller = None
_lock = threading.Lock()


def cpu_count():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def host_threads(xp, requested=None):
    """How many CPU threads may share one batch: `requested` (None: every core) for NumPy, and 1
    for CuPy, whose work runs on the device."""
    if xp is not np:
        return 1
    return cpu_count() if requested is None else requested


def plan(batch_size, num_hiddens, workers):
    """How many slices to cut a batch into: at most `workers`, each with enough work (>= 1)."""
    if workers <= 1:
        return 1
    by_work = batch_size * num_hiddens // MIN_WORK_PER_STEP
    return max(1, min(workers, batch_size, by_work))


def _pool(workers):
    with _lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix='minirnn')
        return _pools[workers]


def single_threaded_blas(slices):
    """A context in which BLAS (OpenBLAS, MKL, BLIS) uses one thread, restored on exit.

    `slices` is plan()'s answer for the batches at hand: at 1 the batch is not split, and the
    single-threaded pass keeps BLAS's own threads (a no-op context).
    """
    if slices <= 1:
        return contextlib.nullcontext()
    global _controller
    from threadpoolctl import ThreadpoolController
    with _lock:
        if _controller is None:      # scanning the loaded libraries is slow: do it once
            _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api='blas')


def blas_context(batch_size, num_hiddens, workers):
    """single_threaded_blas for a loop over batches of this size (training, the benchmark)."""
    return single_threaded_blas(plan(batch_size, num_hiddens, workers))


def map_rows(fn, slices, *args):
    """Call fn(*row_slices) on `slices` contiguous row slices of each argument, in parallel.

    Args: fn, a function of arrays (B_i, ...) -> result; slices >= 2; args, arrays or trees
          of arrays (tree.py) with a common first dimension B, or None (passed through).
    Returns: (weights, results): weights[i] = B_i / B as Python floats, results in row order.
    """
    batch_size = leaves(next(a for a in args if a is not None))[0].shape[0]
    bounds = np.linspace(0, batch_size, slices + 1).astype(int)
    jobs = [[_rows(a, lo, hi) for a in args] for lo, hi in zip(bounds[:-1], bounds[1:])]
    # each job runs in a copy of the caller's context: NumPy's errstate is a context variable,
    # and a pool thread would otherwise warn (or not raise) where the caller asked otherwise
    contexts = [contextvars.copy_context() for _ in jobs]
    with single_threaded_blas(slices):
        results = list(_pool(slices).map(lambda ctx, job: ctx.run(fn, *job), contexts, jobs))
    # Python floats: a NumPy float64 weight would promote float32 gradients to float64
    return [int(hi - lo) / batch_size for lo, hi in zip(bounds[:-1], bounds[1:])], results


def _rows(arg, lo, hi):
    """Rows lo..hi-1 of an argument: None stays None, an object that knows its rows (model.Noise,
    whose weight masks every slice shares) cuts itself, a tree of arrays is cut leaf by leaf."""
    if arg is None:
        return None
    if hasattr(arg, 'rows'):
        return arg.rows(lo, hi)
    return tree_map(lambda x: x[lo:hi], arg)


# --- merging the slices' results: the only place that knows how -------------------------------
# Slice i computed the mean loss over its own rows, L_i; the batch's mean loss is L = sum_i w_i L_i
# with w_i = B_i / B. So parameter gradients add up weighted, and a gradient w.r.t. something
# that belongs to slice i's rows (its initial state, its hidden states) is w_i dL_i/d(rows);
# values that belong to rows (states) are concatenated.

def _weighted_sum(weights, parts):
    if isinstance(parts[0], dict):
        return {k: sum(w * part[k] for w, part in zip(weights, parts)) for k in parts[0]}
    return sum(w * part for w, part in zip(weights, parts))


def _concat(parts, axis=0, weights=None):
    xp = xp_of(leaves(parts[0])[0])
    if weights is not None:
        parts = [tree_map(lambda a, w=w: w * a, part) for w, part in zip(weights, parts)]
    return tree_map(lambda *arrays: xp.concatenate(arrays, axis=axis), *parts)


MERGE = {
    'loss': lambda w, parts: _weighted_sum(w, parts),            # mean over all rows
    'grads': lambda w, parts: _weighted_sum(w, parts),           # parameter gradients
    'state': lambda w, parts: _concat(parts),                    # rows of the final state
    'dstate': lambda w, parts: _concat(parts, weights=w),        # rows of dL/d(initial state)
    # per layer (T, B, H), time-major: the rows are axis 1
    'dH_steps': lambda w, parts: [_concat(layer, axis=1, weights=w) for layer in zip(*parts)],
    'penalty': lambda w, parts: _weighted_sum(w, parts),         # AR/TAR: means over the rows
}


def merge(weights, results):
    """One result from the slices' results (NamedTuples of the same type), field by field by MERGE."""
    first = results[0]
    merged = {}
    for field in first._fields:
        parts = [getattr(r, field) for r in results]
        merged[field] = None if parts[0] is None else MERGE[field](weights, parts)
    return type(first)(**merged)


class Whole:
    """One process computes the whole batch: the communicator of a plain run (nothing is sent).

    A communicator that splits the rows over processes (run/distributed.py) has these three
    methods too: rows(batch_size), this process's rows; merge(result, weight, params), its
    Gradients joined to the other processes' (weight: its share of the batch's rows); sum(values),
    numbers added up over the processes.
    """
    rank, size = 0, 1

    def rows(self, batch_size):
        return slice(0, batch_size)

    def merge(self, result, weight, params):
        return result

    def sum(self, values):
        return list(values)


WHOLE = Whole()


def share(model, X, Y, dropout_rng, comm):
    """This process's rows of a batch: (X, Y, masks, weight).

    The dropout masks are drawn for the whole batch (every process draws the same ones from the
    same Generator) and then cut, so each row gets the mask a one-process run gives it;
    weight = this process's rows / the batch's (0.0 when it has none). X and Y are checked
    whole (model.inputs), before their rows are cut.
    """
    X, Y, _ = model.inputs(X, Y)
    masks = model.noise(dropout_rng, *X.shape)
    rows = comm.rows(X.shape[0])
    if masks is not None:
        masks = masks.rows(rows.start, rows.stop)
    return X[rows], Y[rows], masks, (rows.stop - rows.start) / X.shape[0]


def no_rows(model, num_steps, record_steps=False):
    """The Gradients of a process that holds none of a batch's rows (the windows sampler's last
    batch can be shorter than the processes are many): zeros, which merge with weight 0."""
    from .model import Gradients         # model.py imports this module
    xp = model.xp
    grads = {k: xp.zeros_like(p) for k, p in model.params.items()}
    steps = ([xp.zeros((num_steps, 0, model.num_hiddens), model.dtype) for _ in range(model.num_layers)]
             if record_steps else None)
    return Gradients(0.0, grads, None, None, steps)


def split_rows(fn, workers, num_hiddens, *args):
    """fn(*args), computed by up to `workers` threads on slices of the batch's rows, then merged.

    The single-threaded result is fn(*args) in the calling thread; the split equals it up to the
    order of float additions (tests hold them together). args as in map_rows, the first one
    X (B, T); fn returns a NamedTuple whose fields are in MERGE (model.Forward, model.Gradients).
    """
    slices = plan(len(args[0]), num_hiddens, workers)
    if slices == 1:
        return fn(*args)
    weights, results = map_rows(fn, slices, *args)
    return merge(weights, results)


def loss(model, X, Y, state=None, *, dropout_rng=None, threads=None):
    """model.loss(X, Y, state) on up to `threads` threads (None: the model's), merged.

    The masks (model.noise) are drawn once for the whole batch, so the rows get the masks a
    single-threaded pass would give them. Returns model.Forward(loss, state).
    """
    X, Y, state = model.inputs(X, Y, state)
    masks = model.noise(dropout_rng, *X.shape)
    return split_rows(lambda X, Y, state, masks: model.loss(X, Y, state, masks=masks),
                      model.threads if threads is None else threads, model.num_hiddens,
                      X, Y, state, masks)


def gradients(model, X, Y, state=None, *, dropout_rng=None, dfinal_state=None, threads=None, comm=WHOLE,
              **options):
    """model.gradients(X, Y, state, ...) on up to `threads` threads (None: the model's), merged.

    options: sweeps, record_steps, as model.gradients takes them. The masks are drawn once
    for the whole batch, as in `loss`. comm: the processes that share the batch (WHOLE: this
    one alone); X, Y are the whole batch, state and dfinal_state this process's rows of it.
    Returns model.Gradients: loss and grads of the whole batch, the rest this process's rows.
    """
    X, Y, masks, weight = share(model, X, Y, dropout_rng, comm)
    if not weight:
        return comm.merge(no_rows(model, X.shape[1], options.get('record_steps')), 0.0, model.params)
    X, Y, state = model.inputs(X, Y, state)
    if dfinal_state is not None:          # checked whole, before its rows are cut
        dfinal_state = model.check_state('dfinal_state', dfinal_state, X.shape[0])

    def one_thread(X, Y, state, masks, dfinal_state):
        return model.gradients(X, Y, state, masks=masks, dfinal_state=dfinal_state, **options)
    result = split_rows(one_thread, model.threads if threads is None else threads, model.num_hiddens,
                        X, Y, state, masks, dfinal_state)
    return comm.merge(result, weight, model.params)
