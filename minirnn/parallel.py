"""Data parallelism over the batch on the CPU: threads split the rows of a minibatch.

The rows of a minibatch are independent sequences, so a thread per slice of rows can run the
whole forward and backward pass, and the gradients of the mean loss are the token-weighted
average of the slices' gradients: the same result as one pass, up to the order of float
additions. It pays because NumPy runs elementwise work (tanh, exp, the softmax) on one core
and releases the GIL while it runs. BLAS must then run on one thread: its own idle workers
spin on the cores for a while after each multi-threaded call, so loops that call the model
many times (training, the benchmark) hold `single_threaded_blas()` around the whole loop.
The single-threaded pass is the reference; tests hold the two together.
"""
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

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
    reference path keeps BLAS's own threads (a no-op context).
    """
    if slices <= 1:
        return contextlib.nullcontext()
    global _controller
    from threadpoolctl import ThreadpoolController
    with _lock:
        if _controller is None:      # scanning the loaded libraries is slow: do it once
            _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api='blas')


def map_rows(fn, slices, *arrays):
    """Call fn(*row_slices) on `slices` contiguous row slices of each array, in parallel.

    Args: fn, a function of arrays (B_i, ...) -> result; slices >= 2; arrays with a common
          first dimension B (None entries are passed through as None).
    Returns: (weights, results): weights[i] = B_i / B as Python floats, results in row order.
    """
    batch_size = next(a for a in arrays if a is not None).shape[0]
    bounds = np.linspace(0, batch_size, slices + 1).astype(int)
    jobs = [[None if a is None else a[lo:hi] for a in arrays] for lo, hi in zip(bounds[:-1], bounds[1:])]
    with single_threaded_blas(slices):
        results = list(_pool(slices).map(lambda args: fn(*args), jobs))
    # Python floats: a NumPy float64 weight would promote float32 gradients to float64
    return [int(hi - lo) / batch_size for lo, hi in zip(bounds[:-1], bounds[1:])], results
