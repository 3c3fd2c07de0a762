"""The training loop: presets, schedules, evaluation, best.npz and early stopping, feedback,
short real runs, exact resume, divergence, run-dir safety."""
import json
import math
import warnings

import numpy as np
import pytest

from minirnn import checkpoint, train
from minirnn.config import PRESETS, TrainConfig, make_config
from minirnn.errors import CheckpointError, ConfigError, DataError, DivergenceError
from minirnn.evaluation import corpus_batches, evaluate
from minirnn.feedback import format_ppl
from minirnn.model import RNNLM
from minirnn.optim import perplexity
from minirnn.rundir import RunDir
from minirnn.train import fit

# a small, fast run on the real book: 3,000 characters, H=32
SMALL = dict(data='timemachine', max_tokens=3000, batch_size=8, num_steps=10, num_hiddens=32,
             lr=1.0, clip=1.0, num_epochs=2, prefixes=(), sigma=0.1)


@pytest.fixture(autouse=True)
def _books(data_dir, monkeypatch):
    global _data_dir
    _data_dir = data_dir
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
def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(tmp_path, monkeypatch, sampler, ctrl_c_after):
    # windows: one window per token, so a larger batch keeps ~40 batches per epoch like the others
    config = TrainConfig(**{**SMALL, 'num_epochs': 3, 'sampler': sampler,
                            'batch_size': 64 if sampler == 'windows' else SMALL['batch_size']})
    full = fit(config, tmp_path / 'full', quiet=True)
    ctrl_c_after(50)  # epoch 2 of 3
    stopped = fit(config, tmp_path / 'cut', quiet=True)
    assert not stopped.finished and len(stopped.history) == 1
    meta = checkpoint.load(tmp_path / 'cut' / 'model.npz').meta
    assert meta['position']['epoch'] == 2 and meta['position']['progress']['batches'] > 0
    assert len((tmp_path / 'cut' / 'history.jsonl').read_text().splitlines()) == 1
    ctrl_c_after(None)
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
    assert (out / 'model.npz').read_bytes() == before['model.npz']
    # history.jsonl: the saved epoch as it was, then epoch 2 flagged as diverged
    lines = (out / 'history.jsonl').read_bytes().splitlines(keepends=True)
    assert lines[0] == before['history.jsonl'] and json.loads(lines[1])['diverged'] is True


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


# --- learning rates, schedules and weight decay in a run ----------------------------------------

def test_each_optimizer_gets_its_own_learning_rate_unless_one_is_given():
    assert TrainConfig().lr == 1.0 and TrainConfig(optimizer='adam').lr == 2e-3
    assert make_config(optimizer='adam').lr == 2e-3           # not d2l-v1's SGD rate of 1
    assert make_config('d2l-v2', optimizer='adagrad').lr == 0.1
    assert make_config(optimizer='adam', lr=0.01).lr == 0.01  # an explicit lr wins
    assert make_config(optimizer='sgd').lr == 1.0             # the preset's own optimizer keeps its rate
    c = make_config(optimizer='adam')
    assert c.to_dict()['lr'] == 2e-3 and TrainConfig.from_dict(c.to_dict()) == c   # the rate used is recorded


def test_step_schedule_settings_get_char_rnns_defaults_and_other_schedules_refuse_them():
    c = TrainConfig(lr_schedule='step')
    assert (c.lr_decay, c.lr_decay_every, c.lr_decay_after) == (0.97, 1, 1)
    assert TrainConfig(lr_schedule='step', lr_decay_every=5).lr_decay_after == 5
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match='lr_decay apply to the step schedule'):
        TrainConfig(lr_decay=0.5)                 # silently ignored before: refused
    with pytest.raises(ConfigError, match='lr_decay must be in'):
        TrainConfig(lr_schedule='step', lr_decay=1.5)


@pytest.mark.parametrize('bad, match', [
    ({'early_stop': 3}, 'validation split'), ({'eval_every': 10}, 'validation split'),
    ({'early_stop': 0, 'val_fraction': 0.1}, 'early_stop'), ({'weight_decay': -1}, 'weight_decay'),
    ({'min_freq': -1}, 'min_freq'), ({'lr_schedule': 'linear'}, 'lr_schedule'), ({'warmup_steps': -1}, 'warmup'),
    ({'bias_lr_mult': 0}, 'bias_lr_mult'), ({'ema': 1.0}, 'ema'), ({'ema': 0}, 'ema')])
def test_bad_new_settings_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**bad)


def test_rows_count_batches_and_optimizer_steps_and_follow_the_schedule(tmp_path):
    config = TrainConfig(**{**SMALL, 'num_epochs': 3, 'lr_schedule': 'step', 'lr_decay': 0.5,
                            'lr_decay_every': 1, 'lr_decay_after': 1})
    rows = fit(config, tmp_path / 'run', quiet=True).history
    assert all(r['batches'] > 0 for r in rows)
    assert [r['optimizer_steps'] for r in rows] == list(np.cumsum([r['batches'] for r in rows]))
    assert [r['lr'] for r in rows] == [1.0, 0.5, 0.25]       # epoch 1 as given, then halved per epoch


@pytest.mark.parametrize('options', [
    {'optimizer': 'adam', 'lr': 0.01, 'weight_decay': 0.1, 'lr_schedule': 'step', 'lr_decay': 0.5,
     'bias_lr_mult': 2.0},
    {'optimizer': 'sgd', 'weight_decay': 1e-3, 'lr_schedule': 'constant', 'warmup_steps': 30, 'ema': 0.95}],
    ids=['adamw-step', 'sgd-l2-warmup-ema'])
def test_schedules_and_weight_decay_resume_exactly(tmp_path, options):
    config = TrainConfig(**{**SMALL, **options})
    fit(config, tmp_path / 'a', quiet=True)
    four = TrainConfig(**{**config.to_dict(), 'num_epochs': 4})
    fit(four, tmp_path / 'a', resume=True, quiet=True)
    full = fit(four, tmp_path / 'b', quiet=True)
    resumed = params_of(tmp_path / 'a')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)
    if config.ema:     # and the moving average went on as if never stopped
        averaged = checkpoint.load(tmp_path / 'a' / 'model.npz', averaged=True).model.params
        for k, v in full.averaged.items():
            np.testing.assert_array_equal(averaged[k], v)


def test_ema_validates_the_average_and_eval_loads_it(tmp_path):
    """With --ema the history's validation perplexity is the moving average's, checkpoint.load(
    averaged=True) (eval, generate) gives that average, and the plain load (resume) the training
    weights, which the average never fed back into."""
    from minirnn import load_corpus
    from minirnn.text import split_corpus
    config = TrainConfig(**{**SMALL, 'optimizer': 'adam', 'lr': 0.01, 'num_epochs': 2, 'val_fraction': 0.2,
                            'ema': 0.9})
    result = fit(config, tmp_path / 'run', quiet=True)
    plain = fit(TrainConfig(**{**config.to_dict(), 'ema': None}), tmp_path / 'plain', quiet=True)
    averaged = checkpoint.load(tmp_path / 'run' / 'model.npz', averaged=True).model
    raw = checkpoint.load(tmp_path / 'run' / 'model.npz').model
    for name, p in raw.params.items():
        np.testing.assert_array_equal(p, result.model.params[name])
        np.testing.assert_array_equal(p, plain.model.params[name])        # training is untouched
        np.testing.assert_array_equal(averaged.params[name], result.averaged[name])
        assert not np.allclose(averaged.params[name], p), name
    corpus, _ = load_corpus('timemachine', max_tokens=SMALL['max_tokens'])
    _, val_corpus = split_corpus(corpus, 0.2)
    val = lambda m: perplexity(evaluate(m, corpus_batches(val_corpus, 8, 10), carry_state=True))  # noqa: E731
    assert result.history[-1]['val_ppl'] == pytest.approx(val(averaged), rel=1e-12)
    assert plain.history[-1]['val_ppl'] == pytest.approx(val(raw), rel=1e-12)
    assert val(averaged) != pytest.approx(val(raw), rel=1e-6)


def test_bias_lr_mult_reaches_the_optimizer_and_the_checkpoint(tmp_path, monkeypatch):
    config = TrainConfig(**{**SMALL, 'optimizer': 'adam', 'lr': 0.01, 'num_epochs': 1, 'bias_lr_mult': 2.0})
    steps = []
    real_step = train.OPTIMIZERS['adam'].step
    monkeypatch.setattr(train.OPTIMIZERS['adam'], 'step',
                        lambda self, *a, **k: steps.append(dict(self.lr_mults)) or real_step(self, *a, **k))
    fit(config, tmp_path / 'run', quiet=True)
    assert steps and steps[0] == {'b_h': 2.0}
    assert checkpoint.load(tmp_path / 'run' / 'model.npz').meta['train']['bias_lr_mult'] == 2.0


def test_a_cosine_run_resumes_exactly_after_ctrl_c_and_keeps_its_span(tmp_path, monkeypatch, ctrl_c_after):
    config = TrainConfig(**{**SMALL, 'num_epochs': 3, 'lr_schedule': 'cosine', 'warmup_steps': 20})
    full = fit(config, tmp_path / 'full', quiet=True)
    assert full.history[0]['lr'] > 0.5 and full.history[-1]['lr'] < 0.01     # down to ~0 at the end
    ctrl_c_after(50)
    assert not fit(config, tmp_path / 'cut', quiet=True).finished
    ctrl_c_after(None)
    with pytest.raises(ConfigError, match='cosine schedule spans'):
        fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 5}), tmp_path / 'cut', resume=True, quiet=True)
    fit(config, tmp_path / 'cut', resume=True, quiet=True)
    resumed = params_of(tmp_path / 'cut')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)


# --- best.npz and early stopping ------------------------------------------------------------------

def scripted_validation(monkeypatch, losses):
    """Validation that returns these mean losses, one per call, whatever the model."""
    losses = iter(losses)
    monkeypatch.setattr(train, 'evaluate', lambda *args, **kwargs: next(losses))


def test_best_npz_keeps_the_best_epoch_and_early_stop_ends_the_run(tmp_path, monkeypatch, capsys):
    # validation improves for two epochs, then gets worse: the overfitting best.npz is for
    scripted_validation(monkeypatch, [3.0, 2.0, 2.5, 2.6, 2.7])
    config = TrainConfig(**{**SMALL, 'num_epochs': 6, 'val_fraction': 0.1, 'early_stop': 2})
    result = fit(config, tmp_path / 'run', quiet=True)
    assert result.finished and result.stopped_early and len(result.history) == 4
    assert [r['best'] for r in result.history] == [True, True, False, False]
    assert 'stopping early after epoch 4' in capsys.readouterr().err       # even with quiet
    best = checkpoint.load(tmp_path / 'run' / 'best.npz')
    assert best.meta['epoch'] == 2 and checkpoint.load(tmp_path / 'run' / 'model.npz').meta['epoch'] == 4
    monkeypatch.undo()
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(_data_dir))
    two = fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 2, 'early_stop': None}), tmp_path / 'two', quiet=True)
    for k, v in two.model.params.items():                                # best.npz is epoch 2's model
        np.testing.assert_array_equal(best.model.params[k], v)
    # a resumed run that already waited long enough stops before training anything
    again = fit(config, tmp_path / 'run', resume=True, quiet=True)
    assert again.stopped_early and again.history == result.history
    # a longer patience continues it
    assert not fit(TrainConfig(**{**config.to_dict(), 'early_stop': 5, 'num_epochs': 5}), tmp_path / 'run',
                   resume=True, quiet=True).stopped_early


def test_a_run_without_validation_writes_no_best_npz_and_drops_an_old_one(tmp_path):
    out = tmp_path / 'run'
    fit(TrainConfig(**{**SMALL, 'num_epochs': 1, 'val_fraction': 0.1}), out, quiet=True)
    assert (out / 'best.npz').exists()
    fit(TrainConfig(**{**SMALL, 'num_epochs': 1}), out, overwrite=True, quiet=True)
    assert not (out / 'best.npz').exists()          # it belonged to the overwritten run


def test_a_folder_with_only_a_best_npz_is_not_taken_over(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'best.npz').write_bytes(b'a model')
    with pytest.raises(ConfigError, match='best.npz'):
        fit(TrainConfig(**{**SMALL, 'num_epochs': 1}), out, quiet=True)


# --- feedback during training ---------------------------------------------------------------------

def test_eval_and_sample_every_n_steps_are_printed_recorded_and_change_nothing(tmp_path, capsys):
    config = TrainConfig(**{**SMALL, 'val_fraction': 0.1, 'prefixes': ('time',)})
    plain = fit(config, tmp_path / 'plain', quiet=True)
    watched = fit(TrainConfig(**{**config.to_dict(), 'eval_every': 7, 'sample_every': 20}),
                  tmp_path / 'watched')
    err = capsys.readouterr().err
    for k, v in plain.model.params.items():        # evaluating and sampling leave training alone
        np.testing.assert_array_equal(watched.model.params[k], v)
    steps = watched.history[-1]['optimizer_steps']
    evals = [e for r in watched.history for e in r['evals']]
    samples = [s for r in watched.history for s in r['samples']]
    assert [e['step'] for e in evals] == list(range(7, steps + 1, 7))
    assert [s['step'] for s in samples] == list(range(20, steps + 1, 20))
    assert all(s['text'].startswith('time') and len(s['text']) == len('time') + train.SAMPLE_NUM_PREDS
               for s in samples)
    assert f'step 7 (epoch 1): val ppl {format_ppl(evals[0]["val_ppl"])}' in err
    assert f'step 20 (epoch 1) sample: {samples[0]["text"]}' in err
    rows = [json.loads(line) for line in (tmp_path / 'watched' / 'history.jsonl').read_text().splitlines()]
    assert rows == watched.history and 'evals' not in plain.history[0]


def test_sample_every_checks_its_prefix_before_training(tmp_path):
    config = TrainConfig(**{**SMALL, 'token': 'word', 'prefixes': ('zyzzyva',), 'sample_every': 5})
    with pytest.raises(ConfigError, match='--sample-every.*zyzzyva'):
        fit(config, tmp_path / 'run', quiet=True)
    assert not (tmp_path / 'run').exists()


# --- divergence -----------------------------------------------------------------------------------

def test_a_finite_explosion_is_a_divergence_without_raw_warnings(tmp_path, monkeypatch):
    """--lr 1e3 ran to perplexity 1.7e25 and saved it; and overflow warnings reached stderr."""
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)     # pool threads too (their errstate)
    config = TrainConfig(**{**SMALL, 'lr': 1e3, 'clip': 0.0, 'threads': 2, 'activation': 'relu'})
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(DivergenceError, match=r'epoch 1, batch \d+: the loss .* is above 3 x max\(log V') as info:
            fit(config, tmp_path / 'run', quiet=True)
    message = str(info.value)
    assert 'gradient clipping is off (--clip 0' in message and 'learning rate is too high (--lr 1000' in message
    assert info.value.row['diverged'] is True and info.value.row['epoch'] == 1
    # no checkpoint; history.jsonl records the diverged epoch, flagged
    assert [p.name for p in (tmp_path / 'run').iterdir()] == ['history.jsonl']
    rows = [json.loads(line) for line in (tmp_path / 'run' / 'history.jsonl').read_text().splitlines()]
    assert len(rows) == 1 and rows[0]['diverged'] is True


def test_divergence_keeps_best_npz_and_model_npz(tmp_path, monkeypatch):
    out = tmp_path / 'run'
    config = TrainConfig(**{**SMALL, 'num_epochs': 1, 'val_fraction': 0.1})
    fit(config, out, quiet=True)
    before = {name: (out / name).read_bytes() for name in ('model.npz', 'best.npz', 'history.jsonl')}
    real = RNNLM.gradients

    def exploding(self, X, Y, state=None, **kwargs):
        result = real(self, X, Y, state, **kwargs)
        return result._replace(loss=1e6)          # finite, far above 3 log V
    monkeypatch.setattr(RNNLM, 'gradients', exploding)
    with pytest.raises(DivergenceError, match='(?i)epoch 2, batch 1.*nothing of epoch 2 was saved') as info:
        fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 2}), out, resume=True, quiet=True)
    assert info.value.row['diverged'] and info.value.row['train_ppl'] is None
    assert {name: (out / name).read_bytes() for name in ('model.npz', 'best.npz')} == \
        {name: before[name] for name in ('model.npz', 'best.npz')}
    # history.jsonl: the finished epoch as it was, then the diverged one, flagged
    lines = (out / 'history.jsonl').read_bytes().splitlines(keepends=True)
    assert lines[0] == before['history.jsonl'] and json.loads(lines[1])['diverged'] is True


def test_a_large_initial_sigma_is_not_taken_for_a_divergence(tmp_path):
    # sigma 1 starts far above 3 log V (uniform guessing); the bound follows the untrained model
    result = fit(TrainConfig(**{**SMALL, 'sigma': 1.0, 'num_hiddens': 64, 'num_epochs': 1}),
                 tmp_path / 'run', quiet=True)
    bound = checkpoint.load(tmp_path / 'run' / 'model.npz').meta['position']['loss_bound']
    assert bound > 3 * math.log(28) and math.log(result.history[0]['train_ppl']) > 3 * math.log(28)


def test_min_freq_maps_rare_words_to_unk_and_round_trips(tmp_path):
    from minirnn import load_corpus
    full_corpus, full = load_corpus('timemachine', token='word')
    corpus, vocab = load_corpus('timemachine', token='word', min_freq=10)
    assert len(vocab) < len(full) and (corpus == vocab.unk).any() and len(corpus) == len(full_corpus)
    counts = dict(vocab.token_freqs)
    assert all(counts[t] >= 10 for t in vocab.idx_to_token[1:])
    config = TrainConfig(**{**SMALL, 'token': 'word', 'min_freq': 10, 'num_epochs': 1, 'max_tokens': 1000})
    fit(config, tmp_path / 'run', quiet=True)
    saved = checkpoint.load(tmp_path / 'run' / 'model.npz')
    assert saved.meta['train']['min_freq'] == 10 and saved.vocab.idx_to_token == vocab.idx_to_token
    fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 2}), tmp_path / 'run', resume=True, quiet=True)


# --- BPTT in training: truncation modes, instrumentation, the time budget ------------------------

@pytest.mark.parametrize('options', [dict(truncation='full'), dict(truncation='regular', k1=4, k2=8),
                                     dict(truncation='random', keep_prob=0.7)],
                         ids=['full', 'regular', 'random'])
def test_every_truncation_trains_and_resumes_exactly(tmp_path, options):
    config = TrainConfig(**{**SMALL, **options})
    fit(config, tmp_path / 'a', quiet=True)
    four = TrainConfig(**{**config.to_dict(), 'num_epochs': 4})
    fit(four, tmp_path / 'a', resume=True, quiet=True)
    full = fit(four, tmp_path / 'b', quiet=True)
    assert full.history[-1]['train_ppl'] < full.history[0]['train_ppl']
    resumed = params_of(tmp_path / 'a')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)


def test_detach_regular_with_k2_beyond_the_batch_is_the_books_run(tmp_path):
    a = fit(TrainConfig(**SMALL), tmp_path / 'a', quiet=True)
    b = fit(TrainConfig(**{**SMALL, 'truncation': 'regular', 'k1': 3, 'k2': SMALL['num_steps']}),
            tmp_path / 'b', quiet=True)
    for k, v in a.model.params.items():
        np.testing.assert_allclose(b.model.params[k], v, rtol=1e-4, atol=1e-6)


def test_history_rows_carry_the_bptt_instrumentation_and_bptt_png_is_drawn(tmp_path):
    result = fit(TrainConfig(**{**SMALL, 'num_layers': 2}), tmp_path / 'run', quiet=True)
    row = result.history[-1]
    assert set(row['grad_norms']) == set(result.model.params)
    assert len(row['grad_norm_by_step']) == 2 and len(row['grad_norm_by_step'][0]) == SMALL['num_steps']
    assert len(row['grad_decay']) == 2 and row['grad_decay'][0] > 0
    assert set(row['spectra']) == {'W_hh', 'W_hh_l1'}            # the last epoch always has them
    assert row['batches'] > 0 and row['optimizer_steps'] == 2 * row['batches']
    assert (tmp_path / 'run' / 'bptt.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_a_time_budget_stops_before_an_epoch_that_would_overrun_it(tmp_path, monkeypatch):
    clock = {'now': 0.0}
    monkeypatch.setattr(train.time, 'monotonic', lambda: clock['now'])
    real_epoch = train.train_epoch

    def ten_second_epochs(*args, **kwargs):
        clock['now'] += 10.0
        return real_epoch(*args, **kwargs)
    monkeypatch.setattr(train, 'train_epoch', ten_second_epochs)
    # 0.55 min = 33 s: after 3 epochs (30 s) a fourth would end at 40 s
    result = fit(TrainConfig(**{**SMALL, 'num_epochs': 10, 'max_minutes': 0.55}), tmp_path / 'run', quiet=True)
    assert len(result.history) == 3 and result.finished and result.stopped_early


@pytest.mark.parametrize('bad, match', [
    ({'truncation': 'full', 'sampler': 'random'}, 'sequential'), ({'truncation': 'regular', 'k1': 3}, 'k1 and --k2'),
    ({'k1': 3}, 'regular only'), ({'keep_prob': 0.5}, 'random only'), ({'truncation': 'sideways'}, 'truncation'),
    ({'max_minutes': 0}, 'max_minutes')])
def test_bad_truncation_settings_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**bad)


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_every_preset_makes_a_valid_config(name):
    config = make_config(name)
    assert config.num_epochs >= 1 and config.data == 'timemachine'
    if name.startswith('tm-'):     # the held-out presets validate on the book's last 10%
        assert config.val_fraction == 0.1 and config.lr_schedule == 'cosine' and config.embed_dim
