"""Text generation: the book's `predict` (warm-up, then greedy argmax) and sampling.

The prefix goes through the corpus's own preprocessing and tokenization, warms up the state,
and each new token is fed back one at a time with the state carried. Sampling sharpens or
flattens softmax(logits) with temperature and alpha and may keep only the top_k tokens; it
draws from a host NumPy Generator, so a seed gives the same text on CPU and GPU.
"""
import math

import numpy as np

from . import checks, text
from .backend import make_rng, to_numpy
from .errors import ConfigError, DivergenceError

STRATEGIES = ('greedy', 'sample')


def predict(model, vocab, prefix, num_preds, *, preprocess='letters', token='char',
            strategy='greedy', temperature=1.0, alpha=1.0, top_k=None, rng=None):
    """Continue `prefix` by `num_preds` tokens (the book's predict_ch8 / predict).

    Args:
        model: an RNNLM; vocab: the Vocab it was trained with (V tokens).
        prefix: str, preprocessed with `preprocess` ('letters' | 'raw') and split with
            `token` ('char' | 'word') as the training text was; under 'letters' a leading
            non-letter is dropped but a trailing space is kept ('time traveller ').
        num_preds: number of tokens to append (>= 0).
        strategy: 'greedy' (argmax, the book) or 'sample' (draw from q, below).
        temperature, alpha: q is proportional to softmax(logits / temperature) ** alpha, i.e.
            softmax(logits * alpha / temperature); both > 0. Low temperature or large alpha
            approach greedy; temperature > 1 flattens.
        top_k: None, or sample only among the k most likely tokens (k >= 1; tokens tied
            with the k-th are kept too).
        rng: int seed, numpy Generator or None, for 'sample'.
    Returns: the preprocessed prefix followed by the generated text (word tokens joined by spaces).
    """
    checks.one_of('strategy', strategy, STRATEGIES)
    checks.integer('num_preds', num_preds, 0)
    checks.number('temperature', temperature, above=0)
    checks.number('alpha', alpha, above=0)
    scale = alpha / temperature
    if not math.isfinite(scale):
        raise ConfigError(f'alpha / temperature = {alpha} / {temperature} overflows; '
                          'use strategy greedy for the limit of a tiny temperature')
    checks.integer('top_k', top_k, optional=True)
    if len(vocab) != model.vocab_size:
        raise ConfigError(f'the vocabulary has {len(vocab)} tokens but the model expects '
                          f'{model.vocab_size}; pass the vocabulary saved with the model')
    rng = make_rng(rng)

    prefix_text, tokens = _prefix_tokens(prefix, preprocess, token)
    missing = [t for t in dict.fromkeys(tokens) if t not in vocab.token_to_idx]
    if missing:
        shown = ', '.join(repr(t) for t in missing[:5]) + (' ...' if len(missing) > 5 else '')
        raise ConfigError(f'the prefix holds {len(missing)} token(s) the model never saw: {shown}; '
                          f'the model only knows its training vocabulary ({len(vocab)} tokens)')

    # warm-up (the book): run all prefix tokens but the last through the model, carrying the
    # state; the last one is the first input of the generation loop below
    ids = vocab[tokens]
    state = model.begin_state(1)
    if len(ids) > 1:
        _, state = model.forward(np.array([ids[:-1]]), state)
    outputs, y = [], ids[-1]
    for _ in range(num_preds):
        logits, state = model.forward(np.array([[y]]), state)           # (1, 1, V)
        y = _choose(to_numpy(logits[0, 0]), strategy, scale, top_k, rng)  # one (V,) copy to the host
        outputs.append(y)
    new = vocab.to_tokens(outputs)
    if token == 'word':
        return ' '.join(tokens + new)
    return prefix_text + ''.join(new)


def _prefix_tokens(prefix, mode, token):
    """(preprocessed prefix text, its tokens); ConfigError when nothing is left."""
    if not isinstance(prefix, str):
        raise ConfigError(f'prefix must be a str, got {type(prefix).__name__}')
    prefix_text = text.preprocess(prefix, mode)
    if mode == 'letters':
        # the training text starts at a letter, so a leading space (from a leading digit, say)
        # is dropped; a trailing one is kept: it asks the model to start a new word
        prefix_text = prefix_text.lstrip(' ')
    tokens = text.tokenize(prefix_text, token)
    if not tokens:
        hint = ' (it keeps only the letters a-z; try preprocess raw)' if mode == 'letters' else ''
        raise ConfigError(f'the prefix {prefix!r} is empty after preprocess {mode!r}{hint}; '
                          'pass a prefix with at least one token')
    return prefix_text, tokens


def _choose(logits, strategy, scale, top_k, rng):
    """One token id from logits (V,) on the host, in float64 so a tiny temperature stays exact."""
    z = logits.astype(np.float64)                                        # (V,)
    if not np.isfinite(z).all():
        raise DivergenceError('the model produced NaN or infinite logits; its parameters are '
                              'not finite (did training diverge?)')
    # index 0 is <unk>: a stand-in for tokens the vocabulary dropped, not a token to write
    z[0] = -np.inf
    if strategy == 'greedy':
        return int(np.argmax(z))
    # shift before scaling: the largest entry becomes 0 and the rest <= 0, so even an extreme
    # alpha / temperature gives 0 or -inf (an intended overflow), never inf - inf = NaN
    with np.errstate(over='ignore'):
        z = (z - z.max()) * scale
    if top_k is not None and top_k < len(z) - 1:
        cut = np.partition(z, len(z) - top_k)[len(z) - top_k]           # the k-th largest
        z[z < cut] = -np.inf
    p = np.exp(z)
    return int(rng.choice(len(p), p=p / p.sum()))
