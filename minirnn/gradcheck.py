"""Finite-difference gradient checks whose verdict can be trusted: OK, FAIL or INCONCLUSIVE.

The central difference  n(h) = (f(x + h e_i) - f(x - h e_i)) / 2h  misses df/dx_i by two errors:
truncation, c h^2 (the curvature of f), and rounding, about eps |f| / h (float64's eps = 2.2e-16,
and f is a loss of size ~1). Neither depends on the gradient's own size, so a tiny but correct
gradient entry can have a large *relative* error: judging entry by entry (|a - n| / (|a| + |n|))
fails correct code. This module instead measures, for every checked entry,

    u = |n(h) - n(2h)| + K eps |f| / h        what the finite difference itself can be trusted to

(the first term is 3 c h^2, three times n(h)'s truncation error; the second bounds rounding), and
moves the step h up or down, halving or doubling, until u is small or stops shrinking. Then,
with the tensor's scale s = max |a_i|, |n_i| over the checked entries:

    entry disagrees      |a - n| > delta s + 3 u      (delta: --tolerance, 1e-6)
    entry unresolved     u > rho s                    (rho = 1e-3: the differences say too little),
                         or it disagrees but the smallest step rounding allows finds otherwise,
                         or it disagrees and its second differences show a kink inside the step

    FAIL           an entry disagrees that is resolved: a real bug, shown by its worst entries
    INCONCLUSIVE   no FAIL, but an entry is unresolved or disagrees while unresolved: the reason
                   says which (rounding level, a kink such as relu's at 0, curvature)
    OK             every entry agrees to within delta s + 3 u, and u <= rho s everywhere

Checks run in float64; large tensors are checked on a seeded sample of entries (reports mark
them checked/size). Used by the tests and by `cli.py gradcheck` alike. `gradcheck_model` checks a whole
RNNLM (loss = the mean cross-entropy); `gradcheck_cell` checks one recurrent cell alone against
f = sum(Hs * dHs) + sum(final_state * dfinal) with random upstream gradients, free of the
1/(B*T) of the mean that makes a model's gradients small next to its loss.
"""
import sys
import types
from typing import NamedTuple

import numpy as np

from . import checks
from .backend import get_xp, make_rng, to_numpy
from .errors import ConfigError
from .initialization import Init
from .tree import leaves, tree_map

EPS = float(np.finfo(np.float64).eps)
STEP = 1e-5           # h0, the first step tried: near the optimum (eps / c)^(1/3) for f, c ~ 1
TOLERANCE = 1e-6      # delta: a disagreement below delta * scale is never a FAIL
RESOLUTION = 1e-3     # rho: entries whose differences are less certain than rho * scale are unresolved
ROUNDING = 16         # K: one evaluation of f is taken to be off by up to K eps |f|
SAFETY = 3            # a disagreement must exceed SAFETY times the differences' own uncertainty
MAX_MOVES = 16        # steps tried per entry beyond the first: from h0 down to h0 / 2^16 (1.5e-10),
MAX_UP = 8            # or up to h0 * 2^8 (2.6e-3): longer steps leave the region where f is near-linear
PATIENCE = 3          # moves allowed without a smaller u before the walk stops (kinks make u jump)
VERDICTS = ('OK', 'FAIL', 'INCONCLUSIVE')


# --- one entry: central differences at an adapted step ----------------------------------------

class Estimate(NamedTuple):
    """One entry's finite-difference estimate at the step its walk settled on."""
    value: float        # n(h), the central difference
    uncertainty: float  # u(h) = |n(h) - n(2h)| + K eps |f| / h
    step: float         # h
    rounding: bool      # whether rounding is the larger part of u


class _Entry:
    """The central differences of f along one entry of x, at steps h, cached by step."""

    def __init__(self, f, flat, index, f0):
        self.f, self.flat, self.index, self.f0 = f, flat, index, f0
        self.levels = {}          # h -> (n(h), second difference f+ + f- - 2 f0, max |f|)

    def level(self, h):
        if h not in self.levels:
            old = self.flat[self.index].item()
            self.flat[self.index] = old + h
            up = self.flat[self.index].item() - old      # the step actually taken (x + h is rounded)
            f_plus = self.f()
            self.flat[self.index] = old - h
            down = old - self.flat[self.index].item()
            f_minus = self.f()
            self.flat[self.index] = old                   # x restored exactly
            self.levels[h] = ((f_plus - f_minus) / (up + down), f_plus + f_minus - 2 * self.f0,
                              max(abs(f_plus), abs(f_minus), abs(self.f0)))
        return self.levels[h]

    def uncertainty(self, h):
        """u(h) = |n(h) - n(2h)| + K eps |f| / h, and whether rounding is the larger part."""
        n1, _, size1 = self.level(h)
        n2, _, size2 = self.level(2 * h)
        rounding = ROUNDING * EPS * max(size1, size2) / h
        disagreement = abs(n1 - n2)
        return disagreement + rounding, rounding >= disagreement

    def kink(self, h):
        """Whether the second differences at h and 2h show a kink (relu at 0) inside the step.

        For a smooth f, S(h) = f+ + f- - 2 f0 = h^2 f'' + O(h^4), so S(2h) / S(h) is about 4.
        With a kink at distance d < h/2 (a jump J in slope), S(h) = J (h - d) grows like h
        instead, and the ratio (2h - d) / (h - d) lies between 2 and 3. Only consulted for
        entries whose differences disagree with the analytic gradient: there, it tells a kink
        (f not differentiable, the differences average two slopes) from a bug.
        """
        _, s1, size = self.level(h)
        _, s2, _ = self.level(2 * h)
        if abs(s2) < 64 * ROUNDING * EPS * size:    # too close to rounding to tell: no sign of a kink
            return False
        return s1 == 0 or s2 / s1 < 3

    def confirm(self, h, u, scale):
        """Whether n(h) still holds at the smallest step that rounding allows (rounding
        <= rho * scale there). Two differences far beyond the scale on which f bends can
        agree by chance while both are wrong; the derivative a smaller step finds cannot."""
        size = self.level(h)[2]
        small = h
        while small / 2 >= STEP / 2 ** MAX_MOVES and \
                ROUNDING * EPS * size / (small / 2) <= RESOLUTION * scale:
            small /= 2
        if small == h:
            return True
        rounding = ROUNDING * EPS * size / small
        return abs(self.level(small)[0] - self.level(h)[0]) <= SAFETY * (u + rounding)

    def refine(self, h, target):
        """Walk the step from h, halving when curvature dominates u and doubling when rounding
        does, while u exceeds target, for as long as u shrinks (a kink can make u jump about,
        so PATIENCE moves without improvement are allowed). Returns the Estimate at the step
        with the smallest u."""
        u, rounding = self.uncertainty(h)
        best = (u, h, rounding)
        stalled = 0
        for _ in range(MAX_MOVES):
            if best[0] <= target or stalled > PATIENCE:
                break
            if rounding and h * 2 > STEP * 2 ** MAX_UP:
                break
            h = 2 * h if rounding else h / 2
            u, rounding = self.uncertainty(h)
            if u < best[0]:
                best, stalled = (u, h, rounding), 0
            else:
                stalled += 1
        u, h, rounding = best
        return Estimate(self.level(h)[0], u, h, rounding)


def sample_indices(size, max_entries, rng):
    """Every flat index when size <= max_entries, else a seeded sample of max_entries of them."""
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def numerical_gradient(f, x, indices, step=STEP):
    """Plain central differences of the scalar f() w.r.t. the entries `indices` of x, at one step.

    Args: f, a function of no arguments returning a Python float and reading x;
          x, the array (NumPy or CuPy) to perturb in place; indices, flat indices into x.
    Returns: (len(indices),) float64 NumPy array. x is restored exactly afterwards.
    """
    flat = x.reshape(-1)            # a view: writes reach x
    return np.array([_Entry(f, flat, int(i), 0.0).level(step)[0] for i in indices])


def relative_error(analytic, numeric, floor=1e-10):
    """Elementwise |a - n| / max(floor, |a| + |n|), the classic per-entry measure (layer tests).

    analytic, numeric: arrays on any device (or array-likes); the result is a host array.
    """
    analytic = np.asarray(to_numpy(analytic), dtype=np.float64)
    numeric = np.asarray(to_numpy(numeric), dtype=np.float64)
    return np.abs(analytic - numeric) / np.maximum(floor, np.abs(analytic) + np.abs(numeric))


# --- one tensor: the verdict -------------------------------------------------------------------

def compare(name, analytic, f, x, *, f0=None, max_entries=None, rng=None, step=STEP,
            tolerance=TOLERANCE):
    """Check one gradient array against central differences of f w.r.t. x, with a verdict.

    Args: name for the report; analytic, the gradient (shaped as x, any device); f, the scalar
          function of no arguments; x, the array f reads (perturbed in place, restored);
          f0 = f() if already known; max_entries, check a seeded sample above this size;
          step, the first h; tolerance, delta.
    Returns: a report row, a dict: name, shape, size, checked, verdict ('OK', 'FAIL',
        'INCONCLUSIVE'), ok (verdict == 'OK'), scale s, max_abs_error, max_rel_error (the
        largest |a - n| / s), uncertainty (the largest u / s), steps (smallest and largest h
        used), reason ('' when OK), worst (up to 3 entries: index, analytic, numeric).
    """
    rng = make_rng(0 if rng is None else rng)
    f0 = f() if f0 is None else f0
    a_all = to_numpy(analytic).astype(np.float64).reshape(-1)
    indices = sample_indices(a_all.size, max_entries, rng)
    flat = x.reshape(-1)
    entries = [_Entry(f, flat, int(i), f0) for i in indices]
    a = a_all[indices]
    # first pass at h0, for the tensor's scale
    n = np.array([e.level(step)[0] for e in entries])
    scale = float(max(np.abs(a).max(initial=0), np.abs(n).max(initial=0)))
    # second pass: each entry's step adapted until its differences resolve it finely
    # (each walk starts at the step the previous entry settled on: neighbours need alike steps)
    refined, start = [], step
    for e in entries:
        refined.append(e.refine(start, tolerance * scale))
        start = refined[-1].step
    n = np.array([r.value for r in refined])
    u = np.array([r.uncertainty for r in refined])
    h = np.array([r.step for r in refined])
    error = np.abs(a - n)
    disagrees = error > tolerance * scale + SAFETY * u
    # a disagreement counts only if the smallest step that rounding allows finds it too
    unconfirmed = np.array([bool(d) and not e.confirm(r.step, r.uncertainty, scale)
                            for d, e, r in zip(disagrees, entries, refined)], dtype=bool)
    # across a kink the differences can agree with each other and still average two slopes:
    # a disagreement there says nothing about the analytic gradient, whatever u says
    kinked = np.array([bool(d) and e.kink(r.step) for d, e, r in zip(disagrees, entries, refined)], dtype=bool)
    unresolved = (u > RESOLUTION * scale) | kinked | unconfirmed
    fails = disagrees & ~unresolved
    if fails.any():
        verdict, shown = 'FAIL', fails
        reason = (f'{int(fails.sum())} of {len(a)} entries disagree by more than '
                  f'{tolerance:g} x scale + {SAFETY} x the differences\' uncertainty')
    elif (disagrees | unresolved).any():
        verdict, shown = 'INCONCLUSIVE', disagrees | unresolved
        reason = _why_unresolved([entries[k] for k in np.flatnonzero(shown)],
                                 [refined[k] for k in np.flatnonzero(shown)], scale)
    else:
        verdict, shown, reason = 'OK', np.zeros_like(fails), ''
    order = np.flatnonzero(shown)[np.argsort(-error[shown])][:3]
    worst = [{'index': tuple(int(k) for k in np.unravel_index(indices[k], x.shape)),
              'analytic': float(a[k]), 'numeric': float(n[k]), 'step': float(h[k])} for k in order]
    return {'name': name, 'shape': tuple(int(d) for d in x.shape), 'size': int(a_all.size),
            'checked': int(len(indices)), 'verdict': verdict, 'ok': verdict == 'OK', 'scale': scale,
            'max_abs_error': float(error.max(initial=0)),
            'max_rel_error': float(error.max(initial=0) / scale) if scale else 0.0,
            'uncertainty': float(u.max(initial=0) / scale) if scale else float('inf'),
            'steps': (float(h.min(initial=step)), float(h.max(initial=step))),
            'reason': reason, 'worst': worst}


def _why_unresolved(entries, refined, scale):
    """The reason an INCONCLUSIVE verdict gives, and what to change."""
    if not scale:
        return ('the gradient is zero to within rounding: nothing to compare (a path that this '
                'input never uses?); check a configuration where it is non-zero')
    if all(ROUNDING * EPS * e.level(r.step)[2] / r.step > RESOLUTION * scale for e, r in zip(entries, refined)):
        return ('the differences are at rounding level (eps |loss| / h against a gradient this '
                'small): check the cell alone (--level cell), or use fewer --num-steps or a '
                'larger --sigma')
    if any(e.kink(r.step) for e, r in zip(entries, refined)):   # (cached: no new evaluations)
        return ('a kink (relu at 0) lies within the smallest usable step: f is not '
                'differentiable there; use tanh, another --seed, or a smaller --step')
    return ('the differences change with the step beyond what rounding explains, down to the '
            'smallest step (f bends on a shorter scale than the step, as with exploding '
            'gradients): use a smaller --sigma or fewer --num-steps, or a smaller --step')


# --- whole models and single cells --------------------------------------------------------------

def _float64(what, dtype):
    if np.dtype(dtype) != np.float64:
        raise ConfigError(f'gradient checks need float64 {what} (dtype="float64"): float32 '
                          'rounding is larger than the differences being measured')


def state_names(state):
    """'state' for a one-array state, else 'state[i]' (an LSTM's (H, C), a stack's layers) per leaf."""
    if not isinstance(state, tuple):
        return ['state']
    names = []
    for i, branch in enumerate(state):
        names += [f'state[{i}]{sub[5:]}' for sub in state_names(branch)]
    return names


def gradcheck_model(model, X, Y, state=None, *, dropout_rng=None, dfinal_state=None, tensors=None,
                    max_entries=100, seed=0, step=STEP, tolerance=TOLERANCE):
    """Check every gradient of model.gradients against finite differences of the loss.

    Args: model, an RNNLM in float64; X, Y (B, T) token ids; state shaped as
          model.begin_state(B), or None for zeros; dropout_rng, an int seed (a training pass
          with the same masks at every evaluation: dropout, variational dropout, weight drop,
          zoneout, and AR/TAR's terms in f) or None (evaluation); dfinal_state, a gradient
          entering through the final state (then f = objective + sum(final_state *
          dfinal_state)), or None;
          tensors, names of the tensors to check (default: every parameter and state array);
          max_entries, how many entries per tensor (a seeded sample when it is larger);
          seed, for that sample; step, the first h; tolerance, delta (module docstring).
    Returns: report rows (see `compare`), one per parameter, then one per state array.
    """
    _float64('a model', model.dtype)
    # an int seed, not a Generator: every evaluation must draw the same masks
    checks.integer('dropout_rng', dropout_rng, 0, optional=True)
    # a private copy of the state, perturbed in place below
    state = tree_map(lambda a: a.copy(), model.begin_state(len(X)) if state is None
                     else model.check_state('state', state, len(X)))
    if dfinal_state is not None:          # on the model's device, as the final state it multiplies
        dfinal_state = model.check_state('dfinal_state', dfinal_state, len(X))
    result = model.gradients(X, Y, state, dropout_rng=dropout_rng, dfinal_state=dfinal_state)

    def f():
        loss, final = model.objective(X, Y, state, dropout_rng=dropout_rng)
        if dfinal_state is None:
            return loss
        return loss + sum(float((s * g).sum()) for s, g in zip(leaves(final), leaves(dfinal_state)))

    checked = list(model.params.items())
    checked += [(name, leaf) for name, leaf in zip(state_names(state), leaves(state))]
    analytic = {**result.grads, **dict(zip(state_names(state), leaves(result.dstate)))}
    if tensors is not None:
        unknown = sorted(set(tensors) - set(analytic))
        if unknown:
            raise ConfigError(f'no tensor {", ".join(unknown)} in this model; it has {", ".join(analytic)}')
        checked = [(name, x) for name, x in checked if name in tensors]
    rng, f0 = make_rng(seed), f()
    return [compare(name, analytic[name], f, x, f0=f0, max_entries=max_entries, rng=rng,
                    step=step, tolerance=tolerance) for name, x in checked]


def gradcheck_cell(cell, *, batch_size=3, num_steps=5, num_hiddens=4, sigma=0.5, activation=None,
                   device='cpu', seed=0, max_entries=100, step=STEP, tolerance=TOLERANCE,
                   impl='reference', dropout_hidden=0.0, zoneout=0.0, zoneout_cell=0.0):
    """Check one recurrent cell's backward pass alone, against f = sum(Hs * dHs) + sum(final * dfinal).

    Random upstream gradients dHs (T, B, H) and dfinal (shaped as the state) enter at every
    step and through the final state, so every path of the backward pass is exercised, and
    without the 1/(B*T) of a mean loss the gradients are not small next to f.

    Args: cell, a name in cells.CELLS or a module with the interface of cells/__init__.py;
          sizes B, T, H; sigma, the std of the random parameters (biases too, so no path is
          zero); activation, one of the cell's (default its first); device 'cpu' or 'gpu';
          impl, for a cell named by a string: 'fast' or 'reference' (cells.implementation);
          dropout_hidden, zoneout, zoneout_cell: the regularisers inside the recurrence
              (those in the cell's REGULARISERS), their masks drawn once from the seed.
    Returns: report rows (see `compare`): every cell parameter, then the dense input 'X'
        (T, B, H), then the state's arrays.

    Example, a cell of your own (see cells/__init__.py for the interface):
        import minirnn.gradcheck as gc
        rows = gc.gradcheck_cell(my_cell_module, num_hiddens=5)
        print(gc.format_report([('my cell', rows)]))
    """
    from .cells import CELLS, implementation
    if isinstance(cell, str):
        if cell not in CELLS:
            raise ConfigError(f'unknown cell {cell!r}; choose one of {", ".join(CELLS)}')
        cell = implementation(cell, impl)
    xp, rng = get_xp(device), make_rng(seed)
    B, T, H = batch_size, num_steps, num_hiddens
    activation = activation or cell.ACTIVATIONS[0]

    def normal(shape, scale=1.0):
        return xp.asarray(rng.standard_normal(shape) * scale)
    params = cell.init_params(Init('normal', sigma, H, rng, xp, np.float64), H, H)
    params = {k: normal(v.shape, sigma) for k, v in params.items()}   # biases off zero as well
    for v in params.values():
        _float64('cell parameters', v.dtype)
    X = normal((T, B, H))                                   # a dense input, as a lower layer's
    state = tree_map(lambda a: normal(a.shape, 0.5), cell.begin_state(B, H, xp, np.float64))
    dHs = normal((T, B, H))
    dfinal = tree_map(lambda a: normal(a.shape), state)
    regularisers = _cell_masks(cell, state, rng, xp, T, dropout_hidden, zoneout, zoneout_cell)
    _, _, cache = cell.forward(params, X, state, activation=activation, **regularisers)
    grads, dX, dstate = cell.backward(params, dHs, cache, dfinal)

    def f():
        Hs, final, _ = cell.forward(params, X, state, activation=activation, **regularisers)
        return float((Hs * dHs).sum()) + sum(float((s * g).sum()) for s, g in zip(leaves(final), leaves(dfinal)))

    checked = [(k, grads.get(k), p) for k, p in params.items()]
    checked.append(('X', dX, X))
    checked += [(name, d, s) for name, d, s in zip(state_names(state), leaves(dstate), leaves(state))]
    missing = [k for k, g, _ in checked if g is None]
    if missing:
        raise ConfigError(f'the cell\'s backward returns no gradient for {", ".join(missing)}')
    sample_rng, f0 = make_rng(seed), f()
    return [compare(name, g, f, x, f0=f0, max_entries=max_entries, rng=sample_rng, step=step,
                    tolerance=tolerance) for name, g, x in checked]


def _cell_masks(cell, state, rng, xp, num_steps, dropout_hidden, zoneout, zoneout_cell):
    """gradcheck_cell's fixed masks: hidden_mask (B, H) and zoneout (T, B, H) per zoned state
    array, as a training pass draws them (layers.dropout_mask, layers.zoneout_mask)."""
    from . import layers
    supported = getattr(cell, 'REGULARISERS', ())
    checks.number('dropout_hidden', dropout_hidden, minimum=0, below=1)
    for name, value in (('dropout_hidden', dropout_hidden), ('zoneout', zoneout), ('zoneout_cell', zoneout_cell)):
        checks.number(name, value, minimum=0, maximum=1)
        if value and name not in supported:
            raise ConfigError(f'this cell does not take {name} (its REGULARISERS: {", ".join(supported) or "none"})')
    options, dtype = {}, np.dtype(np.float64)
    batch_size, num_hiddens = leaves(state)[0].shape
    if dropout_hidden:
        options['hidden_mask'] = xp.asarray(layers.dropout_mask(rng, (batch_size, num_hiddens), dropout_hidden, dtype))
    if zoneout or zoneout_cell:
        target = cell.hidden(state)
        options['zoneout'] = tree_map(
            lambda a: None if not (zoneout if a is target else zoneout_cell) else xp.asarray(
                layers.zoneout_mask(rng, (num_steps,) + a.shape, zoneout if a is target else zoneout_cell, dtype)),
            state)
    return options


# --- the report ---------------------------------------------------------------------------------

def count_verdicts(results):
    """{verdict: number of tensors} over [(label, rows)]."""
    counts = dict.fromkeys(VERDICTS, 0)
    for _, rows in results:
        for r in rows:
            counts[r['verdict']] += 1
    return counts


def format_report(results, tolerance=TOLERANCE):
    """The table `cli.py gradcheck` prints, from [(label, rows)]: a line per tensor, the reason and
    worst entries under each FAIL or INCONCLUSIVE, and a summary line with the counts."""
    width = max([len('case')] + [len(label) for label, _ in results])
    names = max([len('tensor')] + [len(r['name']) for _, rows in results for r in rows])
    lines = [f'{"case":<{width}}  {"tensor":<{names}}  {"shape":<9} {"checked":>9} {"step h":>12} '
             f'{"abs err":>9} {"scale":>9} {"rel err":>9}  verdict']
    sampled = False
    for label, rows in results:
        for r in rows:
            shape = 'x'.join(str(d) for d in r['shape'])
            checked = str(r['checked'])
            if r['checked'] < r['size']:
                checked, sampled = f'{r["checked"]}/{r["size"]}', True
            low, high = r['steps']
            step = f'{low:.0e}' if low == high else f'{low:.0e}..{high:.0e}'
            lines.append(f'{label:<{width}}  {r["name"]:<{names}}  {shape:<9} {checked:>9} {step:>12} '
                         f'{r["max_abs_error"]:>9.1e} {r["scale"]:>9.1e} {r["max_rel_error"]:>9.1e}  '
                         f'{r["verdict"]}')
            if r['verdict'] != 'OK':
                lines.append(f'    {r["verdict"]}: {r["reason"]}')
                lines += [f'    at {w["index"]}: analytic {w["analytic"]:.6e}, numeric {w["numeric"]:.6e} '
                          f'(h={w["step"]:.1e})' for w in r['worst']]
    counts = count_verdicts(results)
    summary = ', '.join(f'{counts[v]} {v}' for v in VERDICTS)
    if counts['FAIL']:
        outcome = 'gradients FAILED: a FAIL is a disagreement beyond rounding and step error, a bug'
    elif counts['INCONCLUSIVE']:
        outcome = 'no FAIL, but finite differences could not settle every tensor (reasons above)'
    else:
        outcome = 'all gradients OK'
    lines.append(f'{summary} (tolerance {tolerance:.0e} x scale'
                 + ('; n/size: a seeded sample of the entries' if sampled else '') + f'): {outcome}')
    return '\n'.join(lines)


# --- `minirnn.gradcheck` is this module, and calling it checks a model --------------------------

class _CallableModule(types.ModuleType):
    """The stable public API calls `minirnn.gradcheck(model, X, Y, state)`; making the module
    callable keeps that working while `import minirnn.gradcheck as gc` gives the module."""

    def __call__(self, *args, **kwargs):
        return gradcheck_model(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
