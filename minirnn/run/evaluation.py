"""Held-out perplexity: a text's tokens as batches for a stateful forward pass, and the mean loss.

Both `train` (the validation split) and `cli.py eval` (any text under a checkpoint) reach the
model through these two functions; neither goes through the trainer.
"""
import numpy as np

from .. import parallel
from ..errors import DataError


def corpus_batches(corpus, batch_size, num_steps):
    """Every token of a corpus once, as batches for a stateful pass (sequential, offset 0).

    The corpus is cut into `batch_size` contiguous rows (fewer if it is short), and the rows
    are walked num_steps columns at a time; the last batch may be narrower. Only the < B
    tokens that do not fill a row are left out. The corpus may be a memory map (a text larger
    than memory, tokencache.py): each batch reads only its own tokens. Yields (X, Y) int32 host
    arrays (B, <= T).
    """
    n = len(corpus) - 1
    if n < 1:
        raise DataError('a text needs at least 2 tokens to be evaluated')
    rows = min(batch_size, n)
    cols = n // rows
    Xs = corpus[:rows * cols].reshape(rows, cols)          # views: nothing is read yet
    Ys = corpus[1:rows * cols + 1].reshape(rows, cols)
    for j in range(0, cols, num_steps):
        yield (np.ascontiguousarray(Xs[:, j:j + num_steps], np.int32),
               np.ascontiguousarray(Ys[:, j:j + num_steps], np.int32))


def evaluate(model, batches, carry_state, comm=parallel.WHOLE):
    """Mean loss per token over batches of (X, Y) (B, T), forward only (no dropout).

    carry_state: hand each batch's final state to the next (sequential data), or start every
    batch from zeros (random or window batches). The rows split over the model's threads
    (parallel.loss), and over the processes of `comm` (each evaluates its rows of every batch,
    carrying its own rows' state; the sums of loss and tokens are added up once, at the end).
    Returns the token-weighted mean loss.
    """
    total, count, state = 0.0, 0, None
    for X, Y in batches:
        rows = comm.rows(len(X))
        X, Y = X[rows], Y[rows]
        if len(X):
            loss, state = parallel.loss(model, X, Y, state if carry_state else None)
            total += loss * X.size
            count += X.size
    total, count = comm.sum([total, count])
    return total / count
