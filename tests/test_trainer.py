"""run/trainer.py: fit() on short real runs: what it writes, exact resume after a finished or
an interrupted epoch, schedules, --ema, evaluation and samples every N steps, truncations."""
import json

import numpy as np
import pytest

from minirnn.errors import ConfigError
from minirnn.optim import OPTIMIZERS, format_ppl, perplexity
from minirnn.run import checkpoint, fit, trainer
from minirnn.run.config import TrainConfig
from minirnn.run.evaluation import corpus_batches, evaluate

pytestmark = pytest.mark.usefixtures('books')     # MINIRNN_DATA_DIR: the books, offline


@pytest.mark.parametrize('sampler', ['sequential', 'random', 'windows'])
def test_a_short_run_learns_and_writes_the_run_directory(small, tmp_path, sampler):
    extra = {'num_train_windows': 2000, 'num_val_windows': 500} if sampler == 'windows' else {'val_fraction': 0.1}
    config = TrainConfig(**{**small, 'num_epochs': 4, 'sampler': sampler, **extra})
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
def test_two_plus_two_epochs_are_exactly_four(saved_params, small, tmp_path, sampler):
    config = TrainConfig(**{**small, 'sampler': sampler, 'optimizer': 'adam', 'lr': 0.01})
    fit(config, tmp_path / 'a', quiet=True)
    fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 4}), tmp_path / 'a', resume=True, quiet=True)
    full = fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 4}), tmp_path / 'b', quiet=True)
    resumed = saved_params(tmp_path / 'a')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)
    history = checkpoint.load(tmp_path / 'a' / 'model.npz').meta['history']
    assert [r['train_ppl'] for r in history] == [r['train_ppl'] for r in full.history]


def test_two_plus_two_epochs_are_exactly_four_with_threads_splitting_the_batch(saved_params, small, tmp_path, monkeypatch):
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)     # the path d2l-v1 takes by default
    config = TrainConfig(**{**small, 'threads': 2})
    assert parallel.plan(config.batch_size, config.num_hiddens, 2) == 2
    fit(config, tmp_path / 'a', quiet=True)
    four = TrainConfig(**{**config.to_dict(), 'num_epochs': 4})
    fit(four, tmp_path / 'a', resume=True, quiet=True)
    full = fit(four, tmp_path / 'b', quiet=True)
    resumed = saved_params(tmp_path / 'a')
    for k, v in full.model.params.items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(resumed[k], v)


@pytest.mark.parametrize('sampler', ['sequential', 'random', 'windows'])
def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(saved_params, small, tmp_path, monkeypatch, sampler, ctrl_c_after):
    # windows: one window per token, so a larger batch keeps ~40 batches per epoch like the others
    config = TrainConfig(**{**small, 'num_epochs': 3, 'sampler': sampler,
                            'batch_size': 64 if sampler == 'windows' else small['batch_size']})
    full = fit(config, tmp_path / 'full', quiet=True)
    ctrl_c_after(50)  # epoch 2 of 3
    stopped = fit(config, tmp_path / 'cut', quiet=True)
    assert not stopped.finished and len(stopped.history) == 1
    meta = checkpoint.load(tmp_path / 'cut' / 'model.npz').meta
    assert meta['position']['epoch'] == 2 and meta['position']['progress']['batches'] > 0
    assert len((tmp_path / 'cut' / 'history.jsonl').read_text().splitlines()) == 1
    ctrl_c_after(None)
    fit(config, tmp_path / 'cut', resume=True, quiet=True)
    resumed = saved_params(tmp_path / 'cut')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)


def test_rows_count_batches_and_optimizer_steps_and_follow_the_schedule(small, tmp_path):
    config = TrainConfig(**{**small, 'num_epochs': 3, 'lr_schedule': 'step', 'lr_decay': 0.5,
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
def test_schedules_and_weight_decay_resume_exactly(saved_params, small, tmp_path, options):
    config = TrainConfig(**{**small, **options})
    fit(config, tmp_path / 'a', quiet=True)
    four = TrainConfig(**{**config.to_dict(), 'num_epochs': 4})
    fit(four, tmp_path / 'a', resume=True, quiet=True)
    full = fit(four, tmp_path / 'b', quiet=True)
    resumed = saved_params(tmp_path / 'a')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)
    if config.ema:     # and the moving average went on as if never stopped
        averaged = checkpoint.load(tmp_path / 'a' / 'model.npz', averaged=True).model.params
        for k, v in full.averaged.items():
            np.testing.assert_array_equal(averaged[k], v)


def test_ema_validates_the_average_and_eval_loads_it(small, tmp_path):
    """With --ema the history's validation perplexity is the moving average's, checkpoint.load(
    averaged=True) (eval, generate) gives that average, and the plain load (resume) the training
    weights, which the average never fed back into."""
    from minirnn import load_corpus
    from minirnn.text import split_corpus
    config = TrainConfig(**{**small, 'optimizer': 'adam', 'lr': 0.01, 'num_epochs': 2, 'val_fraction': 0.2,
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
    corpus, _ = load_corpus('timemachine', max_tokens=small['max_tokens'])
    _, val_corpus = split_corpus(corpus, 0.2)
    val = lambda m: perplexity(evaluate(m, corpus_batches(val_corpus, 8, 10), carry_state=True))  # noqa: E731
    assert result.history[-1]['val_ppl'] == pytest.approx(val(averaged), rel=1e-12)
    assert plain.history[-1]['val_ppl'] == pytest.approx(val(raw), rel=1e-12)
    assert val(averaged) != pytest.approx(val(raw), rel=1e-6)


def test_bias_lr_mult_reaches_the_optimizer_and_the_checkpoint(small, tmp_path, monkeypatch):
    config = TrainConfig(**{**small, 'optimizer': 'adam', 'lr': 0.01, 'num_epochs': 1, 'bias_lr_mult': 2.0})
    steps = []
    real_step = OPTIMIZERS['adam'].step
    monkeypatch.setattr(OPTIMIZERS['adam'], 'step',
                        lambda self, *a, **k: steps.append(dict(self.lr_mults)) or real_step(self, *a, **k))
    fit(config, tmp_path / 'run', quiet=True)
    assert steps and steps[0] == {'b_h': 2.0}
    assert checkpoint.load(tmp_path / 'run' / 'model.npz').meta['train']['bias_lr_mult'] == 2.0


def test_a_cosine_run_resumes_exactly_after_ctrl_c_and_keeps_its_span(saved_params, small, tmp_path, monkeypatch, ctrl_c_after):
    config = TrainConfig(**{**small, 'num_epochs': 3, 'lr_schedule': 'cosine', 'warmup_steps': 20})
    full = fit(config, tmp_path / 'full', quiet=True)
    assert full.history[0]['lr'] > 0.5 and full.history[-1]['lr'] < 0.01     # down to ~0 at the end
    ctrl_c_after(50)
    assert not fit(config, tmp_path / 'cut', quiet=True).finished
    ctrl_c_after(None)
    with pytest.raises(ConfigError, match='cosine schedule spans'):
        fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 5}), tmp_path / 'cut', resume=True, quiet=True)
    fit(config, tmp_path / 'cut', resume=True, quiet=True)
    resumed = saved_params(tmp_path / 'cut')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)


def test_eval_and_sample_every_n_steps_are_printed_recorded_and_change_nothing(small, tmp_path, capsys):
    config = TrainConfig(**{**small, 'val_fraction': 0.1, 'prefixes': ('time',)})
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
    assert all(s['text'].startswith('time') and len(s['text']) == len('time') + trainer.SAMPLE_NUM_PREDS
               for s in samples)
    assert f'step 7 (epoch 1): val ppl {format_ppl(evals[0]["val_ppl"])}' in err
    assert f'step 20 (epoch 1) sample: {samples[0]["text"]}' in err
    rows = [json.loads(line) for line in (tmp_path / 'watched' / 'history.jsonl').read_text().splitlines()]
    assert rows == watched.history and 'evals' not in plain.history[0]


def test_sample_every_checks_its_prefix_before_training(small, tmp_path):
    config = TrainConfig(**{**small, 'token': 'word', 'prefixes': ('zyzzyva',), 'sample_every': 5})
    with pytest.raises(ConfigError, match='--sample-every.*zyzzyva'):
        fit(config, tmp_path / 'run', quiet=True)
    assert not (tmp_path / 'run').exists()


def test_min_freq_maps_rare_words_to_unk_and_round_trips(small, tmp_path):
    from minirnn import load_corpus
    full_corpus, full = load_corpus('timemachine', token='word')
    corpus, vocab = load_corpus('timemachine', token='word', min_freq=10)
    assert len(vocab) < len(full) and (corpus == vocab.unk).any() and len(corpus) == len(full_corpus)
    counts = dict(vocab.token_freqs)
    assert all(counts[t] >= 10 for t in vocab.idx_to_token[1:])
    config = TrainConfig(**{**small, 'token': 'word', 'min_freq': 10, 'num_epochs': 1, 'max_tokens': 1000})
    fit(config, tmp_path / 'run', quiet=True)
    saved = checkpoint.load(tmp_path / 'run' / 'model.npz')
    assert saved.meta['train']['min_freq'] == 10 and saved.vocab.idx_to_token == vocab.idx_to_token
    fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 2}), tmp_path / 'run', resume=True, quiet=True)


@pytest.mark.parametrize('options', [dict(truncation='full'), dict(truncation='regular', k1=4, k2=8),
                                     dict(truncation='random', keep_prob=0.7)],
                         ids=['full', 'regular', 'random'])
def test_every_truncation_trains_and_resumes_exactly(saved_params, small, tmp_path, options):
    config = TrainConfig(**{**small, **options})
    fit(config, tmp_path / 'a', quiet=True)
    four = TrainConfig(**{**config.to_dict(), 'num_epochs': 4})
    fit(four, tmp_path / 'a', resume=True, quiet=True)
    full = fit(four, tmp_path / 'b', quiet=True)
    assert full.history[-1]['train_ppl'] < full.history[0]['train_ppl']
    resumed = saved_params(tmp_path / 'a')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)


def test_detach_regular_with_k2_beyond_the_batch_is_the_books_run(small, tmp_path):
    a = fit(TrainConfig(**small), tmp_path / 'a', quiet=True)
    b = fit(TrainConfig(**{**small, 'truncation': 'regular', 'k1': 3, 'k2': small['num_steps']}),
            tmp_path / 'b', quiet=True)
    for k, v in a.model.params.items():
        np.testing.assert_allclose(b.model.params[k], v, rtol=1e-4, atol=1e-6)


def test_history_rows_carry_the_bptt_instrumentation_and_bptt_png_is_drawn(small, tmp_path):
    result = fit(TrainConfig(**{**small, 'num_layers': 2}), tmp_path / 'run', quiet=True)
    row = result.history[-1]
    assert set(row['grad_norms']) == set(result.model.params)
    assert len(row['grad_norm_by_step']) == 2 and len(row['grad_norm_by_step'][0]) == small['num_steps']
    assert len(row['grad_decay']) == 2 and row['grad_decay'][0] > 0
    assert set(row['spectra']) == {'W_hh', 'W_hh_l1'}            # the last epoch always has them
    assert row['batches'] > 0 and row['optimizer_steps'] == 2 * row['batches']
    assert (tmp_path / 'run' / 'bptt.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_fit_from_python_without_a_run_directory_on_a_string_or_a_corpus(small, tmp_path, monkeypatch):
    """A notebook's way in: no directory written, the text given as a string or as (corpus, vocab),
    a callback after each epoch, presets as constructors."""
    from minirnn import load_corpus
    monkeypatch.chdir(tmp_path)
    config = TrainConfig.from_preset('d2l-v1', **{**small, 'prefixes': ('the',)})
    assert config == TrainConfig(**{**small, 'prefixes': ('the',)})
    rows = []
    text = 'the time traveller for so it will be convenient to speak of him was expounding ' * 60
    result = fit(config, data=text, on_epoch=rows.append, quiet=True)
    assert result.finished and [r['epoch'] for r in rows] == [1, 2] and rows == result.history
    assert list(tmp_path.iterdir()) == []                      # nothing written anywhere
    assert set(result.vocab.idx_to_token) <= set(text) | {'<unk>'}
    corpus, vocab = load_corpus('timemachine', max_tokens=3000)
    from_array = fit(config, data=(corpus, vocab), quiet=True)
    from_file = fit(config, quiet=True)                         # the same text, read by name
    for k, v in from_file.model.params.items():
        np.testing.assert_array_equal(from_array.model.params[k], v)
    with pytest.raises(ConfigError, match='data must be'):
        fit(config, data=[1, 2, 3], quiet=True)
    with pytest.raises(ConfigError, match='resume continues a run directory'):
        fit(config, resume=True, quiet=True)
