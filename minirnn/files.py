"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.

Every file minirnn writes into a run directory (checkpoint, history, plot, vocab) goes through
`atomic_write`: the bytes go to a temporary file in the same directory, are flushed to disk,
and only then os.replace() puts them in place (atomic on POSIX and Windows).
"""
import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Context manager yielding a file object; on success the file replaces `path`.

    On any exception the temporary file is removed and `path` is left exactly as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)   # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def write_text_atomic(path, text):
    """Replace the text file at `path` with `text` (UTF-8), atomically."""
    with atomic_write(path, 'w') as f:
        f.write(text)
