"""Shared fixtures: `xp` runs a numeric test on NumPy and again on CuPy (skipped cleanly without a GPU)."""
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


@pytest.fixture(scope="session")
def data_dir():
    """The folder with the shared book texts (MINIRNN_DATA_DIR, else ../shared/data)."""
    path = Path(os.environ.get('MINIRNN_DATA_DIR', REPO.parent / 'shared' / 'data'))
    if not (path / 'timemachine.txt').is_file():
        pytest.skip(f'book texts not found in {path}; set MINIRNN_DATA_DIR')
    return path
