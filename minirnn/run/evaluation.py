"""Held-out perplexity: a text's tokens as batches for a stateful forward pass, and the mean loss.

Both `train` (the validation split) and `cli.py eval` (any text under a checkpoint) reach the
model through corpus_batches and evaluate; neither goes through the trainer. unknown_warning
tells eval's user when a text is mostly tokens the model never saw.
"""
from .. import parallel
from ..errors import DataError


def corpus_batches(corpus, batch_size, num_steps):
    """Every token of a corpus once, as batches for a stateful pass (sequential, offset 0).

    The corpus is cut into `batch_size` contiguous rows (fewer if it is short), and the rows
    are walked num_steps columns at a time; the last batch may be narrower. Only the < B
    tokens that do not fill a row are left out. Yields (X, Y) host arrays (B, <= T).
    """
    n = len(corpus) - 1
    if n < 1:
        raise DataError('a text needs at least 2 tokens to be evaluated')
    rows = min(batch_size, n)
    cols = n // rows
    Xs = corpus[:rows * cols].reshape(rows, cols)
    Ys = corpus[1:rows * cols + 1].reshape(rows, cols)
    for j in range(0, cols, num_steps):
        yield Xs[:, j:j + num_steps], Ys[:, j:j + num_steps]


def evaluate(model, batches, carry_state):
    """Mean loss per token over batches of (X, Y) (B, T), forward only (no dropout).

    carry_state: hand each batch's final state to the next (sequential data), or start every
    batch from zeros (random or window batches). The rows split over the model's threads
    (parallel.loss). Returns the token-weighted mean loss.
    """
    total, count, state = 0.0, 0, None
    for X, Y in batches:
        loss, state = parallel.loss(model, X, Y, state if carry_state else None)
        total += loss * X.size
        count += X.size
    return total / count


# above this share of <unk> a perplexity measures mostly how well the model predicts <unk>
UNKNOWN_WARNING_SHARE = 0.05


def unknown_warning(fraction, vocab_size, preprocess, token, encoding='utf-8'):
    """A warning (str) when more than UNKNOWN_WARNING_SHARE of a text's tokens are unknown to
    the model, saying what to check; None otherwise.

    fraction: the share of the text's tokens that became <unk>; vocab_size, preprocess, token:
    the model's (its text options); encoding: how the text was read.
    """
    if not fraction > UNKNOWN_WARNING_SHARE:
        return None
    share = f'{fraction:.0%}' if fraction >= 0.1 else f'{fraction:.1%}'
    return (f'{share} of the tokens are unknown to the model (read as <unk>), so this perplexity says '
            f'little: the model knows only the {vocab_size} tokens of its training text (--preprocess '
            f'{preprocess} --token {token}); evaluate text of that kind, or pass this text\'s --encoding '
            f'if it was misread (read as {encoding})')
