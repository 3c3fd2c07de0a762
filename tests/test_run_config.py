"""run/config.py: TrainConfig, its checks, and the presets (the book's runs and the held-out ones)."""
import json

import pytest

from minirnn.errors import ConfigError
from minirnn.run.config import PRESETS, TrainConfig, make_config

pytestmark = pytest.mark.usefixtures('books')     # MINIRNN_DATA_DIR: the books, offline


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
