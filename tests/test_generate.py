"""predict: the book's warm-up and greedy decoding, sampling controls, a start without prefix,
beam search (against exhaustive search), unknown prefix tokens, and its error messages."""
import itertools
import warnings

import numpy as np
import pytest

from minirnn.backend import device_name, to_numpy
from minirnn.errors import ConfigError, UnknownTokensWarning
from minirnn.generate import beam_search, predict
from minirnn.model import RNNLM
from minirnn.optim import SGD, clip_grad_norm
from minirnn.text import Vocab

TEXT = 'the time traveller for so it will be convenient to speak of him '


def make(xp=np, dtype='float64', **kwargs):
    """A random model with lively logits (sigma 0.5) over the vocab of TEXT."""
    vocab = Vocab(TEXT)
    return RNNLM(len(vocab), 16, sigma=0.5, dtype=dtype, device=device_name(xp), seed=3, **kwargs), vocab


def manual_greedy(model, vocab, prefix, num_preds):
    """The book's predict, token by token with model.forward, <unk> excluded from the argmax."""
    state, outputs = model.begin_state(1), [vocab[c] for c in prefix]
    for y in outputs[:-1]:
        _, state = model.forward(np.array([[y]]), state)
    for _ in range(num_preds):
        logits, state = model.forward(np.array([[outputs[-1]]]), state)
        outputs.append(int(np.argmax(to_numpy(logits[0, 0])[1:])) + 1)
    return ''.join(vocab.to_tokens(outputs))


def next_token_probs(model, vocab, prefix):
    """softmax of the logits after `prefix`, without <unk>, renormalised: (V,) on the host."""
    logits, _ = model.forward(np.array([vocab[list(prefix)]]))
    z = to_numpy(logits[0, -1]).astype(np.float64)
    z[0] = -np.inf
    p = np.exp(z - z.max())
    return p / p.sum()


@pytest.mark.parametrize('kwargs', [{}, {'embed_dim': 5}], ids=['one-hot', 'embedding'])
def test_greedy_is_the_books_argmax_loop(xp, kwargs):
    model, vocab = make(xp, **kwargs)
    out = predict(model, vocab, 'time tr', 30)
    assert out == manual_greedy(model, vocab, 'time tr', 30)
    assert out.startswith('time tr') and len(out) == 37 and '<unk>' not in out
    assert predict(model, vocab, 'time tr', 30) == out


def test_warm_up_over_the_whole_prefix_equals_feeding_it_token_by_token(xp):
    # the state carried through one forward over the prefix must be the per-token state
    model, vocab = make(xp)
    prefix = 'the time traveller'
    ids = vocab[list(prefix)]
    state = model.begin_state(1)
    for y in ids:
        logits, state = model.forward(np.array([[y]]), state)
    expected = vocab.to_tokens(int(np.argmax(to_numpy(logits[0, 0])[1:])) + 1)
    assert predict(model, vocab, prefix, 1) == prefix + expected


def test_num_preds_zero_returns_the_preprocessed_prefix():
    model, vocab = make()
    assert predict(model, vocab, 'Time-Traveller! ', 0) == 'time traveller '
    assert predict(model, vocab, '42 time', 0) == 'time'      # a leading non-letter is dropped


def test_a_trailing_space_is_kept_and_changes_the_continuation():
    model, vocab = make()
    with_space = predict(model, vocab, 'time ', 10)
    assert with_space.startswith('time ')
    assert with_space == manual_greedy(model, vocab, 'time ', 10)


def test_sampling_repeats_with_a_seed_and_differs_across_seeds(xp):
    model, vocab = make(xp)
    runs = [predict(model, vocab, 'the ', 40, strategy='sample', rng=seed) for seed in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    generator = np.random.default_rng(0)      # a Generator is accepted and advanced
    assert predict(model, vocab, 'the ', 40, strategy='sample', rng=generator) == runs[0]


@pytest.mark.parametrize('controls', [{'top_k': 1}, {'temperature': 1e-4}, {'alpha': 1e4}],
                         ids=['top_k=1', 'tiny-temperature', 'large-alpha'])
def test_sharp_sampling_is_greedy(xp, controls):
    model, vocab = make(xp)
    greedy = predict(model, vocab, 'time tr', 40)
    for seed in range(3):
        assert predict(model, vocab, 'time tr', 40, strategy='sample', rng=seed, **controls) == greedy


def test_sampled_frequencies_follow_the_softmax():
    model, vocab = make()
    p = next_token_probs(model, vocab, 'the t')
    assert p.max() < 0.5                                  # a spread-out distribution to test against
    rng = np.random.default_rng(0)
    n = 3000
    draws = [predict(model, vocab, 'the t', 1, strategy='sample', rng=rng)[-1] for _ in range(n)]
    freq = np.array([draws.count(t) for t in vocab.idx_to_token]) / n
    assert freq[0] == 0                                   # <unk> is never produced
    assert np.abs(freq - p).max() < 0.04


def test_temperature_and_alpha_reshape_the_distribution():
    model, vocab = make()
    p = next_token_probs(model, vocab, 'the t')
    top = vocab.to_tokens(int(np.argmax(p)))

    def share_of_top(**controls):
        rng = np.random.default_rng(1)
        draws = [predict(model, vocab, 'the t', 1, strategy='sample', rng=rng, **controls)[-1]
                 for _ in range(600)]
        return draws.count(top) / len(draws)
    flat, base, sharp = share_of_top(temperature=3.0), share_of_top(), share_of_top(alpha=3.0)
    assert flat < base < sharp


def test_top_k_draws_only_the_k_most_likely_tokens():
    model, vocab = make()
    p = next_token_probs(model, vocab, 'the t')
    allowed = set(vocab.to_tokens(np.argsort(p)[-3:].tolist()))
    rng = np.random.default_rng(2)
    draws = {predict(model, vocab, 'the t', 1, strategy='sample', top_k=3, rng=rng)[-1] for _ in range(300)}
    assert draws == allowed


def test_word_tokens_are_joined_with_spaces():
    words = TEXT.split()
    vocab = Vocab(words)
    model = RNNLM(len(vocab), 8, sigma=0.5, seed=0)
    out = predict(model, vocab, 'The  time', 5, token='word')
    assert out.startswith('the time ') and len(out.split()) == 7
    assert all(w in words for w in out.split())


@pytest.mark.parametrize('kwargs', [{}, {'embed_dim': 8}], ids=['one-hot', 'embedding'])
def test_a_model_that_memorised_a_string_continues_it(xp, kwargs):
    text = 'hello world ' * 20
    vocab = Vocab(text)
    ids = np.array(vocab[list(text)])
    X = np.stack([ids[i:i + 24] for i in range(0, 192, 24)])          # (8, 24)
    Y = np.stack([ids[i + 1:i + 25] for i in range(0, 192, 24)])
    model = RNNLM(len(vocab), 32, sigma=0.1, device=device_name(xp), seed=0, **kwargs)
    opt = SGD(lr=1.0)
    for _ in range(300):
        _, grads, _ = model.loss_and_grads(X, Y)
        clip_grad_norm(grads, 1.0)
        opt.step(model.params, grads)
    assert predict(model, vocab, 'hello', 31) == ('hello world ' * 3)[:36]
    assert predict(model, vocab, 'hello wo', 28, strategy='sample', rng=0, temperature=0.5) == \
        ('hello world ' * 3)[:36]


# --- temperature 0, no prefix, unknown prefix tokens ----------------------------------------------

def test_temperature_zero_is_greedy(xp):
    model, vocab = make(xp)
    greedy = predict(model, vocab, 'time tr', 30)
    for seed in range(3):
        assert predict(model, vocab, 'time tr', 30, strategy='sample', temperature=0, rng=seed) == greedy
        assert predict(model, vocab, 'time tr', 30, strategy='sample', temperature=0, top_k=3, alpha=2,
                       rng=seed) == greedy


@pytest.mark.parametrize('prefix', [None, ''])
def test_without_a_prefix_a_raw_model_starts_after_a_newline(prefix):
    lines = 'the time\ntraveller\nfor so it\n'
    vocab = Vocab(lines)
    model = RNNLM(len(vocab), 16, sigma=0.5, dtype='float64', seed=3)
    out = predict(model, vocab, prefix, 20, preprocess='raw')
    # the newline is where the model starts, not part of the text
    assert out == predict(model, vocab, '\n', 20, preprocess='raw')[1:] and len(out) == 20
    sampled = predict(model, vocab, prefix, 20, preprocess='raw', strategy='sample', rng=4)
    assert sampled == predict(model, vocab, '\n', 20, preprocess='raw', strategy='sample', rng=4)[1:]


def test_without_a_prefix_a_letters_model_starts_from_a_seeded_token_drawn_by_frequency():
    model, vocab = make()                                 # TEXT's letters and space: no newline
    out = predict(model, vocab, None, 20, rng=5)
    assert len(out) == 21 and out[0] != ' '
    assert out == predict(model, vocab, None, 20, rng=5)                   # seeded: repeatable
    assert out == predict(model, vocab, out[0], 20)                         # then the book's greedy
    rng = np.random.default_rng(0)
    n = 4000
    starts = [predict(model, vocab, None, 0, rng=rng) for _ in range(n)]
    counts = {t: c for t, c in vocab.token_freqs if t != ' '}
    expected = np.array(list(counts.values())) / sum(counts.values())
    freq = np.array([starts.count(t) for t in counts]) / n
    assert np.abs(freq - expected).max() < 0.03 and ' ' not in starts


def test_without_a_prefix_a_word_model_starts_from_a_word():
    words = TEXT.split()
    vocab = Vocab(words)
    model = RNNLM(len(vocab), 8, sigma=0.5, seed=0)
    out = predict(model, vocab, None, 5, token='word', strategy='sample', rng=2)
    assert len(out.split()) == 6 and all(w in words for w in out.split())


def test_unknown_prefix_tokens_are_read_as_unk_with_a_warning(xp):
    model, vocab = make(xp)
    with pytest.warns(UnknownTokensWarning, match=r"1 token\(s\) the model never saw: 'z'; it reads them as <unk>"):
        out = predict(model, vocab, 'timez', 10)
    # the text keeps the prefix as written; the model read <unk> (id 0) where 'z' stood
    assert out[:5] == 'timez' and out[5:] == manual_greedy(model, vocab, 'timez', 10)[len('time<unk>'):]
    with pytest.warns(UnknownTokensWarning, match=r"7 token\(s\) .*: 'q', 'u', 'z', 'y', 'x' \.\.\."):
        predict(model, vocab, 'quzyxjg', 3)
    with warnings.catch_warnings():
        warnings.simplefilter('error')                    # a prefix the model knows warns of nothing
        predict(model, vocab, 'time', 3)


def test_unknown_words_are_read_as_unk_too():
    vocab = Vocab(TEXT.split())
    model = RNNLM(len(vocab), 8, sigma=0.5, seed=0)
    with pytest.warns(UnknownTokensWarning, match="'zyzzyva'"):
        out = predict(model, vocab, 'the zyzzyva', 3, token='word')
    assert out.split()[:2] == ['the', 'zyzzyva'] and len(out.split()) == 5


# --- beam search ----------------------------------------------------------------------------------

TINY = Vocab('abc')                                      # <unk>, a, b, c: 3 tokens to choose from


def log_q(model, vocab, prefix, continuation):
    """log q(continuation | prefix) from one forward pass: the softmax without <unk>, float64."""
    ids = vocab[list(prefix)] + list(continuation)
    logits, _ = model.forward(np.array([ids[:-1]]))
    z = to_numpy(logits[0, len(prefix) - 1:]).astype(np.float64)       # (len(continuation), V)
    z[:, 0] = -np.inf
    z -= z.max(axis=1, keepdims=True)
    logq = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(sum(logq[t, y] for t, y in enumerate(continuation)))


@pytest.mark.parametrize('seed, options', [(1, {}), (0, {'cell': 'lstm', 'num_layers': 2}),
                                           (2, {'cell': 'gru', 'embed_dim': 3})],
                         ids=['rnn', 'lstm x2', 'gru, embedding'])
def test_beam_search_finds_what_exhaustive_search_finds(xp, seed, options):
    model = RNNLM(len(TINY), 6, sigma=1.0, dtype='float64', device=device_name(xp), seed=seed, **options)
    prefix, n = 'ab', 4
    scores = {c: log_q(model, TINY, prefix, c) for c in itertools.product((1, 2, 3), repeat=n)}  # 81
    best = max(scores, key=scores.get)
    # a beam of 3^(n-1) keeps every continuation until the last step: exhaustive
    text, logprob = beam_search(model, TINY, prefix, n, 3 ** (n - 1), preprocess='raw')
    assert text == prefix + ''.join(TINY.to_tokens(list(best)))
    assert logprob == pytest.approx(scores[best], rel=1e-12, abs=1e-12)
    for width in (1, 2, 3, 5):
        text, logprob = beam_search(model, TINY, prefix, n, width, preprocess='raw')
        # every width reports the log-probability of the text it returns, and cannot beat the best
        assert logprob == pytest.approx(scores[tuple(TINY[list(text[2:])])], rel=1e-12, abs=1e-12)
        assert logprob <= scores[best] + 1e-12
        assert predict(model, TINY, prefix, n, preprocess='raw', strategy='beam', beam_size=width) == text
    # width 1 is greedy
    assert beam_search(model, TINY, prefix, n, 1, preprocess='raw')[0] == predict(model, TINY, prefix, n,
                                                                                 preprocess='raw')


def test_beam_search_beats_greedy_where_greedy_misses():
    model = RNNLM(len(TINY), 6, sigma=1.0, dtype='float64', seed=1)
    greedy = predict(model, TINY, 'ab', 4, preprocess='raw')
    greedy_logq = log_q(model, TINY, 'ab', TINY[list(greedy[2:])])
    text, logprob = beam_search(model, TINY, 'ab', 4, 2, preprocess='raw')
    assert text != greedy and logprob > greedy_logq + 0.1


def test_beam_search_on_a_real_vocabulary_and_its_edges():
    model, vocab = make()
    text, logprob = beam_search(model, vocab, 'time tr', 25, 4)
    assert text.startswith('time tr') and len(text) == 32 and '<unk>' not in text
    assert logprob == pytest.approx(log_q(model, vocab, 'time tr', vocab[list(text[7:])]), rel=1e-10)
    assert logprob >= log_q(model, vocab, 'time tr', vocab[list(predict(model, vocab, 'time tr', 25)[7:])]) - 1e-9
    assert beam_search(model, vocab, 'time', 0, 3) == ('time', 0.0)
    started = beam_search(model, vocab, None, 10, 3, rng=7)[0]               # no prefix: a seeded start
    assert len(started) == 11 and started == beam_search(model, vocab, None, 10, 3, rng=7)[0]
    assert predict(model, vocab, 'time', 10, strategy='beam') == beam_search(model, vocab, 'time', 10)[0]


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize('prefix, kwargs, match', [
    ('123', {}, "'123' is empty after preprocess 'letters'"),
    ('   ', {'token': 'word'}, 'empty'),
    ('time', {'num_preds': -1}, 'num_preds'),
    ('time', {'num_preds': 2.5}, 'num_preds'),
    ('time', {'temperature': -0.5}, 'temperature'),
    ('time', {'temperature': float('nan')}, 'temperature'),
    ('time', {'alpha': -1}, 'alpha'),
    ('time', {'top_k': 0}, 'top_k'),
    ('time', {'strategy': 'nucleus'}, 'unknown strategy'),
    ('time', {'strategy': 'beam', 'temperature': 0.5}, 'beam search ranks'),
    ('time', {'strategy': 'beam', 'top_k': 3}, 'beam search ranks'),
    ('time', {'strategy': 'beam', 'beam_size': 0}, 'beam_size'),
    ('time', {'strategy': 'sample', 'beam_size': 3}, 'beam_size is the width of beam search'),
    ('time', {'preprocess': 'lower'}, 'preprocess'),
    (None, {'preprocess': 'lower'}, 'preprocess'),
    ('time', {'token': 'byte'}, 'token'),
    ('time', {'temperature': 1e-310}, 'overflows'),
    (b'time', {}, 'prefix must be a str or None'),
])
def test_bad_arguments_are_config_errors(prefix, kwargs, match):
    model, vocab = make()
    kwargs = {'num_preds': 3, **kwargs}
    with pytest.raises(ConfigError, match=match):
        predict(model, vocab, prefix, kwargs.pop('num_preds'), **kwargs)


def test_a_vocabulary_of_another_size_is_refused():
    model, _ = make()
    with pytest.raises(ConfigError, match='vocabulary has'):
        predict(model, Vocab('abc'), 'a', 3)
    with pytest.raises(ConfigError, match='vocabulary has'):
        beam_search(model, Vocab('abc'), 'a', 3)


@pytest.mark.parametrize('option', [{'temperature': 1e-308}, {'alpha': 1e308}])
def test_extreme_sharpening_is_greedy_not_nan(option):
    model, vocab = make()
    greedy = predict(model, vocab, 'abc', 8)
    assert predict(model, vocab, 'abc', 8, strategy='sample', rng=0, **option) == greedy
