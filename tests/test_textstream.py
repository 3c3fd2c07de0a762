"""textstream.tokenise gives, chunk by chunk, exactly the tokens text.load_text gives in memory.

Held on texts built to break a streaming reader (Gutenberg markers in every arrangement
strip_gutenberg handles, whitespace around bodies, the old last line of boilerplate, '\\r\\n' and
BOMs, characters of 1 to 4 UTF-8 bytes), cut into chunks as small as one byte so that every
boundary falls everywhere; on random texts from the same pieces; on the books; and on bad files,
whose messages are read_text's.
"""
import io
import itertools
import random

import numpy as np
import pytest

from minirnn import text, textstream
from minirnn.errors import DataError

START = '*** START OF THE PROJECT GUTENBERG EBOOK X ***'
END = '*** END OF THE PROJECT GUTENBERG EBOOK X ***'
TEXTS = {
    'plain': 'hello  world\n\nfoo bar\r\nbaz\r',
    'leading and trailing space': '\n\n  hello\n \n',
    'one character': 'x',
    'two books': (f'junk\n{START}\n\n  Body one.\nline two\n\nEnd of the Project Gutenberg EBook of X\n\n{END}\n'
                  f'tail\n***START OF THIS PROJECT GUTENBERG EBOOK Y\nsecond body\n{END}\nafter'),
    'an END only': f'pre text\nmore\n{END}\nrest',
    'END before START': f'a\n{END}\nb\n{START}\nc d\n',
    'START without END': f'\ufeffx\n{START}\n\n\n  tail text \u00e9 \u00fc \U0001f600\n\n',
    'empty bodies': f'{START}\n{END}\n{START}\nq\n{END}\n{START}',
    'only the last line': f'{START}\nEnd of Project Gutenberg stuff\n{END}',
    'a marker not at a line start': f'x {START}\nbody\n',
    'only spaces': ' \n\t \n',
    'no letters': '123 456\n',
}
MODES = list(itertools.product(text.PREPROCESS_MODES, text.TOKEN_KINDS))


class Sink:
    """A binary file in memory (what tokencache writes to disk)."""
    def __init__(self):
        self.buffer = io.BytesIO()

    def write(self, data):
        return self.buffer.write(data)


def streamed(path, preprocess, token, chunk_bytes):
    """tokenise, then the vocabulary and ids load_text would build from its counts."""
    sink = Sink()
    found = textstream.tokenise(path, sink, preprocess=preprocess, token=token, chunk_bytes=chunk_bytes)
    vocab = text.Vocab.from_counter(dict(zip(found.tokens, found.counts.tolist())))
    lut = np.array([vocab[t] for t in found.tokens] or [0])
    first = np.frombuffer(sink.buffer.getvalue(), found.dtype)
    assert len(first) == found.count
    return lut[first], vocab, found


def outcome(fn):
    try:
        return fn()
    except DataError as exc:
        return exc


def assert_same(path, preprocess, token, chunk_bytes):
    expected = outcome(lambda: text.load_text(path, preprocess=preprocess, token=token))
    got = outcome(lambda: streamed(path, preprocess, token, chunk_bytes))
    if isinstance(expected, Exception) or isinstance(got, Exception):
        assert str(got) == str(expected)
        return
    ids, vocab, found = got
    assert np.array_equal(ids, expected[0]) and vocab.idx_to_token == expected[1].idx_to_token
    summary = expected[2]
    assert sum(found.dropped.values()) == summary.dropped
    assert tuple(sorted(found.dropped.items(), key=lambda item: -item[1])[:5]) == summary.most_dropped


@pytest.mark.parametrize('name', list(TEXTS))
def test_every_chunk_boundary_gives_load_texts_tokens(tmp_path, name):
    path = tmp_path / 'text.txt'
    path.write_bytes(TEXTS[name].encode('utf-8'))
    for (preprocess, token), chunk_bytes in itertools.product(MODES, (1, 2, 3, 5, 64)):
        assert_same(path, preprocess, token, chunk_bytes)


def test_random_texts_of_the_same_pieces_give_load_texts_tokens(tmp_path):
    pieces = ['\n', '\r\n', '\r', ' ', '  \t', 'word', 'Two Words', '\u00e9t\u00e9', '\u4e2d', '\U0001f600', '*** ',
              f'\n{START}\n', f'\n{END}\n', START, '\nEnd of the Project Gutenberg EBook\n', '\ufeff', ',.;']
    rng = random.Random(0)
    path = tmp_path / 'text.txt'
    for _ in range(300):
        path.write_bytes(''.join(rng.choice(pieces) for _ in range(rng.randrange(1, 40))).encode('utf-8'))
        preprocess, token = rng.choice(MODES)
        assert_same(path, preprocess, token, rng.choice((1, 2, 7, 13)))


def test_the_books_give_load_texts_tokens(books, tmp_path):
    joined = tmp_path / 'two books.txt'           # two Gutenberg files, markers and all
    joined.write_bytes((books / 'timemachine.txt').read_bytes() + (books / 'war_of_the_worlds.txt').read_bytes())
    for preprocess, token in MODES:
        assert_same(joined, preprocess, token, 4099)


@pytest.mark.parametrize('content, encoding', [
    (b'good text\nthen \xff a bad byte', 'utf-8'),
    (b'text \xe9\x00 a NUL', 'latin-1'),
    ('curly \u201cquotes\u201d'.encode('cp1252'), 'utf-8'),
    (b'', 'utf-8'),
])
def test_a_bad_file_gets_read_texts_message(tmp_path, content, encoding):
    path = tmp_path / 'bad.txt'
    path.write_bytes(content)
    with pytest.raises(DataError) as expected:
        text.read_text(path, encoding)
    for chunk_bytes in (1, 4, 1 << 20):
        with pytest.raises(DataError) as got:
            list(textstream.decoded_chunks(path, encoding, chunk_bytes))
        assert str(got.value) == str(expected.value)
