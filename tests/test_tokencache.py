"""A large text is tokenised once into a memory-mapped token file that every later load reuses.

CACHE_FROM_BYTES is lowered here so that the books (a few hundred KB) take the large-text path:
load_text, encode_corpus, training and eval give through the cache exactly what they give in
memory; the cache is reused, rebuilt when the file or the options change, written atomically
with no temporary file left behind, and an unwritable cache folder is one clear error.
"""
import json

import numpy as np
import pytest

from minirnn import cli, text, textstream, tokencache
from minirnn.errors import DataError
from minirnn.run import checkpoint, fit, make_config


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Every file goes through the token cache, kept in tmp_path/cache."""
    monkeypatch.setattr(tokencache, 'CACHE_FROM_BYTES', 0)
    monkeypatch.setenv('MINIRNN_CACHE_DIR', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


def in_memory(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(tokencache, 'CACHE_FROM_BYTES', 1 << 62)
        return fn()


@pytest.mark.parametrize('preprocess, token, min_freq', [('letters', 'char', 0), ('raw', 'char', 0),
                                                          ('letters', 'word', 3), ('raw', 'word', 0)])
def test_a_cached_text_is_the_text_loaded_in_memory(books, cache, monkeypatch, preprocess, token, min_freq):
    options = dict(preprocess=preprocess, token=token, min_freq=min_freq, max_tokens=50000)
    corpus, vocab, summary = text.load_text('war_of_the_worlds', **options)
    expected = in_memory(monkeypatch, lambda: text.load_text('war_of_the_worlds', **options))
    assert isinstance(corpus, np.memmap) and corpus.dtype == (np.uint8 if token == 'char' else np.uint16)
    assert np.array_equal(corpus, expected[0]) and vocab.idx_to_token == expected[1].idx_to_token
    assert vocab.text_options == expected[1].text_options and summary == expected[2]
    assert vocab.token_freqs == expected[1].token_freqs


def test_the_token_file_is_built_once_and_rebuilt_when_the_text_or_options_change(books, cache, tmp_path,
                                                                                   monkeypatch):
    path = tmp_path / 'book.txt'
    path.write_bytes((books / 'timemachine.txt').read_bytes())
    first = text.load_text(path)[0]
    built = sorted(p.name for p in cache.iterdir())
    assert len(built) == 2 and built[0].endswith('.json') and built[1].endswith('.npy')
    assert json.loads((cache / built[0]).read_text())['key']['size'] == path.stat().st_size

    def no_tokenising(*args, **kwargs):
        raise AssertionError('tokenised again')
    with monkeypatch.context() as m:
        m.setattr(textstream, 'tokenise', no_tokenising)
        assert np.array_equal(text.load_text(path)[0], first)           # found, not rebuilt
    text.load_text(path, preprocess='raw')                               # other options: a file of their own
    assert len(list(cache.iterdir())) == 4
    path.write_bytes(path.read_bytes()[:100000])                         # the text changed
    assert len(text.load_text(path)[0]) < len(first)
    assert not list(cache.glob('.*'))                                    # no temporary file left


def test_a_failed_or_killed_build_leaves_no_token_file(books, cache, tmp_path):
    path = tmp_path / 'bad.txt'
    path.write_bytes(b'fine text\n' * 1000 + b'\xff')
    with pytest.raises(DataError, match=r'byte 0xff at offset 10000 is not valid utf-8'):
        text.load_text(path)
    assert not [p for p in cache.iterdir() if p.suffix != '.tmp'] and not list(cache.glob('.*'))
    (cache / '.old.npy.tmp').write_bytes(b'a build killed half way')    # what a killed run leaves
    path.write_bytes(b'fine text\n' * 1000)
    text.load_text(path)
    assert not list(cache.glob('.*'))


def test_an_unwritable_cache_folder_is_one_error(books, tmp_path, monkeypatch):
    monkeypatch.setattr(tokencache, 'CACHE_FROM_BYTES', 0)
    blocked = tmp_path / 'a file'
    blocked.write_text('')
    monkeypatch.setenv('MINIRNN_CACHE_DIR', str(blocked / 'cache'))
    with pytest.raises(DataError, match=r'cannot write the token file of a large text into .*; set '
                                        r'MINIRNN_CACHE_DIR to a writable folder'):
        text.load_text('timemachine')


def test_training_and_eval_read_the_memory_map_as_they_read_an_array(books, cache, tmp_path, monkeypatch,
                                                                     saved_params, capsys):
    fields = dict(data='timemachine', max_tokens=None, val_fraction=0.05, batch_size=16, num_steps=16,
                  num_hiddens=16, num_epochs=1, prefixes=(), dropout=0.2, embed_dim=8, optimizer='adam')
    fit(make_config(**fields), tmp_path / 'cached', quiet=True)
    in_memory(monkeypatch, lambda: fit(make_config(**fields), tmp_path / 'memory', quiet=True))
    cached, memory = saved_params(tmp_path / 'cached'), saved_params(tmp_path / 'memory')
    assert all(np.array_equal(cached[k], memory[k]) for k in memory)
    val = [json.loads(line)['val_ppl'] for line in (tmp_path / 'cached' / 'history.jsonl').read_text().splitlines()]
    assert val == [json.loads(line)['val_ppl']
                   for line in (tmp_path / 'memory' / 'history.jsonl').read_text().splitlines()]
    argv = ['eval', '--checkpoint', str(tmp_path / 'cached' / 'model.npz'), '--data', 'war_of_the_worlds']
    assert cli.main(argv) == 0
    through_cache = json.loads(capsys.readouterr().out)
    assert in_memory(monkeypatch, lambda: cli.main(argv)) == 0
    assert through_cache == json.loads(capsys.readouterr().out)
    encoded = text.encode_corpus('war_of_the_worlds', checkpoint.load(tmp_path / 'cached' / 'model.npz').vocab)
    assert isinstance(encoded, np.memmap)
