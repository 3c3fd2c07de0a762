"""docs/chapter.ipynb, the chapter with minirnn's Python API, runs from top to bottom: every cell
executes (in a fresh kernel, on a copy) and none raises."""
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
nbformat = pytest.importorskip('nbformat', reason="the notebook runner is a test extra: pip install -e '.[test]'")
nbclient = pytest.importorskip('nbclient')


def test_the_chapter_notebook_runs_every_cell(tmp_path, books):
    notebook = tmp_path / 'chapter.ipynb'
    shutil.copy(REPO / 'docs' / 'chapter.ipynb', notebook)
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',
                                     resources={'metadata': {'path': str(tmp_path)}})
    client.execute()                      # raises CellExecutionError naming the failing cell
    outputs = [o for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == 'error']
    assert sum('image/png' in o.get('data', {}) for o in outputs) >= 2      # the live plot and the probe
    assert any('perplexity' in o.get('text', '') for o in outputs)
