"""Shared fixtures: `xp` runs a numeric test on NumPy and again on CuPy (skipped cleanly without a
GPU); `data_dir` finds the books; `ctrl_c_after` presses Ctrl-C in the middle of a training run."""
import os
from pathlib import Path

import numpy as np
import pytest

from minirnn.backend import gpu_available

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=['numpy', pytest.param('cupy', marks=pytest.mark.gpu)])
def xp(request):
    if request.param == 'numpy':
        return np
    if not gpu_available():
        pytest.skip('needs CuPy and a CUDA device')
    import cupy
    return cupy


BOOKS = ('timemachine.txt', 'war_of_the_worlds.txt', 'sherlock_holmes.txt')


@pytest.fixture(scope="session")
def data_dir():
    """The folder with the three registered books: $MINIRNN_DATA_DIR, else the checkout's data/
    (after `python cli.py download NAME`), else ../shared/data beside the checkout."""
    candidates = [Path(os.environ['MINIRNN_DATA_DIR'])] if os.environ.get('MINIRNN_DATA_DIR') else []
    candidates += [REPO / 'data', REPO.parent / 'shared' / 'data']
    for path in candidates:
        if all((path / book).is_file() for book in BOOKS):
            return path
    pytest.skip(f'the books ({", ".join(BOOKS)}) were not found in {", ".join(map(str, candidates))}; '
                'set MINIRNN_DATA_DIR or run `python cli.py download NAME` for each')


class InterruptAfter:
    """Stands in for train.Interrupt: 'presses Ctrl-C' once `batches` batches have run."""
    def __init__(self, batches):
        self.left = batches

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def requested(self):
        self.left -= 1
        return self.left < 0


@pytest.fixture
def ctrl_c_after(monkeypatch):
    """ctrl_c_after(n): the next training run is interrupted after n batches, as by Ctrl-C;
    ctrl_c_after(None) gives the real Ctrl-C handling back."""
    from minirnn import train
    real = train.Interrupt

    def install(batches):
        monkeypatch.setattr(train, 'Interrupt', real if batches is None else lambda: InterruptAfter(batches))
    return install
