"""The three samplers against the book's semantics, and SeqDataLoader's epochs and resumable state.

Most tests sample a position corpus, arange(N), whose values are their own positions, so
each batch says where it was cut; the same seed on a corpus of arbitrary tokens must then
give exactly those positions' tokens.
"""
import json

import numpy as np
import pytest

from minirnn.backend import to_numpy
from minirnn.batching import (SeqDataLoader, min_corpus_length, seq_data_iter_random,
                              seq_data_iter_sequential, seq_data_iter_windows)
from minirnn.errors import CheckpointError, ConfigError, DataError

ITERS = {'random': seq_data_iter_random, 'sequential': seq_data_iter_sequential,
         'windows': seq_data_iter_windows}


def batches(sampler, corpus, batch_size, num_steps, rng=0, **options):
    return list(ITERS[sampler](corpus, batch_size, num_steps, rng, **options))


@pytest.mark.parametrize('sampler', list(ITERS))
def test_shapes_dtype_and_contiguity(sampler):
    for X, Y in batches(sampler, np.arange(1000), 4, 7):
        assert X.shape == Y.shape
        assert X.shape[1] == 7 and 1 <= X.shape[0] <= 4
        assert X.dtype == Y.dtype == np.int32
        assert X.flags.c_contiguous and Y.flags.c_contiguous


@pytest.mark.parametrize('sampler', list(ITERS))
def test_y_is_x_shifted_by_one_in_the_corpus(sampler):
    n = 500
    tokens = np.random.default_rng(1).integers(0, 6, n).astype(np.int64)
    positions = batches(sampler, np.arange(n), 3, 5, rng=7)
    values = batches(sampler, tokens, 3, 5, rng=7)
    assert len(positions) == len(values) > 0
    for (PX, PY), (X, Y) in zip(positions, values):
        assert (PY == PX + 1).all()
        assert (PX[:, 1:] == PX[:, :-1] + 1).all()  # each row is one contiguous stretch
        assert (X == tokens[PX]).all() and (Y == tokens[PX + 1]).all()


def test_sequential_batches_continue_row_by_row():
    n, B, T = 103, 4, 5
    for seed in range(10):
        out = batches('sequential', np.arange(n), B, T, rng=seed)
        offset = int(out[0][0][0, 0])
        assert 0 <= offset <= T
        row_len = (n - offset - 1) // B
        assert (out[0][0][:, 0] == offset + row_len * np.arange(B)).all()
        for (X0, Y0), (X1, _) in zip(out, out[1:]):
            assert (X1[:, 0] == X0[:, -1] + 1).all()
            assert (X1[:, 0] == Y0[:, -1]).all()


def test_random_subsequences_never_overlap_and_sit_on_one_grid():
    n, B, T = 211, 3, 6
    for seed in range(10):
        starts = np.concatenate([X[:, 0] for X, _ in batches('random', np.arange(n), B, T, rng=seed)])
        assert len(set(starts % T)) == 1 and 0 <= starts[0] % T < T
        assert (np.diff(np.sort(starts)) >= T).all()
        assert starts.max() + T + 1 <= n  # Y's last token is still in the corpus


@pytest.mark.parametrize('n', [37, 38, 41, 50, 64, 99, 100, 101, 257])
@pytest.mark.parametrize('batch_size,num_steps', [(1, 1), (2, 5), (3, 4), (4, 7)])
def test_batch_counts_follow_the_books_formulas(n, batch_size, num_steps):
    if n < min_corpus_length('sequential', batch_size, num_steps):
        pytest.skip('too short for this batch shape (tested elsewhere)')
    seen = {'random': set(), 'sequential': set()}
    for seed in range(60):
        X0 = batches('random', np.arange(n), batch_size, num_steps, rng=seed)
        offset = int(X0[0][0][0, 0]) % num_steps
        assert len(X0) == (n - 1 - offset) // num_steps // batch_size
        seen['random'].add(offset)
        S = batches('sequential', np.arange(n), batch_size, num_steps, rng=seed)
        offset = int(S[0][0][0, 0])
        num_tokens = (n - offset - 1) // batch_size * batch_size
        assert len(S) == (num_tokens // batch_size) // num_steps
        seen['sequential'].add(offset)
    assert seen['random'] == set(range(num_steps))  # every offset of [0, T-1] was drawn
    assert seen['sequential'] == set(range(num_steps + 1))  # and of [0, T]


@pytest.mark.parametrize('sampler', ['random', 'sequential'])
def test_same_seed_same_batches_other_seeds_other_offsets(sampler):
    corpus = np.arange(300)
    a, b = batches(sampler, corpus, 2, 9, rng=3), batches(sampler, corpus, 2, 9, rng=3)
    assert all((x == y).all() for (x, _), (y, _) in zip(a, b))
    gen = np.random.default_rng(3)  # a Generator and its seed give the same draws
    assert all((x == y).all() for (x, _), (y, _) in zip(a, batches(sampler, corpus, 2, 9, rng=gen)))
    offsets = {int(batches(sampler, corpus, 2, 9, rng=s)[0][0][0, 0]) % 9 for s in range(20)}
    assert len(offsets) > 1


@pytest.mark.parametrize('sampler', ['random', 'sequential'])
def test_a_corpus_of_just_enough_tokens(sampler):
    B, T = 3, 4
    need = min_corpus_length(sampler, B, T)
    counts = {len(batches(sampler, np.arange(need), B, T, rng=s)) for s in range(30)}
    assert min(counts) == 1  # the largest offset leaves exactly one batch
    with pytest.raises(DataError, match=str(need)):
        batches(sampler, np.arange(need - 1), B, T)


def test_windows_corpus_of_one_window():
    (X, Y), = batches('windows', np.arange(6), 4, 5)
    assert X.tolist() == [[0, 1, 2, 3, 4]] and Y.tolist() == [[1, 2, 3, 4, 5]]
    with pytest.raises(DataError, match='at least 6'):
        batches('windows', np.arange(5), 4, 5)


@pytest.mark.parametrize('sampler', list(ITERS))
@pytest.mark.parametrize('bad', [0, -1, 2.5, True, None])
def test_batch_size_and_num_steps_must_be_positive_integers(sampler, bad):
    with pytest.raises(ConfigError, match='batch_size'):
        ITERS[sampler](np.arange(100), bad, 3)
    with pytest.raises(ConfigError, match='num_steps'):
        ITERS[sampler](np.arange(100), 3, bad)


@pytest.mark.parametrize('corpus', [np.zeros((4, 50), np.int32), np.linspace(0, 1, 100), []])
def test_corpus_must_be_1d_integers(corpus):
    with pytest.raises(DataError):
        seq_data_iter_sequential(corpus, 2, 3)


def test_errors_are_raised_at_the_call_not_at_the_first_batch():
    with pytest.raises(DataError):
        seq_data_iter_random(np.arange(5), 2, 3)  # never iterated


def test_windows_follow_the_books_train_and_validation_split():
    B, T = 1024, 32
    corpus = np.arange(15000 + T)
    train = batches('windows', corpus, B, T, rng=0, start=0, num_windows=10000)
    assert [len(X) for X, _ in train] == [1024] * 9 + [784]
    starts = np.concatenate([X[:, 0] for X, _ in train])
    assert sorted(starts.tolist()) == list(range(10000))  # every window once per epoch
    assert starts.tolist() != list(range(10000))  # shuffled
    val = batches('windows', corpus, B, T, start=10000, num_windows=5000, shuffle=False)
    assert [len(X) for X, _ in val] == [1024] * 4 + [904]
    assert np.concatenate([X[:, 0] for X, _ in val]).tolist() == list(range(10000, 15000))
    for X, Y in train + val:
        assert (X == X[:, :1] + np.arange(T)).all() and (Y == X + 1).all()
    with pytest.raises(DataError, match=str(15001 + T)):
        batches('windows', corpus, B, T, start=10000, num_windows=5001)


def test_windows_default_to_every_window_from_start():
    X = np.concatenate([X for X, _ in batches('windows', np.arange(20), 4, 3, start=5)])
    assert sorted(X[:, 0].tolist()) == list(range(5, 17))


@pytest.mark.parametrize('sampler,options', [('random', {}), ('sequential', {}),
                                             ('windows', {'num_windows': 50}),
                                             ('windows', {'start': 3, 'shuffle': False})])
def test_loader_len_is_the_number_of_batches_of_each_epoch(sampler, options):
    for n in (61, 97, 128):
        loader = SeqDataLoader(np.arange(n), 3, 5, sampler=sampler, rng=11, **options)
        lengths = set()
        for _ in range(8):
            expected = len(loader)
            assert len(list(loader)) == expected
            lengths.add(expected)
        if sampler == 'sequential' and n == 61:
            assert len(lengths) > 1  # the offsets, hence the counts, do change between epochs


@pytest.mark.parametrize('sampler', list(ITERS))
def test_loader_epochs_are_successive_calls_on_one_generator(sampler):
    corpus = np.arange(400)
    loader = SeqDataLoader(corpus, 4, 6, sampler=sampler, rng=5)
    gen = np.random.default_rng(5)
    for _ in range(3):
        expected = list(ITERS[sampler](corpus, 4, 6, gen))
        got = list(loader)
        assert len(got) == len(expected)
        assert all((x == ex).all() and (y == ey).all() for (x, y), (ex, ey) in zip(got, expected))
    assert loader.sampler == sampler


def epochs(loader, count):
    return [[X.tolist() for X, _ in loader] for _ in range(count)]


@pytest.mark.parametrize('sampler', list(ITERS))
def test_loader_state_round_trip_resumes_with_the_same_batches(sampler):
    corpus = np.arange(500)
    uninterrupted = epochs(SeqDataLoader(corpus, 4, 7, sampler=sampler, rng=21), 4)
    first = SeqDataLoader(corpus, 4, 7, sampler=sampler, rng=21)
    done = epochs(first, 2)
    state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint's JSON metadata holds
    resumed = SeqDataLoader(corpus, 4, 7, sampler=sampler, rng=999)
    resumed.load_state_dict(state)
    assert done + epochs(resumed, 2) == uninterrupted
    assert len(set(map(str, uninterrupted))) == 4  # epochs differ from one another


def test_an_epoch_cut_short_does_not_shift_later_epochs():
    corpus = np.arange(500)
    full = SeqDataLoader(corpus, 4, 7, sampler='random', rng=2)
    cut = SeqDataLoader(corpus, 4, 7, sampler='random', rng=2)
    list(full)
    next(iter(cut))
    assert epochs(full, 1) == epochs(cut, 1)


def test_loader_rejects_mismatched_options_and_state():
    corpus = np.arange(200)
    with pytest.raises(ConfigError, match='sampler'):
        SeqDataLoader(corpus, 2, 3, sampler='shuffled')
    with pytest.raises(ConfigError, match='windows'):
        SeqDataLoader(corpus, 2, 3, sampler='sequential', num_windows=10)
    with pytest.raises(DataError, match=str(min_corpus_length('sequential', 50, 10))):
        SeqDataLoader(corpus, 50, 10)
    loader = SeqDataLoader(corpus, 2, 3, sampler='random', rng=0)
    with pytest.raises(ConfigError, match='--sampler random'):
        SeqDataLoader(corpus, 2, 3, sampler='sequential').load_state_dict(loader.state_dict())
    with pytest.raises(CheckpointError, match='offset'):
        loader.load_state_dict({**loader.state_dict(), 'offset': 3})
    with pytest.raises(CheckpointError, match='random state'):
        loader.load_state_dict({**loader.state_dict(), 'rng': {'bit_generator': 'nonsense'}})


def test_loader_moves_batches_onto_xp(xp):
    corpus = np.arange(300)
    loader = SeqDataLoader(corpus, 4, 5, sampler='sequential', rng=0, xp=xp)
    reference = list(seq_data_iter_sequential(corpus, 4, 5, np.random.default_rng(0)))
    got = list(loader)
    assert len(got) == len(reference)
    for (X, Y), (rX, rY) in zip(got, reference):
        assert type(X) is type(xp.asarray(rX)) and X.dtype == np.int32
        assert (to_numpy(X) == rX).all() and (to_numpy(Y) == rY).all()
