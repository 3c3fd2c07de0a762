"""text.py and corpora.py: reading errors, Gutenberg stripping, preprocessing, Vocab, corpora, downloads.

Downloads are tested offline against a threaded http.server on 127.0.0.1; an autouse fixture
points MINIRNN_MIRROR at a closed port so no test can reach the network by accident.
"""
import functools
import hashlib
import http.server
import json
import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from minirnn.corpora import CORPORA, default_data_dir, download, resolve_corpus
from minirnn.errors import ConfigError, DataError
from minirnn.text import (Vocab, decode_text, encode, load_corpus, preprocess, read_text,
                          split_corpus, strip_gutenberg, tokenize)

REPO = Path(__file__).resolve().parents[1]


def closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Downloads land in tmp_path and go to a closed local port unless a test says otherwise."""
    monkeypatch.setenv('MINIRNN_DOWNLOAD_DIR', str(tmp_path / 'downloads'))
    monkeypatch.setenv('MINIRNN_MIRROR', f'http://127.0.0.1:{closed_port()}')


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode('utf-8'))
    return path


def book(data_dir, name):
    path = data_dir / f'{name}.txt'
    if not path.is_file():
        pytest.skip(f'{path} is absent')
    return path


# ---------------------------------------------------------------- read_text

def test_read_text_missing_path_names_the_registered_corpora(tmp_path):
    with pytest.raises(DataError, match='no such file.*timemachine'):
        read_text(tmp_path / 'nope.txt')


def test_read_text_directory(tmp_path):
    with pytest.raises(DataError, match='is a directory'):
        read_text(tmp_path)


def test_read_text_empty_file(tmp_path):
    with pytest.raises(DataError, match='is empty'):
        read_text(write(tmp_path / 'empty.txt', b''))


def test_read_text_binary_file_names_the_nul_offset(tmp_path):
    with pytest.raises(DataError, match='binary.*offset 3'):
        read_text(write(tmp_path / 'x.bin', b'abc\x00def'))


def test_read_text_utf16_may_hold_nul_bytes(tmp_path):
    path = write(tmp_path / 'u16.txt', 'hello'.encode('utf-16'))
    assert read_text(path, encoding='utf-16') == 'hello'


def test_read_text_bad_bytes_name_the_offset_and_suggest_an_encoding(tmp_path):
    path = write(tmp_path / 'latin.txt', b'caf\xe9 au lait')
    with pytest.raises(DataError, match=r'0xe9 at offset 3.*--encoding.*latin-1'):
        read_text(path)
    assert read_text(path, encoding='latin-1') == 'caf\xe9 au lait'


CURLY = 'He said \u201cnot yet\u201d \u2014 and left\u2026 caf\u00e9'    # quotes, dash, ellipsis, e-acute


@pytest.mark.parametrize('text', [CURLY, 'caf\u00e9 first, then \u201cquotes\u201d'],
                         ids=['quote-first', 'accent-first'])
def test_a_windows_1252_file_is_named_cp1252_not_latin_1(tmp_path, text):
    """Its curly quotes are bytes 0x80-0x9F, which latin-1 reads as invisible control characters."""
    path = write(tmp_path / 'windows.txt', text.encode('cp1252'))
    with pytest.raises(DataError, match='not valid utf-8') as error:
        read_text(path)
    message = str(error.value)
    assert '--encoding cp1252' in message and 'Windows-1252' in message
    assert 'latin-1' not in message.split('--encoding cp1252')[0]          # cp1252 is named first
    assert read_text(path, encoding='cp1252') == text
    assert any(0x80 <= ord(c) <= 0x9f for c in read_text(path, encoding='latin-1'))   # the trap


def test_the_hint_names_utf_8_for_utf_8_bytes_and_latin_1_for_other_high_bytes(tmp_path):
    with pytest.raises(DataError, match='it is valid UTF-8: pass --encoding utf-8'):
        read_text(write(tmp_path / 'u.txt', CURLY), encoding='ascii')
    # 0x81 is undefined in cp1252: not a Windows file, so latin-1 (which reads any byte)
    with pytest.raises(DataError, match=r'0x81.*--encoding latin-1') as error:
        read_text(write(tmp_path / 'x.txt', b'a\x81b\x93c'))
    assert 'cp1252' not in str(error.value)


def test_decode_text_reads_bytes_as_read_text_reads_a_file():
    assert decode_text(b'\xef\xbb\xbfone\r\ntwo') == 'one\ntwo'
    with pytest.raises(DataError, match=r'^stdin: byte 0x93 at offset 0 .*--encoding cp1252'):
        decode_text('\u201cquoted\u201d'.encode('cp1252'), source='stdin')
    with pytest.raises(DataError, match='stdin looks like a binary file'):
        decode_text(b'a\x00b', source='stdin')


def test_read_text_unknown_encoding(tmp_path):
    with pytest.raises(ConfigError, match='unknown encoding'):
        read_text(write(tmp_path / 'a.txt', 'a'), encoding='klingon')


def test_read_text_universal_newlines_and_bom(tmp_path):
    path = write(tmp_path / 'crlf.txt', b'\xef\xbb\xbfone\r\ntwo\rthree\n')
    assert read_text(path) == 'one\ntwo\nthree\n'


# ---------------------------------------------------------------- strip_gutenberg

@pytest.mark.parametrize('name,first,last', [
    ('war_of_the_worlds', 'The War of the Worlds', 'among the dead.'),  # "THIS PROJECT" markers
    ('sherlock_holmes', 'The Adventures of Sherlock Holmes', 'considerable success.'),  # "THE PROJECT"
])
def test_strip_gutenberg_on_the_shared_books(data_dir, name, first, last):
    text = read_text(book(data_dir, name))
    body = strip_gutenberg(text)
    assert first in body[:200] and body.endswith(last)
    assert 'PROJECT GUTENBERG' not in body.upper() and len(body) > 0.9 * len(text)


def test_strip_gutenberg_leaves_the_time_machine_alone(data_dir):
    text = read_text(book(data_dir, 'timemachine'))
    assert strip_gutenberg(text) == text


@pytest.mark.parametrize('the', ['THE', 'THIS'])
def test_strip_gutenberg_synthetic(the):
    text = (f'header and license\n*** START OF {the} PROJECT GUTENBERG EBOOK A TALE ***\n\nOnce upon\n'
            f'a time.\n\nEnd of the Project Gutenberg EBook of A Tale\n\n'
            f'*** END OF {the} PROJECT GUTENBERG EBOOK A TALE ***\nfooter and license\n')
    assert strip_gutenberg(text) == 'Once upon\na time.'
    assert strip_gutenberg(text.split('*** END')[0]).startswith('Once upon')
    assert strip_gutenberg('no markers\n*** here\n') == 'no markers\n*** here\n'
    quoted = f'he wrote "*** START OF {the} PROJECT GUTENBERG EBOOK" once\n'  # not at a line start
    assert strip_gutenberg(quoted) == quoted


# ---------------------------------------------------------------- preprocess and tokenize

def book_letters(text):
    """The book's 2nd-edition preprocessing, the reference the vectorised version must equal."""
    return re.sub('[^A-Za-z]+', ' ', text).lower()


def test_letters_joins_line_ends_with_a_space():
    assert preprocess('The Time\nMachine, by H. G. Wells\n') == 'the time machine by h g wells '


def test_letters_equals_the_books_regex_on_random_text():
    rng = np.random.default_rng(0)
    alphabet = list('aZ \n\t.,;1_`@[{') + ['\u00e9', '\u2019', '\u00df', '\U0001f600', '\u0161']
    for _ in range(300):
        text = ''.join(rng.choice(alphabet, size=int(rng.integers(1, 40))))
        assert preprocess(text, 'letters') == book_letters(text), repr(text)


def test_letters_equals_the_books_regex_on_the_books(data_dir):
    for name in ('timemachine', 'sherlock_holmes'):
        text = read_text(book(data_dir, name))
        assert preprocess(text, 'letters') == book_letters(text)


def test_letters_of_nothing_is_nothing():
    assert preprocess('', 'letters') == '' and preprocess('!', 'letters') == ' '


def test_raw_keeps_every_character():
    text = 'Caf\u00e9 \u2019quoted\u2019\n\t42!\U0001f600'
    assert preprocess(text, 'raw') == text


def test_tokenize():
    assert tokenize('ab c', 'char') == ['a', 'b', ' ', 'c']
    assert tokenize(' the\ntime  machine ', 'word') == ['the', 'time', 'machine']


@pytest.mark.parametrize('call', [lambda: preprocess('a', 'lower'), lambda: tokenize('a', 'bpe'),
                                  lambda: load_corpus('x', preprocess='lower'),
                                  lambda: load_corpus('x', token='bpe')])
def test_unknown_modes_are_config_errors(call):
    with pytest.raises(ConfigError, match='choose one of'):
        call()


# ---------------------------------------------------------------- Vocab

def test_vocab_orders_by_frequency_then_token():
    vocab = Vocab(list('dbacaba'))  # a:3 b:2 c:1 d:1; the c/d tie goes alphabetically
    assert vocab.idx_to_token == ['<unk>', 'a', 'b', 'c', 'd']
    assert vocab.token_freqs == [('a', 3), ('b', 2), ('c', 1), ('d', 1)]
    assert Vocab(list('cdaaab')).idx_to_token == Vocab(list('dcaaab')).idx_to_token
    assert vocab.token_to_idx == {t: i for i, t in enumerate(vocab.idx_to_token)}


def test_vocab_min_freq_and_reserved_tokens():
    vocab = Vocab(list('dbacaba'), min_freq=2, reserved_tokens=['<pad>', 'b'])
    assert vocab.idx_to_token == ['<unk>', '<pad>', 'b', 'a']
    assert len(vocab.token_freqs) == 4  # the book keeps every count, kept or not
    with pytest.raises(ConfigError):
        Vocab(['a'], min_freq=-1)
    with pytest.raises(ConfigError):
        Vocab(['a'], reserved_tokens=['<unk>'])


def test_vocab_lookup_unk_and_to_tokens():
    vocab = Vocab('hello world'.split() + ['hello'])
    assert vocab.unk == 0 and vocab['zebra'] == 0 and vocab['hello'] == 1
    assert vocab[['hello', 'zebra', 'world']] == [1, 0, 2] and vocab[('world',)] == [2]
    assert vocab.to_tokens(2) == 'world' and vocab.to_tokens(np.int64(1)) == 'hello'
    assert vocab.to_tokens([1, 2]) == ['hello', 'world'] and vocab.to_tokens(np.array([2])) == ['world']
    assert len(vocab) == 3 and len(Vocab()) == 1


def test_vocab_accepts_lists_of_lines_strings_and_counters():
    flat = Vocab(list('the time machine'))
    assert Vocab([list('the time'), list(' machine')]).idx_to_token == flat.idx_to_token
    assert Vocab('the time machine').token_freqs == flat.token_freqs
    counts = dict(flat.token_freqs)
    assert Vocab.from_counter(counts).idx_to_token == flat.idx_to_token


def test_vocab_round_trips_through_json():
    """A checkpoint keeps its vocabulary as to_dict()'s JSON (checkpoint.py)."""
    vocab = Vocab('a tale of two cities of a tale'.split(), reserved_tokens=['<bos>'])
    again = Vocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again.idx_to_token == vocab.idx_to_token and again.token_freqs == vocab.token_freqs


@pytest.mark.parametrize('bad', [{}, {'idx_to_token': ['a']}, {'idx_to_token': ['<unk>', 'a', 'a']},
                                 {'idx_to_token': ['<unk>'], 'token_freqs': [['a']]}, []])
def test_vocab_from_malformed_dict(bad):
    with pytest.raises(DataError, match='malformed vocabulary'):
        Vocab.from_dict(bad)


def test_encode_text_and_token_lists():
    vocab = Vocab(list('abca'))
    assert encode('abcz', vocab).tolist() == [1, 2, 3, 0]
    assert encode('ab\u00e9', vocab).tolist() == [1, 2, 0]
    assert encode(['b', 'zz'], vocab).tolist() == [2, 0] and encode('abc', vocab).dtype == np.int32


# ---------------------------------------------------------------- load_corpus and split_corpus

def test_load_corpus_time_machine_as_in_the_book(data_dir, monkeypatch):
    book(data_dir, 'timemachine')
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    corpus, vocab = load_corpus('timemachine')
    assert isinstance(corpus, np.ndarray) and corpus.dtype == np.int32 and corpus.ndim == 1
    assert len(vocab) == 28 and len(corpus) == 173428  # the 2nd edition's (173428, 28)
    assert vocab.idx_to_token[:4] == ['<unk>', ' ', 'e', 't']
    tokens = tokenize(book_letters(read_text(data_dir / 'timemachine.txt')), 'char')
    assert corpus.tolist() == Vocab(tokens)[tokens]  # the book's slow path gives the same ids
    short, short_vocab = load_corpus('timemachine', max_tokens=1000)
    assert short_vocab.idx_to_token == vocab.idx_to_token and (short == corpus[:1000]).all()


def test_load_corpus_words_and_raw(data_dir, monkeypatch):
    book(data_dir, 'war_of_the_worlds')
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    corpus, vocab = load_corpus('war_of_the_worlds', token='word')
    words = book_letters(strip_gutenberg(read_text(data_dir / 'war_of_the_worlds.txt'))).split()
    assert corpus.dtype == np.int32 and corpus.tolist() == Vocab(words)[words]
    raw, raw_vocab = load_corpus('war_of_the_worlds', preprocess='raw')
    assert '\u2019' in raw_vocab.idx_to_token and '\n' in raw_vocab.idx_to_token


def test_load_corpus_from_a_path_strips_gutenberg(tmp_path):
    path = write(tmp_path / 'tale.txt', 'LICENSE\n*** START OF THE PROJECT GUTENBERG EBOOK T ***\n'
                                        'Caf\u00e9 au lait, twice.\n*** END OF THE PROJECT GUTENBERG EBOOK T ***\nLEGAL\n')
    corpus, vocab = load_corpus(path, preprocess='raw')
    assert ''.join(vocab.to_tokens(corpus)) == 'Caf\u00e9 au lait, twice.'
    words, word_vocab = load_corpus(str(path), token='word')
    assert word_vocab.to_tokens(words) == ['caf', 'au', 'lait', 'twice']


def test_load_corpus_with_nothing_left(tmp_path):
    with pytest.raises(DataError, match='no tokens left.*--preprocess raw'):
        load_corpus(write(tmp_path / 'digits.txt', '1234 5678 \u00e9\u00e8'))


@pytest.mark.parametrize('bad', [0, -5, 2.5, True])
def test_load_corpus_max_tokens_must_be_positive(bad):
    with pytest.raises(ConfigError, match='max_tokens'):
        load_corpus('timemachine', max_tokens=bad)


def test_split_corpus_is_a_clean_tail():
    corpus = np.arange(1000, dtype=np.int32)
    train, val = split_corpus(corpus, 0.1)
    assert len(val) == 100 and (np.concatenate([train, val]) == corpus).all()
    assert train.max() < val.min()  # no position in both
    same, none = split_corpus(corpus, 0)
    assert none is None and same is corpus
    with pytest.raises(DataError, match='too short'):
        split_corpus(corpus[:3], 0.1)


@pytest.mark.parametrize('bad', [-0.1, 1, 1.5, float('nan'), True, '0.1'])
def test_split_corpus_rejects_bad_fractions(bad):
    with pytest.raises(ConfigError, match='val_fraction'):
        split_corpus(np.arange(10), bad)


# ---------------------------------------------------------------- registry and download

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class TruncatingHandler(QuietHandler):
    """Promises 1000 bytes, sends 10, hangs up: a dropped connection mid-download."""

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', '1000')
        self.end_headers()
        self.wfile.write(b'0123456789')
        self.close_connection = True


@pytest.fixture
def serve():
    """serve(directory, handler) -> base URL of a threaded server on 127.0.0.1 (ephemeral port)."""
    servers = []

    def start(directory, handler=QuietHandler):
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(handler, directory=str(directory)))
        # a short poll interval makes shutdown() quick (the default 0.5 s was most of this file's time)
        threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()
        servers.append(server)
        return f'http://127.0.0.1:{server.server_address[1]}'

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_verifies_and_then_reuses_the_file(data_dir, serve, monkeypatch, tmp_path):
    book(data_dir, 'timemachine')
    monkeypatch.setenv('MINIRNN_MIRROR', serve(data_dir))
    path = download('timemachine', tmp_path / 'fresh')
    assert path == tmp_path / 'fresh' / 'timemachine.txt'
    assert hashlib.sha1(path.read_bytes()).hexdigest() == CORPORA['timemachine']['sha1']
    assert [p.name for p in path.parent.iterdir()] == ['timemachine.txt']
    monkeypatch.setenv('MINIRNN_MIRROR', f'http://127.0.0.1:{closed_port()}')
    assert download('timemachine', tmp_path / 'fresh') == path  # verified copy: no network needed


def test_load_corpus_downloads_a_missing_registered_corpus(data_dir, serve, monkeypatch, tmp_path):
    book(data_dir, 'timemachine')
    monkeypatch.delenv('MINIRNN_DATA_DIR', raising=False)
    monkeypatch.setenv('MINIRNN_MIRROR', serve(data_dir))
    corpus, vocab = load_corpus('timemachine')
    assert len(vocab) == 28 and len(corpus) == 173428
    assert [p.name for p in (tmp_path / 'downloads').iterdir()] == ['timemachine.txt']


def test_download_replaces_a_corrupt_file_and_honours_an_explicit_url(data_dir, serve, tmp_path):
    book(data_dir, 'timemachine')
    dest = write(tmp_path / 'timemachine.txt', 'truncated earlier')
    assert download('timemachine', tmp_path, url=serve(data_dir) + '/timemachine.txt') == dest
    assert hashlib.sha1(dest.read_bytes()).hexdigest() == CORPORA['timemachine']['sha1']


def test_download_checksum_mismatch_leaves_nothing(serve, monkeypatch, tmp_path):
    (tmp_path / 'served').mkdir()
    write(tmp_path / 'served' / 'timemachine.txt', 'not the book')
    monkeypatch.setenv('MINIRNN_MIRROR', serve(tmp_path / 'served'))
    with pytest.raises(DataError, match='SHA-1.*nothing was saved.*by hand'):
        download('timemachine', tmp_path / 'out')
    assert list((tmp_path / 'out').iterdir()) == []


def test_download_http_404(serve, monkeypatch, tmp_path):
    (tmp_path / 'empty').mkdir()
    base = serve(tmp_path / 'empty')
    monkeypatch.setenv('MINIRNN_MIRROR', base + '/')
    with pytest.raises(DataError, match=f'{base}/timemachine.txt: HTTP 404.*save it as'):
        download('timemachine', tmp_path / 'out')
    assert list((tmp_path / 'out').iterdir()) == []


def test_download_connection_refused(tmp_path):
    url = f'http://127.0.0.1:{closed_port()}/timemachine.txt'
    with pytest.raises(DataError, match=re.escape(url) + '.*MINIRNN_MIRROR'):
        download('timemachine', tmp_path / 'out', url=url)
    assert list((tmp_path / 'out').iterdir()) == []


def test_download_cut_short_leaves_nothing(serve, tmp_path):
    url = serve(tmp_path, TruncatingHandler) + '/timemachine.txt'
    with pytest.raises(DataError, match='closed after 10 of 1000 bytes'):
        download('timemachine', tmp_path / 'out', url=url)
    assert list((tmp_path / 'out').iterdir()) == []


def test_download_errors_for_unknown_names_and_unwritable_folders(tmp_path):
    with pytest.raises(ConfigError, match='registered corpora: timemachine'):
        download('moby_dick', tmp_path)
    not_a_folder = write(tmp_path / 'file', 'x')
    with pytest.raises(DataError, match='MINIRNN_DOWNLOAD_DIR'):
        download('timemachine', not_a_folder / 'sub')


def test_resolution_order(data_dir, monkeypatch, tmp_path):
    book(data_dir, 'timemachine')
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    assert resolve_corpus('timemachine') == data_dir / 'timemachine.txt'  # 1. MINIRNN_DATA_DIR
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(tmp_path / 'elsewhere'))
    (tmp_path / 'downloads').mkdir()
    local = write(tmp_path / 'downloads' / 'timemachine.txt', 'a hand-placed copy')
    assert resolve_corpus('timemachine') == local  # 2. the data dir, trusted as placed
    assert str(resolve_corpus('notes.txt')) == 'notes.txt'  # anything else is a path


def test_default_data_dir(monkeypatch, tmp_path):
    assert default_data_dir() == tmp_path / 'downloads'
    monkeypatch.delenv('MINIRNN_DOWNLOAD_DIR')
    assert default_data_dir() == REPO / 'data'  # a source checkout keeps its texts in data/


def test_encode_corpus_uses_the_given_vocabulary_and_unk(tmp_path):
    from minirnn.text import Vocab, encode_corpus
    path = tmp_path / 't.txt'
    path.write_text('Abc, xyz!\nab')
    vocab = Vocab(list('abc '))
    ids = encode_corpus(path, vocab)                       # letters: 'abc xyz ab'
    assert ''.join('?' if t == '<unk>' else t for t in vocab.to_tokens(ids.tolist())) == 'abc ??? ab'
    assert ids.dtype == np.int32
    assert len(encode_corpus(path, vocab, max_tokens=4)) == 4
    words = encode_corpus(path, Vocab(['abc', 'ab']), token='word')
    assert Vocab(['abc', 'ab']).to_tokens(words.tolist()) == ['abc', '<unk>', 'ab']
