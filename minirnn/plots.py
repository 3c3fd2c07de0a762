"""Figures, each written as a PNG: perplexity per epoch (plot_history), the BPTT instrumentation
of training (plot_bptt), gradient flow through time from probes (plot_probe) and the gradient
check's error against its step (plot_step_sweep). The first three build their Figure in
history_figure, bptt_figure and probe_figure, which return it for a caller (or a test) to look at.

It draws on a bare matplotlib Figure with the Agg canvas (no pyplot, no global backend), so it
runs headless and inside tests, and imports matplotlib only when called so `import minirnn`
stays fast. Reading history.jsonl and deciding when to plot are the trainer's job.
"""
import math

from .errors import ConfigError
from .files import atomic_write


def plot_history(rows, path, title=None):
    """Plot train (and validation, where present) perplexity against epoch into a PNG at `path`
    (history_figure), replaced atomically."""
    _save(history_figure(rows, title), path, dpi=100)


def history_figure(rows, title=None):
    """The perplexity curves: train (and validation, where present) perplexity against epoch.

    Args: rows, dicts with 'epoch', 'train_ppl' and optionally 'val_ppl' (None or missing when
    not validated; non-finite values are left out) and 'best' (the epoch best.npz holds: the
    last row with best true is marked and labelled on the validation curve); title, an
    optional figure title. The y axis is logarithmic when the values span over 10x.
    Returns: the matplotlib Figure (Agg canvas).
    """
    from matplotlib.ticker import MaxNLocator

    curves = {label: _points(rows, key)
              for label, key in (('train', 'train_ppl'), ('validation', 'val_ppl'))}
    values = [v for _, ys in curves.values() for v in ys]
    if not values:
        raise ConfigError('no perplexity values to plot: the history has no finite train_ppl or val_ppl')

    fig = _figure(figsize=(6, 4), layout='constrained')
    ax = fig.add_subplot()
    for label, (epochs, ys) in curves.items():
        if ys:
            # markers, so a history of one epoch still shows a point
            ax.plot(epochs, ys, marker='o', markersize=3, label=label)
    best = best_row(rows)
    if best is not None:
        # a ring around the validation point whose weights best.npz holds (eval, generate read it)
        ax.plot([best['epoch']], [best['val_ppl']], linestyle='none', marker='o', markersize=11,
                markerfacecolor='none', markeredgecolor='black', markeredgewidth=1.2, zorder=3,
                label=f'best.npz: epoch {best["epoch"]}, {best["val_ppl"]:.2f}')
    # perplexity often falls from ~V to ~1 in a few epochs; linear axes flatten the tail
    if max(values) > 10 * min(values):
        ax.set_yscale('log')
        readable_log_axis(ax.yaxis)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
    ax.set_xlabel('epoch')
    ax.set_ylabel('perplexity')
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def best_row(rows):
    """The history row best.npz holds: the last one with best true (a finite val_ppl), or None."""
    best = [r for r in rows if r.get('best') and _positive(r.get('val_ppl'))]
    return best[-1] if best else None


def readable_log_axis(axis):
    """Tick labels a reader can read values off, on a log axis (a matplotlib XAxis or YAxis).

    matplotlib labels only the powers of ten, and an axis spanning under three decades holds
    two of them or fewer. So, by the span of the axis's view: under 0.6 decades (all but
    linear), evenly spaced round values, each labelled (0.92-1.6: 1, 1.1, ..., 1.6); under one
    decade, the powers of ten and every minor tick 2..9 between them; under two, the minor
    ticks 2, 3 and 5 (0.02, 0.03, 0.05, 0.1, 0.2, ...); under three, 2 and 5; wider, the
    powers of ten alone.
    Labels are plain numbers ('0.02', '3', '2e-05'), which also spares the mathtext layout of
    matplotlib's 10^k labels, most of the drawing time of these figures. Call it once the
    axis's artists are drawn, so its limits are final.
    """
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullLocator

    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 else math.inf
    axis.set_major_formatter(FuncFormatter(lambda y, _: f'{y:.6g}' if y > 0 else ''))
    if decades < 0.6:
        # steps that divide 1, so a power of ten in view is one of the ticks
        ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        axis.set_major_locator(FixedLocator([t for t in ticks if t > 0]))
        axis.set_minor_locator(NullLocator())
        return
    shown = range(2, 10) if decades < 1 else (2, 3, 5) if decades < 2 else (2, 5) if decades < 3 else ()
    axis.set_major_locator(LogLocator(base=10))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10)))
    axis.set_minor_formatter(FuncFormatter(lambda y, _: f'{y:.6g}' if _mantissa(y) in shown else ''))
    axis.set_tick_params(which='minor', labelsize='small')


def _mantissa(y):
    """m of y = m * 10^k as the nearest whole number when it is one (2 for 0.02), else None."""
    if not y > 0:
        return None
    m = y / 10 ** math.floor(math.log10(y))
    return round(m) if math.isclose(m, round(m), rel_tol=1e-6) else None


def _figure(**kwargs):
    """A bare Figure on the Agg canvas: no pyplot, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi):
    """fig as a PNG at path, replaced atomically (a failure leaves the old file as it was)."""
    with atomic_write(path) as f:
        fig.savefig(f, format='png', dpi=dpi)


def _positive(v):
    return v is not None and math.isfinite(v) and v > 0


def _points(rows, key):
    """(epochs, values) of the rows whose `key` holds a finite positive number."""
    points = [(row['epoch'], row[key]) for row in rows if _positive(row.get(key))]
    return [e for e, _ in points], [v for _, v in points]


def plot_probe(results, path, labels=None):
    """The probe figure (probe_figure) as a PNG at `path`, replaced atomically."""
    _save(probe_figure(results, labels), path, dpi=100)


def probe_figure(results, labels=None):
    """Gradient flow through time: per-step norms against the distance to the end of the batch.

    Three log-scale panels: ||dl_T/dH_t|| (the last step's loss), ||dL/dH_t|| (the whole loss)
    and the Jacobian product's gain, each against T - t. One colour per result (a checkpoint,
    an epoch), one line style per layer.

    Args: results, dicts from probe.probe; labels, one legend entry per result (default: the
    cell and hidden size). Returns: the matplotlib Figure (Agg canvas).
    """
    labels = labels or [f'{r["cell"]} H={r["num_hiddens"]}' for r in results]
    panels = (('grad_norm_last', '||dl_T / dH_t||  (last step\'s loss)'),
              ('grad_norm_full', '||dL / dH_t||  (whole loss)'),
              ('jacobian_gain', '||dH_T / dH_t||_F / sqrt(H)'))
    fig = _figure(figsize=(13, 4), layout='constrained')
    styles = ('-', '--', ':', '-.')
    for k, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        for i, (result, label) in enumerate(zip(results, labels)):
            for layer in result['layers']:
                points = [(d, v) for d, v in zip(layer['distance'], layer[key]) if v and v > 0]
                if not points:
                    continue
                name = label if result['num_layers'] == 1 else f'{label}, layer {layer["layer"]}'
                ax.plot(*zip(*points), styles[layer['layer'] % len(styles)], color=f'C{i % 10}',
                        label=name if k == 0 else None)
        ax.set_yscale('log')
        readable_log_axis(ax.yaxis)
        ax.set_xlabel('distance to the end of the batch, T - t')
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    # as many columns as the longest entry leaves room for (a checkpoint's path can be long)
    entries = [line.get_label() for line in fig.axes[0].get_lines()]
    width = max([len(e) for e in entries] + [1])
    ncol = max(1, min(4, len(entries), 170 // (width + 6)))
    rows = -(-len(entries) // ncol)
    fig.set_size_inches(13, 4 + 0.16 * max(0, rows - 3))        # the panels keep their height
    fig.legend(loc='outside lower center', ncol=ncol, fontsize=8)
    return fig


def plot_bptt(rows, path, title=None):
    """BPTT's instrumentation over a run (bptt_figure) as a PNG at `path`, replaced atomically.
    Returns True when the PNG was written (False: no row holds the instrumentation)."""
    fig = bptt_figure(rows, title)
    if fig is None:
        return False
    _save(fig, path, dpi=90)
    return True


def bptt_figure(rows, title=None):
    """BPTT's instrumentation over a run, from history rows (monitor.py), as 2 x 2 log panels.

    Panels against the epoch: each parameter's mean gradient norm (before clipping); the decay
    ||dL/dH_1|| / ||dL/dH_T|| of each layer; the recurrent weights' spectral radius (solid) and
    largest singular value (dashed), where computed; and ||dL/dH_t|| against T - t for up to
    six epochs spread over the run (layer 0), the one panel against distance. Rows without
    these fields (older runs) are skipped. Returns: the matplotlib Figure (Agg canvas), or None
    for a run with none of them.
    """
    rows = [r for r in rows if r.get('grad_norms')]
    if not rows:
        return None
    fig = _figure(figsize=(11, 7.5))
    # placed by hand: constrained layout measures every log tick label twice (~2 s here)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.07, top=0.92, hspace=0.3, wspace=0.2)
    axes = [fig.add_subplot(2, 2, k + 1) for k in range(4)]
    epochs = [r['epoch'] for r in rows]
    for name in rows[-1]['grad_norms']:
        axes[0].plot(epochs, [r['grad_norms'].get(name) for r in rows], label=name, linewidth=1)
    axes[0].set_title('gradient norm per parameter (before clipping)', fontsize=10)
    axes[0].legend(fontsize=6, ncol=2)
    for layer in range(len(rows[-1].get('grad_decay') or [])):
        points = [(r['epoch'], r['grad_decay'][layer]) for r in rows
                  if r.get('grad_decay') and r['grad_decay'][layer]]
        if points:
            axes[1].plot(*zip(*points), label=f'layer {layer}')
    axes[1].set_title('||dL/dH_1|| / ||dL/dH_T||, one batch per epoch', fontsize=10)
    axes[1].legend(fontsize=7)
    spectral = [r for r in rows if r.get('spectra')]
    for i, name in enumerate(spectral[-1]['spectra'] if spectral else ()):
        x = [r['epoch'] for r in spectral]
        axes[2].plot(x, [r['spectra'][name]['spectral_radius'] for r in spectral], '-o', markersize=2,
                     color=f'C{i % 10}', label=f'{name} radius')
        axes[2].plot(x, [r['spectra'][name]['max_singular_value'] for r in spectral], '--',
                     color=f'C{i % 10}', label=f'{name} largest singular value')
    axes[2].axhline(1, color='gray', linewidth=0.5)
    axes[2].set_title('recurrent weights: spectral radius, largest singular value', fontsize=10)
    axes[2].legend(fontsize=6)
    profiled = [r for r in rows if r.get('grad_norm_by_step')]
    for i, r in enumerate(profiled[::max(1, -(-len(profiled) // 6))]):
        norms = r['grad_norm_by_step'][0]
        T = len(norms)
        axes[3].plot([T - t for t in range(1, T + 1)], norms, color=f'C{i % 10}', label=f'epoch {r["epoch"]}')
    axes[3].set_xlabel('distance to the end of the batch, T - t')
    axes[3].set_title('||dL/dH_t||, layer 0, first batch of the epoch', fontsize=10)
    axes[3].legend(fontsize=7)
    for ax in axes:
        ax.set_yscale('log')
        readable_log_axis(ax.yaxis)
        ax.grid(True, alpha=0.3)
        if ax is not axes[3]:
            ax.set_xlabel('epoch')
    if title:
        fig.suptitle(title, fontsize=11)
    return fig




def plot_step_sweep(sweep, path, title=None):
    """The error of a central difference and of the complex step against the step h
    (gradsuite.step_sweep), log-log.

    One solid line per entry, |a - n(h)|, beside the rounding bound K eps |loss| / h (truncation
    is the h^2 slope on the right); one dashed line per entry in the same colour, |a - c(h)| of
    the complex step, which falls like h^2 and then stays flat at rounding level. The first
    central step the checker tries and the complex step it takes are marked.
    """
    fig = _figure(figsize=(6.5, 4.4), layout='constrained')
    ax = fig.add_subplot()

    def drawable(errors):
        # an exact zero (the estimate hit the analytic value to the last bit) cannot be drawn
        # on a log axis: it is left as a gap
        return [e if e > 0 else float('nan') for e in errors]
    for entry in sweep['entries']:
        line, = ax.loglog(sweep['steps'], drawable(entry['errors']), marker='.',
                          label=f'{sweep["tensor"]}{list(entry["index"])}: |a| = {abs(entry["analytic"]):.1e}')
        if 'complex_errors' in entry:
            ax.loglog(sweep['complex_steps'], drawable(entry['complex_errors']), color=line.get_color(),
                      linestyle='--', marker='x', markersize=3, linewidth=1)
    ax.loglog(sweep['steps'], sweep['rounding'], color='gray', linestyle='--', label='rounding bound K eps |loss| / h')
    ax.axvline(sweep['first_step'], color='gray', linestyle=':', label=f'first central step, h = {sweep["first_step"]:g}')
    if 'complex_steps' in sweep:
        ax.plot([], [], color='black', linestyle='--', marker='x', markersize=3, linewidth=1,
                label='complex step Im f(x + ih) / h (dashed)')
        ax.axvline(sweep['complex_step'], color='gray', linestyle='-.',
                   label=f'complex step taken, h = {sweep["complex_step"]:g}')
    ax.set_xlabel('step h')
    ax.set_ylabel('|analytic - estimate|')
    ax.set_title(title or f'central differences and the complex step, w.r.t. {sweep["tensor"]}', fontsize=9)
    ax.grid(True, which='both', alpha=0.3)
    errors = [e for entry in sweep['entries'] for e in entry['errors'] + entry.get('complex_errors', [])]
    smallest = min([e for e in errors if e > 0] + sweep['rounding'])
    ax.set_ylim(bottom=smallest / 10)
    ax.legend(fontsize=7)
    _save(fig, path, dpi=100)
