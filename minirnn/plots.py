"""Figures, each written as a PNG: perplexity per epoch (plot_history), the BPTT instrumentation
of training (plot_bptt), gradient flow through time from probes (plot_probe) and the gradient
check's error against its step (plot_step_sweep).

It draws on a bare matplotlib Figure with the Agg canvas (no pyplot, no global backend), so it
runs headless and inside tests, and imports matplotlib only when called so `import minirnn`
stays fast. Reading history.jsonl and deciding when to plot are the trainer's job.
"""
import math

from .errors import ConfigError
from .files import atomic_write


def plot_history(rows, path, title=None):
    """Plot train (and validation, where present) perplexity against epoch into a PNG at `path`.

    Args: rows, dicts with 'epoch', 'train_ppl' and optionally 'val_ppl' (None or missing when
    not validated; non-finite values are left out); path of the PNG, replaced atomically;
    title, an optional figure title. The y axis is logarithmic when the values span over 10x.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    curves = {label: _points(rows, key)
              for label, key in (('train', 'train_ppl'), ('validation', 'val_ppl'))}
    values = [v for _, ys in curves.values() for v in ys]
    if not values:
        raise ConfigError('no perplexity values to plot: the history has no finite train_ppl or val_ppl')

    fig = Figure(figsize=(6, 4), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, (epochs, ys) in curves.items():
        if ys:
            # markers, so a history of one epoch still shows a point
            ax.plot(epochs, ys, marker='o', markersize=3, label=label)
    # perplexity often falls from ~V to ~1 in a few epochs; linear axes flatten the tail
    if max(values) > 10 * min(values):
        ax.set_yscale('log')
        # plain numbers (2, 3, 5, 10, 20) read better than 2x10^1 for perplexities
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f'{y:g}'))
        ax.yaxis.set_minor_formatter(FuncFormatter(_label_2_3_5))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
    ax.set_xlabel('epoch')
    ax.set_ylabel('perplexity')
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    with atomic_write(path) as f:
        fig.savefig(f, format='png', dpi=100)


def _label_2_3_5(y, _):
    """Label a minor log tick only at 2, 3 and 5 times a power of ten, so labels never crowd."""
    mantissa = y / 10 ** math.floor(math.log10(y))
    return f'{y:g}' if any(math.isclose(mantissa, m) for m in (2, 3, 5)) else ''


def _points(rows, key):
    """(epochs, values) of the rows whose `key` holds a finite positive number."""
    points = [(row['epoch'], row[key]) for row in rows
              if row.get(key) is not None and math.isfinite(row[key]) and row[key] > 0]
    return [e for e, _ in points], [v for _, v in points]


def plot_probe(results, path, labels=None):
    """Gradient flow through time: per-step norms against the distance to the end of the batch.

    Three log-scale panels: ||dl_T/dH_t|| (the last step's loss), ||dL/dH_t|| (the whole loss)
    and the Jacobian product's gain, each against T - t. One colour per result (a checkpoint,
    an epoch), one line style per layer.

    Args: results, dicts from probe.probe; path of the PNG, replaced atomically; labels, one
    legend entry per result (default: the cell and hidden size).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = labels or [f'{r["cell"]} H={r["num_hiddens"]}' for r in results]
    panels = (('grad_norm_last', '||dl_T / dH_t||  (last step\'s loss)'),
              ('grad_norm_full', '||dL / dH_t||  (whole loss)'),
              ('jacobian_gain', '||dH_T / dH_t||_F / sqrt(H)'))
    fig = Figure(figsize=(13, 4), layout='constrained')
    FigureCanvasAgg(fig)
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
        ax.set_xlabel('distance to the end of the batch, T - t')
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.legend(loc='outside lower center', ncol=min(4, max(1, len(fig.axes[0].get_lines()))), fontsize=8)
    with atomic_write(path) as f:
        fig.savefig(f, format='png', dpi=100)


def plot_bptt(rows, path, title=None):
    """BPTT's instrumentation over a run, from history rows (monitor.py), as a 2 x 2 PNG.

    Panels against the epoch: each parameter's mean gradient norm (before clipping); the decay
    ||dL/dH_1|| / ||dL/dH_T|| of each layer; the recurrent weights' spectral radius (solid) and
    largest singular value (dashed), where computed; and ||dL/dH_t|| against T - t for up to
    six epochs spread over the run (layer 0), the one panel against distance. Rows without
    these fields (older runs) are skipped; a run with none of them draws nothing.
    Returns True when the PNG was written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rows = [r for r in rows if r.get('grad_norms')]
    if not rows:
        return False
    fig = Figure(figsize=(11, 7.5))
    # placed by hand: constrained layout measures every log tick label twice (~2 s here)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.07, top=0.92, hspace=0.3, wspace=0.2)
    FigureCanvasAgg(fig)
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
        # plain labels: the default 10^k ones go through mathtext, most of the drawing time
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f'{y:g}'))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, alpha=0.3)
        if ax is not axes[3]:
            ax.set_xlabel('epoch')
    if title:
        fig.suptitle(title, fontsize=11)
    with atomic_write(path) as f:
        fig.savefig(f, format='png', dpi=90)
    return True


def plot_step_sweep(sweep, path, title=None):
    """The error of a central difference and of the complex step against the step h
    (gradsuite.step_sweep), log-log.

    One solid line per entry, |a - n(h)|, beside the rounding bound K eps |loss| / h (truncation
    is the h^2 slope on the right); one dashed line per entry in the same colour, |a - c(h)| of
    the complex step, which falls like h^2 and then stays flat at rounding level. The first
    central step the checker tries and the complex step it takes are marked.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.4), layout='constrained')
    FigureCanvasAgg(fig)
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
    with atomic_write(path) as f:
        fig.savefig(f, format='png', dpi=100)
