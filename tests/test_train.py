"""train.py: the book's train_epoch, one pass of BPTT, clipping and updates over a loader."""
import math

import numpy as np
import pytest

from minirnn.batching import SeqDataLoader
from minirnn.errors import DivergenceError
from minirnn.model import RNNLM
from minirnn.optim import SGD
from minirnn.train import EpochProgress, train_epoch
from minirnn.truncation import Detach

CORPUS = np.random.default_rng(0).integers(0, 7, 400)


class Spy(Detach):
    """The book's detach, recording the state each batch starts from."""
    def __init__(self):
        self.starts = []

    def gradients(self, model, X, Y, state, dropout_rng, record_steps=False):
        self.starts.append(state)
        return super().gradients(model, X, Y, state, dropout_rng, record_steps)


@pytest.mark.parametrize('sampler, carried', [('sequential', True), ('random', False), ('windows', False)])
def test_the_truncation_carries_the_state_only_where_batches_continue_each_other(sampler, carried):
    model = RNNLM(7, 8, seed=0, threads=1)
    loader = SeqDataLoader(CORPUS, 4, 5, sampler, rng=0)
    spy, progress = Spy(), EpochProgress()
    assert train_epoch(model, loader, SGD(0.5), 1.0, 1, progress, truncation=spy)
    assert progress.batches == len(spy.starts) > 2 and spy.starts[0] is None
    assert all((s is not None) == carried for s in spy.starts[1:])


def test_every_batch_is_one_update_and_the_epoch_is_recorded():
    model = RNNLM(7, 8, seed=0, threads=1)
    before = {k: v.copy() for k, v in model.params.items()}
    loader = SeqDataLoader(CORPUS, 4, 5, 'sequential', rng=0)
    optimizer, progress = SGD(0.5), EpochProgress()
    train_epoch(model, loader, optimizer, 1.0, 1, progress)
    assert optimizer.steps == progress.batches == len(loader) and progress.tokens == 4 * 5 * len(loader)
    assert 0 < progress.loss_sum / progress.tokens < math.log(7) + 0.1
    assert any(not np.array_equal(model.params[k], before[k]) for k in before)


def test_a_loss_above_the_bound_stops_before_its_update():
    model = RNNLM(7, 8, seed=0, threads=1)
    before = {k: v.copy() for k, v in model.params.items()}
    loader = SeqDataLoader(CORPUS, 4, 5, 'sequential', rng=0)
    with pytest.raises(DivergenceError, match='epoch 3, batch 1: the loss .* is above'):
        train_epoch(model, loader, SGD(0.5), 1.0, 3, EpochProgress(), max_loss=0.5)
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v)
