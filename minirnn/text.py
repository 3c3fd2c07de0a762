"""From a text file to a corpus: read, strip Gutenberg boilerplate, preprocess, tokenize, Vocab.

A corpus is a 1-D NumPy int32 array built with vectorised NumPy (no Python loop over
characters), so a 100 MB text loads in seconds. Finding or downloading a registered corpus
is corpora.py's job, batching is batching.py's; nothing here touches a device.
"""
import codecs
import collections
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import checks
from .corpora import CORPORA, resolve_corpus
from .errors import ConfigError, DataError

PREPROCESS_MODES = ('letters', 'raw')
TOKEN_KINDS = ('char', 'word')

_WORD_CHUNK = 1 << 20  # characters per str.split() call
_ID_CHUNK = 1 << 24  # ids per bincount / table lookup (16 M int64 temporaries = 128 MB)


# ---------------------------------------------------------------- reading and cleaning text

def read_text(path, encoding='utf-8'):
    """The whole file as one str, with universal newlines (as open() in text mode gives them).

    Raises DataError, saying what to do, for a missing path, a directory, an empty file, a
    binary file (NUL bytes) or bytes that are not valid in `encoding` (decode_text).
    """
    path = Path(path)
    _codec(encoding)                        # an unknown encoding is named before the file is read
    if not path.exists():
        raise DataError(f'{path}: no such file; pass the path of a text file or a registered '
                        f'corpus name ({", ".join(CORPORA)})')
    if path.is_dir():
        raise DataError(f'{path} is a directory; pass the path of a text file inside it')
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f'cannot read {path}: {exc.strerror}') from None
    if not data:
        raise DataError(f'{path} is empty; pass a file that holds some text')
    return decode_text(data, encoding, source=path)


def decode_text(data, encoding='utf-8', source='the text'):
    """bytes -> str as read_text reads a file: checked, BOM dropped, newlines made '\n'.

    source names the bytes in messages (a path, 'stdin'). DataError for NUL bytes (a binary
    file) or bytes that are not valid in `encoding`, with the encoding they most likely are.
    """
    codec = _codec(encoding)
    if not codec.startswith(('utf-16', 'utf-32')):  # NUL bytes are normal only in those
        nul = data.find(b'\x00')
        if nul >= 0:
            raise DataError(f'{source} looks like a binary file (NUL byte at offset {nul}); pass a '
                            'plain-text file (for UTF-16 text, pass --encoding utf-16)')
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f'{source}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not valid '
                        f'{encoding}; {_encoding_hint(data, encoding)}') from None
    if text.startswith('\ufeff'):
        text = text[1:]
    if '\r' in text:
        text = text.replace('\r\n', '\n').replace('\r', '\n')
    return text


def _codec(encoding):
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f'unknown encoding {encoding!r}; try utf-8, cp1252 or latin-1') from None


# Windows-1252 puts curly quotes, dashes, the euro sign and the ellipsis at 0x80-0x9F, where
# latin-1 has invisible C1 control characters: latin-1 reads such a file without an error, but
# every quote becomes a control character (under --preprocess raw, a token of its own)
_REJECTED_C1_BYTE = re.compile('[\udc80-\udc9f]')


def _encoding_hint(data, encoding):
    """What to pass as --encoding for bytes that `encoding` cannot read.

    UTF-8 when they are UTF-8. Rejected bytes in 0x80-0x9F mean Windows-1252 (cp1252): nearly
    every file holding such bytes is one, and latin-1 would turn them into control characters.
    Otherwise latin-1, which reads any byte (and agrees with cp1252 on 0xA0-0xFF).
    """
    if _codec(encoding) != 'utf-8' and _decodes(data, 'utf-8'):
        return 'it is valid UTF-8: pass --encoding utf-8'
    try:    # each rejected byte b >= 0x80 becomes the lone surrogate U+DC00 + b (PEP 383)
        escaped = data.decode(encoding, 'surrogateescape')
    except UnicodeDecodeError:          # a rejected byte below 0x80 (odd-length UTF-16, say)
        escaped = ''
    # cp1252 leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D undefined: with those it is something else
    if _REJECTED_C1_BYTE.search(escaped) and _decodes(data, 'cp1252'):
        return ('it looks like Windows-1252, whose curly quotes and dashes are bytes 0x80-0x9F: pass '
                '--encoding cp1252 (latin-1 would read them as invisible control characters)')
    return 'pass the file\'s encoding with --encoding (latin-1 reads any byte, e.g. --encoding latin-1)'


def _decodes(data, encoding):
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _marker(text, pattern, start=0):
    """(start, end) of the first `pattern` match at a line start, at or after `start`; else None."""
    for match in pattern.finditer(text, start):
        # an unanchored search is ~6x faster than re.MULTILINE '^' on 100 MB; check the line start here
        if match.start() == 0 or text[match.start() - 1] == '\n':
            return match.start(), match.end()
    return None


_GUTENBERG_START = re.compile(r'\*\*\* ?START OF (?:THE|THIS) PROJECT GUTENBERG EBOOK[^\n]*')
_GUTENBERG_END = re.compile(r'\*\*\* ?END OF (?:THE|THIS) PROJECT GUTENBERG EBOOK')
_GUTENBERG_LAST_LINE = re.compile(r'End of (?:the )?Project Gutenberg', re.IGNORECASE)


def strip_gutenberg(text):
    """Every book's text between Project Gutenberg's `*** START OF` and `*** END OF` marker lines.

    A file that joins several Gutenberg books keeps each book's body, in order, separated by a
    blank line. Each marker is optional: without a START line the text is kept from its
    beginning, without an END line to its end; a text with neither comes back unchanged.
    Older files' "End of the Project Gutenberg EBook of ..." line above the END marker goes too.
    """
    bodies, position = [], 0
    while True:
        start = _marker(text, _GUTENBERG_START, position)
        if start is None and bodies:               # no further book after the last END
            break
        begin = start[1] if start else position
        end = _marker(text, _GUTENBERG_END, begin)
        if start is None and end is None:
            return text
        bodies.append(_book_body(text[begin:end[0] if end else len(text)]))
        if end is None:
            break
        position = end[1]
    return '\n\n'.join(bodies)


def _book_body(body):
    """One book's text between its markers, without the blank lines around it and (older files)
    the last line of boilerplate just above the END marker."""
    body = body.strip()
    last = body.rfind('\n') + 1
    if _GUTENBERG_LAST_LINE.match(body, last):
        body = body[:last].rstrip()
    return body


def _letters(text):
    """The book's 2nd-edition preprocessing, re.sub('[^A-Za-z]+', ' ', text).lower(), vectorised.

    It works on UTF-8 bytes: every byte of a non-ASCII character is >= 0x80, hence a
    non-letter, so runs of non-letters collapse to one space exactly as they do on characters.
    """
    if not text:
        return text
    b = np.frombuffer(text.encode('utf-8', 'surrogatepass'), np.uint8)  # (N,)
    lower = b | np.uint8(0x20)  # 'A'..'Z' -> 'a'..'z'; nothing else lands in 'a'..'z'
    is_letter = (lower >= ord('a')) & (lower <= ord('z'))
    # a non-letter survives only as the first of its run, where it becomes the one space
    keep = is_letter.copy()
    keep[0] = True
    keep[1:] |= is_letter[:-1]
    lower[~is_letter] = ord(' ')
    return lower[keep].tobytes().decode('ascii')


def preprocess(text, mode='letters'):
    """'letters': the book's (2nd ed.) re.sub('[^A-Za-z]+', ' ', text).lower() on the whole text,
    so words at line ends are not glued together; 'raw': every character kept (char-rnn)."""
    if mode == 'letters':
        return _letters(text)
    if mode == 'raw':
        return text
    raise ConfigError(f'unknown preprocess mode {mode!r}; choose one of {", ".join(PREPROCESS_MODES)}')


def tokenize(text, token='char'):
    """Split text into a list of tokens: characters ('char') or whitespace-separated words ('word')."""
    if token == 'char':
        return list(text)
    if token == 'word':
        return text.split()
    raise ConfigError(f'unknown token kind {token!r}; choose one of {", ".join(TOKEN_KINDS)}')


# ---------------------------------------------------------------- vocabulary

class Vocab:
    """Token <-> index map, as in the book's 1st edition: '<unk>' is 0, then reserved tokens,
    then tokens with freq >= min_freq, most frequent first (ties: token ascending, so the
    order never depends on where a token first appears)."""

    def __init__(self, tokens=None, min_freq=0, reserved_tokens=None):
        """tokens: a flat sequence of tokens, a list of token lists (flattened) or a str (its chars)."""
        self._build(_count_tokens(tokens), min_freq, reserved_tokens)

    @classmethod
    def from_counter(cls, counter, min_freq=0, reserved_tokens=None):
        """A Vocab from precomputed {token: count} (a Counter or dict), without re-counting."""
        vocab = cls.__new__(cls)
        vocab._build(counter, min_freq, reserved_tokens)
        return vocab

    # how the vocabulary's text was prepared ({'preprocess', 'token', 'encoding'}), or None when
    # unknown: prefixes to predict and texts to evaluate are prepared the same way by default
    text_options = None

    def _build(self, counter, min_freq, reserved_tokens):
        checks.integer('min_freq', min_freq, 0)
        reserved = list(reserved_tokens or [])
        if len(set(reserved)) != len(reserved) or '<unk>' in reserved:
            raise ConfigError(f'reserved_tokens must be distinct and exclude <unk>, got {reserved!r}')
        self.token_freqs = sorted(((t, int(n)) for t, n in counter.items()), key=lambda tn: (-tn[1], tn[0]))
        self.idx_to_token = ['<unk>'] + reserved
        taken = set(self.idx_to_token)  # a reserved token that also occurs in the text keeps its slot
        self.idx_to_token += [t for t, n in self.token_freqs if n >= min_freq and t not in taken]
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}

    @property
    def unk(self):
        """Index of '<unk>', where every unknown token maps."""
        return 0

    def __len__(self):
        return len(self.idx_to_token)

    def __getitem__(self, tokens):
        """Index of one token (unknown -> 0), or a list of indices for a list/tuple of tokens."""
        if isinstance(tokens, (list, tuple)):
            return [self.__getitem__(t) for t in tokens]
        return self.token_to_idx.get(tokens, self.unk)

    def to_tokens(self, indices):
        """Token of one index, or a list of tokens for a sequence (or NumPy array) of indices."""
        if isinstance(indices, (int, np.integer)) or np.ndim(indices) == 0:
            return self.idx_to_token[int(indices)]
        return [self.idx_to_token[int(i)] for i in indices]

    def to_dict(self):
        """A JSON-ready dict (the checkpoint stores it in its metadata); from_dict inverts it exactly."""
        d = {'idx_to_token': list(self.idx_to_token), 'token_freqs': [[t, n] for t, n in self.token_freqs]}
        if self.text_options is not None:
            d['text_options'] = dict(self.text_options)
        return d

    @classmethod
    def from_dict(cls, d):
        """The Vocab that to_dict() described; DataError when `d` is not such a dict."""
        try:
            idx_to_token = [str(t) for t in d['idx_to_token']]
            token_freqs = [(str(t), int(n)) for t, n in d.get('token_freqs', [])]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError('malformed vocabulary: expected {"idx_to_token": [...], '
                            '"token_freqs": [[token, count], ...]}') from None
        if not idx_to_token or idx_to_token[0] != '<unk>' or len(set(idx_to_token)) != len(idx_to_token):
            raise DataError('malformed vocabulary: idx_to_token must start with <unk> and hold distinct tokens')
        vocab = cls.__new__(cls)
        vocab.idx_to_token, vocab.token_freqs = idx_to_token, token_freqs
        options = d.get('text_options')
        if isinstance(options, dict) and options.get('preprocess') in PREPROCESS_MODES \
                and options.get('token') in TOKEN_KINDS:
            vocab.text_options = {'preprocess': options['preprocess'], 'token': options['token'],
                                  'encoding': str(options.get('encoding') or 'utf-8')}
        vocab.token_to_idx = {t: i for i, t in enumerate(idx_to_token)}
        return vocab


def _count_tokens(tokens):
    if tokens is None:
        return {}
    if isinstance(tokens, str):
        _, _, chars, counts = _index_chars(tokens)
        return dict(zip(chars, counts.tolist()))
    tokens = tokens if isinstance(tokens, (list, tuple)) else list(tokens)
    if tokens and isinstance(tokens[0], (list, tuple)):  # the book flattens a list of lines
        return collections.Counter(t for line in tokens for t in line)
    return collections.Counter(tokens)


# ---------------------------------------------------------------- corpus: tokens -> int32 ids

def _codepoints(text):
    """(N,) code points of text: uint8 when it is ASCII (one byte per char), else uint32."""
    if text.isascii():
        return np.frombuffer(text.encode('ascii'), np.uint8)
    return np.frombuffer(text.encode('utf-32-le', 'surrogatepass'), np.uint32)


def _chunked_bincount(ids, size):
    # np.bincount (and fancy indexing) cast to int64 first: 800 MB for 100 M ids, unless chunked
    counts = np.zeros(size, np.int64)
    for i in range(0, len(ids), _ID_CHUNK):
        counts += np.bincount(ids[i:i + _ID_CHUNK], minlength=size)
    return counts


def _chunked_lookup(lut, ids):
    out = np.empty(len(ids), np.int32)
    for i in range(0, len(ids), _ID_CHUNK):
        out[i:i + _ID_CHUNK] = lut[ids[i:i + _ID_CHUNK]]
    return out


def _index_chars(text):
    """First pass over characters: ids (N,) are code points; returns (ids, keys, tokens, counts)
    where keys are the ids that occur, tokens[i] = chr(keys[i]) and counts[i] its count."""
    ids = _codepoints(text)
    counts = _chunked_bincount(ids, int(ids.max()) + 1 if len(ids) else 0)
    keys = np.flatnonzero(counts)
    return ids, keys, [chr(k) for k in keys], counts[keys]


def _index_words(text):
    """First pass over whitespace-separated words: ids in order of first appearance; the text is
    split in ~1 M character chunks (cut at whitespace) so no list of all words is ever held."""
    index = collections.defaultdict()
    index.default_factory = index.__len__  # an unseen word gets the next id
    parts, pos, space = [], 0, re.compile(r'\s')  # \s is str.split()'s whitespace
    while pos < len(text):
        cut = space.search(text, pos + _WORD_CHUNK) if pos + _WORD_CHUNK < len(text) else None
        end = cut.start() if cut else len(text)
        words = text[pos:end].split()
        parts.append(np.fromiter(map(index.__getitem__, words), np.int32, count=len(words)))
        pos = end
    ids = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return ids, np.arange(len(index)), list(index), _chunked_bincount(ids, len(index))


def encode(tokens, vocab):
    """Indices (N,) int32 of a str (its characters, vectorised) or of a sequence of tokens."""
    if isinstance(tokens, str):
        codes = _codepoints(tokens)
        lut = np.zeros(int(codes.max()) + 1 if len(codes) else 1, np.int32)
        for t, i in vocab.token_to_idx.items():
            if len(t) == 1 and ord(t) < len(lut):
                lut[ord(t)] = i
        return _chunked_lookup(lut, codes)
    get = vocab.token_to_idx.get
    return np.fromiter(map(get, tokens, [vocab.unk] * len(tokens)), np.int32, count=len(tokens))


def _prepared_text(name_or_path, mode, token, max_tokens, encoding, dropped=None, text=None):
    """Check the options, then read, strip Gutenberg boilerplate and preprocess (mode) a text.

    dropped: None, or a dict that receives, character -> count, what the preprocessing removed
    (letters: every character but A-Z, a-z and space; their runs become one space).
    text: the text itself (a str), instead of reading name_or_path (then only a label).
    """
    if mode not in PREPROCESS_MODES:
        raise ConfigError(f'unknown preprocess mode {mode!r}; choose one of {", ".join(PREPROCESS_MODES)}')
    if token not in TOKEN_KINDS:
        raise ConfigError(f'unknown token kind {token!r}; choose one of {", ".join(TOKEN_KINDS)}')
    checks.integer('max_tokens', max_tokens, optional=True)
    path = name_or_path if text is not None else resolve_corpus(name_or_path)
    text = strip_gutenberg(read_text(path, encoding) if text is None else text)
    if dropped is not None and mode == 'letters':
        _, _, chars, counts = _index_chars(text)
        dropped.update((c, int(n)) for c, n in zip(chars, counts)
                       if not (c == ' ' or ('a' <= c.lower() <= 'z' and c.isascii())))
    text = preprocess(text, mode)
    if not text or text.isspace():
        hint = '; for text without English letters use --preprocess raw' if mode == 'letters' else ''
        raise DataError(f'{path}: no tokens left after preprocess={mode!r}{hint}')
    return text


def load_corpus(name_or_path, *, preprocess='letters', token='char', max_tokens=None,
                encoding='utf-8', min_freq=0):
    """Read, strip Gutenberg boilerplate, preprocess and tokenize a text; build its Vocab.

    As in the book, the vocab is built on all tokens of the text (keeping those seen at least
    `min_freq` times; the rest become <unk>, index 0) and the corpus is then cut to its first
    `max_tokens`. Returns (corpus (N,) int32 NumPy array, Vocab).
    """
    corpus, vocab, _ = load_text(name_or_path, preprocess=preprocess, token=token, max_tokens=max_tokens,
                                 encoding=encoding, min_freq=min_freq)
    return corpus, vocab


def load_text(name_or_path, *, preprocess='letters', token='char', max_tokens=None, encoding='utf-8',
              min_freq=0, text=None):
    """load_corpus, and a TextSummary of what was used: (corpus, vocab, summary).

    text: the text itself, a str, instead of a file (name_or_path then only names it).
    """
    dropped, label = {}, (str(name_or_path) if text is not None else None)
    text = _prepared_text(name_or_path, preprocess, token, max_tokens, encoding, dropped, text)
    ids, keys, tokens, counts = _index_chars(text) if token == 'char' else _index_words(text)
    del text
    vocab = Vocab.from_counter(dict(zip(tokens, counts.tolist())), min_freq=min_freq)
    vocab.text_options = {'preprocess': preprocess, 'token': token, 'encoding': encoding}
    lut = np.zeros(int(keys[-1]) + 1, np.int32)  # first-pass id -> vocab index (<unk> when dropped)
    lut[keys] = vocab[tokens]
    summary = TextSummary(label or str(resolve_corpus(name_or_path)), len(ids),
                          min(len(ids), max_tokens or len(ids)), preprocess, sum(dropped.values()),
                          tuple(sorted(dropped.items(), key=lambda item: -item[1])[:5]))
    return _chunked_lookup(lut, ids[:max_tokens]), vocab, summary


class TextSummary(NamedTuple):
    """What a loaded text gave: its path, tokens in all and used (max_tokens), and what the
    preprocessing dropped: how many characters, and the most common ones with their counts."""
    path: str
    total_tokens: int
    used_tokens: int
    preprocess: str
    dropped: int
    most_dropped: tuple

    def line(self, token='char'):
        """One line for the user: 'path: N of M tokens; ... dropped K characters (most: ...)'."""
        used = (f'all {self.total_tokens:,}' if self.used_tokens == self.total_tokens
                else f'the first {self.used_tokens:,} of {self.total_tokens:,}')
        text = f'{self.path}: {used} {token} tokens'
        if self.dropped:
            common = ', '.join(f'{c!r} {n:,}' for c, n in self.most_dropped)
            text += (f'; --preprocess {self.preprocess} made spaces of {self.dropped:,} other characters '
                     f'(most often {common}) and lowercased the letters')
        return text


def text_options(vocab, preprocess=None, token=None, encoding=None):
    """(preprocess, token, encoding): those given, else the vocabulary's own (vocab.text_options),
    else the book's: letters, char, utf-8."""
    own = vocab.text_options or {}
    return (preprocess or own.get('preprocess', 'letters'), token or own.get('token', 'char'),
            encoding or own.get('encoding', 'utf-8'))


def split_corpus(corpus, val_fraction):
    """(train, val): val is the last round(N * val_fraction) tokens, a clean tail that shares no
    token position with train; val is None when val_fraction is 0."""
    checks.number('val_fraction', val_fraction, minimum=0, below=1)
    if val_fraction == 0:
        return corpus, None
    num_val = int(round(len(corpus) * val_fraction))
    if not 0 < num_val < len(corpus):
        raise DataError(f'a corpus of {len(corpus)} tokens is too short for val_fraction={val_fraction}; '
                        'use a longer text or a larger --val-fraction')
    return corpus[:-num_val], corpus[-num_val:]


def encode_corpus(name_or_path, vocab, *, preprocess=None, token=None, max_tokens=None, encoding=None):
    """A text as ids under an existing vocabulary (a trained model's), for evaluation.

    The text is read and preprocessed exactly as load_corpus does; preprocess, token and encoding
    default to how the vocabulary's own text was prepared (vocab.text_options; else letters, char,
    utf-8). Tokens the vocabulary lacks become <unk> (index 0). Returns (N,) int32, cut to max_tokens.
    """
    preprocess, token, encoding = text_options(vocab, preprocess, token, encoding)
    text = _prepared_text(name_or_path, preprocess, token, max_tokens, encoding)
    tokens = text if token == 'char' else tokenize(text, token)   # encode() vectorises a str
    return encode(tokens[:max_tokens] if max_tokens else tokens, vocab)
