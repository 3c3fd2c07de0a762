"""Texts larger than memory: tokenised once into a token file on disk, memory-mapped ever after.

A text file of CACHE_FROM_BYTES or more is never read whole. The first run tokenises it in
chunks (textstream.py, with a progress bar) into DIR/<name>-<key>.npy, the vocabulary's ids
as uint8, uint16 or uint32 (the smallest that holds them), beside DIR/<name>-<key>.json: the
key (the file's resolved path, size and modification time, and how it was prepared: encoding,
preprocessing, tokens, and min_freq or the vocabulary it was encoded with), the vocabulary and
what load_text's summary says. DIR is $MINIRNN_CACHE_DIR, else $XDG_CACHE_HOME/minirnn/tokens,
else ~/.cache/minirnn/tokens. Later runs, every rank of an MPI run and `eval` find the key and
memory-map the ids (numpy.load(mmap_mode='r')): the loaders and the evaluation read only the
windows they batch, so memory stays bounded whatever the text's size.

Both files are written atomically (a temporary file, then a rename), the .json last, so a
token file without its description is never used. A process building one holds a lock on DIR
(flock), so two runs never tokenise at once; the temporary files of one that was killed are
removed by the next.
"""
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import textstream
from .errors import DataError
from .files import write_text_atomic

CACHE_FROM_BYTES = 32 << 20      # smaller texts load into memory in well under a second (text.py)
FORMAT = 1                       # bumped when the files' layout changes: older files are rebuilt
_REMAP_CHUNK = 1 << 22           # ids per lookup when first-appearance ids become the vocabulary's


def cache_dir():
    """Where token files go: $MINIRNN_CACHE_DIR, else $XDG_CACHE_HOME/minirnn/tokens, else
    ~/.cache/minirnn/tokens."""
    if os.environ.get('MINIRNN_CACHE_DIR'):
        return Path(os.environ['MINIRNN_CACHE_DIR']).expanduser()
    return Path(os.environ.get('XDG_CACHE_HOME') or '~/.cache').expanduser() / 'minirnn' / 'tokens'


def wanted(path):
    """Whether the text at `path` goes through the token cache: a file of CACHE_FROM_BYTES or more."""
    try:
        return path.is_file() and path.stat().st_size >= CACHE_FROM_BYTES
    except OSError:
        return False


def load(path, *, preprocess, token, encoding, min_freq, progress=False):
    """The text's (ids, Vocab, summary fields), tokenised now or found in the cache.

    ids: a read-only memory map of the whole text's ids (N,); the summary fields: a dict with
    total_tokens, dropped and most_dropped (text.TextSummary's). progress: show a bar while
    tokenising. DataError as text.load_text raises them.
    """
    from .text import Vocab
    key = _key(path, preprocess=preprocess, token=token, encoding=encoding, min_freq=min_freq)
    meta, ids = _cached(path, key, lambda tokenised: Vocab.from_counter(
        dict(zip(tokenised.tokens, tokenised.counts.tolist())), min_freq=min_freq), progress)
    return ids, Vocab.from_dict(meta['vocab']), meta['summary']


def encode(path, vocab, *, preprocess, token, encoding, progress=False):
    """The text's ids under an existing vocabulary (<unk> for tokens it lacks), a read-only
    memory map, tokenised now or found in the cache (the vocabulary is part of the key)."""
    fingerprint = hashlib.sha1(json.dumps(vocab.to_dict(), sort_keys=True).encode()).hexdigest()
    key = _key(path, preprocess=preprocess, token=token, encoding=encoding, vocab=fingerprint)
    _, ids = _cached(path, key, lambda tokenised: vocab, progress)
    return ids


def _key(path, **how):
    """What a token file depends on: the file (resolved path, size, modification time) and how
    it was prepared."""
    stat = path.stat()
    return {'format': FORMAT, 'path': str(path.resolve()), 'size': stat.st_size, 'mtime_ns': stat.st_mtime_ns,
            **how}


def _cached(path, key, make_vocab, progress):
    """(meta, ids) of the token file for `key`, built first when it is missing or stale.
    make_vocab(Tokenised) -> the Vocab whose ids the file holds."""
    folder = cache_dir()
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = f'{path.name}-{digest}'
    found = _read(folder, name, key)
    if found is not None:
        return found
    with _locked(folder, progress):
        found = _read(folder, name, key)       # another process may have built it meanwhile
        if found is None:
            _build(path, folder, name, key, make_vocab, progress)
            found = _read(folder, name, key)
    return found


def _read(folder, name, key):
    """(meta, ids) of a complete token file with this key, else None."""
    try:
        meta = json.loads((folder / f'{name}.json').read_text())
        if meta.get('key') != key:
            return None
        ids = np.load(folder / f'{name}.npy', mmap_mode='r')
    except (OSError, ValueError):
        return None
    return (meta, ids) if ids.shape == (meta['tokens'],) else None


@contextlib.contextmanager
def _locked(folder, progress):
    """Hold an exclusive lock on the cache folder (flock; none where fcntl is missing), and
    remove the temporary files a killed build left (nobody else can be building now)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise DataError(f'cannot write the token file of a large text into {folder} ({exc.strerror or exc}); '
                        f'set MINIRNN_CACHE_DIR to a writable folder') from None
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if progress:
                print(f'minirnn: waiting for another process that is tokenising into {folder}', file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        for stale in folder.glob('.*.tmp'):
            stale.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)                          # releases the lock


def _build(path, folder, name, key, make_vocab, progress):
    """Tokenise the text and write <name>.npy and <name>.json atomically, the .json last."""
    first = folder / f'.{name}.first.tmp'      # first-appearance ids, removed whatever happens
    final = folder / f'.{name}.npy.tmp'
    bar = _bar(progress, 2 * path.stat().st_size, path)
    try:
        with open(first, 'wb') as out:
            tokenised = textstream.tokenise(path, out, preprocess=key['preprocess'], token=key['token'],
                                            encoding=key['encoding'], on_bytes=bar.update if bar else None)
        vocab = make_vocab(tokenised)
        vocab.text_options = {'preprocess': key['preprocess'], 'token': key['token'], 'encoding': key['encoding']}
        _remap(first, final, tokenised, vocab)
        os.replace(final, folder / f'{name}.npy')
        dropped = sorted(tokenised.dropped.items(), key=lambda item: -item[1])
        summary = {'total_tokens': tokenised.count, 'dropped': sum(tokenised.dropped.values()),
                   'most_dropped': dropped[:5]}
        write_text_atomic(folder / f'{name}.json', json.dumps(
            {'key': key, 'tokens': tokenised.count, 'vocab': vocab.to_dict(), 'summary': summary}))
    finally:
        if bar:
            bar.close()
        for tmp in (first, final):
            tmp.unlink(missing_ok=True)


def _remap(first, final, tokenised, vocab):
    """First-appearance ids (the file `first`) -> the vocabulary's ids, in chunks, into a .npy
    file `final` of the smallest unsigned dtype that holds them. Plain reads and writes, not
    memory maps: the pages a map touches would count as this process's memory."""
    dtype = next(d for d in (np.uint8, np.uint16, np.uint32) if len(vocab) - 1 <= np.iinfo(d).max)
    lut = np.array([vocab.token_to_idx.get(t, vocab.unk) for t in tokenised.tokens] or [0], dtype)
    with open(first, 'rb') as source, open(final, 'wb') as target:
        np.lib.format.write_array_header_1_0(target, {'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                      'fortran_order': False, 'shape': (tokenised.count,)})
        for _ in range(0, tokenised.count, _REMAP_CHUNK):
            ids = np.fromfile(source, tokenised.dtype, _REMAP_CHUNK)
            target.write(memoryview(lut[ids]))
        target.flush()
        os.fsync(target.fileno())              # on disk before the rename makes it the token file


def _bar(progress, total, path):
    """A tqdm bar over the bytes of both passes, on a terminal and when progress is wanted; else None."""
    if not progress:
        return None
    print(f'minirnn: tokenising {path} ({total / 2 / 1e6:,.0f} MB) once into {cache_dir()}', file=sys.stderr)
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit='B', unit_scale=True, desc='tokenising', file=sys.stderr, leave=False)
