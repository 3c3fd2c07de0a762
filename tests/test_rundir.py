"""The run directory after a crash: a `cli.py train` killed (SIGKILL) in the middle of a write
leaves the previous files loadable and one temporary file, which the next start removes."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minirnn import cli
from minirnn.errors import CheckpointError, ConfigError, DataError
from minirnn.run import checkpoint, fit
from minirnn.run.config import TrainConfig
from minirnn.run.rundir import RUN_FILES, RunDir

REPO = Path(__file__).resolve().parents[1]
TINY = ['--max-tokens', '2000', '--batch-size', '8', '--num-steps', '10', '--num-hiddens', '24',
        '--sigma', '0.1', '--num-preds', '0', '--val-fraction', '0.2', '--quiet']

# `python cli.py train ...` with one change: the nth atomic write of one file stalls after its
# bytes are in the temporary file and before the rename, and says so through a marker file
STALLED_WRITE = r'''
import contextlib, os, runpy, sys, time
from pathlib import Path
import minirnn.files, minirnn.run.checkpoint

real = minirnn.files.atomic_write
target, nth, marker = os.environ['STALL_FILE'], int(os.environ['STALL_AT']), Path(os.environ['STALL_MARKER'])
seen = []

@contextlib.contextmanager
def stalling(path, mode='wb'):
    with real(path, mode) as f:
        yield f
        if Path(path).name == target:
            seen.append(path)
            if len(seen) == nth:
                f.flush()
                marker.write_text(str(path))
                time.sleep(600)

minirnn.files.atomic_write = minirnn.run.checkpoint.atomic_write = stalling
sys.argv = [os.environ['CLI'], *sys.argv[1:]]
runpy.run_path(os.environ['CLI'], run_name='__main__')
'''


@pytest.mark.parametrize('target, nth', [('model.npz', 2), ('best.npz', 1), ('perplexity.png', 1)])
def test_a_run_killed_mid_write_leaves_a_temp_file_that_the_next_start_removes(tmp_path, data_dir, target, nth,
                                                                               monkeypatch):
    out, marker = tmp_path / 'run', tmp_path / 'stalled'
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))     # the in-process resume below reads the books too
    env = {**os.environ, 'MINIRNN_DATA_DIR': str(data_dir), 'CLI': str(REPO / 'cli.py'),
           'STALL_FILE': target, 'STALL_AT': str(nth), 'STALL_MARKER': str(marker)}
    proc = subprocess.Popen([sys.executable, '-c', STALLED_WRITE, 'train', *TINY, '--num-epochs', '3',
                             '--out', str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, f'the run ended before the stalled write: {proc.stderr.read()}'
            assert time.monotonic() < deadline, 'the stalled write never came'
            time.sleep(0.02)
        proc.kill()                                     # SIGKILL: no handler, no cleanup
        assert proc.wait() == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()

    stale = list(out.glob(f'.{target}.*.tmp'))
    assert len(stale) == 1 and stale[0].stat().st_size > 0
    for name in ('model.npz', 'best.npz'):             # what the killed run had finished still loads
        if (out / name).exists():
            checkpoint.load(out / name)
    resume = ['--resume'] if (out / 'model.npz').exists() else ['--overwrite', *TINY]
    assert cli.main(['train', *resume, '--num-epochs', '3', '--out', str(out), '--quiet']) == 0
    assert not list(out.glob('.*.tmp'))
    assert checkpoint.load(out / 'model.npz').meta['epoch'] == 3
    assert checkpoint.load(out / 'best.npz').meta['epoch'] <= 3


def test_opening_a_run_directory_removes_stale_temp_files_of_every_run_file(tmp_path):
    for name in RUN_FILES:
        (tmp_path / f'.{name}.k3j_x9.tmp').write_bytes(b'half a file')
    keep = [tmp_path / 'notes.tmp', tmp_path / '.notes.txt.abc.tmp', tmp_path / 'model.npz']
    for path in keep:
        path.write_bytes(b'not ours')
    run = RunDir(tmp_path)
    run.open()
    run.close()                            # and closing removes the lock file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
    assert set(RUN_FILES) == {'model.npz', 'best.npz', 'history.jsonl', 'perplexity.png', 'bptt.png'}


# --- the rules for touching a run directory, through fit() -----------------------------------

def test_problems_found_before_any_training(small, tmp_path):
    blocker = tmp_path / 'a-file'
    blocker.write_text('x')
    with pytest.raises(ConfigError, match='cannot write into --out'):
        fit(TrainConfig(**small), blocker / 'run', quiet=True)
    with pytest.raises(DataError, match='--val-fraction'):
        fit(TrainConfig(**{**small, 'val_fraction': 0.0004}), tmp_path / 'run', quiet=True)
    assert not (tmp_path / 'run').exists()


def test_a_folder_with_any_run_file_is_not_taken_over(small, tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'history.jsonl').write_text('{"epoch": 1}\n')
    with pytest.raises(ConfigError, match='history.jsonl'):
        fit(TrainConfig(**{**small, 'num_epochs': 1}), out, quiet=True)
    assert (out / 'history.jsonl').read_text() == '{"epoch": 1}\n'


def test_no_plot_when_no_perplexity_is_finite(tmp_path):
    rows = [{'epoch': 1, 'train_ppl': None, 'val_ppl': None}]
    run = RunDir(tmp_path)
    run.plot(rows, TrainConfig(), force=True)
    assert not (tmp_path / 'perplexity.png').exists()
    run.plot(rows + [{'epoch': 2, 'train_ppl': 9.0, 'val_ppl': None}], TrainConfig(), force=True)
    assert (tmp_path / 'perplexity.png').exists()


def test_an_existing_run_is_not_overwritten_by_accident(small, tmp_path):
    out = tmp_path / 'run'
    config = TrainConfig(**{**small, 'num_epochs': 1})
    fit(config, out, quiet=True)
    before = (out / 'model.npz').read_bytes()
    with pytest.raises(ConfigError, match='--resume'):
        fit(config, out, quiet=True)
    assert (out / 'model.npz').read_bytes() == before
    fit(config, out, overwrite=True, quiet=True)


def test_resume_refuses_a_changed_setting_and_a_missing_run(small, tmp_path):
    out = tmp_path / 'run'
    config = TrainConfig(**{**small, 'num_epochs': 1})
    fit(config, out, quiet=True)
    with pytest.raises(ConfigError, match='batch_size'):
        fit(TrainConfig(**{**config.to_dict(), 'batch_size': 4}), out, resume=True, quiet=True)
    with pytest.raises(CheckpointError, match='nothing to resume'):
        fit(config, tmp_path / 'other', resume=True, quiet=True)


def test_a_run_that_fails_on_its_data_creates_nothing(small, tmp_path):
    out = tmp_path / 'run'
    with pytest.raises(DataError):
        fit(TrainConfig(**{**small, 'data': str(tmp_path / 'missing.txt')}), out, quiet=True)
    assert not out.exists()


def test_a_run_without_validation_writes_no_best_npz_and_drops_an_old_one(small, tmp_path):
    out = tmp_path / 'run'
    fit(TrainConfig(**{**small, 'num_epochs': 1, 'val_fraction': 0.1}), out, quiet=True)
    assert (out / 'best.npz').exists()
    fit(TrainConfig(**{**small, 'num_epochs': 1}), out, overwrite=True, quiet=True)
    assert not (out / 'best.npz').exists()          # it belonged to the overwritten run


def test_a_folder_with_only_a_best_npz_is_not_taken_over(small, tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'best.npz').write_bytes(b'a model')
    with pytest.raises(ConfigError, match='best.npz'):
        fit(TrainConfig(**{**small, 'num_epochs': 1}), out, quiet=True)
