"""The stand-in's counters: what a real GPU would have done, counted instead of timed.

Three numbers matter for code that runs on CuPy, and none of them shows on NumPy:

  syncs         host synchronisations: the host waits for the device and reads something back.
                Counted for .get(), cupy.asnumpy(a) of a device array, .item(), .tolist(),
                float(a) / int(a) / complex(a) / bool(a), repr/str/format of an array, pickling,
                Stream/Device.synchronize(), and the reads CuPy makes on its own: a boolean mask
                in indexing or assignment (the mask's count of True, _routines_indexing.pyx
                _prepare_mask_indexing_single), cupy.nonzero / one-argument cupy.where.
  launches      operations queued on the device, each what one CUDA kernel launch (or one
                memset / device-to-device memcpy) would be: an elementwise op or ufunc
                (operators and in-place operators included), a reduction, a GEMM, a copy (copy,
                astype, ascontiguousarray or reshape/ravel of a non-contiguous array,
                assignment of an array into a slice), zeros (memset), arange, a gather (take,
                integer-array indexing), a scatter (assignment through an index array), a scan
                (boolean masks). An operation whose output has no elements launches nothing
                (_kernel.pyx ufunc.__call__ returns early). Extra launches CuPy makes on its own
                are counted too: the copies below, the copy of a GEMM operand that is neither C-
                nor F-contiguous (_routines_linalg.pyx _mat_to_cublas_contiguous), one copy per
                input of concatenate (_routines_manipulation.pyx _concatenate).
  alias_copies  copies CuPy makes because an output may overlap an input that is a different
                object: a ufunc's input that may share memory with its `out=` array but is not
                the same Python object is copied before the launch (_kernel.pyx
                _copy_in_args_if_needed); a GEMM whose `out=` overlaps an operand writes to a
                temporary and copies it over (_routines_linalg.pyx tensordot_core). Each is also
                one of the launches.
  uploads       host-to-device copies: cupy.asarray / cupy.array of host data, and host index
                arrays or values that CuPy moves to the device on the way (allowed, but each
                one is a transfer).

`by_kind` breaks the launches down ('ufunc:add', 'gemm', 'copy', 'reduce:sum', ...).

Use: `cupy.standin_counters` (the process-wide totals, `.reset()` to zero them), or
`with cupy.standin_counting() as c: ...` for the counts of one block (the totals still grow).
"""
import collections
import contextlib

FIELDS = ('syncs', 'launches', 'alias_copies', 'uploads')


class Counters:
    """One set of counts; see the module docstring for what each field counts."""

    def __init__(self):
        self.reset()

    def reset(self):
        """Zero every count."""
        self.syncs = self.launches = self.alias_copies = self.uploads = 0
        self.by_kind = collections.Counter()

    def snapshot(self):
        """The counts as a plain dict (by_kind as a dict too), for reports and comparisons."""
        return {**{f: getattr(self, f) for f in FIELDS}, 'by_kind': dict(self.by_kind)}

    def __repr__(self):
        return 'Counters(' + ', '.join(f'{f}={getattr(self, f)}' for f in FIELDS) + ')'


counters = Counters()
_active = [counters]       # the totals, and every open counting() block


@contextlib.contextmanager
def counting():
    """Count what the block does: yields a fresh Counters that stops growing at the block's end."""
    block = Counters()
    _active.append(block)
    try:
        yield block
    finally:
        _active.remove(block)


def launch(kind, n=1):
    """Record n device operations of one kind (see `launches`)."""
    for c in _active:
        c.launches += n
        c.by_kind[kind] += n


def sync():
    """Record one host synchronisation."""
    for c in _active:
        c.syncs += 1


def alias_copy():
    """Record one copy made because an output overlaps an input (the copy's launch is recorded apart)."""
    for c in _active:
        c.alias_copies += 1


def upload():
    """Record one host-to-device copy."""
    for c in _active:
        c.uploads += 1
