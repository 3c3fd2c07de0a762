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


# --- the benchmarks' load guard (benchmarks/quiet.py) -------------------------------------------

def _quiet_module():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / 'benchmarks' / 'quiet.py'
    spec = importlib.util.spec_from_file_location('quiet', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_load_guard_warns_when_others_took_cpu_time(monkeypatch):
    quiet = _quiet_module()
    clock = {'busy': 100.0, 'steal': 0.0, 'own': 5.0, 't': 1000.0}
    monkeypatch.setattr(quiet, 'cpu_seconds', lambda: (clock['busy'], clock['steal']))
    monkeypatch.setattr(quiet, 'own_seconds', lambda: clock['own'])
    monkeypatch.setattr(quiet.time, 'monotonic', lambda: clock['t'])
    monkeypatch.setattr(quiet.os, 'getloadavg', lambda: (0.1, 0.1, 0.1))
    monkeypatch.setattr(quiet.os, 'cpu_count', lambda: 2)
    guard = quiet.LoadGuard()
    # 10 s of wall time: this process used 19.9 s of CPU (both cores), the machine 20 s
    clock.update(busy=120.0, own=24.9, t=1010.0)
    assert guard.busy_reasons() == [] and 'the ratios stand' in guard.verdict()
    # another process took 3 s more over the same 10 s: 0.31 of a core with the 0.1 s above
    clock.update(busy=123.0)
    assert 'other processes used 0.31 of a core' in guard.verdict() and 'WARNING' in guard.verdict()
    # stolen time counts too; the load average is reported but not judged (a benchmark that
    # has just ended still shows in it)
    clock.update(busy=120.0, steal=1.0)
    assert 'stole 5.0%' in guard.verdict()
    monkeypatch.setattr(quiet.os, 'getloadavg', lambda: (1.5, 1.0, 1.0))
    clock.update(steal=0.0)
    assert 'load average 0.10 before, 1.50 after' in guard.verdict() and 'the ratios stand' in guard.verdict()


def test_the_load_guard_reads_this_machine():
    facts = _quiet_module().LoadGuard().facts()
    assert facts['load_before'] >= 0 and facts['wall_s'] > 0
    if 'other_cores' in facts:                       # Linux: /proc/stat is there
        assert facts['other_cores'] >= 0 and facts['steal'] >= 0
