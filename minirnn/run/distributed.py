"""Data-parallel training over processes: `mpiexec -n N python -m minirnn train ...`.

Every rank builds the same run from the same seed (the same batches, initial weights, dropout
masks and truncation draws) and computes the gradient of its own rows of each batch
(parallel.gradients with this module's communicator). One all-reduce of a single flat buffer
makes the gradients and the loss the token-weighted mean over the whole batch, on every rank;
clipping by the global norm and the optimizer's update are then the same everywhere, so the
parameters stay identical (check_same proves it after every epoch). The sequential sampler's
rows stay with their rank, so each rank carries its own rows' hidden state from batch to batch
without a message. Validation splits the rows the same way and adds up the sums once.

Rank 0 alone writes the run directory and prints; the others read a checkpoint to resume. A
failure is every rank's: setup() runs on rank 0 first and then on the others, and a failure on
any rank ends them all with one message; inside the loop, fatal() ends the job (MPI_Abort) when
one rank fails alone, since the others would wait for it in a collective forever.

MPI is imported only when this process was started by mpiexec (launched() reads its
environment), so a plain run never needs mpi4py, and SingleProcess keeps the trainer free of
`if mpi` branches: it is parallel.WHOLE with no-op setup, checks and agreement.
"""
import contextlib
import hashlib
import os
import sys

import numpy as np

from .. import parallel
from ..backend import to_numpy
from ..errors import ConfigError, DivergenceError, MiniRNNError
from ..model import Gradients
from ..tree import tree_map

# what launchers put in each process's environment: Open MPI, MPICH / Intel MPI (Hydra's PMI),
# MVAPICH; PMIx launchers such as srun --mpi=pmix name the rank alone (PMIX_RANK)
SIZE_VARIABLES = ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'MV2_COMM_WORLD_SIZE')
RANK_VARIABLES = ('OMPI_COMM_WORLD_RANK', 'PMI_RANK', 'MV2_COMM_WORLD_RANK', 'PMIX_RANK')


class DriftError(MiniRNNError):
    """The ranks' parameters are no longer identical (they would train different models)."""


class PeerError(MiniRNNError):
    """Another rank failed; its own message is printed once, by rank 0."""


def launched():
    """How many ranks mpiexec started, from this process's environment: None outside MPI, 0
    when the launcher names this process's rank but not their number (MPI will say)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name, '')
        if value.isdigit():
            return int(value)
    return 0 if any(os.environ.get(name, '').isdigit() for name in RANK_VARIABLES) else None


def launch_command(command):
    """How to start `command` again as this process was started: under mpiexec with N ranks,
    'mpiexec -n N command' (the messages that say how to continue a run name it)."""
    size = launched()
    return f'mpiexec -n {size} {command}' if size and size > 1 else command


def speaks():
    """Whether this process prints what a run says: a plain run does, and rank 0 of an MPI job."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, '')
        if value.isdigit():
            return int(value) == 0
    return True


_current = None


def communicator():
    """This process's communicator, made once: SingleProcess, or under mpiexec with more than
    one rank an MPICommunicator (mpi4py imported now; a one-line error when it is missing)."""
    global _current
    if _current is None:
        size = launched()
        world = None if size is None or size == 1 else MPICommunicator.world(size)
        _current = world if world is not None and world.size > 1 else SINGLE
    return _current


def _describe(exc):
    """One line for an exception, as the command line would print it."""
    if exc is None:
        return None
    if isinstance(exc, MiniRNNError):
        return str(exc)
    if isinstance(exc, OSError):
        return f'{exc.strerror or exc}: {exc.filename or ""}'.rstrip(': ')
    return f'{type(exc).__name__}: {exc}' if str(exc) else type(exc).__name__


class SingleProcess(parallel.Whole):
    """A plain run: one process holds every row of every batch, and nothing is sent.

    The trainer calls every method below whatever the communicator; here they do nothing.
    """

    @property
    def is_root(self):
        """Whether this process writes the run directory and prints (rank 0)."""
        return self.rank == 0

    def setup(self, fn):
        """fn(), the run's setup (MPICommunicator: on rank 0 first, failures agreed)."""
        return fn()

    @contextlib.contextmanager
    def fatal(self):
        """A block in which an error on one rank ends the whole job (nothing to do here)."""
        yield

    def check_launch(self, config):
        """Refuse a run that cannot be split over the ranks (nothing to split here)."""

    def check_same(self, params, when):
        """Raise DriftError when the ranks' parameters differ (one process cannot drift)."""

    def threads(self, requested):
        """CPU threads for each rank's share of a batch (None: every core)."""
        return requested

    def blas_limit(self, threads):
        """A context that keeps each rank's BLAS within its share of the cores."""
        return contextlib.nullcontext()

    def agreed(self, stop):
        """A stop request (stopping.StopRequest) that every rank takes at the same batch."""
        return stop

    def local_rows(self, state):
        """This rank's rows of a saved carried state (a list of leaves, each a list of B rows)."""
        return state

    def gather_rows(self, state):
        """Every rank's rows of a carried state, in rank order (what one process would hold)."""
        return state


SINGLE = SingleProcess()


class MPICommunicator(SingleProcess):
    """The ranks of an MPI job (mpi4py's COMM_WORLD), splitting every batch's rows between them."""

    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.stop = None                       # this rank's stop request (agreed), read by merge
        self.stop_flags = (False, False)       # (Ctrl-C, budget) on any rank, as of the last merge
        # ranks on this machine share its cores
        self.local_size = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()

    @classmethod
    def world(cls, size):
        """The job's communicator; ConfigError, printed once, when mpi4py is missing."""
        try:
            from mpi4py import MPI
        except ImportError:
            ranks = f' with {size} ranks' if size else ''
            raise ConfigError(f'this run was started by mpiexec{ranks}, but mpi4py is not installed: '
                              f'pip install mpi4py (the [mpi] extra), or start the run without mpiexec') from None
        return cls(MPI.COMM_WORLD, MPI)

    # --- the rows of a batch, and joining the ranks' results -------------------------------------

    def rows(self, batch_size):
        """Rank r's contiguous rows, the same cut as parallel.map_rows makes between threads."""
        bounds = np.linspace(0, batch_size, self.size + 1).astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def merge(self, result, weight, params):
        """The batch's Gradients from this rank's: one all-reduce of one flat buffer.

        result: this rank's model.Gradients, the mean over its own rows; weight: its rows / the
        batch's. The buffer holds weight * (every gradient, the loss, AR/TAR's penalty), in the
        parameters' dtype, and its sum over the ranks is the batch's token-weighted mean, as
        parallel.MERGE joins threads. Two more numbers ride along: this rank's stop request (Ctrl-C, the time budget),
        so that every rank learns whether any asked to stop after this batch without a message of
        its own (stop_flags; AgreedStop reads them). The final state stays this rank's rows;
        dstate and dH_steps, which belong to rows too, are scaled by weight (dL/d(rows) of the
        batch's mean loss). Returns Gradients whose grads are views of the buffer.
        """
        names = list(params)
        sizes = [params[k].size for k in names]
        buffer = np.empty(sum(sizes) + 4, params[names[0]].dtype)
        offset = 0
        for name, size in zip(names, sizes):
            np.multiply(to_numpy(result.grads[name]).ravel(), weight, out=buffer[offset:offset + size])
            offset += size
        buffer[-4] = weight * float(result.penalty)
        buffer[-3] = weight * result.loss
        buffer[-2:] = self.stop.flags() if self.stop is not None else (False, False)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        self.stop_flags = (bool(buffer[-2]), bool(buffer[-1]))
        grads, offset = {}, 0
        for name, size in zip(names, sizes):
            grads[name] = buffer[offset:offset + size].reshape(params[name].shape)
            offset += size
        scaled = (lambda tree: None if tree is None else tree_map(lambda a: weight * a, tree))
        steps = None if result.dH_steps is None else [weight * dH for dH in result.dH_steps]
        return Gradients(float(buffer[-3]), grads, result.state, scaled(result.dstate), steps,
                         float(buffer[-4]))

    def sum(self, values):
        """Numbers added up over the ranks (one all-reduce), as Python floats."""
        buffer = np.array(values, np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer.tolist()

    # --- setup, failures and checks --------------------------------------------------------------

    def setup(self, fn):
        """fn() on rank 0, then on the others; every rank returns its value, or every rank raises.

        Rank 0 goes first so that what it caches (the token file of a large text) is there for
        the others, and what it refuses (a directory in use, a bad option) is refused once. A
        rank that fails raises its own error; the others raise PeerError, which rank 0 prints
        with the failing rank's message (the others print nothing).
        """
        value, failure = (_attempt(fn) if self.is_root else (None, None))
        message = self.comm.bcast(_describe(failure), root=0)
        if message is not None:
            raise failure if failure is not None else PeerError(f'rank 0 failed: {message}')
        if not self.is_root:
            value, failure = _attempt(fn)
        messages = self.comm.allgather(_describe(failure))
        if failure is not None:
            raise failure
        failed = [(rank, m) for rank, m in enumerate(messages) if m is not None]
        if failed:
            rank, message = failed[0]
            raise PeerError(f'rank {rank} of {self.size} failed: {message}')
        return value

    @contextlib.contextmanager
    def fatal(self):
        """An error that every rank meets at the same batch (a divergence, a drift: their numbers
        are the same) ends each rank normally; any other ends the job with MPI_Abort, after this
        rank says what it was, since the other ranks would wait for it forever."""
        try:
            yield
        except (DivergenceError, DriftError):
            raise
        except BaseException as exc:       # KeyboardInterrupt and MemoryError included
            # the process's own stderr: a rank but 0 has its sys.stderr muted (cli.main)
            print(f'minirnn: error on rank {self.rank} of {self.size}: {_describe(exc) or "interrupted"}; '
                  f'ending every rank', file=sys.__stderr__, flush=True)
            self.comm.Abort(130 if isinstance(exc, KeyboardInterrupt) else 1)

    def check_launch(self, config):
        """One line, on every rank alike, for a run the ranks cannot split."""
        B, N = config.batch_size, self.size
        if N > B:
            raise ConfigError(f'mpiexec started {N} ranks to split each batch\'s rows, but --batch-size is '
                              f'{B}: start at most {B} rank{"s" if B > 1 else ""}, or use --batch-size {N} '
                              f'or more')
        if B % N:
            lower, higher = B - B % N, B + N - B % N
            raise ConfigError(f'--batch-size {B} does not split evenly over {N} ranks (mpiexec -n {N}): '
                              f'use a multiple of {N} ({lower} or {higher}), or another number of ranks')
        if config.device != 'cpu':
            raise ConfigError(f'training over MPI runs on the CPU (--device cpu), not --device {config.device}: '
                              f'the GPU path (a CUDA-aware MPI or NCCL) is not written yet')

    def check_same(self, params, when):
        """Raise DriftError unless every rank holds bit-for-bit the same parameters.

        A 16-byte BLAKE2 digest of the parameters' bytes per rank, gathered: cheap next to an
        epoch, and exact. when: 'after epoch 3', for the message.
        """
        digest = hashlib.blake2b(digest_size=16)
        for name in sorted(params):
            digest.update(np.ascontiguousarray(to_numpy(params[name])))
        digests = self.comm.allgather(digest.hexdigest())
        differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
        if differ:
            ranks = ', '.join(map(str, differ))
            raise DriftError(f'the parameters of rank {ranks} differ from rank 0\'s {when}, so the ranks no '
                             f'longer train one model (their MPI all-reduce or NumPy builds do not give '
                             f'the same numbers); the run stopped without saving this epoch; resume '
                             f'with --resume on one process, or with the ranks on identical machines')

    # --- threads, stopping, carried state --------------------------------------------------------

    def threads(self, requested):
        """None becomes this machine's cores shared out between its ranks (at least 1)."""
        if requested is not None:
            return requested
        return max(1, parallel.cpu_count() // self.local_size)

    def blas_limit(self, threads):
        """BLAS at `threads` threads per rank: its default, every core, in each rank would
        oversubscribe the machine."""
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=threads, user_api='blas')

    def agreed(self, stop):
        self.stop, self.stop_flags = stop, (False, False)
        return AgreedStop(self)

    def local_rows(self, state):
        if state is None:
            return None
        return [leaf[self.rows(len(leaf))] for leaf in state]

    def gather_rows(self, state):
        parts = self.comm.allgather(state)
        if state is None:
            return None
        return [[row for part in parts for row in part[i]] for i in range(len(state))]


def _attempt(fn):
    """(fn(), None), or (None, the exception it raised)."""
    try:
        return fn(), None
    except Exception as exc:         # reported to the other ranks, then raised again
        return None, exc


class AgreedStop:
    """A stop request that every rank takes after the same batch: each rank's own (Ctrl-C, the
    time budget: stopping.StopRequest.flags), added up over the ranks in the batch's all-reduce
    (MPICommunicator.merge). A rank that stopped alone would leave the others waiting in the
    next all-reduce."""

    def __init__(self, comm):
        self.comm, self.reason = comm, None

    @property
    def requested(self):
        interrupt, budget = self.comm.stop_flags
        self.reason = 'interrupt' if interrupt else 'budget' if budget else None
        return self.reason is not None
