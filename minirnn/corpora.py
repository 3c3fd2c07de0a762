"""The corpus registry (name -> URL + SHA-1), where corpora are found on disk, and their download.

A download streams into a temporary file beside its target and replaces it only once the
SHA-1 matches, so a failed, partial or foreign file never stays behind. urllib only; reading
and tokenizing the text is text.py's job.
"""
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .errors import ConfigError, DataError
from .files import atomic_write

# name -> where the book (or Project Gutenberg) serves it, and the SHA-1 of that exact file
CORPORA = {
    'timemachine': {
        'url': 'http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt',
        'sha1': '090b5e7e70c295757f55df93cb0a180b9691891a',
    },
    'war_of_the_worlds': {
        'url': 'https://www.gutenberg.org/cache/epub/36/pg36.txt',
        'sha1': '8b6ee0af8aabfbb39b62cd3cfe5ef19a69fbb6dd',
    },
    'sherlock_holmes': {
        'url': 'https://www.gutenberg.org/cache/epub/1661/pg1661.txt',
        'sha1': '2fb733904563d0fc30ea6cca8bfabb869ca0289e',
    },
}

_BLOCK = 1 << 20  # bytes per network read
_DOWNLOAD_TIMEOUT_S = 60


def default_data_dir():
    """The folder downloads land in: $MINIRNN_DOWNLOAD_DIR, else the checkout's data/, else ~/.cache/minirnn.

    data/ is used only when the package sits in a source checkout (an editable install),
    so a wheel installed into site-packages never writes beside itself.
    """
    env = os.environ.get('MINIRNN_DOWNLOAD_DIR')
    if env:
        return Path(env).expanduser()
    project = Path(__file__).resolve().parents[1]
    folder = project / 'data'
    if (project / 'pyproject.toml').is_file() and os.access(folder if folder.exists() else project, os.W_OK):
        return folder
    return Path(os.environ.get('XDG_CACHE_HOME') or '~/.cache').expanduser() / 'minirnn'


def resolve_corpus(name_or_path):
    """Path of a registered corpus name (found locally or downloaded), or the value itself as a path.

    A registered name is looked up as $MINIRNN_DATA_DIR/<name>.txt, then <data dir>/<name>.txt,
    then downloaded into the data dir. Any other value is a file path (write ./timemachine to
    read a local file that happens to share a registered name).
    """
    if isinstance(name_or_path, str) and name_or_path in CORPORA:
        name = name_or_path
        for folder in (os.environ.get('MINIRNN_DATA_DIR'), default_data_dir()):
            if folder and (Path(folder) / f'{name}.txt').is_file():
                return Path(folder) / f'{name}.txt'
        return download(name)
    return Path(name_or_path).expanduser()


def _sha1_of(path):
    sha1 = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_BLOCK), b''):
            sha1.update(block)
    return sha1.hexdigest()


def fingerprint(name_or_path):
    """{'size': bytes, 'sha1': hex}: what says a text file is the one a run trained on, wherever
    it has moved since (a resumed run may name its new path)."""
    path = resolve_corpus(name_or_path)
    return {'size': path.stat().st_size, 'sha1': _sha1_of(path)}


def download(name, data_dir=None, url=None):
    """Fetch registered corpus `name` into `data_dir` (default: default_data_dir()), verified by SHA-1.

    The URL is `url`, else $MINIRNN_MIRROR/<name>.txt, else the registry's. Bytes stream into a
    temporary file beside the target and replace it only when the checksum matches, so a failed,
    partial or wrong download never leaves a file behind. Returns the Path of <name>.txt.
    """
    if name not in CORPORA:
        raise ConfigError(f'unknown corpus {name!r}; registered corpora: {", ".join(CORPORA)}')
    expected = CORPORA[name]['sha1']
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    dest = folder / f'{name}.txt'
    if url is None:
        mirror = os.environ.get('MINIRNN_MIRROR')
        url = f'{mirror.rstrip("/")}/{name}.txt' if mirror else CORPORA[name]['url']
    if dest.is_file() and _sha1_of(dest) == expected:
        return dest
    by_hand = (f'download it by hand and save it as {dest}, or put {name}.txt in a folder named by '
               f'MINIRNN_DATA_DIR, or set MINIRNN_MIRROR to a server that serves {name}.txt')
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise DataError(f'cannot write into {folder} ({exc.strerror}); '
                        'set MINIRNN_DOWNLOAD_DIR to a writable folder') from None
    print(f'minirnn: downloading {name} from {url}', file=sys.stderr)
    try:
        # atomic_write keeps the bytes only if the block ends without an exception, so a short
        # or wrong download raises below and leaves nothing behind
        with atomic_write(dest) as out:
            sha1, size = hashlib.sha1(), 0
            request = urllib.request.Request(url, headers={'User-Agent': 'minirnn'})
            with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                announced = response.headers.get('Content-Length')
                for block in iter(lambda: response.read(_BLOCK), b''):
                    sha1.update(block)
                    out.write(block)
                    size += len(block)
            # http.client returns a short body silently when the server hangs up early
            if announced is not None and announced.isdigit() and size != int(announced):
                raise DataError(f'could not download {name!r} from {url}: the connection closed after '
                                f'{size} of {announced} bytes; try again, or {by_hand}')
            if sha1.hexdigest() != expected:
                raise DataError(f'{url} served {size} bytes with SHA-1 {sha1.hexdigest()}, but {name!r} '
                                f'has SHA-1 {expected}; nothing was saved. The server may hold another '
                                f'edition; {by_hand}')
    except urllib.error.HTTPError as exc:
        raise DataError(f'could not download {name!r} from {url}: HTTP {exc.code} {exc.reason}; {by_hand}') from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, 'reason', None) or exc
        raise DataError(f'could not download {name!r} from {url}: {reason}; {by_hand}') from None
    return dest
