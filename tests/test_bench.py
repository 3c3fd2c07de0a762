"""step_throughput on tiny shapes: the report's keys and their consistency, and bad arguments.

No timing asserts: the numbers only have to be positive, finite and agree with each other.
"""
import json
import math

import pytest

from minirnn.bench import step_throughput
from minirnn.errors import ConfigError

KEYS = {'batch_size', 'num_steps', 'num_hiddens', 'vocab_size', 'device', 'dtype', 'iters',
        'seconds', 'step_ms', 'tokens_per_s', 'tokens_per_s_mean'}


def test_report_is_complete_and_consistent():
    result = step_throughput(batch_size=3, num_steps=4, num_hiddens=5, vocab_size=6,
                             iters=2, warmup=1)
    assert KEYS <= set(result)
    json.dumps(result)                          # JSON-serialisable as it is
    assert (result['batch_size'], result['num_steps'], result['num_hiddens'],
            result['vocab_size'], result['iters']) == (3, 4, 5, 6, 2)
    assert result['device'] == 'cpu' and result['dtype'] == 'float32'
    for key in ('seconds', 'step_ms', 'tokens_per_s', 'tokens_per_s_mean'):
        assert math.isfinite(result[key]) and result[key] > 0
    # tokens per second is B*T per median step
    assert result['tokens_per_s'] == pytest.approx(3 * 4 / (result['step_ms'] / 1e3))
    assert result['tokens_per_s_mean'] == pytest.approx(3 * 4 * 2 / result['seconds'])


def test_no_warmup_and_float64():
    result = step_throughput(batch_size=1, num_steps=1, num_hiddens=2, vocab_size=2,
                             iters=1, warmup=0, dtype='float64')
    assert result['dtype'] == 'float64' and result['tokens_per_s'] > 0


@pytest.mark.parametrize('kwargs', [
    {'batch_size': 0}, {'num_steps': -1}, {'num_hiddens': 2.5}, {'vocab_size': True},
    {'iters': 0}, {'warmup': -1}, {'max_norm': -1.0}, {'lr': 0.0},
    {'dtype': 'float16'}, {'device': 'tpu'},
])
def test_bad_arguments_raise_config_error(kwargs):
    args = dict(batch_size=2, num_steps=2, num_hiddens=2, vocab_size=3, iters=1, warmup=0)
    args.update(kwargs)
    with pytest.raises(ConfigError):
        step_throughput(**args)
