"""Per-epoch BPTT instrumentation: what it records, and that the spectra's cost stays bounded."""
import numpy as np
import pytest

from minirnn.run import monitor
from minirnn.model import RNNLM


def batches(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 9, (4, 6)), rng.integers(0, 9, (4, 6))) for _ in range(n)]


RECURRENT = {'rnn': {'W_hh', 'W_hh_l1'}, 'gru': {'W_hz', 'W_hr', 'W_hh', 'W_hz_l1', 'W_hr_l1', 'W_hh_l1'},
             'lstm': {f'W_h{g}{s}' for g in 'ifoc' for s in ('', '_l1')}}


@pytest.mark.parametrize('cell', sorted(RECURRENT))
def test_an_epoch_row_holds_norms_decay_and_spectra(cell):
    m = RNNLM(9, 5, sigma=0.4, seed=0, num_layers=2, dtype='float64', cell=cell)
    mon = monitor.EpochMonitor()
    results = []
    for X, Y in batches(3):
        results.append(m.gradients(X, Y, record_steps=mon.wants_steps()))
        mon.add_batch(results[-1])
    assert not mon.wants_steps()                    # only the first batch records its steps
    row = mon.row(m, training_seconds=1.0)
    for name in m.params:
        norms = [np.linalg.norm(r.grads[name]) for r in results]
        assert row['grad_norms'][name] == pytest.approx(np.mean(norms))
        assert row['grad_norms_max'][name] == pytest.approx(max(norms))
    first = results[0].dH_steps
    assert row['grad_norm_by_step'] == [[pytest.approx(np.linalg.norm(d[t])) for t in range(6)] for d in first]
    assert row['grad_decay'] == [pytest.approx(np.linalg.norm(d[0]) / np.linalg.norm(d[-1])) for d in first]
    assert set(row['spectra']) == RECURRENT[cell]


def test_spectra_are_skipped_while_they_would_cost_more_than_their_share(monkeypatch):
    m = RNNLM(9, 5, seed=0)
    mon = monitor.EpochMonitor()
    clock = iter([0.0, 1.0] + [10.0, 11.0] * 10)       # every spectrum "takes" 1 s
    monkeypatch.setattr(monitor.time, 'perf_counter', lambda: next(clock))
    got = [mon.row(m, training_seconds=5.0)['spectra'] is not None for _ in range(9)]
    # 1 s of spectra is allowed after 1 / SPECTRUM_SHARE = 20 s of training: every 4th epoch of 5 s
    assert got == [True, False, False, False, True, False, False, False, True]
    assert mon.row(m, training_seconds=0.0, force_spectra=True)['spectra'] is not None
