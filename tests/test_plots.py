"""plot_history: a real PNG from history rows, with or without validation, replaced atomically."""
import os

import pytest

from minirnn import plots
from minirnn.errors import ConfigError

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def rows(val=True):
    ppl = [27.0, 12.0, 6.5, 3.2, 1.9]
    return [{'epoch': i + 1, 'train_ppl': p, 'val_ppl': p * 1.1 if val else None, 'tokens_per_s': 1e5}
            for i, p in enumerate(ppl)]


def is_png(path):
    data = path.read_bytes()
    return data.startswith(PNG_SIGNATURE) and len(data) > 1000


@pytest.mark.parametrize('history', [rows(), rows(val=False),
                                     [{'epoch': 1, 'train_ppl': 5.0}],
                                     [{'epoch': 1, 'train_ppl': 3.0, 'val_ppl': 3.5},
                                      {'epoch': 2, 'train_ppl': 2.5, 'val_ppl': float('inf')}]],
                         ids=['with-val', 'without-val', 'one-epoch-no-val-key', 'inf-val'])
def test_a_png_is_written(tmp_path, history):
    path = tmp_path / 'perplexity.png'
    plots.plot_history(history, path, title='timemachine')
    assert is_png(path)
    assert os.listdir(tmp_path) == ['perplexity.png']


def test_log_scale_only_when_values_span_more_than_tenfold(tmp_path, monkeypatch):
    scales = []
    from matplotlib.axes import Axes
    original = Axes.set_yscale
    monkeypatch.setattr(Axes, 'set_yscale', lambda self, s, **kw: (scales.append(s), original(self, s, **kw)))
    plots.plot_history(rows(), tmp_path / 'wide.png')              # 27 .. 1.9
    plots.plot_history([{'epoch': 1, 'train_ppl': 5.0, 'val_ppl': 4.0},
                        {'epoch': 2, 'train_ppl': 3.0, 'val_ppl': 2.0}], tmp_path / 'narrow.png')
    assert scales == ['log']


def test_an_existing_file_is_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / 'perplexity.png'
    path.write_bytes(b'old plot')
    plots.plot_history(rows(), path)
    assert is_png(path) and os.listdir(tmp_path) == ['perplexity.png']

    # a failure while rendering leaves the previous figure as it was and no temp file
    before = path.read_bytes()
    from matplotlib.figure import Figure

    def broken_savefig(self, f, **kwargs):
        f.write(PNG_SIGNATURE)
        raise RuntimeError('renderer failed')
    monkeypatch.setattr(Figure, 'savefig', broken_savefig)
    with pytest.raises(RuntimeError):
        plots.plot_history(rows(val=False), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['perplexity.png']


def test_a_history_without_values_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match='no perplexity'):
        plots.plot_history([{'epoch': 1, 'train_ppl': None}], tmp_path / 'p.png')
    assert not os.listdir(tmp_path)
