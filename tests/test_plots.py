"""plot_history, plot_bptt, plot_probe: real PNGs from history rows and probes, replaced atomically;
values readable off every log axis; the epoch best.npz holds marked on the perplexity curves."""
import math
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


# --- what a reader can read off the figures ---------------------------------------------------------

@pytest.fixture
def saved_figures(monkeypatch):
    """The Figures the plot functions save, captured at savefig (the PNG is still written)."""
    from matplotlib.figure import Figure
    figures, original = [], Figure.savefig

    def capture(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(Figure, 'savefig', capture)
    return figures


def labelled_ticks(axis):
    """{value: label} of the ticks in the axis's view that carry a label, major and minor."""
    lo, hi = sorted(axis.get_view_interval())
    shown = {}
    for locs, formatter in ((axis.get_majorticklocs(), axis.get_major_formatter()),
                            (axis.get_minorticklocs(), axis.get_minor_formatter())):
        labels = formatter.format_ticks(list(locs))
        shown.update({v: label for v, label in zip(locs, labels) if label and lo <= v <= hi})
    return shown


def assert_readable(fig):
    """Every log axis carries at least three labels, and each label is its tick's value."""
    log_axes = [ax.yaxis for ax in fig.axes if ax.get_yscale() == 'log']
    assert log_axes
    for axis in log_axes:
        ticks = labelled_ticks(axis)
        assert len(ticks) >= 3, (axis.axes.get_title(), axis.get_view_interval(), ticks)
        for value, label in ticks.items():
            assert math.isclose(float(label), value, rel_tol=1e-3), (label, value)


def bptt_rows(num_epochs=8):
    """History rows whose instrumentation spans less than a decade or two, as a short run's does."""
    return [{'epoch': e, 'train_ppl': 20 / e,
             'grad_norms': {'W_xh': 0.02 * (1 + e / 10), 'W_hh': 0.05 * (1 + e / 8), 'b_h': 0.3 + 0.03 * e},
             'grad_decay': [0.3 + 0.02 * e],
             'spectra': {'W_hh': {'spectral_radius': 0.9 + 0.02 * e, 'max_singular_value': 1.3 + 0.03 * e}},
             'grad_norm_by_step': [[0.01 * 0.8 ** t + 0.001 for t in range(35)]]}
            for e in range(1, num_epochs + 1)]


def probe_result(scale=1.0):
    distance = list(range(35))
    return {'cell': 'rnn', 'num_hiddens': 8, 'num_layers': 1,
            'layers': [{'layer': 0, 'distance': distance,
                        'grad_norm_last': [scale * 0.5 * 0.9 ** d for d in distance],
                        'grad_norm_full': [scale * (0.2 + 0.01 * d) for d in distance],
                        'jacobian_gain': [0.97 ** d for d in distance]}]}


def test_values_can_be_read_off_every_log_axis_of_bptt_png(tmp_path, saved_figures):
    """bptt.png's log axes showed one tick each (a power of ten): no value could be read."""
    assert plots.plot_bptt(bptt_rows(), tmp_path / 'bptt.png')
    assert is_png(tmp_path / 'bptt.png') and len(saved_figures) == 1
    assert_readable(saved_figures[0])
    assert_readable(plots.bptt_figure(bptt_rows(2)))
    assert plots.bptt_figure([{'epoch': 1, 'train_ppl': 3.0}]) is None


def test_values_can_be_read_off_every_log_axis_of_the_probe_plot(tmp_path, saved_figures):
    plots.plot_probe([probe_result(), probe_result(3.0)], tmp_path / 'probe.png', ['a', 'b'])
    assert is_png(tmp_path / 'probe.png')
    assert_readable(saved_figures[0])


@pytest.mark.parametrize('lo, hi', [(0.92, 1.6), (0.32, 0.5), (0.15, 0.9), (0.02, 0.6), (3e-3, 0.5),
                                    (1e-30, 1.0)])
def test_a_log_axis_of_any_span_gets_readable_labels(lo, hi):
    fig = plots._figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [lo, hi])
    ax.set_yscale('log')
    plots.readable_log_axis(ax.yaxis)
    ticks = labelled_ticks(ax.yaxis)
    assert len(ticks) >= 3 and all(math.isclose(float(t), v, rel_tol=1e-3) for v, t in ticks.items())
    assert len(ticks) <= 12                                  # and not crowded


def test_perplexity_png_marks_the_epoch_best_npz_holds(tmp_path, saved_figures):
    history = [{'epoch': e, 'train_ppl': t, 'val_ppl': v, 'best': b} for e, t, v, b in (
        (1, 20.0, 21.0, True), (2, 9.0, 10.0, True), (3, 6.0, 7.5, True), (4, 4.0, 7.9, False),
        (5, 3.0, 7.4, True), (6, 2.0, 8.5, False))]
    plots.plot_history(history, tmp_path / 'perplexity.png')
    assert is_png(tmp_path / 'perplexity.png')
    (ax,) = saved_figures[0].axes
    marked = [line for line in ax.get_lines() if line.get_label().startswith('best.npz')]
    assert len(marked) == 1
    assert list(marked[0].get_xdata()) == [5] and list(marked[0].get_ydata()) == [7.4]
    assert marked[0].get_label() == 'best.npz: epoch 5, 7.40'
    assert 'best.npz: epoch 5, 7.40' in [t.get_text() for t in ax.get_legend().get_texts()]
    assert plots.best_row(history)['epoch'] == 5


@pytest.mark.parametrize('history', [rows(val=False), rows()], ids=['no-validation', 'no-best-flags'])
def test_without_a_best_epoch_nothing_is_marked(history):
    (ax,) = plots.history_figure(history).axes
    assert not [line for line in ax.get_lines() if line.get_label().startswith('best.npz')]
