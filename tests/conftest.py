"""Shared fixtures: `xp` runs a numeric test on NumPy, on the CuPy stand-in (tests/standin) and on
real CuPy (skipped cleanly without a GPU); `standin` installs the stand-in as `cupy` for one test;
`data_dir` finds the books and `books` points MINIRNN_DATA_DIR at them; `small` is a small, fast
run on the real book and `saved_params` reads a run's parameters back; `ctrl_c_after` presses
Ctrl-C in the middle of a training run."""
import functools
import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from minirnn.backend import gpu_available

REPO = Path(__file__).resolve().parents[1]
STANDIN = Path(__file__).resolve().parent / 'standin'


def pytest_configure(config):
    config.addinivalue_line('markers', 'standin: runs on the CuPy stand-in (tests/standin), no GPU needed')


def _is_cupy(name):
    return name == 'cupy' or name.startswith('cupy.')


@functools.lru_cache(maxsize=None)
def _standin_modules():
    """The stand-in's modules ({'cupy': ..., 'cupy._core': ..., ...}), imported once under the name
    cupy, leaving sys.path and sys.modules (a real CuPy there included) as they were."""
    saved = {name: m for name, m in sys.modules.items() if _is_cupy(name)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(STANDIN))
    try:
        importlib.invalidate_caches()
        module = importlib.import_module('cupy')
        loaded = {name: m for name, m in sys.modules.items() if _is_cupy(name)}
    finally:
        sys.path.remove(str(STANDIN))
        for name in [name for name in sys.modules if _is_cupy(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert getattr(module, 'STANDIN', False), f'{module.__file__} is not the stand-in'
    return loaded


@pytest.fixture
def standin(monkeypatch):
    """The CuPy stand-in installed as `cupy` for this test (sys.modules restored afterwards), its
    counters zeroed: minirnn's device='gpu' runs on it. Returns the module; its counters are
    `standin.standin_counters` and `standin.standin_counting()`."""
    for name, module in _standin_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    module = sys.modules['cupy']
    module.standin_counters.reset()
    return module


def real_cupy():
    """Real CuPy with a CUDA device, or None. Never the stand-in: not while a test has it
    installed, nor when PYTHONPATH puts tests/standin first (its module says STANDIN)."""
    if getattr(sys.modules.get('cupy'), 'STANDIN', False) or not gpu_available():
        return None
    import cupy
    return None if getattr(cupy, 'STANDIN', False) else cupy


@pytest.fixture(params=['numpy', pytest.param('standin', marks=pytest.mark.standin),
                        pytest.param('cupy', marks=pytest.mark.gpu)])
def xp(request):
    """The array module under test: NumPy, the CuPy stand-in, or real CuPy (skipped without a GPU)."""
    if request.param == 'numpy':
        return np
    if request.param == 'standin':
        return request.getfixturevalue('standin')
    cupy = real_cupy()
    if cupy is None:
        pytest.skip('needs CuPy and a CUDA device')
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


@pytest.fixture
def books(data_dir, monkeypatch):
    """MINIRNN_DATA_DIR set to the books' folder, so registered corpora load offline."""
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    return data_dir


@pytest.fixture
def small(books):
    """TrainConfig fields of a small, fast run on the real book: 3,000 characters, H=32, 2 epochs."""
    return dict(data='timemachine', max_tokens=3000, batch_size=8, num_steps=10, num_hiddens=32,
                lr=1.0, clip=1.0, num_epochs=2, prefixes=(), sigma=0.1)


@pytest.fixture
def saved_params():
    """saved_params(out): the parameters in the run directory out's model.npz, name -> array."""
    from minirnn.run import checkpoint

    def read(out):
        return {k: v.copy() for k, v in checkpoint.load(Path(out) / 'model.npz').model.params.items()}
    return read


class InterruptAfter:
    """Stands in for run.feedback.Interrupt: 'presses Ctrl-C' once `batches` batches have run."""
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
    from minirnn.run import trainer
    real = trainer.Interrupt

    def install(batches):
        monkeypatch.setattr(trainer, 'Interrupt', real if batches is None else lambda: InterruptAfter(batches))
    return install
