"""The array module: NumPy on the CPU, CuPy on a CUDA GPU, chosen once.

This is the only module that imports cupy, and it does so lazily, so the package imports and
runs on machines without CuPy. It holds no math: only the choice of module, host/device
moves, synchronisation, seeding and the host allocator's settings. How many CPU threads
share a batch is parallel.py's business.
"""
import contextlib
import ctypes
import sys
import warnings

import numpy as np

from . import checks
from .errors import ConfigError

DEVICES = ('cpu', 'gpu', 'auto')
# numpy >= 1.25 keeps its warnings in numpy.exceptions
ComplexWarning = getattr(np, 'exceptions', np).ComplexWarning


def _import_cupy():
    """Return (cupy, None) when CuPy imports and sees a CUDA device, else (None, reason)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising on import
        return None, f'CuPy is not installed ({exc.__class__.__name__}); pip install -e ".[gpu]"'
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f'CuPy found no usable CUDA device ({exc})'
    if count < 1:
        return None, 'CuPy found no CUDA device'
    return cupy, None


_allocator_tuned = False


def tune_host_allocator():
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it at once.

    A training step allocates the same few arrays of a few MB on every call. By default glibc
    serves each from fresh kernel pages (mmap) and unmaps it on free, so every step pays page
    faults for memory it held a moment ago: about 40% of a CPU step at the book's shapes, more
    with threads. Raising the mmap and trim thresholds keeps those pages in the heap. It is
    process-wide (freed memory up to 256 MB stays with the process), idempotent, and a no-op
    where the C library has no mallopt (macOS, Windows). fit() and the benchmark call it.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    try:
        mallopt = ctypes.CDLL(None).mallopt      # the running process's C library
    except (OSError, AttributeError, TypeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
    mallopt(M_MMAP_THRESHOLD, 32 * 2**20)        # glibc's largest allowed value
    mallopt(M_TRIM_THRESHOLD, 256 * 2**20)


def gpu_available():
    """True when CuPy imports and a CUDA device answers."""
    return _import_cupy()[0] is not None


def get_xp(device='cpu'):
    """Return the array module for `device` ('cpu', 'gpu' or 'auto').

    'gpu' without CuPy or without a CUDA device raises ConfigError; 'auto' takes the GPU
    when there is one and otherwise falls back to NumPy, saying so on stderr.
    """
    if device not in DEVICES:
        raise ConfigError(f'unknown device {device!r}; choose one of {", ".join(DEVICES)}')
    if device == 'cpu':
        return np
    cupy, reason = _import_cupy()
    if cupy is not None:
        return cupy
    if device == 'gpu':
        raise ConfigError(f'--device gpu needs CuPy and a CUDA GPU: {reason}')
    print(f'minirnn: no GPU ({reason}); running on the CPU', file=sys.stderr)
    return np


def device_name(xp):
    """'gpu' for CuPy, 'cpu' for NumPy: what a checkpoint or a report records."""
    return 'cpu' if xp is np else 'gpu'


def xp_of(*arrays):
    """The array module the arrays live in (the CuPy docs' get_array_module idiom)."""
    for a in arrays:
        module = type(a).__module__
        if module.startswith('cupy'):
            import cupy
            return cupy
    return np


def to_device(a, xp, dtype=None):
    """Copy a host (or device) array into module `xp`, optionally casting."""
    out = xp.asarray(a)
    if dtype is not None and out.dtype != dtype:
        out = out.astype(dtype)
    return out


def to_numpy(a):
    """A NumPy array on the host, whatever module `a` lives in."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, 'get', None)
    return get() if get is not None else np.asarray(a)


def synchronize(xp):
    """Wait for queued GPU work (a no-op on NumPy); needed before reading a clock."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


def make_rng(seed=None):
    """A numpy.random.Generator from an int seed, an existing Generator, or None (fresh entropy).

    Every random choice in minirnn (initialisation, shuffling, sampling) draws from a host
    Generator like this one, so CPU and GPU runs with the same seed make the same choices.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        checks.integer('seed', seed, 0, optional=True)
    except ConfigError:
        raise ConfigError(f'seed must be an integer >= 0 or a numpy.random.Generator, got {seed!r}') from None
    return np.random.default_rng(seed)


@contextlib.contextmanager
def complex_kept(what):
    """Inside, a cast of complex values to a real dtype raises ConfigError (naming `what`).

    NumPy only warns when such a cast drops an imaginary part; under a complex step that part
    is the derivative being measured, so losing it silently would give a wrong zero instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('error', ComplexWarning)
        try:
            yield
        except ComplexWarning as e:
            raise ConfigError(f'{what} casts complex values to real ({e}); complex steps need a '
                              'forward pass that computes in the dtype of its inputs, as the '
                              'reference cells do') from None
