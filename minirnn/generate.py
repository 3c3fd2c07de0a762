"""Text generation: the book's `predict` (warm-up, then greedy argmax), sampling and beam search.

The prefix goes through the corpus's own preprocessing and tokenization, warms up the state,
and each new token is fed back one at a time with the state carried. Without a prefix the
model starts after a newline (raw text) or from one token drawn at random. Sampling sharpens
or flattens softmax(logits) with temperature and alpha and may keep only the top_k tokens;
temperature 0 is greedy. Beam search (d2l's section after these chapters) keeps the beam_size
most likely continuations at every step. Random draws come from a host NumPy Generator, so a
seed gives the same text on CPU and GPU.

Every strategy chooses among the V - 1 tokens other than <unk> (index 0, a stand-in for tokens
the vocabulary dropped, not a token to write): q = the softmax of the logits over those.
"""
import math
import warnings
from typing import Any, List, NamedTuple

import numpy as np

from . import checks, text
from .backend import make_rng, to_numpy
from .errors import ConfigError, DivergenceError, UnknownTokensWarning
from .tree import tree_map

STRATEGIES = ('greedy', 'sample', 'beam')
BEAM_SIZE = 5           # beam search's width unless told otherwise


def predict(model, vocab, prefix, num_preds, *, preprocess=None, token=None,
            strategy='greedy', temperature=1.0, alpha=1.0, top_k=None, beam_size=None, rng=None):
    """Continue `prefix` by `num_preds` tokens (the book's predict_ch8 / predict).

    Args:
        model: an RNNLM; vocab: the Vocab it was trained with (V tokens).
        prefix: str, preprocessed with `preprocess` ('letters' | 'raw') and split with
            `token` ('char' | 'word') as the training text was (None: as vocab.text_options
            say, which a checkpoint's vocabulary carries; else letters and char, the book's); under 'letters' a leading
            non-letter is dropped but a trailing space is kept ('time traveller '). Tokens
            the vocabulary lacks are read as <unk> (as `eval` reads a text), with an
            UnknownTokensWarning naming them; the returned text keeps them as written.
            None or '': no prefix. The model starts after a newline when its vocabulary has
            one (raw text; the newline is not returned), else from a token drawn with `rng`
            in proportion to its count in the training text (whitespace only when nothing
            else is there), which the returned text begins with.
        num_preds: number of tokens to append (>= 0).
        strategy: 'greedy' (argmax, the book), 'sample' (draw from q, below) or 'beam' (the
            most likely continuation a beam of beam_size finds: beam_search, which also
            gives its log-probability).
        temperature, alpha: q is proportional to softmax(logits / temperature) ** alpha, i.e.
            softmax(logits * alpha / temperature); alpha > 0, temperature >= 0. Low temperature
            or large alpha approach greedy, temperature 0 is greedy; temperature > 1 flattens.
        top_k: None, or sample only among the k most likely tokens (k >= 1; tokens tied
            with the k-th are kept too).
        beam_size: the beam's width for strategy 'beam' (default BEAM_SIZE); only with 'beam',
            which ranks by the model's own q and so takes no temperature, alpha or top_k.
        rng: int seed, numpy Generator or None (fresh entropy): the draws of 'sample' and the
            start without a prefix.
    Returns: the preprocessed prefix followed by the generated text (word tokens joined by spaces).
    """
    checks.one_of('strategy', strategy, STRATEGIES)
    checks.integer('num_preds', num_preds, 0)
    checks.number('temperature', temperature, minimum=0)
    checks.number('alpha', alpha, above=0)
    checks.integer('top_k', top_k, optional=True)
    if strategy == 'beam':
        if (temperature, alpha, top_k) != (1, 1, None):
            raise ConfigError('beam search ranks continuations by the model\'s own probabilities; '
                              'temperature, alpha and top_k shape sampling: leave them out')
        return beam_search(model, vocab, prefix, num_preds, BEAM_SIZE if beam_size is None else beam_size,
                           preprocess=preprocess, token=token, rng=rng)[0]
    if beam_size is not None:
        raise ConfigError(f'beam_size is the width of beam search; pass strategy=\'beam\' with it '
                          f'(got strategy {strategy!r})')
    scale = alpha / temperature if temperature else math.inf
    if temperature and not math.isfinite(scale):
        raise ConfigError(f'alpha / temperature = {alpha} / {temperature} overflows; '
                          'use temperature 0 (greedy) for the limit of a tiny temperature')
    if temperature == 0:
        strategy = 'greedy'         # the limit of a vanishing temperature: all mass on the argmax
    rng = make_rng(rng)

    primed = _prime(model, vocab, prefix, preprocess, token, rng)
    state, y, outputs = primed.state, primed.last, []
    for _ in range(num_preds):
        logits, state = model.forward(np.array([[y]]), state)           # (1, 1, V)
        y = _choose(to_numpy(logits[0, 0]), strategy, scale, top_k, rng)  # one (V,) copy to the host
        outputs.append(y)
    return _join(primed, vocab.to_tokens(outputs), token)


def beam_search(model, vocab, prefix, num_preds, beam_size=BEAM_SIZE, *, preprocess=None,
                token=None, rng=None):
    """The most likely continuation of `prefix` that beam search finds, and its log-probability.

    After the warm-up, every step extends each of the k kept continuations by every token
    (k * (V - 1) candidates, <unk> never) and keeps the beam_size most likely; ties go to the
    earlier beam and the lower token id. Width 1 is greedy; a width of (V - 1)^(num_preds - 1)
    makes it an exhaustive search. All continuations have num_preds tokens, so their
    probabilities compare without a length penalty.

    Args: model, vocab, prefix, num_preds, preprocess, token as predict's (the prefix too:
        None or '' starts as there, rng drawing the start token where one is drawn);
        beam_size >= 1.
    Returns: (text, logprob). text as predict returns it; logprob, the natural log of the
        probability of the num_preds generated tokens given the prefix,
        sum_t log q(y_t | prefix, y_1 .. y_t-1), with q the distribution greedy and sampling
        choose from (the softmax without <unk>); 0.0 when num_preds is 0.
    """
    checks.integer('num_preds', num_preds, 0)
    beam_size = checks.integer('beam_size', beam_size)
    primed = _prime(model, vocab, prefix, preprocess, token, make_rng(rng))
    state = primed.state                             # batch k: one row per beam (k = 1 at first)
    last = np.array([primed.last])                   # (k,) each beam's newest token
    beams = np.zeros((1, 0), np.int64)               # (k, t) each beam's generated tokens
    scores = np.zeros(1)                             # (k,) their log-probabilities, float64
    for _ in range(num_preds):
        logits, state = model.forward(last[:, None], state)              # (k, 1, V)
        logq = _log_q(to_numpy(logits[:, 0]))                            # (k, V) on the host
        total = (scores[:, None] + logq).ravel()                         # (k * V,) beam-major
        # stable order: score descending, then flat index ascending (so width 1 ties as
        # np.argmax does); <unk>'s -inf sorts last and k * (V - 1) >= 1 finite candidates remain
        keep = np.lexsort((np.arange(total.size), -total))[:min(beam_size, np.isfinite(total).sum())]
        parent, last = np.divmod(keep, logq.shape[1])                    # (k',) each
        beams = np.concatenate([beams[parent], last[:, None]], axis=1)
        scores = total[keep]
        rows = model.xp.asarray(parent)
        state = tree_map(lambda a: a[rows], state)                       # each kept beam's own state
    return _join(primed, vocab.to_tokens(beams[0].tolist()), token), float(scores[0])


# --- the prefix: read, checked and warmed up --------------------------------------------------

class Primed(NamedTuple):
    text: str           # the prefix as the output starts: preprocessed ('' after a newline start)
    tokens: List[str]   # its tokens as shown (word tokens are joined by spaces)
    state: Any          # the state after every prefix token but the last (batch 1)
    last: int           # the last prefix token's id: the generation loop's first input


def _prime(model, vocab, prefix, preprocess, token, rng):
    """Check the vocabulary and the prefix, and warm up on it (the book): a Primed."""
    preprocess, token, _ = text.text_options(vocab, preprocess, token)
    checks.one_of('preprocess', preprocess, text.PREPROCESS_MODES)
    checks.one_of('token', token, text.TOKEN_KINDS)
    if len(vocab) != model.vocab_size:
        raise ConfigError(f'the vocabulary has {len(vocab)} tokens but the model expects '
                          f'{model.vocab_size}; pass the vocabulary saved with the model')
    if len(vocab) < 2:
        raise ConfigError('the vocabulary holds only <unk>: there is no token to generate')
    if prefix is None or prefix == '':
        start = _start_token(vocab, rng)
        shown = [] if start == '\n' else [start]
        return Primed(''.join(shown), shown, model.begin_state(1), vocab[start])
    prefix_text, tokens = _prefix_tokens(prefix, preprocess, token)
    missing = [t for t in dict.fromkeys(tokens) if t not in vocab.token_to_idx]
    if missing:
        shown = ', '.join(repr(t) for t in missing[:5]) + (' ...' if len(missing) > 5 else '')
        warnings.warn(f'the prefix holds {len(missing)} token(s) the model never saw: {shown}; it reads '
                      f'them as <unk> (it knows only the {len(vocab)} tokens of its training text)',
                      UnknownTokensWarning, stacklevel=3)
    ids = vocab[tokens]
    state = model.begin_state(1)
    # warm-up (the book): run all prefix tokens but the last through the model, carrying the
    # state; the last one is the first input of the generation loop
    if len(ids) > 1:
        _, state = model.forward(np.array([ids[:-1]]), state)
    return Primed(prefix_text, tokens, state, ids[-1])


def _start_token(vocab, rng):
    """Where a text without prefix starts: a newline (a fresh line of raw text), else a token
    drawn in proportion to its training count; whitespace only if nothing else is there (a
    'letters' text never starts with a space)."""
    if '\n' in vocab.token_to_idx:
        return '\n'
    tokens = [t for t in vocab.idx_to_token[1:] if not t.isspace()] or vocab.idx_to_token[1:]
    counts = dict(vocab.token_freqs)
    weights = np.array([counts.get(t, 0) for t in tokens], np.float64)
    if not weights.any():           # a vocabulary without counts: every token alike
        weights[:] = 1
    return tokens[int(rng.choice(len(tokens), p=weights / weights.sum()))]


def _prefix_tokens(prefix, mode, token):
    """(preprocessed prefix text, its tokens); ConfigError when nothing is left."""
    if not isinstance(prefix, str):
        raise ConfigError(f'prefix must be a str or None, got {type(prefix).__name__}')
    prefix_text = text.preprocess(prefix, mode)
    if mode == 'letters':
        # the training text starts at a letter, so a leading space (from a leading digit, say)
        # is dropped; a trailing one is kept: it asks the model to start a new word
        prefix_text = prefix_text.lstrip(' ')
    tokens = text.tokenize(prefix_text, token)
    if not tokens:
        hint = ' (it keeps only the letters a-z; try preprocess raw)' if mode == 'letters' else ''
        raise ConfigError(f'the prefix {prefix!r} is empty after preprocess {mode!r}{hint}; '
                          'pass a prefix with at least one token, or none to start from nothing')
    return prefix_text, tokens


def _join(primed, new, token):
    """The returned text: the prefix as shown, then the new tokens."""
    if token == 'word':
        return ' '.join(primed.tokens + new)
    return primed.text + ''.join(new)


# --- choosing tokens from logits, on the host in float64 -----------------------------------------

def _finite(z):
    if not np.isfinite(z).all():
        raise DivergenceError('the model produced NaN or infinite logits; its parameters are '
                              'not finite (did training diverge?)')
    return z


def _choose(logits, strategy, scale, top_k, rng):
    """One token id from logits (V,), in float64 so a tiny temperature stays exact."""
    z = _finite(logits.astype(np.float64))                               # (V,)
    z[0] = -np.inf                                                       # never <unk>
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


def _log_q(logits):
    """log q for each row of logits (k, V): the log-softmax without <unk> (-inf there), float64."""
    z = _finite(logits.astype(np.float64))                               # (k, V), a copy
    z[:, 0] = -np.inf
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
