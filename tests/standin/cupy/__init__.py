"""A stand-in for CuPy 14 (test code only, never installed): NumPy underneath, CuPy's host/device rules on top.

No GPU runs in CI, so minirnn's CuPy path would never run there, and the mistakes only CuPy
catches would reach a GPU machine first: a NumPy array handed to a device kernel, np.asarray
of a device array, a host array assigned into a device slice, a read-back in a loop. This
package is importable as `cupy` when tests/standin is on sys.path (PYTHONPATH=tests/standin
for a subprocess) or installed into sys.modules by the `standin` fixture in tests/conftest.py.
It reports one CUDA device, so minirnn.backend takes it for a working GPU: with
`PYTHONPATH=tests/standin python -m pytest` the gpu-marked tests that do not take the `xp`
fixture (test_model.py::test_cpu_and_gpu_agree) run on it too; the xp fixture's `cupy` param
still waits for real CuPy.

It implements the CuPy names minirnn and its tests use (the arrays' kernels are NumPy's, so
results equal the CPU path's), raises where CuPy raises (_core.py names the CuPy source of
each rule), and counts what the GPU would have done: host synchronisations, kernel launches,
alias copies, uploads (_standin.py; `standin_counters`, `standin_counting()`). A name CuPy has
but this lacks is an AttributeError: add it here when minirnn starts using it.
"""
import builtins as _builtins   # this module's all, any, sum, max, min and abs are CuPy's

import numpy as _numpy
from numpy import (bool_, complex64, complex128, dtype, e, finfo, float16, float32, float64,  # noqa: F401
                   iinfo, inf, int8, int16, int32, int64, intp, isscalar, issubdtype, nan,
                   newaxis, pi, promote_types, can_cast, uint8, uint16, uint32, uint64)

from . import _core, _standin, cuda  # noqa: F401
from ._core import concatenate, matmul, ndarray, repeat, take, ufunc  # noqa: F401

__version__ = '14.0.0'   # the CuPy release whose rules this copies; this is the stand-in, not CuPy
STANDIN = True           # real CuPy has no such attribute: tests/conftest.py tells the two apart by it

standin_counters = _standin.counters
standin_counting = _standin.counting

# --- ufuncs: CuPy's names, NumPy's loops -------------------------------------------------------

_UFUNCS = ('add subtract multiply divide floor_divide power negative positive absolute sqrt square '
           'cbrt exp exp2 expm1 log log2 log10 log1p sin cos tan arcsin arccos arctan arctan2 sinh '
           'cosh tanh arcsinh arccosh arctanh maximum minimum fmax fmin greater greater_equal less '
           'less_equal equal not_equal logical_and logical_or logical_xor logical_not bitwise_and '
           'bitwise_or bitwise_xor invert left_shift right_shift isfinite isinf isnan sign '
           'reciprocal remainder fmod floor ceil trunc rint conjugate hypot signbit copysign').split()
for _name in _UFUNCS:
    globals()[_name] = ufunc(getattr(_numpy, _name))
true_divide = ufunc(_numpy.true_divide, 'true_divide')
abs = absolute            # noqa: A001  (CuPy's aliases)
bitwise_not = invert
conj = conjugate
mod = remainder


def _np_where(condition, x, y, out=None, dtype=None, casting=None):
    """NumPy's where in the shape of a ufunc loop, for _where_ufunc below."""
    res = _numpy.where(condition, x, y)
    if dtype is not None:
        res = res.astype(dtype)
    if out is not None:
        out[0][...] = res
        return out[0]
    return res


_np_where.nin, _np_where.nout, _np_where.nargs = 3, 1, 4
_where_ufunc = ufunc(_np_where, 'where')


def where(condition, x=None, y=None):
    """_sorting/search.py where: the three-argument form is a ufunc (NumPy arrays are TypeError);
    the one-argument form is nonzero (a sync)."""
    missing = (x is None, y is None).count(True)
    if missing == 1:
        raise ValueError("Must provide both 'x' and 'y' or neither.")
    if missing == 2:
        return nonzero(condition)
    return _where_ufunc(condition.astype('?', copy=False), x, y)


def nonzero(a):
    return a.nonzero()


# --- creation ------------------------------------------------------------------------------------

def array(obj, dtype=None, copy=True, order='K', subok=False, ndmin=0, *, blocking=False):
    """core.pyx array: a device array is copied on the device (astype; none with copy=False and
    nothing to change); a list of device arrays is stacked on the device; anything else is
    host data, uploaded (a list holding device arrays among others reaches __array__:
    TypeError)."""
    if isinstance(obj, ndarray):
        a = obj.astype(obj.dtype if dtype is None else dtype, order=order, copy=bool(copy))
        if ndmin > a.ndim:
            a = a.reshape((1,) * (ndmin - a.ndim) + a.shape)
        return a
    if isinstance(obj, (list, tuple)) and obj and _builtins.all(isinstance(x, ndarray) for x in obj):
        stacked = _numpy.stack([x._a for x in obj])
        _standin.launch('copy', len(obj))
        return _core._wrap(stacked if dtype is None else stacked.astype(dtype, copy=False))
    a = _numpy.array(obj, dtype=dtype, order=order if order in 'CF' else 'K', ndmin=ndmin)
    _core._check_dtype(a.dtype)
    _standin.upload()
    return _core._wrap(a)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """from_data.py asarray = core.array(a, dtype, copy, order): a device array of the right dtype is returned as is."""
    return array(a, dtype, copy=False if copy is None else copy, order=order or 'K', blocking=blocking)


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    """core.pyx ascontiguousarray (typed _ndarray_base: a NumPy array is TypeError): `a` itself
    when C-contiguous with the dtype asked for, else a copy."""
    _core._typed('a', a)
    dtype = a.dtype if dtype is None else _numpy.dtype(dtype)
    if dtype == a.dtype and a._a.flags.c_contiguous:
        return a.ravel() if a.ndim == 0 else a
    res = _numpy.ascontiguousarray(a._a, dtype=dtype)
    _standin.launch('copy')
    return _core._wrap(res.reshape((1,)) if res.ndim == 0 else res)


def copy(a, order='K'):
    return a.copy(order='C' if order == 'K' else order)


def empty(shape, dtype=float, order='C'):
    """basic.py empty: uninitialised memory (here NaN-filled), nothing launched."""
    return ndarray(shape, dtype, order=order)


def _like(a, dtype, order, shape):
    """The layout of empty_like(a) for a device or a host `a` (CuPy accepts both)."""
    proto = a._a if isinstance(a, ndarray) else _numpy.asarray(a)
    res = _numpy.empty_like(proto, dtype=dtype, order=order, shape=shape)
    return _core._wrap(_core._poisoned(res.shape, res.dtype, 'F' if res.flags.f_contiguous and not res.flags.c_contiguous else 'C'))


def empty_like(a, dtype=None, order='K', subok=None, shape=None):
    return _like(a, dtype, order, shape)


def zeros(shape, dtype=float, order='C'):
    """basic.py zeros: a memset (one launch)."""
    a = empty(shape, dtype, order)
    a._a.fill(0)
    if a.nbytes:
        _standin.launch('memset')
    return a


def zeros_like(a, dtype=None, order='K', subok=None, shape=None):
    a = _like(a, dtype, order, shape)
    a._a.fill(0)
    if a.nbytes:
        _standin.launch('memset')
    return a


def ones(shape, dtype=float, order='C'):
    a = empty(shape, dtype, order)
    a.fill(1)
    return a


def ones_like(a, dtype=None, order='K', subok=None, shape=None):
    a = _like(a, dtype, order, shape)
    a.fill(1)
    return a


def full(shape, fill_value, dtype=None, order='C'):
    if dtype is None:
        dtype = fill_value.dtype if isinstance(fill_value, ndarray) else _numpy.array(fill_value).dtype
    a = empty(shape, dtype, order)
    a.fill(fill_value)
    return a


def arange(start, stop=None, step=1, dtype=None):
    """ranges.py arange: one kernel fills the range."""
    res = _numpy.arange(start, stop, step, dtype=dtype) if stop is not None else _numpy.arange(start, dtype=dtype)
    if res.size:
        _standin.launch('arange')
    return _core._wrap(res)


# --- to and from the host ----------------------------------------------------------------------

def asnumpy(a, stream=None, order='C', out=None, *, blocking=True):
    """__init__.py asnumpy: a device array's .get() (a sync); host data as numpy.asarray."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    temp = _numpy.asarray(a, order=order)
    if out is None:
        return temp
    out[...] = temp
    return out


def get_array_module(*args):
    """__init__.py get_array_module: this module if any argument is a device array, else NumPy."""
    import sys
    for arg in args:
        if isinstance(arg, ndarray):
            return sys.modules[__name__]
    return _numpy


def result_type(*arrays_and_dtypes):
    """__init__.py result_type: NumPy's promotion over the arrays' dtypes (no device work)."""
    return _numpy.result_type(*[a.dtype if isinstance(a, ndarray) else a for a in arrays_and_dtypes])


def shape(a):
    return a.shape if isinstance(a, ndarray) else _numpy.shape(a)


def ndim(a):
    return a.ndim if isinstance(a, ndarray) else _numpy.ndim(a)


def reshape(a, newshape, order='C'):
    return a.reshape(newshape, order=order)


def ravel(a, order='C'):
    return a.ravel(order)


def transpose(a, axes=None):
    return a.transpose(axes) if axes is not None else a.transpose()


def expand_dims(a, axis):
    return _core._wrap(_numpy.expand_dims(a._a, axis))


def stack(tup, axis=0, out=None, *, dtype=None, casting='same_kind'):
    """join.py stack: concatenate of expand_dims."""
    return concatenate([expand_dims(x, axis) for x in tup], axis, out, dtype=dtype, casting=casting)


# --- products and reductions ---------------------------------------------------------------------

def dot(a, b, out=None):
    return a.dot(b, out)


def vdot(a, b):
    """linalg/_product.py vdot: tensordot_core with n = m = 1, a single multiply-and-sum reduction
    over the raveled operands (each a copy when not contiguous). Device arrays only."""
    if a.size != b.size:
        raise ValueError('Axis dimension mismatch')
    _core._typed('a', a)
    _core._typed('b', b)
    for x in (a, b):
        if x.size and not x._a.flags.c_contiguous:
            _standin.launch('copy')
    _standin.launch('reduce:mul_sum')
    return _core._result(_numpy.vdot(a._a, b._a))


def sum(a, axis=None, dtype=None, out=None, keepdims=False):   # noqa: A001
    return a.sum(axis, dtype, out, keepdims)


def prod(a, axis=None, dtype=None, out=None, keepdims=False):
    return a.prod(axis, dtype, out, keepdims)


def mean(a, axis=None, dtype=None, out=None, keepdims=False):
    return a.mean(axis, dtype, out, keepdims)


def amax(a, axis=None, out=None, keepdims=False):
    return a.max(axis, out, keepdims)


def amin(a, axis=None, out=None, keepdims=False):
    return a.min(axis, out, keepdims)


max = amax   # noqa: A001
min = amin   # noqa: A001


def argmax(a, axis=None, out=None, keepdims=False):
    return a.argmax(axis, out, keepdims)


def argmin(a, axis=None, out=None, keepdims=False):
    return a.argmin(axis, out, keepdims)


def any(a, axis=None, out=None, keepdims=False):   # noqa: A001
    return a.any(axis, out, keepdims)


def all(a, axis=None, out=None, keepdims=False):   # noqa: A001
    return a.all(axis, out, keepdims)


_core._module = __import__('sys').modules[__name__]
