"""The CuPy stand-in (tests/standin/cupy): it refuses what CuPy 14 refuses, allows what CuPy allows,
counts what a GPU would do, and runs minirnn's device='gpu' path to the CPU path's numbers.

Each rule test names the CuPy source the rule comes from (tests/standin/cupy/_core.py cites
the same places). `standin` is the fixture from conftest.py: the stand-in installed as `cupy`.
"""
import pickle
import sys

import numpy as np
import pytest

from minirnn import RNNLM, backend
from minirnn.backend import to_numpy
from minirnn.optim import Adam, clip_grad_norm

pytestmark = pytest.mark.standin


@pytest.fixture
def cp(standin):
    return standin


def counts(c):
    return (c.syncs, c.launches, c.alias_copies, c.uploads)


# --- where CuPy raises ---------------------------------------------------------------------------

def test_implicit_conversion_to_numpy_is_a_type_error(cp):
    """core.pyx ndarray.__array__."""
    a = cp.zeros(3)
    for convert in (np.asarray, np.array, lambda a: np.float64(a) + np.zeros(3)):
        with pytest.raises(TypeError, match='Implicit conversion to a NumPy array is not allowed'):
            convert(a)


@pytest.mark.parametrize('host', [np.ones(3), np.array(2.0), [1.0, 2.0, 3.0]],
                         ids=['ndarray', '0-d ndarray', 'list'])
def test_a_host_array_in_a_device_kernel_is_a_type_error(cp, host):
    """_kernel.pyx _preprocess_arg -> _scalar.pyx CScalar: only device arrays and scalars; a 0-d
    NumPy array is not a numpy.generic, so it is refused too."""
    a = cp.ones(3)
    for op in (lambda: cp.add(a, host), lambda: a * host, lambda: cp.where(a > 0, a, host),
               lambda: cp.negative(host)):
        with pytest.raises(TypeError):    # 'Unsupported type', or for a * list NumPy's 'returned NotImplemented'
            op()
    if isinstance(host, np.ndarray):
        with pytest.raises(TypeError, match='Unsupported type'):
            host - a                                  # NumPy's operator comes back through __array_ufunc__
        with pytest.raises(TypeError, match='Unsupported type'):
            a += host


def test_a_host_output_array_is_a_type_error(cp):
    """_kernel.pyx _preprocess_optional_args: an out= that is not a device array is refused."""
    with pytest.raises(TypeError):
        cp.tanh(cp.ones(3), out=np.empty(3))


def test_products_and_joins_take_device_arrays_only(cp):
    """_routines_linalg.pyx matmul/dot/tensordot_core and core.pyx ascontiguousarray take typed
    _ndarray_base arguments; _routines_manipulation.pyx concatenate_method runs _preprocess_args."""
    a, host = cp.ones((2, 2)), np.ones((2, 2))
    for op in (lambda: a @ host, lambda: host @ a, lambda: cp.matmul(a, host), lambda: a.dot(host),
               lambda: cp.vdot(a, host), lambda: cp.ascontiguousarray(host),
               lambda: cp.concatenate([a, host])):
        with pytest.raises(TypeError):
            op()
    with pytest.raises(ValueError, match='Scalar operands'):
        cp.matmul(a, cp.asarray(2.0))


def test_assigning_a_host_array_into_a_device_slice_is_a_value_error(cp):
    """_routines_indexing.pyx _scatter_op: through basic indices, a value that is not a device
    array goes to ndarray.fill (core.pyx), which takes only scalars (gh-2079)."""
    a = cp.zeros((2, 3))
    with pytest.raises(ValueError, match='non-scalar numpy.ndarray cannot be used for fill'):
        a[...] = np.ones((2, 3))
    with pytest.raises(ValueError, match='non-scalar numpy.ndarray cannot be used for fill'):
        a[0] = np.ones(3)
    with pytest.raises(TypeError, match='Unsupported type'):
        a[0] = [1.0, 2.0, 3.0]


def test_reading_a_value_needs_a_single_element(cp):
    """core.pyx item() and __nonzero__: ValueError for more than one element, before any read."""
    a = cp.zeros(3)
    with cp.standin_counting() as c:
        with pytest.raises(ValueError, match='size 1'):
            a.item()
        with pytest.raises(ValueError, match='ambiguous'):
            bool(a)
    assert c.syncs == 0


# --- where CuPy allows ---------------------------------------------------------------------------

def test_scalars_stand_beside_device_arrays_with_numpys_promotion(cp):
    """Python and NumPy scalars pass _preprocess_arg; promotion is NEP 50's (Python scalars weak)."""
    a = cp.ones(3, dtype=np.float32)
    assert (a * 2.0).dtype == np.float32
    assert (2.0 * a).dtype == np.float32
    assert (np.float32(2) * a).dtype == np.float32
    assert (a * np.float64(2)).dtype == np.float64
    assert isinstance(np.float32(2) * a, cp.ndarray)
    np.testing.assert_array_equal((1 - a).get(), np.zeros(3))


def test_comparisons_read_a_0d_numpy_array_as_its_value(cp):
    """core.pyx __richcmp__ (and __array_ufunc__'s comparison workaround); == None is all False."""
    a = cp.arange(3)
    np.testing.assert_array_equal((a < np.array(2)).get(), [True, True, False])
    np.testing.assert_array_equal((np.array(1) < a).get(), [False, False, True])
    np.testing.assert_array_equal((a == None).get(), [False] * 3)  # noqa: E711


def test_scalars_fill_slices_and_index_arrays_upload_host_values(cp):
    """_scatter_op: a scalar (a 0-d NumPy array too) fills a basic slice; through an index array,
    a host value (array included) is uploaded (core.array), which CuPy allows."""
    a = cp.zeros((2, 3))
    a[0] = np.float32(1)
    a[1, :] = np.array(2.0)
    np.testing.assert_array_equal(a.get(), [[1, 1, 1], [2, 2, 2]])
    with cp.standin_counting() as c:
        a[np.array([0, 1]), np.array([2, 0])] = np.array([7.0, 8.0])
    assert a.get().tolist() == [[1, 1, 7], [8, 2, 2]]
    assert c.uploads == 3                             # two index arrays and the value


def test_a_list_of_device_arrays_is_stacked_on_the_device(cp):
    """core.pyx array -> _array_from_nested_sequence: device parts are copied on the device, their
    dtype kept; nothing is uploaded."""
    part = cp.ones(2, dtype=np.float32)
    with cp.standin_counting() as c:
        stacked = cp.array([part, part])
    assert stacked.shape == (2, 2) and stacked.dtype == np.float32
    assert (c.launches, c.uploads) == (2, 0)


def test_integer_array_indices_wrap_around_as_on_cupy(cp):
    """CuPy's gather and scatter kernels wrap out-of-bounds integer-array indices (core.pyx
    __getitem__ docs); NumPy would raise IndexError. A scalar index out of bounds still raises."""
    a = cp.arange(3)
    assert a[[1, 3]].get().tolist() == [1, 0]
    assert cp.take(a, np.array([-1, 4])).get().tolist() == [2, 1]
    with pytest.raises(IndexError):
        a[3]


def test_reading_back_is_allowed_and_each_read_is_a_sync(cp):
    """core.pyx get/item/tolist/__float__/__int__/__bool__/__repr__ and asnumpy all read the device."""
    a = cp.asarray(np.array(1.5))
    with cp.standin_counting() as c:
        values = [a.get(), a.item(), a.tolist(), float(a), int(a), bool(a), repr(a), f'{a:.1f}',
                  cp.asnumpy(a), pickle.loads(pickle.dumps(a))]
        cp.cuda.get_current_stream().synchronize()
    assert c.syncs == len(values) + 1
    assert values[1] == 1.5 and values[7] == '1.5'
    assert isinstance(values[-1], cp.ndarray)


def test_a_boolean_mask_reads_its_count_back(cp):
    """_routines_indexing.pyx _prepare_mask_indexing_single: int(mask_scanned[-1]) sizes the result,
    for indexing and assignment alike; a host mask is uploaded first."""
    a = cp.arange(4.0)
    with cp.standin_counting() as c:
        picked = a[a > 1]
        a[np.array([True, False, True, False])] = 0
    assert picked.get().tolist() == [2.0, 3.0]
    assert a.get().tolist() == [0.0, 1.0, 0.0, 3.0]
    assert (c.syncs, c.uploads) == (2, 2)              # the host mask, and the value 0 (core.array)


# --- what it counts ------------------------------------------------------------------------------

def test_an_input_aliasing_a_different_output_object_is_copied_first(cp):
    """_kernel.pyx _copy_in_args_if_needed: `inp is not out and may_share_bounds(inp, out)`."""
    H = cp.zeros((3, 2, 2))
    H_1 = H[1]
    with cp.standin_counting() as same:
        cp.tanh(H_1, out=H_1)                         # one view object as input and output
        cp.add(H[0], H[2], out=H[1])                  # neighbours: no overlap
    with cp.standin_counting() as aliased:
        cp.tanh(H[1], out=H[1])                       # two view objects of the same memory
        cp.multiply(H[:2], 2, out=H[1:])              # overlapping ranges
    assert (same.alias_copies, same.launches) == (0, 2)
    assert (aliased.alias_copies, aliased.launches) == (2, 4)


def test_a_gemm_into_an_overlapping_output_goes_through_a_temporary(cp):
    """_routines_linalg.pyx tensordot_core: out overlapping an operand -> temporary + copy."""
    A = cp.asarray(np.eye(2))
    with cp.standin_counting() as c:
        cp.matmul(A, A, out=A)
    assert (c.launches, c.alias_copies) == (2, 1)
    np.testing.assert_array_equal(A.get(), np.eye(2))


@pytest.mark.parametrize('op, launches', [
    (lambda cp, a, b: a + b, 1),
    (lambda cp, a, b: a.__iadd__(1), 1),
    (lambda cp, a, b: cp.zeros(3), 1),                       # a memset
    (lambda cp, a, b: cp.empty(3), 0),
    (lambda cp, a, b: cp.zeros(0) + 1, 0),                    # an empty output launches nothing
    (lambda cp, a, b: a[1:], 0),                              # a view
    (lambda cp, a, b: a.T.copy(), 1),
    (lambda cp, a, b: a.T.reshape(-1), 1),                    # no view possible: a copy
    (lambda cp, a, b: a.sum(axis=0), 1),
    (lambda cp, a, b: a @ b, 1),
    (lambda cp, a, b: a[:, :2] @ b[:2], 2),                   # a column slice is copied for cuBLAS
    (lambda cp, a, b: cp.concatenate([a, b]), 2),             # one copy per part
    (lambda cp, a, b: a.__setitem__(0, b[1]), 1),             # same shape, strides, dtype: a memcpy
    (lambda cp, a, b: a.__setitem__(0, 0), 1),                # a memset
    (lambda cp, a, b: a[cp.arange(2), cp.arange(2)], 6),      # 2 aranges, memset, 1 per index array, gather
    (lambda cp, a, b: cp.vdot(a.T, a.T), 3),                  # two ravel copies + the reduction
], ids=['ufunc', 'in-place', 'zeros', 'empty', 'empty output', 'view', 'copy', 'reshape copy', 'sum',
        'gemm', 'gemm of a slice', 'concatenate', 'slice assignment', 'fill', 'two index arrays', 'vdot'])
def test_launch_counts(cp, op, launches):
    a, b = cp.ones((3, 3)), cp.ones((3, 3))
    with cp.standin_counting() as c:
        op(cp, a, b)
    assert c.launches == launches


def test_counting_blocks_nest_and_the_totals_reset(cp):
    a = cp.ones(2)
    with cp.standin_counting() as outer:
        a + a
        with cp.standin_counting() as inner:
            float(a.sum())
    assert counts(inner) == (1, 1, 0, 0)
    assert counts(outer) == (1, 2, 0, 0)
    assert cp.standin_counters.launches >= 3            # ones() too
    cp.standin_counters.reset()
    assert counts(cp.standin_counters) == (0, 0, 0, 0) and not cp.standin_counters.by_kind


def test_empty_memory_is_poisoned(cp):
    """CuPy's pool hands back stale memory; the stand-in makes a read before a write visible."""
    assert np.isnan(cp.empty(3).get()).all()
    assert np.isnan(cp.empty_like(cp.zeros((2, 2))).get()).all()


# --- minirnn on it -------------------------------------------------------------------------------

def test_minirnn_takes_it_for_a_gpu(cp):
    assert backend.gpu_available()
    assert backend.get_xp('gpu') is cp
    assert backend.xp_of(np.zeros(1), cp.zeros(1)) is cp
    assert backend.device_name(cp) == 'gpu'
    with cp.standin_counting() as c:
        backend.synchronize(cp)
    assert c.syncs == 1


def test_the_real_cupy_param_never_takes_the_standin(cp):
    from conftest import real_cupy
    assert real_cupy() is None
    assert sys.modules['cupy'] is cp


@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('cell', ['rnn', 'gru', 'lstm'])
def test_the_gpu_path_computes_what_the_cpu_path_does(cp, cell, impl):
    kwargs = dict(cell=cell, impl=impl, dtype='float64', sigma=0.3, seed=3, embed_dim=5, num_layers=2)
    cpu, gpu = RNNLM(28, 8, **kwargs, device='cpu'), RNNLM(28, 8, **kwargs, device='gpu')
    assert isinstance(gpu.params['W_hq'], cp.ndarray)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 28, (3, 6)), rng.integers(0, 28, (3, 6))
    state = cpu.begin_state(3)
    logits_cpu, final_cpu = cpu.forward(X, state)
    logits_gpu, final_gpu = gpu.forward(X, gpu.begin_state(3))
    np.testing.assert_allclose(to_numpy(logits_gpu), logits_cpu, rtol=1e-12, atol=1e-15)
    loss_cpu, grads_cpu, _ = cpu.loss_and_grads(X, Y, state)
    loss_gpu, grads_gpu, _ = gpu.loss_and_grads(X, Y, gpu.begin_state(3))
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-12)
    assert set(grads_gpu) == set(grads_cpu)
    for name, g in grads_cpu.items():
        if name != 'state':
            np.testing.assert_allclose(to_numpy(grads_gpu[name]), g, rtol=1e-10, atol=1e-14, err_msg=name)


# every regulariser at once: the masks, weight drop, zoneout's mixes and AR/TAR's terms
REGULARISED = dict(embed_dim=8, num_layers=2, dropout=0.2, dropout_input=0.1, dropout_output=0.2,
                   dropout_hidden=0.2, weight_drop=0.3, zoneout=0.2, ar=1.0, tar=1.0)


def regularised(cell):
    return dict(REGULARISED, **({'zoneout_cell': 0.3} if cell == 'lstm' else {}))


def training_step_counts(cp, cell, num_steps, impl='fast', **options):
    """Counts of one training step at a tiny size: gradients, clipping, an Adam step (the second
    step, when the optimizer's slots exist). With options (the regularisers), a training pass
    draws its masks on the host, uploads them and reads nothing more back."""
    model = RNNLM(28, 16, cell=cell, device='gpu', seed=0, impl=impl, **options)
    optimizer = Adam(0.01)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 28, (4, num_steps)), rng.integers(0, 28, (4, num_steps))
    for step in range(2):
        with cp.standin_counting() as c:
            result = model.gradients(X, Y, dropout_rng=step if options else None)
            clip_grad_norm(result.grads, 1.0)
            optimizer.step(model.params, result.grads)
    return c


@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('cell', ['rnn', 'gru', 'lstm'])
def test_a_training_step_reads_back_twice_and_copies_no_aliased_view(cp, cell, impl):
    """The host reads back the loss and the clipping norm, and nothing else: not the token ids
    (checked on the host where they come from), not per time step; and no time loop hands CuPy
    an out= that is a second view of an input's memory (which it would copy first)."""
    short = training_step_counts(cp, cell, 3, impl=impl)
    long = training_step_counts(cp, cell, 6, impl=impl)
    assert short.syncs == long.syncs == 2
    assert short.alias_copies == long.alias_copies == 0
    assert long.launches > short.launches


@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('cell', ['rnn', 'gru', 'lstm'])
def test_a_regularised_training_step_reads_back_twice_and_copies_no_aliased_view(cp, cell, impl):
    short = training_step_counts(cp, cell, 3, impl=impl, **regularised(cell))
    long = training_step_counts(cp, cell, 6, impl=impl, **regularised(cell))
    assert short.syncs == long.syncs == 2
    assert short.alias_copies == long.alias_copies == 0
    assert long.uploads > 0                           # the masks, drawn on the host


@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('cell', ['rnn', 'gru', 'lstm'])
def test_the_gpu_path_computes_what_the_cpu_path_does_with_the_regularisers(cp, cell, impl):
    kwargs = dict(regularised(cell), cell=cell, impl=impl, dtype='float64', sigma=0.3, seed=3)
    cpu, gpu = RNNLM(28, 8, **kwargs, device='cpu'), RNNLM(28, 8, **kwargs, device='gpu')
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 28, (3, 6)), rng.integers(0, 28, (3, 6))
    for drop in (5, None):                 # a training pass, then evaluation (zoneout's expectation)
        a, b = cpu.gradients(X, Y, dropout_rng=drop), gpu.gradients(X, Y, dropout_rng=drop)
        assert b.loss == pytest.approx(a.loss, rel=1e-12)
        assert float(b.penalty) == pytest.approx(float(a.penalty), rel=1e-12)
        for name, g in a.grads.items():
            np.testing.assert_allclose(to_numpy(b.grads[name]), g, rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize('mode, options', [('detach', {}), ('regular', dict(k1=2, k2=3)),
                                           ('random', dict(keep_prob=0.5)), ('full', {})])
def test_every_truncation_reads_back_twice_per_batch(cp, mode, options):
    """Per batch the loss and the clipping norm, whatever the truncation: regular's sweeps cut
    their rows with indices made on the host (a device mask would read its count back) and full
    walks the kept batches without a read."""
    from minirnn import truncation
    model = RNNLM(28, 16, cell='lstm', num_layers=2, device='gpu', seed=0)
    bptt = truncation.make(mode, rng=0, **options)
    bptt.start_epoch()
    rng = np.random.default_rng(0)
    state = None
    for batch in range(3):
        X, Y = rng.integers(0, 28, (4, 6)), rng.integers(0, 28, (4, 6))
        with cp.standin_counting() as c:
            result = bptt.gradients(model, X, Y, state, None)
            clip_grad_norm(result.grads, 1.0)
        assert c.syncs == 2, (mode, batch)
        assert c.alias_copies == 0
        state = bptt.next_state(result)
