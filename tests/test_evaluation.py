"""run/evaluation.py: a text's tokens as batches, and held-out perplexity with a carried state."""

import numpy as np
import pytest

from minirnn.model import RNNLM
from minirnn.run.evaluation import corpus_batches, evaluate

pytestmark = pytest.mark.usefixtures('books')     # MINIRNN_DATA_DIR: the books, offline


def test_corpus_batches_cover_every_token_once():
    corpus = np.arange(103)
    batches = list(corpus_batches(corpus, 4, 7))
    X = np.concatenate([x for x, _ in batches], axis=1)     # (4, 25): each row contiguous
    Y = np.concatenate([y for _, y in batches], axis=1)
    np.testing.assert_array_equal(X.reshape(-1), corpus[:100])
    np.testing.assert_array_equal(Y, X + 1)
    assert [x.shape[1] for x, _ in batches] == [7, 7, 7, 4]


def test_evaluate_with_a_carried_state_is_one_long_forward_pass():
    rng = np.random.default_rng(0)
    corpus = rng.integers(0, 9, 61)
    m = RNNLM(9, 6, sigma=0.3, dtype='float64', seed=0)
    split = evaluate(m, corpus_batches(corpus, 3, 4), carry_state=True)
    X = corpus[:60].reshape(3, 20)
    Y = corpus[1:61].reshape(3, 20)
    assert split == pytest.approx(m.loss(X, Y)[0], rel=1e-12)


def test_unknown_warning_above_a_small_share_says_what_to_check():
    from minirnn.run.evaluation import UNKNOWN_WARNING_SHARE, unknown_warning
    assert unknown_warning(0.0, 28, 'letters', 'char') is None
    assert unknown_warning(UNKNOWN_WARNING_SHARE, 28, 'letters', 'char') is None
    warning = unknown_warning(0.82, 4012, 'raw', 'word', 'latin-1')
    assert warning.startswith('82% of the tokens are unknown to the model (read as <unk>)')
    assert '4012 tokens' in warning and '--preprocess raw --token word' in warning
    assert '--encoding' in warning and 'latin-1' in warning
    assert unknown_warning(0.061, 28, 'letters', 'char').startswith('6.1% ')
