"""The training loop: presets, evaluation, short real runs, exact resume, divergence, run-dir safety."""
import json

import numpy as np
import pytest

from minirnn import checkpoint, train
from minirnn.config import TrainConfig, make_config
from minirnn.errors import CheckpointError, ConfigError, DataError, DivergenceError
from minirnn.evaluation import corpus_batches, evaluate
from minirnn.model import RNNLM
from minirnn.rundir import RunDir
from minirnn.train import fit

# a small, fast run on the real book: 3,000 characters, H=32
SMALL = dict(data='timemachine', max_tokens=3000, batch_size=8, num_steps=10, num_hiddens=32,
             lr=1.0, clip=1.0, num_epochs=2, prefixes=(), sigma=0.1)


@pytest.fixture(autouse=True)
def _books(data_dir, monkeypatch):
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))


def params_of(out):
    return {k: v.copy() for k, v in checkpoint.load(out / 'model.npz').model.params.items()}


def test_presets_are_the_books_runs():
    v1 = make_config('d2l-v1')
    assert (v1.max_tokens, v1.batch_size, v1.num_steps, v1.num_hiddens, v1.lr, v1.num_epochs,
            v1.clip, v1.sampler) == (10000, 32, 35, 512, 1.0, 500, 1.0, 'sequential')
    assert make_config() == v1                        # `train` with no options is d2l-v1
    v2 = make_config('d2l-v2')
    assert (v2.sampler, v2.batch_size, v2.num_steps, v2.num_hiddens, v2.num_epochs,
            v2.num_train_windows, v2.num_val_windows) == ('windows', 1024, 32, 32, 100, 10000, 5000)
    assert make_config('d2l-v2', num_epochs=3, lr=0.5).num_epochs == 3   # explicit options win
    # the 2nd edition's window split goes with its sampler
    assert make_config('d2l-v2', sampler='random').num_train_windows is None
    assert make_config('d2l-v2', val_fraction=0.1).num_val_windows is None
    assert make_config('d2l-v2', num_train_windows=100, num_val_windows=None).num_train_windows == 100
    with pytest.raises(ConfigError, match='preset'):
        make_config('d2l-v3')


@pytest.mark.parametrize('bad, match', [
    ({'batch_size': 0}, 'batch_size'), ({'num_steps': -2}, 'num_steps'), ({'lr': 0}, 'lr'),
    ({'lr': float('nan')}, 'lr'), ({'clip': -1}, 'clip'), ({'val_fraction': 1.0}, 'val_fraction'),
    ({'sampler': 'shuffled'}, 'sampler'), ({'optimizer': 'lbfgs'}, 'optimizer'),
    ({'device': 'tpu'}, 'device'), ({'num_train_windows': 10}, 'windows sampler'),
    ({'sampler': 'windows', 'num_train_windows': 10, 'val_fraction': 0.1}, 'either'),
    ({'max_tokens': 0}, 'max_tokens'), ({'seed': -1}, 'seed')])
def test_bad_settings_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**bad)


def test_config_round_trips_through_a_dict():
    c = make_config('d2l-v2', seed=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_corpus_batches_cover_every_token_once():
    corpus = np.arange(103)
    batches = list(corpus_batches(corpus, 4, 7))
    X = np.concatenate([x for x, _ in batches], axis=1)     # (4, 25): each row contiguous
    Y = np.concatenate([y for _, y in batches], axis=1)
    np.testing.assert_array_equal(X.reshape(-1), corpus[:100])
    np.testing.assert_array_equal(Y, X + 1)
    assert [x.shape[1] for x, _ in batches] == [7, 7, 7, 4]


def test_evaluate_with_a_carried_state_is_one_long_forward_pass():
    rng = np.random.default_rng(0)
    corpus = rng.integers(0, 9, 61)
    m = RNNLM(9, 6, sigma=0.3, dtype='float64', seed=0)
    split = evaluate(m, corpus_batches(corpus, 3, 4), carry_state=True)
    X = corpus[:60].reshape(3, 20)
    Y = corpus[1:61].reshape(3, 20)
    assert split == pytest.approx(m.loss(X, Y)[0], rel=1e-12)


@pytest.mark.parametrize('sampler', ['sequential', 'random', 'windows'])
def test_a_short_run_learns_and_writes_the_run_directory(tmp_path, sampler):
    extra = {'num_train_windows': 2000, 'num_val_windows': 500} if sampler == 'windows' else {'val_fraction': 0.1}
    config = TrainConfig(**{**SMALL, 'num_epochs': 4, 'sampler': sampler, **extra})
    result = fit(config, tmp_path / 'run', quiet=True)
    assert result.finished and len(result.history) == 4
    rows = [json.loads(line) for line in (tmp_path / 'run' / 'history.jsonl').read_text().splitlines()]
    assert rows == result.history
    for key in ('epoch', 'train_ppl', 'val_ppl', 'tokens_per_s', 'grad_norm_mean', 'grad_norm_max',
                'clipped_fraction', 'seconds'):
        assert key in rows[-1]
    assert rows[-1]['val_ppl'] is not None and 0 <= rows[-1]['clipped_fraction'] <= 1
    # from ~28 (uniform over the vocabulary) to well below
    assert rows[0]['train_ppl'] > rows[-1]['train_ppl'] and rows[-1]['train_ppl'] < 18
    assert (tmp_path / 'run' / 'perplexity.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert checkpoint.load(tmp_path / 'run' / 'model.npz').meta['epoch'] == 4


@pytest.mark.parametrize('sampler', ['sequential', 'random', 'windows'])
def test_two_plus_two_epochs_are_exactly_four(tmp_path, sampler):
    config = TrainConfig(**{**SMALL, 'sampler': sampler, 'optimizer': 'adam', 'lr': 0.01})
    fit(config, tmp_path / 'a', quiet=True)
    fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 4}), tmp_path / 'a', resume=True, quiet=True)
    full = fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 4}), tmp_path / 'b', quiet=True)
    resumed = params_of(tmp_path / 'a')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)
    history = checkpoint.load(tmp_path / 'a' / 'model.npz').meta['history']
    assert [r['train_ppl'] for r in history] == [r['train_ppl'] for r in full.history]


_real_interrupt = train.Interrupt


class InterruptAfter:
    """Stands in for train.Interrupt: 'presses Ctrl-C' once `batches` batches have run."""
    def __init__(self, batches):
        self.left = batches

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def requested(self):
        self.left -= 1
        return self.left < 0


def test_two_plus_two_epochs_are_exactly_four_with_threads_splitting_the_batch(tmp_path, monkeypatch):
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)     # the path d2l-v1 takes by default
    config = TrainConfig(**{**SMALL, 'threads': 2})
    assert parallel.plan(config.batch_size, config.num_hiddens, 2) == 2
    fit(config, tmp_path / 'a', quiet=True)
    four = TrainConfig(**{**config.to_dict(), 'num_epochs': 4})
    fit(four, tmp_path / 'a', resume=True, quiet=True)
    full = fit(four, tmp_path / 'b', quiet=True)
    resumed = params_of(tmp_path / 'a')
    for k, v in full.model.params.items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(resumed[k], v)


@pytest.mark.parametrize('sampler', ['sequential', 'random', 'windows'])
def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(tmp_path, monkeypatch, sampler):
    # windows: one window per token, so a larger batch keeps ~40 batches per epoch like the others
    config = TrainConfig(**{**SMALL, 'num_epochs': 3, 'sampler': sampler,
                            'batch_size': 64 if sampler == 'windows' else SMALL['batch_size']})
    full = fit(config, tmp_path / 'full', quiet=True)
    monkeypatch.setattr(train, 'Interrupt', lambda: InterruptAfter(batches=50))  # epoch 2 of 3
    stopped = fit(config, tmp_path / 'cut', quiet=True)
    assert not stopped.finished and len(stopped.history) == 1
    meta = checkpoint.load(tmp_path / 'cut' / 'model.npz').meta
    assert meta['position']['epoch'] == 2 and meta['position']['progress']['batches'] > 0
    assert len((tmp_path / 'cut' / 'history.jsonl').read_text().splitlines()) == 1
    monkeypatch.setattr(train, 'Interrupt', _real_interrupt)
    fit(config, tmp_path / 'cut', resume=True, quiet=True)
    resumed = params_of(tmp_path / 'cut')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)


def test_divergence_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    config = TrainConfig(**{**SMALL, 'num_epochs': 3})
    out = tmp_path / 'run'
    fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 1}), out, quiet=True)
    before = (out / 'model.npz').read_bytes()
    real = RNNLM.gradients
    calls = {'n': 0}

    def poisoned(self, X, Y, state=None, **kwargs):
        result = real(self, X, Y, state, **kwargs)
        calls['n'] += 1
        if calls['n'] == 3:
            result.grads['W_hh'][0, 0] = np.nan
        return result
    monkeypatch.setattr(RNNLM, 'gradients', poisoned)
    with pytest.raises(DivergenceError, match=r'epoch 2, batch 3.*--clip.*--lr'):
        fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 3}), out, resume=True, quiet=True)
    assert (out / 'model.npz').read_bytes() == before


def test_an_update_that_leaves_parameters_non_finite_is_never_saved(tmp_path, monkeypatch):
    out = tmp_path / 'run'
    config = TrainConfig(**{**SMALL, 'num_epochs': 1})
    fit(config, out, quiet=True)
    before = {name: (out / name).read_bytes() for name in ('model.npz', 'history.jsonl')}
    real_epoch = train.train_epoch

    def last_update_overflows(model, *args, **kwargs):   # no later batch sees the damage
        finished = real_epoch(model, *args, **kwargs)
        model.params['b_q'][0] = np.inf
        return finished
    monkeypatch.setattr(train, 'train_epoch', last_update_overflows)
    with pytest.raises(DivergenceError, match='epoch 2.*NaN or infinite'):
        fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 2}), out, resume=True, quiet=True)
    assert {name: (out / name).read_bytes() for name in before} == before


def test_problems_found_before_any_training(tmp_path):
    blocker = tmp_path / 'a-file'
    blocker.write_text('x')
    with pytest.raises(ConfigError, match='cannot write into --out'):
        fit(TrainConfig(**SMALL), blocker / 'run', quiet=True)
    with pytest.raises(DataError, match='--val-fraction'):
        fit(TrainConfig(**{**SMALL, 'val_fraction': 0.0004}), tmp_path / 'run', quiet=True)
    assert not (tmp_path / 'run').exists()


def test_a_folder_with_any_run_file_is_not_taken_over(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'history.jsonl').write_text('{"epoch": 1}\n')
    with pytest.raises(ConfigError, match='history.jsonl'):
        fit(TrainConfig(**{**SMALL, 'num_epochs': 1}), out, quiet=True)
    assert (out / 'history.jsonl').read_text() == '{"epoch": 1}\n'


def test_no_plot_when_no_perplexity_is_finite(tmp_path):
    rows = [{'epoch': 1, 'train_ppl': None, 'val_ppl': None}]
    run = RunDir(tmp_path)
    run.plot(rows, TrainConfig(), force=True)
    assert not (tmp_path / 'perplexity.png').exists()
    run.plot(rows + [{'epoch': 2, 'train_ppl': 9.0, 'val_ppl': None}], TrainConfig(), force=True)
    assert (tmp_path / 'perplexity.png').exists()


def test_an_existing_run_is_not_overwritten_by_accident(tmp_path):
    out = tmp_path / 'run'
    config = TrainConfig(**{**SMALL, 'num_epochs': 1})
    fit(config, out, quiet=True)
    before = (out / 'model.npz').read_bytes()
    with pytest.raises(ConfigError, match='--resume'):
        fit(config, out, quiet=True)
    assert (out / 'model.npz').read_bytes() == before
    fit(config, out, overwrite=True, quiet=True)


def test_resume_refuses_a_changed_setting_and_a_missing_run(tmp_path):
    out = tmp_path / 'run'
    config = TrainConfig(**{**SMALL, 'num_epochs': 1})
    fit(config, out, quiet=True)
    with pytest.raises(ConfigError, match='batch_size'):
        fit(TrainConfig(**{**config.to_dict(), 'batch_size': 4}), out, resume=True, quiet=True)
    with pytest.raises(CheckpointError, match='nothing to resume'):
        fit(config, tmp_path / 'other', resume=True, quiet=True)


def test_a_run_that_fails_on_its_data_creates_nothing(tmp_path):
    out = tmp_path / 'run'
    with pytest.raises(DataError):
        fit(TrainConfig(**{**SMALL, 'data': str(tmp_path / 'missing.txt')}), out, quiet=True)
    assert not out.exists()
