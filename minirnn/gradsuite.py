"""What `cli.py gradcheck` checks: the default suite, a model the user describes, a checkpoint, a cell.

gradcheck.py holds the check and its verdict; this module builds the models and batches it
runs on, and measures the error of a central difference and of the complex step against the
step (the curves in docs/gradcheck.md).
"""
import numpy as np

from . import checks
from .backend import make_rng, to_numpy
from .gradcheck import (COMPLEX_STEP, EPS, ROUNDING, STEP, TOLERANCE, _Entry, complex_step_gradient,
                        gradcheck_cell, gradcheck_model, model_complex_f, reference_twin)
from .tree import tree_map

# The default suite: small float64 models that take every code path. sigma=0.5, vocabulary 7,
# H = 6 unless a case says otherwise; each row: label, RNNLM arguments, B, T, random initial
# state. Cases with a training mode (dropout, the regularisers through time: each at one and
# at two layers) check a training pass with fixed masks (an int dropout seed), AR/TAR's
# terms included in the loss.
DEFAULT_CASES = (
    ('tanh',                          dict(activation='tanh'),                            3, 5, False),
    ('relu',                          dict(activation='relu'),                            3, 5, False),
    ('embedding',                     dict(embed_dim=4),                                  3, 5, False),
    ('batch 1',                       dict(),                                             1, 6, False),
    ('one step',                      dict(),                                             4, 1, True),
    ('non-zero initial state',        dict(),                                             3, 5, True),
    ("the book's init, 35 steps",     dict(sigma=0.01),                                   4, 35, False),
    ('gru',                           dict(cell='gru'),                                   3, 5, True),
    ('lstm',                          dict(cell='lstm'),                                  3, 5, True),
    ('gru, 2 layers, dropout',        dict(cell='gru', num_layers=2, dropout=0.3, num_hiddens=4), 3, 4, True),
    ('lstm, 2 layers, dropout',       dict(cell='lstm', num_layers=2, dropout=0.3, num_hiddens=4), 3, 4, True),
    ('rnn, 2 layers, embedding',      dict(num_layers=2, embed_dim=3),                    2, 4, True),
    ('variational dropout',           dict(embed_dim=4, dropout_input=0.3, dropout_output=0.3,
                                           dropout_hidden=0.3),                           3, 5, True),
    ('lstm, 2 layers, variational dropout', dict(cell='lstm', num_layers=2, embed_dim=3, dropout_input=0.3,
                                                 dropout_output=0.3, dropout_hidden=0.3, num_hiddens=4), 3, 4, True),
    ('gru, weight drop',              dict(cell='gru', weight_drop=0.4),                  3, 5, True),
    ('lstm, 2 layers, weight drop',   dict(cell='lstm', num_layers=2, weight_drop=0.4, num_hiddens=4), 3, 4, True),
    ('zoneout',                       dict(zoneout=0.4),                                  3, 5, True),
    ('lstm, 2 layers, zoneout on H and C', dict(cell='lstm', num_layers=2, zoneout=0.3, zoneout_cell=0.5,
                                                num_hiddens=4),                           3, 4, True),
    ('AR/TAR',                        dict(ar=2.0, tar=1.0),                              3, 5, True),
    ('gru, 2 layers, AR/TAR, dropout', dict(cell='gru', num_layers=2, ar=2.0, tar=1.0, dropout=0.3,
                                            num_hiddens=4),                               3, 4, True),
)


def random_batch(model, batch_size, num_steps, rng, random_state):
    """Random token ids X, Y (B, T), and a random (or zero: None) initial state for `model`."""
    X = rng.integers(0, model.vocab_size, (batch_size, num_steps))
    Y = rng.integers(0, model.vocab_size, (batch_size, num_steps))
    state = None
    if random_state:
        state = tree_map(lambda a: rng.standard_normal(a.shape) * 0.5,
                         tree_map(to_numpy, model.begin_state(batch_size)))
    return X, Y, state


def check_case(model_args, batch_size, num_steps, random_state, *, device='cpu', seed=0, **options):
    """Build one float64 RNNLM from model_args (sigma 0.5 unless given), a random batch, and check it.

    options go to gradcheck_model (max_entries, step, tolerance, tensors). Returns report rows.
    """
    from .model import RNNLM
    args = {'vocab_size': 7, 'num_hiddens': 6, 'sigma': 0.5, **model_args}
    model = RNNLM(**args, dtype='float64', device=device, seed=seed, threads=1)
    X, Y, state = random_batch(model, batch_size, num_steps, make_rng(seed), random_state)
    dropout_rng = seed if model.has_training_mode else None   # fixed masks: the same every evaluation
    return gradcheck_model(model, X, Y, state, dropout_rng=dropout_rng, seed=seed, **options)


def run_default_cases(device='cpu', seed=0, cases=DEFAULT_CASES, impl='reference', **options):
    """Check every case of the suite (case i seeded with seed + i) under `impl`. Returns [(label, rows)]."""
    return [(label, check_case({**args, 'impl': impl}, B, T, random_state, device=device, seed=seed + i,
                               **options))
            for i, (label, args, B, T, random_state) in enumerate(cases)]


def check_checkpoint(path, *, batch_size=4, num_steps=35, device='cpu', seed=0, impl=None, **options):
    """Check a trained model's gradients, in float64, on a batch of its own training text.

    impl: None (the checkpoint's own), 'fast' or 'reference'. Returns [(label, rows)] with one entry.
    """
    from .probe import probe_batch
    (label, model, X, Y), = probe_batch(checkpoints=[path], batch_size=batch_size, num_steps=num_steps,
                                        dtype='float64', device=device, seed=seed)
    if impl is not None:
        model = model.converted(impl=impl)
    return [(label, gradcheck_model(model, X, Y, seed=seed, **options))]


def check_cell(cell, *, seed=0, impl='reference', **options):
    """gradcheck_cell for `cell` (under `impl`) as [(label, rows)], the shape format_report takes."""
    label = f'cell {cell}' + (' (fast)' if impl == 'fast' else '')
    label += ''.join(f', {k} {options[k]:g}' for k in ('dropout_hidden', 'zoneout', 'zoneout_cell') if options.get(k))
    return [(label, gradcheck_cell(cell, seed=seed, impl=impl, **options))]


def step_sweep(model, X, Y, state=None, *, tensor='W_hh', steps=None, complex_steps=None, entries=3):
    """The error of the central difference and of the complex step against the step, for a few
    entries of one tensor.

    For h from 1e-1 down to 1e-12: |a - n(h)| for the entries of `tensor` with the largest,
    the median and the smallest non-zero |a|, beside the two bounds that shape the curve:
    truncation (falls like h^2) and rounding, K eps |loss| / h (rises like 1/h). For h from
    1e-1 down to 1e-20: |a - c(h)|, c(h) = Im f(x + ih) / h, whose truncation falls like h^2
    and which has no rounding term of its own (nothing is subtracted): flat at rounding level
    below h ~ 1e-8 (on the model's reference twin, gradcheck.reference_twin).
    Returns a dict: tensor, steps and complex_steps (lists), entries [{index, analytic, errors
    (per step), complex_errors (per complex step)}], rounding (per step), loss, first_step,
    complex_step (the one the checks use), tolerance.
    """
    steps = np.logspace(-1, -12, 45) if steps is None else np.asarray(steps, dtype=float)
    complex_steps = np.logspace(-1, -20, 77) if complex_steps is None else np.asarray(complex_steps, dtype=float)
    checks.one_of('tensor', tensor, model.params)
    result = model.gradients(X, Y, state)
    state = model.begin_state(len(X)) if state is None else state

    def f():
        return model.objective(X, Y, state)[0]
    f0 = f()
    x = model.params[tensor]
    a = to_numpy(result.grads[tensor]).astype(np.float64).reshape(-1)
    nonzero = np.flatnonzero(a)
    order = nonzero[np.argsort(-np.abs(a[nonzero]))]
    picks = list(dict.fromkeys([order[0], order[len(order) // 2], order[-1]]))[:entries]
    twin = reference_twin(model)
    complex_f = model_complex_f(twin, X, Y, state, tensor)
    rows = []
    for i in picks:
        entry = _Entry(f, x.reshape(-1), int(i), f0)
        errors = [abs(entry.level(float(h))[0] - a[i]) for h in steps]
        complex_errors = [abs(complex_step_gradient(complex_f, twin.params[tensor], [i], float(h))[0] - a[i])
                          for h in complex_steps]
        rows.append({'index': tuple(int(k) for k in np.unravel_index(i, x.shape)),
                     'analytic': float(a[i]), 'errors': errors, 'complex_errors': complex_errors})
    return {'tensor': tensor, 'steps': steps.tolist(), 'complex_steps': complex_steps.tolist(),
            'entries': rows, 'loss': f0, 'rounding': (ROUNDING * EPS * abs(f0) / steps).tolist(),
            'first_step': STEP, 'complex_step': COMPLEX_STEP, 'tolerance': TOLERANCE}


# --- planted bugs: what the check must catch ------------------------------------------------------

BUGS = ('one entry 2% off', 'scaled by 1.01', 'transposed', 'bias gradient dropped', 'state gradient zeroed')
# where each built-in cell gets its bug: a recurrent weight, and a bias of one of its gates
PLANT_IN = {'rnn': ('W_hh', 'b_h'), 'gru': ('W_hh', 'b_z'), 'lstm': ('W_hc', 'b_f')}


def planted_target(cell, bug, layer=0):
    """The parameter `bug` is planted in for a built-in `cell` (layer l >= 1: its `_l<l>` name)."""
    from .model import param_name
    weight, bias = PLANT_IN[checks.one_of('cell', cell, PLANT_IN)]
    return param_name(bias if bug == 'bias gradient dropped' else weight, layer)


def planted_model(bug, target, *args, **kwargs):
    """An RNNLM(*args, **kwargs) whose gradients carry one planted bug, as a mistake would.

    bug, one of BUGS: the entry of `target`'s gradient with the largest |value| 2% off, the
    whole gradient scaled by 1.01, transposed (a square weight), zeroed (a dropped bias
    gradient), or the initial state's gradient zeroed (target unused). The tests and
    benchmarks/gradcheck_trust.py check that every one of them FAILs.
    """
    from .model import RNNLM
    checks.one_of('bug', bug, BUGS)

    class Planted(RNNLM):
        def gradients(self, *a, **k):
            result = super().gradients(*a, **k)
            grads, dstate = dict(result.grads), result.dstate
            if bug == 'one entry 2% off':
                g = grads[target].copy()
                g[np.unravel_index(np.abs(g).argmax(), g.shape)] *= 1.02
                grads[target] = g
            elif bug == 'scaled by 1.01':
                grads[target] = grads[target] * 1.01
            elif bug == 'transposed':
                grads[target] = grads[target].T.copy()
            elif bug == 'bias gradient dropped':
                grads[target] = grads[target] * 0
            else:
                dstate = tree_map(lambda d: d * 0, dstate)
            return result._replace(grads=grads, dstate=dstate)
    return Planted(*args, **kwargs)
