"""The stand-in's array, ufuncs and kernels: NumPy does the arithmetic, CuPy 14's rules decide what runs.

Each rule below names the place in CuPy's source (tag v14.0.0) it copies; "core.pyx" is
cupy/_core/core.pyx, "_kernel.pyx" cupy/_core/_kernel.pyx, "_routines_indexing.pyx" and
"_routines_linalg.pyx" the files of that name in cupy/_core/. Where CuPy raises, this raises
the same exception type with a similar message; where CuPy allows, this allows, and counts
what the GPU would have done (_standin.py says what each count means).

One deliberate difference: new arrays from empty / empty_like / ndarray(shape) are filled with
NaN (integers: their largest value), where CuPy hands back whatever its memory pool held and
NumPy's empty is often zeros. A read before a write then shows instead of passing by luck.
"""
import numpy

from . import _standin

# the cupy package, set by __init__: __array_function__ and __array_ufunc__ look names up in it
_module = None

# _scalar.pyx scalar_type_set: the Python scalar types and the NumPy scalar types of the dtypes
# CuPy supports (_dtype.all_type_chars). Only these may stand beside arrays in a kernel
SCALAR_TYPES = frozenset({int, float, bool, complex} | {numpy.dtype(c).type for c in '?bhilqBHILQefdFD'})

_UNSUPPORTED_KINDS = 'OSUVMm'    # object, strings, void, datetimes: no CUDA type (_scalar.pyx _typenames)


def is_scalar(x):
    """Whether x passes where CuPy takes a scalar beside arrays (_kernel.pyx _preprocess_arg -> CScalar)."""
    return type(x) in SCALAR_TYPES


def _wrap(a):
    """A stand-in array around the NumPy array `a` (shared, not copied; nothing counted)."""
    obj = ndarray.__new__(ndarray)
    obj._a = a
    return obj


def _result(a):
    """A kernel's fresh output as a stand-in array: NumPy returns scalars for 0-d results, CuPy 0-d arrays."""
    return _wrap(numpy.asarray(a))


def _poisoned(shape, dtype=float, order='C'):
    """Uninitialised memory, made visible: NaN for floats, the largest value for integers, True for bools."""
    a = numpy.empty(shape, dtype, order)
    if a.dtype.kind in 'fc':
        a.fill(numpy.nan)
    elif a.dtype.kind in 'iu':
        a.fill(numpy.iinfo(a.dtype).max)
    elif a.dtype.kind == 'b':
        a.fill(True)
    return a


def _check_dtype(dtype):
    """CuPy has no kernels for object, string or datetime arrays (_dtype.pyx check_supported_dtype)."""
    if dtype.kind in _UNSUPPORTED_KINDS:
        raise ValueError(f'Unsupported dtype {dtype}')


def _typed(name, x):
    """A Cython argument typed _ndarray_base (matmul, dot, vdot, ascontiguousarray): anything else is a TypeError."""
    if not isinstance(x, ndarray):
        raise TypeError(f"Argument '{name}' has incorrect type (expected cupy._core.core._ndarray_base, "
                        f'got {type(x).__name__})')
    return x


def may_share_bounds(a, b):
    """_memory_range.pyx may_share_bounds: the two arrays' byte ranges overlap (never for an empty one).

    numpy.may_share_memory makes the same bounds-only test."""
    return a.size != 0 and b.size != 0 and numpy.may_share_memory(a._a, b._a)


def _preprocess_arg(arg):
    """_kernel.pyx _preprocess_arg: a device array, or a scalar wrapped as a CScalar; nothing else.

    A numpy.ndarray (a 0-d one too: it is not a numpy.generic), a list or None is
    `TypeError: Unsupported type` (_scalar.pyx CScalar.__init__): CuPy never moves host
    arrays to the device behind the caller's back.
    """
    if isinstance(arg, ndarray) or is_scalar(arg):
        return arg
    raise TypeError(f'Unsupported type {type(arg)}')


def _copy_in_args_if_needed(in_args, out_args):
    """_kernel.pyx _copy_in_args_if_needed: an input that may overlap an output and is not the same
    Python object is copied before the launch (one alias copy, one copy launch)."""
    for i, a in enumerate(in_args):
        if isinstance(a, ndarray):
            for out in out_args:
                if a is not out and may_share_bounds(a, out):
                    _standin.alias_copy()
                    in_args[i] = a.copy()
                    break


class ufunc:
    """A CuPy ufunc (_kernel.pyx ufunc.__call__) computed by the NumPy ufunc of the same name.

    Inputs pass _preprocess_arg; outputs must be device arrays; inputs aliasing an output are
    copied first; one launch unless the output is empty. kwargs: out, dtype, casting only
    (CuPy: `TypeError: Wrong arguments`).
    """

    def __init__(self, np_ufunc, name=None):
        self._np = np_ufunc
        self.__name__ = name or np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def __repr__(self):
        return f'<ufunc {self.__name__!r}>'

    def __call__(self, *args, out=None, dtype=None, casting='same_kind', **kwargs):
        if kwargs:
            raise TypeError(f'Wrong arguments {kwargs}')
        if not self.nin <= len(args) <= self.nargs:
            raise TypeError(f'Wrong number of arguments for {self.__name__!r}. It must be either '
                            f'{self.nin} or {self.nargs} (with outputs), but given {len(args)}.')
        in_args, out_args = list(args[:self.nin]), list(args[self.nin:])
        if out is not None:
            if out_args:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            out_args = list(out) if isinstance(out, tuple) else [out]
        in_args = [_preprocess_arg(a) for a in in_args]
        given = [o for o in out_args if o is not None]
        for o in given:
            if not isinstance(_preprocess_arg(o), ndarray):
                raise TypeError('Output arguments type must be cupy.ndarray')
        _copy_in_args_if_needed(in_args, given)
        np_out = None
        if out_args:
            np_out = tuple(None if o is None else o._a for o in out_args)
        with numpy.errstate(all='ignore'):   # CuPy never warns about floating-point errors
            res = self._np(*[a._a if isinstance(a, ndarray) else a for a in in_args],
                           out=np_out, dtype=dtype, casting=casting)
        results = res if self.nout > 1 else (res,)
        if numpy.size(results[0]):
            _standin.launch(f'ufunc:{self.__name__}')
        wrapped = tuple(out_args[i] if i < len(out_args) and out_args[i] is not None else _result(r)
                        for i, r in enumerate(results))
        return wrapped if self.nout > 1 else wrapped[0]


def elementwise_copy(src, dst):
    """_ufuncs.py elementwise_copy, a ufunc with casting='unsafe': dst[...] = src, broadcast."""
    _copy_ufunc(src, out=dst)


class _CopyUfunc(ufunc):
    """The ufunc behind elementwise_copy: NumPy's copyto with unsafe casting (a copy launch)."""

    def __init__(self):
        self._np = None
        self.__name__ = 'cupy_copy'
        self.nin, self.nout, self.nargs = 1, 1, 2

    def __call__(self, src, *, out):
        in_args = [_preprocess_arg(src)]
        _copy_in_args_if_needed(in_args, [out])
        src = in_args[0]
        numpy.copyto(out._a, src._a if isinstance(src, ndarray) else src, casting='unsafe')
        if out.size:
            _standin.launch('copy')
        return out


_copy_ufunc = _CopyUfunc()


def _fill(a, value):
    """core.pyx ndarray.fill: a scalar (a 0-d array of either kind too) into every element.

    A non-scalar array is ValueError; anything but a scalar reaches fill_kernel, whose
    _preprocess_args says `TypeError: Unsupported type`. Zero into a C-contiguous array is a
    memset, anything else the fill kernel: one launch either way.
    """
    if isinstance(value, ndarray):
        if value.shape != ():
            raise ValueError('non-scalar cupy.ndarray cannot be used for fill')
        if a.size:
            _standin.launch('fill')
        a._a[...] = value._a
        return
    if isinstance(value, numpy.ndarray):
        if value.shape != ():
            raise ValueError('non-scalar numpy.ndarray cannot be used for fill')
        value = value.astype(a.dtype, copy=False).item()
    _preprocess_arg(value)
    if a.size:
        _standin.launch('memset' if value == 0 and a._a.flags.c_contiguous else 'fill')
    with numpy.errstate(all='ignore'):
        a._a[...] = value


# --- indexing -----------------------------------------------------------------------------------

def _prepare_index(shape, key):
    """_routines_indexing.pyx _prepare_slice_list and _view_getitem, for NumPy.

    Returns (np_key, arrays, axis, view_ndim): the key for NumPy (a tuple that ends in an
    Ellipsis, so that integers give 0-d views, as CuPy's do), the advanced indices as NumPy
    arrays in order, the axis of the view at which the first one applies, and the view's
    ndim. Lists, tuples, NumPy arrays and bool scalars become (uploaded) index arrays; an
    integer array wraps around modulo its axis's length, as CuPy's gather and scatter
    kernels do where NumPy would raise IndexError.
    """
    items = list(key) if isinstance(key, tuple) else [key]
    np_key = []
    for s in items:
        orig = s
        if s is None or s is Ellipsis or isinstance(s, slice):
            np_key.append(s)
            continue
        if isinstance(s, ndarray):
            s = s._a
        elif numpy.isscalar(s) and not isinstance(s, (bool, numpy.bool_)):
            np_key.append(s)             # an integer: a view (a float is NumPy's IndexError)
            continue
        else:
            try:
                s = numpy.array(s)
            except Exception:
                raise IndexError('only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) '
                                 'and integer or boolean arrays are valid indices') from None
            if isinstance(orig, (list, tuple)) and s.size == 0:
                s = s.astype(numpy.int32)   # an empty list means no indices, not an empty mask
            _standin.upload()
        if s.dtype.kind not in 'biu':
            raise IndexError('arrays used as indices must be of integer or boolean type '
                             f'(actual: {s.dtype.type})')
        np_key.append(s)
    ndim = len(shape)
    consumed = sum(0 if s is None or s is Ellipsis else
                   s.ndim if isinstance(s, numpy.ndarray) and s.dtype.kind == 'b' else 1 for s in np_key)
    if consumed > ndim:
        raise IndexError(f'too many indices for array: array is {ndim}-dimensional, '
                         f'but {consumed} were indexed')
    if not any(s is Ellipsis for s in np_key):
        np_key.append(Ellipsis)
    arrays, first_axis, axis, axis_v = [], None, 0, 0
    for i, s in enumerate(np_key):
        if s is None:
            axis_v += 1
        elif s is Ellipsis:
            axis += ndim - consumed
            axis_v += ndim - consumed
        elif isinstance(s, numpy.ndarray):
            if first_axis is None:
                first_axis = axis_v
            k = s.ndim if s.dtype.kind == 'b' else 1
            if s.dtype.kind != 'b' and shape[axis]:
                s = np_key[i] = s % shape[axis]     # out-of-bounds ids wrap around on CuPy
            arrays.append(s)
            axis += k
            axis_v += k
        elif isinstance(s, slice):
            axis += 1
            axis_v += 1
        else:
            axis += 1
    return tuple(np_key), arrays, first_axis, axis_v


def _count_mask(mask, axis, view_ndim):
    """_prepare_mask_indexing_single: a scan over the mask (two when it is broadcast), and the
    count of True read back to size the result, a sync. Nothing for an empty mask."""
    if mask.size == 0:
        return
    _standin.launch('scan', 1 if mask.ndim == view_ndim and axis == 0 else 2)
    _standin.sync()


def _count_multiple(arrays):
    """_prepare_multiple_array_indexing: the flat index (a memset and one kernel per index array;
    a boolean array in the mix is turned into integer arrays by argwhere: scan, sync, kernel)."""
    _standin.launch('memset')
    for s in arrays:
        if s.dtype.kind == 'b':
            _standin.launch('scan')
            _standin.sync()
            _standin.launch('argwhere')
            _standin.launch('index', s.ndim)
        else:
            _standin.launch('index')


def _squeeze_leading_unit_dims(a):
    """_routines_indexing.pyx _squeeze_leading_unit_dims: a value's leading length-1 axes are dropped."""
    n = 0
    while n < a.ndim - 1 and a.shape[n] == 1:
        n += 1
    return a if n == 0 else _wrap(a._a.reshape(a.shape[n:]))


# --- the array ----------------------------------------------------------------------------------

class Flags:
    """ndarray.flags: c_contiguous, f_contiguous, owndata (also as flags['C_CONTIGUOUS'] etc.)."""

    def __init__(self, a):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = a.base is None

    def __getitem__(self, name):
        return {'C_CONTIGUOUS': self.c_contiguous, 'F_CONTIGUOUS': self.f_contiguous,
                'OWNDATA': self.owndata}[name]

    def __repr__(self):
        return (f'  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n'
                f'  OWNDATA : {self.owndata}')


def _should_use_rop(x, y):
    """core.pyx _should_use_rop: defer to y's reflected operator only if y opts out of ufuncs
    (__array_ufunc__ = None) or, without __array_ufunc__, has a higher __array_priority__."""
    missing = object()
    y_ufunc = getattr(y, '__array_ufunc__', missing)
    if y_ufunc is not missing:
        return y_ufunc is None
    return getattr(x, '__array_priority__', 0) < getattr(y, '__array_priority__', 0)


def _binary(name, numpy_name=None):
    """The forward, reflected and in-place operators of ufunc `name` (core.pyx __add__, __iadd__, ...).

    Forward: a device array on the right runs the ufunc; otherwise CuPy calls the NumPy ufunc,
    which comes back through __array_ufunc__ (so a NumPy array there is TypeError, a scalar is
    fine). Reflected: CuPy's binop (c_api_binop_methods) runs the ufunc with the operands as
    written. In place: the ufunc with out=self.
    """
    def forward(self, other):
        if isinstance(other, ndarray):
            return getattr(_module, name)(self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        return getattr(numpy, numpy_name or name)(self, other)

    def reflected(self, other):
        return getattr(_module, name)(other, self)

    def inplace(self, other):
        return getattr(_module, name)(self, other, out=self)
    return forward, reflected, inplace


def _comparison(name):
    """core.pyx __richcmp__: as a forward operator, but a 0-d NumPy array is read as its value,
    and == / != against None or an object without its own __eq__ give all False / all True."""
    def compare(self, other):
        if isinstance(other, ndarray):
            return getattr(_module, name)(self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        if isinstance(other, numpy.ndarray) and other.ndim == 0:
            other = other.item()
        if name in ('equal', 'not_equal') and (other is None or (
                type(other).__eq__ is object.__eq__ and type(other).__ne__ is object.__ne__)):
            return (_module.zeros if name == 'equal' else _module.ones)(self.shape, dtype=numpy.bool_)
        return getattr(numpy, name)(self, other)
    return compare


class ndarray:
    """cupy.ndarray, one device array: a NumPy array underneath, reached only through CuPy's rules.

    ndarray(shape, dtype=float, order='C') allocates uninitialised (NaN-filled) memory, as
    cupy.ndarray does; kernels build their results with _wrap.
    """

    __array_priority__ = 100      # core.pyx
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order='C'):
        if memptr is not None or strides is not None:
            raise NotImplementedError('the CuPy stand-in allocates its own memory (no memptr, strides)')
        dtype = numpy.dtype(dtype)
        _check_dtype(dtype)
        self._a = _poisoned(shape, dtype, order)

    # --- attributes (no device work) -------------------------------------------------------------

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: Flags(self._a))
    T = property(lambda self: _wrap(self._a.T))

    @property
    def real(self):
        """_routines_math.pyx _ndarray_real_getter: a view for complex arrays, the array itself otherwise."""
        return _wrap(self._a.real) if self.dtype.kind == 'c' else self

    @property
    def imag(self):
        """A view for complex arrays; zeros (a new array, a memset) otherwise."""
        if self.dtype.kind == 'c':
            return _wrap(self._a.imag)
        return _module.zeros_like(self)

    @property
    def device(self):
        from . import cuda
        return cuda.Device(0)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError('len() of unsized object')
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError('iteration over a 0-d array')
        return (self[i] for i in range(self.shape[0]))

    # --- what NumPy may and may not do with it ---------------------------------------------------

    def __array__(self, dtype=None, copy=None):
        """core.pyx ndarray.__array__: no implicit device-to-host conversion, ever."""
        raise TypeError('Implicit conversion to a NumPy array is not allowed. '
                        'Please use `.get()` to construct a NumPy array explicitly.')

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """core.pyx ndarray.__array_ufunc__: a NumPy ufunc on device arrays runs CuPy's ufunc.

        Operands other than scalars and (NumPy or CuPy) arrays make it NotImplemented; a NumPy
        array gets through to CuPy's ufunc, which raises TypeError; comparisons read 0-d NumPy
        arrays as their values.
        """
        inout = inputs
        if 'out' in kwargs:
            out = kwargs['out']
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            inout += out
            kwargs['out'] = out[0]
        if method not in ('__call__', 'outer', 'at', 'reduce', 'accumulate', 'reduceat'):
            return NotImplemented
        name = ufunc.__name__
        func = getattr(_module, name, None)
        if func is not None and method != '__call__':
            func = getattr(func, method, None)
        if func is None:
            return NotImplemented
        for x in inout:
            if not is_scalar(x) and not isinstance(x, (ndarray, numpy.ndarray)):
                return NotImplemented
        if name in ('greater', 'greater_equal', 'less', 'less_equal', 'equal', 'not_equal'):
            inputs = tuple(x.item() if isinstance(x, numpy.ndarray) and x.ndim == 0 else x for x in inputs)
        return func(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """core.pyx ndarray.__array_function__: numpy.f(device array) runs cupy.f, if CuPy (here:
        the stand-in) has it; otherwise NumPy raises TypeError (no implementation found)."""
        module = _module
        try:
            for part in func.__module__.split('.')[1:]:
                module = getattr(module, part)
            cupy_func = getattr(module, func.__name__)
        except AttributeError:
            return NotImplemented
        if cupy_func is func:
            return NotImplemented
        if not all(issubclass(t, (ndarray, numpy.ndarray)) for t in types):
            return NotImplemented
        return cupy_func(*args, **kwargs)

    # --- reading back to the host: allowed, each a sync ------------------------------------------

    def get(self, stream=None, order='C', out=None, blocking=True):
        """core.pyx ndarray.get: a host copy (a sync)."""
        if out is not None:
            if not isinstance(out, numpy.ndarray):
                raise TypeError('Only numpy.ndarray can be obtained from cupy.ndarray')
            if out.dtype != self.dtype:
                raise TypeError(f'{out.dtype} array cannot be obtained from {self.dtype} array')
            if out.shape != self.shape:
                raise ValueError(f'Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}')
            _standin.sync()
            out[...] = self._a
            return out
        _standin.sync()
        return numpy.array(self._a, order=order, copy=True)

    def item(self):
        """core.pyx ndarray.item: a size-1 array's value (a sync); ValueError otherwise, before any read."""
        if self.size != 1:
            raise ValueError('can only convert an array of size 1 to a Python scalar')
        return self.get().item()

    def tolist(self):
        return self.get().tolist()

    def __int__(self):
        return int(self.get())

    def __float__(self):
        return float(self.get())

    def __complex__(self):
        return complex(self.get())

    def __bool__(self):
        """core.pyx __nonzero__: a size-1 array's truth (a sync); more elements are ambiguous."""
        if self.size == 0:
            import warnings
            warnings.warn('The truth value of an empty array is ambiguous. Returning False, but in '
                          'future this will result in an error. Use `array.size > 0` to check that '
                          'an array is not empty.', DeprecationWarning, stacklevel=2)
            return False
        if self.size == 1:
            return bool(self.get())
        raise ValueError('The truth value of an array with more than one element is ambiguous. '
                         'Use a.any() or a.all()')

    def __repr__(self):
        return repr(self.get())

    def __str__(self):
        return str(self.get())

    def __format__(self, spec):
        return format(self.get(), spec)

    def __reduce__(self):
        return _module.array, (self.get(),)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # --- indexing ---------------------------------------------------------------------------------

    def __getitem__(self, key):
        """_routines_indexing.pyx _ndarray_getitem: basic indices give views (no launch); one integer
        array a gather (take), several a flat index and a gather; a boolean mask scans and
        syncs. Any array index gives a new array."""
        np_key, arrays, axis, view_ndim = _prepare_index(self.shape, key)
        if not arrays:
            return _wrap(self._a[np_key])
        res = self._a[np_key]
        if len(arrays) == 1 and arrays[0].dtype.kind == 'b':
            _count_mask(arrays[0], axis, view_ndim)
            if res.size:
                _standin.launch('gather')
        else:
            if len(arrays) > 1:
                _count_multiple(arrays)
            if res.size:
                _standin.launch('take')
        if numpy.may_share_memory(res, self._a):   # NumPy gives a view for a 0-d integer array
            res = res.copy()
        return _wrap(res)

    def __setitem__(self, key, value):
        """_routines_indexing.pyx _ndarray_setitem -> _scatter_op(..., 'update').

        Through index arrays (a scatter): a host value is uploaded (allowed), a device value cast
        to the array's dtype. Through basic indices: a device value is copied (a memcpy when
        shapes, strides and dtype agree; the copy ufunc, with its alias check, otherwise); any
        other value goes to fill(), so a non-scalar NumPy array is ValueError and a list
        TypeError (CuPy refuses implicit host-to-device copies, gh-2079).
        """
        if isinstance(value, ndarray):
            value = _squeeze_leading_unit_dims(value)
        np_key, arrays, axis, view_ndim = _prepare_index(self.shape, key)
        if arrays:
            selected = self._a[np_key].size
            if len(arrays) == 1 and arrays[0].dtype.kind == 'b':
                _count_mask(arrays[0], axis, view_ndim)
                if not selected:
                    return
            elif len(arrays) > 1:
                _count_multiple(arrays)
            if isinstance(value, ndarray):
                v = value.astype(self.dtype, copy=False)._a
            else:
                v = numpy.array(value, dtype=self.dtype)   # core.array(value, dtype=a.dtype): an upload
                _standin.upload()
            if selected:
                _standin.launch('scatter')
            self._a[np_key] = v
            return
        y = _wrap(self._a[np_key])
        if not isinstance(value, ndarray):
            _fill(y, value)
            return
        if value.shape == y.shape and value.strides == y.strides:
            if value._a.__array_interface__['data'][0] == y._a.__array_interface__['data'][0]:
                return                                   # the same memory: nothing to do
            if y._a.flags.c_contiguous and value.dtype == y.dtype:
                if y.size:
                    _standin.launch('memcpy')
                y._a[...] = value._a
                return
        elementwise_copy(value, y)

    # --- copies and views ------------------------------------------------------------------------

    def copy(self, order='C'):
        """core.pyx ndarray.copy: a new array (one copy launch)."""
        return self.astype(self.dtype, order=order, copy=True)

    def astype(self, dtype, order='K', casting=None, subok=None, copy=True):
        """core.pyx ndarray.astype: the array itself when copy=False and nothing changes; else a copy launch."""
        dtype = numpy.dtype(dtype)
        _check_dtype(dtype)
        flags = self._a.flags
        if (not copy and dtype == self.dtype
                and (order in 'KA' or (order == 'C' and flags.c_contiguous) or (order == 'F' and flags.f_contiguous))):
            return self
        with numpy.errstate(all='ignore'):
            res = self._a.astype(dtype, order=order, casting=casting or 'unsafe', copy=True)
        if res.size:
            _standin.launch('copy')
        return _wrap(res)

    def _maybe_copied(self, res):
        """A reshape's result: a view when NumPy could make one, else a new array (a copy launch, as
        _routines_manipulation.pyx _reshape copies)."""
        if res.size and not numpy.may_share_memory(res, self._a):
            _standin.launch('copy')
        return _wrap(res)

    def reshape(self, *shape, order='C'):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._maybe_copied(self._a.reshape(shape, order=order))

    def ravel(self, order='C'):
        return self._maybe_copied(self._a.ravel(order))

    def flatten(self, order='C'):
        return self.copy(order).reshape(-1)

    def transpose(self, *axes):
        return _wrap(self._a.transpose(*axes))

    def swapaxes(self, a, b):
        return _wrap(self._a.swapaxes(a, b))

    def squeeze(self, axis=None):
        return _wrap(self._a.squeeze(axis))

    def view(self, dtype=None):
        return _wrap(self._a.view() if dtype is None else self._a.view(dtype))

    def fill(self, value):
        _fill(self, value)

    def conj(self):
        return _module.conjugate(self)

    conjugate = conj

    # --- reductions (one launch each) ------------------------------------------------------------

    def _reduce(self, kind, method, out=None, **kwargs):
        if out is not None and not isinstance(out, ndarray):
            raise TypeError('Output arguments type must be cupy.ndarray')
        with numpy.errstate(all='ignore'):
            res = getattr(self._a, method)(out=None if out is None else out._a, **kwargs)
        _standin.launch(f'reduce:{kind}')
        return out if out is not None else _result(res)

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce('sum', 'sum', out, axis=axis, dtype=dtype, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce('prod', 'prod', out, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce('mean', 'mean', out, axis=axis, dtype=dtype, keepdims=keepdims)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return self._reduce('var', 'var', out, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return self._reduce('std', 'std', out, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return self._reduce('max', 'max', out, axis=axis, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return self._reduce('min', 'min', out, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, out=None, keepdims=False):
        return self._reduce('argmax', 'argmax', out, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, out=None, keepdims=False):
        return self._reduce('argmin', 'argmin', out, axis=axis, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return self._reduce('any', 'any', out, axis=axis, keepdims=keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return self._reduce('all', 'all', out, axis=axis, keepdims=keepdims)

    def nonzero(self):
        """_routines_indexing.pyx _ndarray_nonzero: the count is read back (a sync) to size the result."""
        if self.ndim == 0:
            raise ValueError('Calling nonzero on 0d arrays is not allowed. '
                             'Use cp.atleast_1d(scalar).nonzero() instead.')
        _standin.launch('scan')
        _standin.sync()
        _standin.launch('nonzero')
        return tuple(_wrap(i) for i in self._a.nonzero())

    # --- products and gathers --------------------------------------------------------------------

    def dot(self, b, out=None):
        return matmul(self, b, out=out)

    def take(self, indices, axis=None, out=None):
        return take(self, indices, axis, out)

    def repeat(self, repeats, axis=None):
        return repeat(self, repeats, axis)

    def __matmul__(self, other):
        """core.pyx __matmul__: a device array on the right multiplies; a NumPy one goes through
        numpy.matmul back to cupy.matmul, which takes device arrays only (TypeError)."""
        if isinstance(other, ndarray):
            return matmul(self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        return numpy.matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __imatmul__(self, other):
        return matmul(self, other, out=self)

    def __neg__(self):
        return _module.negative(self)

    def __pos__(self):
        return _module.positive(self)

    def __abs__(self):
        return _module.absolute(self)

    def __invert__(self):
        return _module.invert(self)

    def __pow__(self, other, modulo=None):
        if isinstance(other, ndarray):
            return _module.power(self, other)
        if _should_use_rop(self, other):
            return NotImplemented
        return numpy.power(self, other)

    def __rpow__(self, other):
        return _module.power(other, self)

    def __ipow__(self, other):
        return _module.power(self, other, out=self)

    __lt__ = _comparison('less')
    __le__ = _comparison('less_equal')
    __eq__ = _comparison('equal')
    __ne__ = _comparison('not_equal')
    __gt__ = _comparison('greater')
    __ge__ = _comparison('greater_equal')


for _op, _name in (('add', 'add'), ('sub', 'subtract'), ('mul', 'multiply'), ('truediv', 'true_divide'),
                   ('floordiv', 'floor_divide'), ('mod', 'remainder'), ('and', 'bitwise_and'),
                   ('or', 'bitwise_or'), ('xor', 'bitwise_xor'), ('lshift', 'left_shift'),
                   ('rshift', 'right_shift')):
    _f, _r, _i = _binary(_name)
    setattr(ndarray, f'__{_op}__', _f)
    setattr(ndarray, f'__r{_op}__', _r)
    setattr(ndarray, f'__i{_op}__', _i)
ndarray.__module__ = 'cupy'      # as real CuPy's: backend.xp_of tells device arrays by it
ndarray.__qualname__ = 'ndarray'


# --- routines with CuPy's own argument rules ----------------------------------------------------

def _gemm_operand(x, dtype):
    """tensordot_core: an operand of another dtype is cast (a copy); one neither C- nor F-contiguous
    is copied (_mat_to_cublas_contiguous)."""
    if x.dtype != dtype or not (x._a.flags.c_contiguous or x._a.flags.f_contiguous):
        if x.size:
            _standin.launch('copy')


def matmul(a, b, out=None, **kwargs):
    """_routines_linalg.pyx matmul / dot / tensordot_core (and cupy.linalg._product.matmul).

    Device arrays only: a NumPy operand is TypeError (Cython's typed arguments), a 0-d one
    ValueError. Launches: one GEMM; a copy per operand that must be cast or is not contiguous
    enough for cuBLAS; for out= that is not C-contiguous or of another dtype, a temporary
    and a copy into it; for out= that overlaps an operand, the same (an alias copy).
    """
    if kwargs:
        raise TypeError(f'Wrong arguments {kwargs}')
    _typed('a', a)
    _typed('b', b)
    if out is not None:
        _typed('out', out)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("Scalar operands are not allowed, use '*' instead")
    dtype = numpy.promote_types(a.dtype, b.dtype)
    with numpy.errstate(all='ignore'):
        res = numpy.matmul(a._a, b._a)           # NumPy's shape errors are ValueError, as CuPy's
    if res.size == 0 or a.size == 0 or b.size == 0:
        if res.size:
            _standin.launch('memset')
    elif max(a.ndim, b.ndim) > 2:                # batched: both operands made C-contiguous first
        for x in (a, b):
            if x.dtype != dtype or not x._a.flags.c_contiguous:
                _standin.launch('copy')
        _standin.launch('gemm')
    else:
        a2 = a._a.reshape(1, -1) if a.ndim == 1 else a._a
        b2 = b._a.reshape(-1, 1) if b.ndim == 1 else b._a
        if a2.shape[0] == 1 and b2.shape[1] == 1:   # n = m = 1: a dot product, one reduction
            for x in (a, b):
                if not x._a.flags.c_contiguous:
                    _standin.launch('copy')          # ravel() of a non-contiguous operand
            _standin.launch('reduce:mul_sum')
        else:
            _gemm_operand(_wrap(a2), dtype)
            _gemm_operand(_wrap(b2), dtype)
            _standin.launch('gemm')
    if out is None:
        return _result(res)
    if out.shape != res.shape:
        raise ValueError('Output array has an invalid size')
    if not out._a.flags.c_contiguous or out.dtype != dtype:
        if res.size:
            _standin.launch('copy')                  # computed into a temporary, copied into out
    elif may_share_bounds(out, a) or may_share_bounds(out, b):
        _standin.alias_copy()                        # tensordot_core: out overlaps an operand
        if res.size:
            _standin.launch('copy')
    with numpy.errstate(all='ignore'):
        out._a[...] = res
    return out


def take(a, indices, axis=None, out=None):
    """_routines_indexing.pyx _ndarray_take / _take: a gather; host indices are uploaded, and
    out-of-bounds ones wrap around (CuPy's take kernel), where NumPy would raise."""
    if not isinstance(a, ndarray):
        return a.take(indices, axis, out)            # cupy.take calls the argument's own take
    if isinstance(indices, ndarray):
        idx = indices._a
    elif numpy.isscalar(indices):
        idx = indices
    else:
        idx = numpy.array(indices, dtype=int)
        _standin.upload()
    res = numpy.take(a._a, idx, axis=axis, mode='wrap')
    if numpy.size(res):
        _standin.launch('take')
    if out is None:
        return _result(res)
    _typed('out', out)
    if out.dtype != a.dtype:
        raise TypeError('Output dtype mismatch')
    if out.shape != numpy.shape(res):
        raise ValueError('Output shape mismatch')
    out._a[...] = res
    return out


def repeat(a, repeats, axis=None):
    """_routines_manipulation.pyx _repeat: one copy kernel for a scalar count without an axis; one
    per source slice otherwise."""
    if isinstance(repeats, ndarray):
        raise ValueError('cupy.ndaray cannot be specified as `repeats` argument.')
    res = numpy.repeat(a._a, repeats, axis=axis)
    if res.size:
        scalar = numpy.ndim(repeats) == 0 or len(repeats) == 1
        _standin.launch('copy', 1 if axis is None and scalar else a.shape[axis if axis is not None else 0])
    return _wrap(res)


def concatenate(tup, axis=0, out=None, *, dtype=None, casting='same_kind'):
    """_routines_manipulation.pyx concatenate_method / _concatenate.

    Every part passes _preprocess_args (a NumPy array is `TypeError: Unsupported type`), and
    must be an array ('Only cupy arrays can be concatenated'). Launches: one copy per part,
    or a single kernel for more than 8 small parts of one dtype.
    """
    if axis is None:
        tup = [_typed('tup', x).ravel() for x in tup]
        axis = 0
    arrays = [_preprocess_arg(x) for x in tup]
    if not arrays:
        raise ValueError('Cannot concatenate from empty tuple')
    if not all(isinstance(x, ndarray) for x in arrays):
        raise TypeError('Only cupy arrays can be concatenated')
    if any(x.ndim == 0 for x in arrays):
        raise TypeError('zero-dimensional arrays cannot be concatenated')
    res = numpy.concatenate([x._a for x in arrays], axis=axis, dtype=dtype, casting=casting,
                            out=None if out is None else _typed('out', out)._a)
    same = all(x.dtype == res.dtype for x in arrays)
    if len(arrays) > 8 and same and res.nbytes < 2 * 1024 * 1024 * len(arrays):
        _standin.launch('concatenate')
    else:
        _standin.launch('copy', sum(1 for x in arrays if x.size))
    return out if out is not None else _wrap(res)
