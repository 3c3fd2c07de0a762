"""text.py's preparation of a text, in chunks, for files larger than memory.

tokenise() gives the tokens text.load_text would (the same boilerplate stripped, the same
preprocessing, the same tokens), with memory bounded by a chunk of the file and its longest
line, whatever the file's size. It makes two passes over the file:

    pass 1   decode it chunk by chunk and find Project Gutenberg's marker lines; where the books'
             bodies lie follows from their offsets, by text.strip_gutenberg's rules (bodies)
    pass 2   decode it again; keep each body, stripped as text._book_body strips it
             (BodyStripper), the bodies joined by a blank line; preprocess (LettersStream); give
             each token an id in order of first appearance and append the ids to a file
             (CharIds, WordIds)

Offsets count the characters of the text as text.read_text returns it (BOM dropped, newlines
'\\n'). Turning first-appearance ids into a vocabulary's, and keeping the result, is
tokencache.py's job.
"""
import bisect
import codecs
import collections
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import text as _text
from .errors import DataError

CHUNK_BYTES = 1 << 20        # bytes decoded at a time: small enough for the temporaries to stay in cache
UNICODE_SIZE = 0x110000      # code points


# ---------------------------------------------------------------- decoding

def decoded_chunks(path, encoding='utf-8', chunk_bytes=CHUNK_BYTES, on_bytes=None):
    """The file's text as text.read_text reads it, in pieces that end at a line end (but the last).

    Checked as read_text checks a whole file (a missing file, a directory, an empty or binary
    file, bytes invalid in `encoding`, with their offset in the file). on_bytes(n) is called
    with the number of bytes of each chunk read (a progress bar).
    """
    path = Path(path)
    codec = _text._codec(encoding)
    _text.check_text_file(path)
    nul_matters = not codec.startswith(('utf-16', 'utf-32'))   # NUL bytes are normal only in those
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, carry, held_cr, first, at_start = 0, '', '', True, True
    with open(path, 'rb') as f:
        while True:
            data = f.read(chunk_bytes)
            final = not data
            if first and final:
                raise DataError(f'{path} is empty; pass a file that holds some text')
            nul = data.find(b'\x00') if nul_matters else -1
            if nul >= 0:
                raise DataError(f'{path} looks like a binary file (NUL byte at offset {offset + nul}); pass a '
                                'plain-text file (for UTF-16 text, pass --encoding utf-16)')
            piece = _decode(decoder, data, final, offset, path, encoding)
            offset += len(data)
            if at_start and piece:         # the first character decoded may be a BOM
                piece, at_start = piece[piece.startswith('\ufeff'):], False
            first = False
            # newlines as read_text makes them: a '\r' at the end may be half of a '\r\n'
            piece, held_cr = held_cr + piece, ''
            if not final and piece.endswith('\r'):
                piece, held_cr = piece[:-1], '\r'
            if '\r' in piece:
                piece = piece.replace('\r\n', '\n').replace('\r', '\n')
            piece = carry + piece
            cut = len(piece) if final else piece.rfind('\n') + 1
            if cut:
                yield piece[:cut]
            carry = piece[cut:]
            if on_bytes is not None and data:
                on_bytes(len(data))
            if final:
                return


def _decode(decoder, data, final, offset, path, encoding):
    """decoder.decode(data, final), with read_text's message for bytes invalid in `encoding`."""
    buffered = len(decoder.getstate()[0])       # bytes of a character the previous chunk cut
    try:
        return decoder.decode(data, final)
    except UnicodeDecodeError as exc:
        at = offset - buffered + exc.start
        raise DataError(f'{path}: byte 0x{exc.object[exc.start]:02x} at offset {at} is not valid '
                        f'{encoding}; {_text._encoding_hint(bytes(exc.object), encoding)}') from None


# ---------------------------------------------------------------- pass 1: where the bodies are

def markers(pieces):
    """Every match of Project Gutenberg's START and END patterns at a line start, in the pieces
    of decoded_chunks (whose pieces start at line starts, and neither pattern spans a line).
    Returns (starts, ends, length): sorted (start, end) offsets of each, and the text's length."""
    starts, ends, offset = [], [], 0
    for piece in pieces:
        for pattern, found in ((_text._GUTENBERG_START, starts), (_text._GUTENBERG_END, ends)):
            for match in pattern.finditer(piece):
                if match.start() == 0 or piece[match.start() - 1] == '\n':
                    found.append((offset + match.start(), offset + match.end()))
        offset += len(piece)
    return starts, ends, offset


def _first(matches, position):
    """The first of the sorted (start, end) matches that starts at or after `position`, or None."""
    i = bisect.bisect_left(matches, (position, -1))
    return matches[i] if i < len(matches) else None


def bodies(starts, ends, length):
    """text.strip_gutenberg's loop on the markers' offsets: the (begin, end) of each body before
    text._book_body strips it, or None when the text has no marker (it is kept as it is)."""
    found, position = [], 0
    while True:
        start = _first(starts, position)
        if start is None and found:                # no further book after the last END
            break
        begin = start[1] if start else position
        end = _first(ends, begin)
        if start is None and end is None:
            return None
        found.append((begin, end[0] if end else length))
        if end is None:
            break
        position = end[1]
    return found


# ---------------------------------------------------------------- pass 2: the stripped text

class BodyStripper:
    """One book's body, fed in pieces, stripped as text._book_body strips it whole: without the
    whitespace around it, and without a last line that starts 'End of the Project Gutenberg'.

    It holds back only what the end might still remove: from the last non-space character
    before the line holding the latest text (the whitespace before that line, the line itself
    and what follows it)."""

    def __init__(self):
        self.started, self.pending = False, ''

    def feed(self, piece):
        """The part of the body that is settled now (a str, maybe empty)."""
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return ''
            self.started = True
        text = self.pending + piece
        last = len(text)                       # text[:last] ends at the last non-space character
        while last and text[last - 1].isspace():
            last -= 1
        cut = text.rfind('\n', 0, last) + 1    # that character's line starts here ...
        while cut and text[cut - 1].isspace():  # ... and what comes before it ends here
            cut -= 1
        self.pending = text[cut:]
        return text[:cut]

    def end(self):
        """What is left of the body once it has all been fed."""
        body = self.pending.rstrip()
        last = body.rfind('\n') + 1
        if _text._GUTENBERG_LAST_LINE.match(body, last):
            body = body[:last].rstrip()
        self.pending = ''
        return body


def stripped(pieces, plan):
    """The pieces of the text as text.strip_gutenberg leaves it: all of it when plan is None,
    else each body (begin, end) of plan stripped, the bodies joined by '\\n\\n'."""
    if plan is None:
        yield from pieces
        return
    offset, i, body = 0, 0, None
    for piece in pieces:
        high = offset + len(piece)
        while i < len(plan) and plan[i][0] < high:
            begin, end = plan[i]
            if body is None:
                body = BodyStripper()
                if i:
                    yield '\n\n'
            yield body.feed(piece[max(begin, offset) - offset:min(end, high) - offset])
            if end > high:                     # the body goes on in the next piece
                break
            yield body.end()
            body, i = None, i + 1
        offset = high
    for i in range(i, len(plan)):              # bodies that end with the text (and empty ones there)
        if body is None:
            body = BodyStripper()
            if i:
                yield '\n\n'
        yield body.end()
        body = None


class LettersStream:
    """text._letters (the book's re.sub('[^A-Za-z]+', ' ', text).lower()) over pieces: a run of
    non-letters that spans pieces still becomes one space."""

    def __init__(self):
        self.after_letter = True        # the text's first character is kept, as _letters keeps it

    def __call__(self, piece):
        if not piece:
            return piece
        b = np.frombuffer(piece.encode('utf-8', 'surrogatepass'), np.uint8)
        lower = b | np.uint8(0x20)
        is_letter = (lower >= ord('a')) & (lower <= ord('z'))
        keep = is_letter.copy()
        keep[0] |= self.after_letter
        keep[1:] |= is_letter[:-1]
        self.after_letter = bool(is_letter[-1])
        lower[~is_letter] = ord(' ')
        return lower[keep].tobytes().decode('ascii')


# ---------------------------------------------------------------- tokens -> first-appearance ids

class CharIds:
    """Characters -> ids in order of first appearance, appended to a binary file as uint16."""
    dtype = np.uint16

    def __init__(self, out):
        self.out, self.count = out, 0
        self.lut = np.full(UNICODE_SIZE, -1, np.int32)         # code point -> id
        self.codes, self.counts = [], np.zeros(UNICODE_SIZE, np.int64)

    def __call__(self, piece):
        if not piece:
            return
        codes = _text._codepoints(piece)
        counts = np.bincount(codes)
        present = np.flatnonzero(counts)
        new = present[self.lut[present] < 0]
        if len(self.codes) + len(new) > np.iinfo(self.dtype).max + 1:
            raise DataError(f'the text holds more than {np.iinfo(self.dtype).max + 1:,} distinct characters; '
                            'train on its words (--token word)')
        self.lut[new] = np.arange(len(self.codes), len(self.codes) + len(new))
        self.codes += new.tolist()
        self.counts[:len(counts)] += counts
        self.out.write(memoryview(self.lut[codes].astype(self.dtype)))
        self.count += len(codes)

    def finish(self):
        """(tokens, counts), index = id."""
        return [chr(c) for c in self.codes], self.counts[self.codes]


class WordIds:
    """Whitespace-separated words -> ids in order of first appearance, appended as uint32; a
    word cut between pieces is carried to the next one."""
    dtype = np.uint32

    def __init__(self, out):
        self.out, self.count, self.carry = out, 0, ''
        self.index = collections.defaultdict()
        self.index.default_factory = self.index.__len__      # an unseen word gets the next id
        self.counts = np.zeros(0, np.int64)

    def __call__(self, piece, final=False):
        text = self.carry + piece
        cut = len(text)
        while not final and cut and not text[cut - 1].isspace():
            cut -= 1
        self.carry = text[cut:]
        words = text[:cut].split()
        ids = np.fromiter(map(self.index.__getitem__, words), self.dtype, count=len(words))
        counts = np.bincount(ids, minlength=len(self.index))
        counts[:len(self.counts)] += self.counts
        self.counts = counts
        self.out.write(memoryview(ids))
        self.count += len(ids)

    def finish(self):
        self('', final=True)
        return list(self.index), self.counts


# ---------------------------------------------------------------- both passes

class Tokenised(NamedTuple):
    """What tokenise() wrote: `count` ids of dtype `dtype`, id i being tokens[i], seen counts[i]
    times; dropped: character -> count of what --preprocess letters made spaces of."""
    tokens: list
    counts: np.ndarray
    count: int
    dtype: type
    dropped: dict


def tokenise(path, out, *, preprocess='letters', token='char', encoding='utf-8', on_bytes=None,
             chunk_bytes=CHUNK_BYTES):
    """Both passes over a text file: its tokens' first-appearance ids appended to the open binary
    file `out`. The options are text.load_text's; DataError as it raises them (and for a text
    that preprocessing leaves empty). on_bytes(n): progress, 2 x the file's size in all.
    Returns a Tokenised."""
    plan = bodies(*markers(decoded_chunks(path, encoding, chunk_bytes, on_bytes)))
    letters = LettersStream() if preprocess == 'letters' else None
    ids = CharIds(out) if token == 'char' else WordIds(out)
    seen = np.zeros(UNICODE_SIZE, np.int64) if letters else None    # what letters will drop
    content = False
    for piece in stripped(decoded_chunks(path, encoding, chunk_bytes, on_bytes), plan):
        if seen is not None and piece:
            counts = np.bincount(_text._codepoints(piece))
            seen[:len(counts)] += counts
            piece = letters(piece)
        content = content or (bool(piece) and not piece.isspace())
        ids(piece)
    tokens, counts = ids.finish()
    if not content:
        hint = '; for text without English letters use --preprocess raw' if letters else ''
        raise DataError(f'{path}: no tokens left after preprocess={preprocess!r}{hint}')
    dropped = {} if seen is None else {
        chr(c): int(seen[c]) for c in np.flatnonzero(seen)
        if not (chr(c) == ' ' or ('a' <= chr(c).lower() <= 'z' and chr(c).isascii()))}
    return Tokenised(tokens, counts, ids.count, ids.dtype, dropped)
