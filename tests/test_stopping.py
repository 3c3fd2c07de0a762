"""run/stopping.py, through fit(): divergence, the best epoch, early stopping and the time budget."""
import json
import math
import warnings

import numpy as np
import pytest

from minirnn.errors import DivergenceError
from minirnn.model import RNNLM
from minirnn.run import checkpoint, fit, trainer
from minirnn.run.config import TrainConfig

pytestmark = pytest.mark.usefixtures('books')     # MINIRNN_DATA_DIR: the books, offline


def scripted_validation(monkeypatch, losses):
    """Validation that returns these mean losses, one per call, whatever the model."""
    losses = iter(losses)
    monkeypatch.setattr(trainer, 'evaluate', lambda *args, **kwargs: next(losses))


def test_divergence_stops_at_once_and_keeps_the_last_checkpoint(small, tmp_path, monkeypatch):
    config = TrainConfig(**{**small, 'num_epochs': 3})
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


def test_an_update_that_leaves_parameters_non_finite_is_never_saved(small, tmp_path, monkeypatch):
    out = tmp_path / 'run'
    config = TrainConfig(**{**small, 'num_epochs': 1})
    fit(config, out, quiet=True)
    before = {name: (out / name).read_bytes() for name in ('model.npz', 'history.jsonl')}
    real_epoch = trainer.train_epoch

    def last_update_overflows(model, *args, **kwargs):   # no later batch sees the damage
        finished = real_epoch(model, *args, **kwargs)
        model.params['b_q'][0] = np.inf
        return finished
    monkeypatch.setattr(trainer, 'train_epoch', last_update_overflows)
    with pytest.raises(DivergenceError, match='epoch 2.*NaN or infinite'):
        fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 2}), out, resume=True, quiet=True)
    assert (out / 'model.npz').read_bytes() == before['model.npz']
    # history.jsonl: the saved epoch as it was, then epoch 2 flagged as diverged
    lines = (out / 'history.jsonl').read_bytes().splitlines(keepends=True)
    assert lines[0] == before['history.jsonl'] and json.loads(lines[1])['diverged'] is True


def test_best_npz_keeps_the_best_epoch_and_early_stop_ends_the_run(data_dir, small, tmp_path, monkeypatch, capsys):
    # validation improves for two epochs, then gets worse: the overfitting best.npz is for
    scripted_validation(monkeypatch, [3.0, 2.0, 2.5, 2.6, 2.7])
    config = TrainConfig(**{**small, 'num_epochs': 6, 'val_fraction': 0.1, 'early_stop': 2})
    result = fit(config, tmp_path / 'run', quiet=True)
    assert result.finished and result.stopped_early and len(result.history) == 4
    assert [r['best'] for r in result.history] == [True, True, False, False]
    assert 'stopping early after epoch 4' in capsys.readouterr().err       # even with quiet
    best = checkpoint.load(tmp_path / 'run' / 'best.npz')
    assert best.meta['epoch'] == 2 and checkpoint.load(tmp_path / 'run' / 'model.npz').meta['epoch'] == 4
    monkeypatch.undo()
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    two = fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 2, 'early_stop': None}), tmp_path / 'two', quiet=True)
    for k, v in two.model.params.items():                                # best.npz is epoch 2's model
        np.testing.assert_array_equal(best.model.params[k], v)
    # a resumed run that already waited long enough stops before training anything
    again = fit(config, tmp_path / 'run', resume=True, quiet=True)
    assert again.stopped_early and again.history == result.history
    # a longer patience continues it
    assert not fit(TrainConfig(**{**config.to_dict(), 'early_stop': 5, 'num_epochs': 5}), tmp_path / 'run',
                   resume=True, quiet=True).stopped_early


def test_a_finite_explosion_is_a_divergence_without_raw_warnings(small, tmp_path, monkeypatch):
    """--lr 1e3 ran to perplexity 1.7e25 and saved it; and overflow warnings reached stderr."""
    from minirnn import parallel
    monkeypatch.setattr(parallel, 'MIN_WORK_PER_STEP', 1)     # pool threads too (their errstate)
    config = TrainConfig(**{**small, 'lr': 1e3, 'clip': 0.0, 'threads': 2, 'activation': 'relu'})
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


def test_divergence_keeps_best_npz_and_model_npz(small, tmp_path, monkeypatch):
    out = tmp_path / 'run'
    config = TrainConfig(**{**small, 'num_epochs': 1, 'val_fraction': 0.1})
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


def test_a_large_initial_sigma_is_not_taken_for_a_divergence(small, tmp_path):
    # sigma 1 starts far above 3 log V (uniform guessing); the bound follows the untrained model
    result = fit(TrainConfig(**{**small, 'sigma': 1.0, 'num_hiddens': 64, 'num_epochs': 1}),
                 tmp_path / 'run', quiet=True)
    bound = checkpoint.load(tmp_path / 'run' / 'model.npz').meta['position']['loss_bound']
    assert bound > 3 * math.log(28) and math.log(result.history[0]['train_ppl']) > 3 * math.log(28)


def test_a_time_budget_stops_before_an_epoch_that_would_overrun_it(small, tmp_path, monkeypatch):
    clock = {'now': 0.0}
    monkeypatch.setattr(trainer.time, 'monotonic', lambda: clock['now'])
    real_epoch = trainer.train_epoch

    def ten_second_epochs(*args, **kwargs):
        clock['now'] += 10.0
        return real_epoch(*args, **kwargs)
    monkeypatch.setattr(trainer, 'train_epoch', ten_second_epochs)
    # 0.55 min = 33 s: after 3 epochs (30 s) a fourth would end at 40 s
    result = fit(TrainConfig(**{**small, 'num_epochs': 10, 'max_minutes': 0.55}), tmp_path / 'run', quiet=True)
    assert len(result.history) == 3 and result.finished and result.stopped_early


def test_a_time_budget_that_runs_out_inside_an_epoch_stops_at_a_batch_and_resumes_exactly(
        small, tmp_path, monkeypatch, capsys, saved_params):
    config = TrainConfig(**{**small, 'num_epochs': 2, 'max_minutes': 0.5})
    full = fit(config, tmp_path / 'full', quiet=True)
    ticks = iter(range(10 ** 6))          # a clock that moves one second each time it is read
    with monkeypatch.context() as m:
        m.setattr(trainer.time, 'monotonic', lambda: float(next(ticks)))
        result = fit(config, tmp_path / 'cut', quiet=True)
    assert result.finished and result.stopped_early and result.history == []
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith('minirnn: stopping: --max-minutes 0.5 reached in epoch 1 after batch ')
    assert line.endswith(f'saved; continue with: minirnn train --resume --out {tmp_path / "cut"}')
    position = checkpoint.load(tmp_path / 'cut' / 'model.npz').meta['position']
    assert position['epoch'] == 1 and 0 < position['progress']['batches'] < 37
    assert position['progress']['state'] is not None          # the carried state, for the next batch
    fit(config, tmp_path / 'cut', resume=True, quiet=True)    # the real clock: the budget is ample
    resumed = saved_params(tmp_path / 'cut')
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(resumed[k], v)
