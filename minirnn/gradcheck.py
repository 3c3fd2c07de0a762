"""Gradient checks whose verdict can be trusted: OK, FAIL or INCONCLUSIVE, by central differences
and by the complex step.

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

Where a gradient is tiny next to f, rounding (eps |f| / h) hides it at every usable step. The
complex step (Squire & Trapp 1998; Martins et al. 2003) subtracts nothing:

    c = Im f(x + i h e_i) / h,   h = 1e-20        exact to rounding for f analytic along the step

(its truncation, h^2 f''' / 6, is nil). The forward pass runs in complex128 for it (the
reference cells, the embedding, dropout, the loss: RNNLM.tape_at). Its uncertainty u_c is
measured too, once per tensor: the largest |c - c'| over the checked entries, c' taken at the
step 3h with every input of f multiplied by 1 +- 4 eps (rounding-sized changes, which move the
derivative far where the forward pass amplifies rounding), plus K eps s. An entry disagrees
when |a - c| > delta_c s + 3 u_c (delta_c = 1e-10 unless --tolerance is given) and is
unresolved when u_c > rho s, or when a kink (relu's pre-activation at 0) lies within the step
of the entry (near_kink): there f is not analytic along a step of that length.

    method 'central'   central differences alone
    method 'complex'   the complex step alone (kinks within --step of x leave an entry unresolved)
    method 'auto'      central differences, then the complex step for every entry they leave
                       unresolved (relu: unless a pre-activation lies within the entry's central
                       step of its kink); resolved disagreements of either stand

    FAIL           an entry disagrees that is resolved: a real bug, shown by its worst entries
    INCONCLUSIVE   no FAIL, but an entry is unresolved or disagrees while unresolved: the reason
                   says which (rounding level, a kink such as relu's at 0, curvature, a forward
                   pass that amplifies rounding)
    OK             every entry agrees to within delta s + 3 u (delta_c s + 3 u_c for the
                   complex step), and u <= rho s everywhere

Checks run in float64; large tensors are checked on a seeded sample of entries (reports mark
them checked/size). Used by the tests and by `cli.py gradcheck` alike. `gradcheck_model` checks a whole
RNNLM (loss = the mean cross-entropy; the complex step on its reference_twin, since the fast
paths stay real); `gradcheck_cell` checks one recurrent cell alone against
f = sum(Hs * dHs) + sum(final_state * dfinal) with random upstream gradients, free of the
1/(B*T) of the mean that makes a model's gradients small next to its loss.
"""
import sys
import types
from typing import NamedTuple

import numpy as np

from . import checks
from .backend import complex_kept, get_xp, make_rng, to_numpy, xp_of
from .errors import ConfigError
from .initialization import Init
from .tree import leaves, tree_map, unflatten

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
METHODS = ('auto', 'central', 'complex')
COMPLEX_STEP = 1e-20  # h of the complex step: its truncation, h^2 f''' / 6, is nil; Im parts stay far from underflow
COMPLEX_RESTEP = 3    # a second complex step, 3h: other mantissas round otherwise, so the spread measures rounding
JITTER = 4            # ... taken with every input of f multiplied by 1 +- 4 eps: rounding-sized changes
COMPLEX_TOLERANCE = 1e-10   # delta for the complex step, whose errors are ~1e-15 of the scale
SMOOTH = ('tanh',)    # activations without kinks (the gated cells' sigmoids have none either)


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


# --- one entry: the complex step ------------------------------------------------------------------

def near_kink(kinks, radius, h):
    """Whether a kink of f lies within `radius` of x along a complex step's direction.

    kinks: the pre-activations whose zeros are kinks (relu's A), evaluated at x + ih e_i, so
    that Re A is A and Im A / h is dA/dx_i; a kink is within the radius when
    |A| < radius |dA/dx_i| for any of them (to first order, moving x_i by up to `radius`
    crosses it). [] (a smooth f) gives False; None (kinks unknown) gives None.
    """
    if kinks is None:
        return None
    return any(bool((abs(A.real) * h < radius * abs(A.imag)).any()) for A in kinks)


class _ComplexSteps:
    """Complex-step derivatives of f along entries of x: c_i = Im f(x + ih e_i) / h.

    complex_f(z, jitter=False) evaluates f with the complex array z (shaped as x) in x's place
    and returns (f, kinks): f a Python complex, kinks the arrays whose zeros are kinks of f
    (relu's pre-activations), [] for a smooth f, or None when they are unknown. With jitter,
    every input of f (z too) is first multiplied by its own seeded factor 1 +- JITTER eps
    (`jitter_factors`): the same f, as if its roundings had come out otherwise. Nothing is
    subtracted, so for f analytic along the step c_i is exact to rounding, however small the
    derivative is next to f; its truncation, h^2 f''' / 6, is ~1e-40 of f''' at h = 1e-20.
    """

    def __init__(self, complex_f, x):
        self.complex_f, self.x = complex_f, x.reshape(-1)
        self.z = x.astype(np.result_type(x.dtype, np.complex64))     # x's copy, x itself untouched
        self.flat = self.z.reshape(-1)

    def at(self, index, h, jitter=False):
        """(Im f(x + ih e_index) / h, f's kinks there), with f's inputs jittered or not."""
        self.flat[index] = complex(self.x[index].item(), h)
        try:
            value, kinks = self.complex_f(self.z, jitter=True) if jitter else self.complex_f(self.z)
        finally:
            self.flat[index] = self.x[index].item()
        return complex(value).imag / h, kinks

    def estimate(self, index, radius):
        """(c, spread, near): c at h = COMPLEX_STEP; near, whether a kink lies within `radius`
        of x along the entry (near_kink); spread = |c - c'|, c' at the step 3h with f's inputs
        jittered, the rounding as measured: another mantissa of the step rounds the imaginary
        parts otherwise, and the jitter shows how far rounding-sized changes of the inputs move
        the derivative (far, where the forward pass amplifies rounding: exploding gradients)."""
        c, kinks = self.at(index, COMPLEX_STEP)
        c_again, _ = self.at(index, COMPLEX_RESTEP * COMPLEX_STEP, jitter=True)
        return c, abs(c - c_again), near_kink(kinks, radius, COMPLEX_STEP)


def jitter_factors(arrays, seed=0):
    """Per array, factors 1 + s JITTER eps (s = +-1 per entry, seeded), shaped and placed as it:
    multiplying by them changes every entry by about as much as one rounding would."""
    rng = make_rng(seed)
    return [xp_of(a).asarray(1 + JITTER * EPS * rng.choice((-1.0, 1.0), a.shape)) for a in arrays]


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


def complex_step_gradient(complex_f, x, indices, step=COMPLEX_STEP):
    """Complex-step derivatives Im f(x + ih e_i) / h of f w.r.t. the entries `indices` of x.

    Args: complex_f(z) -> (f, kinks) with the complex array z in x's place (see _ComplexSteps;
          model_complex_f and cell_complex_f make one); x the real array (left untouched);
          indices, flat indices into x; step, h.
    Returns: (len(indices),) float64 NumPy array.
    """
    steps = _ComplexSteps(complex_f, x)
    return np.array([steps.at(int(i), step)[0] for i in indices])


def relative_error(analytic, numeric, floor=1e-10):
    """Elementwise |a - n| / max(floor, |a| + |n|), the classic per-entry measure (layer tests).

    analytic, numeric: arrays on any device (or array-likes); the result is a host array.
    """
    analytic = np.asarray(to_numpy(analytic), dtype=np.float64)
    numeric = np.asarray(to_numpy(numeric), dtype=np.float64)
    return np.abs(analytic - numeric) / np.maximum(floor, np.abs(analytic) + np.abs(numeric))


# --- one tensor: the verdict -------------------------------------------------------------------

class _Central(NamedTuple):
    """Central differences over one tensor's checked entries, judged (module docstring)."""
    entries: list           # _Entry per checked entry
    refined: list           # its Estimate
    scale: float            # s
    disagrees: np.ndarray   # (k,) bool
    unresolved: np.ndarray  # (k,) bool


def _central(f, x, indices, a, f0, step, tolerance):
    flat = x.reshape(-1)
    entries = [_Entry(f, flat, int(i), f0) for i in indices]
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
    disagrees = np.abs(a - n) > tolerance * scale + SAFETY * u
    # a disagreement counts only if the smallest step that rounding allows finds it too
    unconfirmed = np.array([bool(d) and not e.confirm(r.step, r.uncertainty, scale)
                            for d, e, r in zip(disagrees, entries, refined)], dtype=bool)
    # across a kink the differences can agree with each other and still average two slopes:
    # a disagreement there says nothing about the analytic gradient, whatever u says
    kinked = np.array([bool(d) and e.kink(r.step) for d, e, r in zip(disagrees, entries, refined)], dtype=bool)
    unresolved = (u > RESOLUTION * scale) | kinked | unconfirmed
    return _Central(entries, refined, scale, disagrees, unresolved)


def _verdict(disagrees, unresolved):
    fails = disagrees & ~unresolved
    return 'FAIL' if fails.any() else 'INCONCLUSIVE' if (disagrees | unresolved).any() else 'OK'


def compare(name, analytic, f, x, *, f0=None, max_entries=None, rng=None, step=STEP,
            tolerance=None, method='auto', complex_f=None):
    """Check one gradient array against the derivatives of f w.r.t. x, with a verdict.

    Args: name for the report; analytic, the gradient (shaped as x, any device); f, the scalar
          function of no arguments; x, the array f reads (perturbed in place, restored);
          f0 = f() if already known; max_entries, check a seeded sample above this size;
          step, the first h of the central differences; tolerance, delta (None: each
          method's own, TOLERANCE or COMPLEX_TOLERANCE); method, 'central', 'complex' or
          'auto' (central differences, then the complex step for every entry they leave
          unresolved; with no complex_f, auto is central); complex_f(z) -> (f with the
          complex array z in x's place, its kinks) (see _ComplexSteps), or None.
    Returns: a report row, a dict: name, shape, size, checked, verdict ('OK', 'FAIL',
        'INCONCLUSIVE'), ok (verdict == 'OK'), scale s, max_abs_error, max_rel_error (the
        largest |a - n| / s), uncertainty (the largest u / s), steps (smallest and largest h
        used), method (which settled the entries: 'central', 'complex' or 'central+complex'),
        complex_entries (how many the complex step settled), central_verdict (the verdict
        of central differences alone; None under method 'complex'), reason ('' when OK),
        worst (up to 3 entries: index, analytic, numeric, step, method).
    """
    checks.one_of('method', method, METHODS)
    if method == 'complex' and complex_f is None:
        raise ConfigError("method 'complex' needs complex_f: f with a complex array in x's place")
    delta = TOLERANCE if tolerance is None else tolerance
    delta_c = COMPLEX_TOLERANCE if tolerance is None else tolerance
    rng = make_rng(0 if rng is None else rng)
    a_all = to_numpy(analytic).astype(np.float64).reshape(-1)
    indices = sample_indices(a_all.size, max_entries, rng)
    a = a_all[indices]
    k = len(a)
    # per entry: the estimate n, its uncertainty u, its step h, and how it is judged
    n, u, h = np.zeros(k), np.zeros(k), np.full(k, COMPLEX_STEP)
    disagrees, unresolved, by_complex = np.zeros(k, bool), np.zeros(k, bool), np.zeros(k, bool)
    central, scale, central_verdict = None, 0.0, None
    if method != 'complex':
        central = _central(f, x, indices, a, f() if f0 is None else f0, step, delta)
        n = np.array([r.value for r in central.refined])
        u = np.array([r.uncertainty for r in central.refined])
        h = np.array([r.step for r in central.refined])
        disagrees, unresolved, scale = central.disagrees.copy(), central.unresolved.copy(), central.scale
        central_verdict = _verdict(disagrees, unresolved)
    todo = np.arange(k) if method == 'complex' else \
        np.flatnonzero(unresolved) if method == 'auto' and complex_f is not None else np.arange(0)
    unavailable, kinks_near, kinks_unknown, rounding_c = '', [], [], False
    if len(todo):
        try:
            steps = _ComplexSteps(complex_f, x)
            # a kink counts within the central step the entry took (the first step, --step,
            # when the complex step works alone)
            radius = np.full(k, step) if central is None else h
            found = [steps.estimate(int(indices[j]), radius[j]) for j in todo]
        except ConfigError as e:
            if method == 'complex':
                raise
            unavailable, found = str(e), []            # auto: central differences' verdict stands
        if found:
            c = np.array([e[0] for e in found])
            near = [e[2] for e in found]
            scale = float(max(scale, np.abs(a).max(initial=0), np.abs(c).max(initial=0)))
            # rounding is relative to the tensor's scale (not to each entry), so the largest
            # spread measured over the tensor, and a floor of K eps s, bound every entry's
            u_c = float(max(e[1] for e in found)) + ROUNDING * EPS * scale
            for j, cj, nj in zip(todo, c, near):
                if nj is not False:                     # a kink near, or kinks unknown: not settled
                    (kinks_near if nj else kinks_unknown).append(j)
                    unresolved[j] = True
                    if central is None:
                        n[j], u[j] = cj, u_c
                    continue
                n[j], u[j], h[j], by_complex[j] = cj, u_c, COMPLEX_STEP, True
                disagrees[j] = abs(a[j] - cj) > delta_c * scale + SAFETY * u_c
                unresolved[j] = u_c > RESOLUTION * scale
                rounding_c |= bool(unresolved[j])
    error = np.abs(a - n)
    fails = disagrees & ~unresolved
    verdict = _verdict(disagrees, unresolved)
    if verdict == 'FAIL':
        shown = fails
        parts = [f'{int(m.sum())} by {how}, beyond {d:g} x scale + {SAFETY} x {whose}'
                 for m, how, d, whose in ((fails & ~by_complex, 'central differences', delta, 'their uncertainty'),
                                          (fails & by_complex, 'the complex step', delta_c, 'its rounding'))
                 if m.any()]
        reason = f'{int(fails.sum())} of {k} entries disagree: ' + '; '.join(parts)
    elif verdict == 'INCONCLUSIVE':
        shown = disagrees | unresolved
        if kinks_near:
            reason = ('a kink (relu at 0) lies within the step: a pre-activation is within the central '
                      'step of 0 along the entry, where neither central differences nor the complex step '
                      '(exact only where f is smooth) can be trusted; use tanh, another --seed, or a '
                      'smaller --step')
        elif kinks_unknown:
            reason = ('the cell\'s activation may have kinks and the cell does not locate them '
                      '(preactivations()), so the complex step is not used; use a smooth activation')
        elif rounding_c:
            reason = ('the complex step moves by more than 1e-3 of the scale under rounding-sized changes '
                      'of the inputs: the forward pass amplifies rounding (exploding gradients); use a '
                      'smaller --sigma or fewer --num-steps')
        else:
            rest = [j for j in np.flatnonzero(shown) if not by_complex[j]]
            reason = _why_unresolved([central.entries[j] for j in rest], [central.refined[j] for j in rest],
                                     central.scale)
            if unavailable:
                reason += f'; the complex step is unavailable: {unavailable}'
    else:
        shown, reason = np.zeros(k, bool), ''
    order = np.flatnonzero(shown)[np.argsort(-error[shown])][:3]
    worst = [{'index': tuple(int(i) for i in np.unravel_index(indices[j], x.shape)),
              'analytic': float(a[j]), 'numeric': float(n[j]), 'step': float(h[j]),
              'method': 'complex' if by_complex[j] or central is None else 'central'} for j in order]
    settled = int(by_complex.sum())
    return {'name': name, 'shape': tuple(int(d) for d in x.shape), 'size': int(a_all.size),
            'checked': int(k), 'verdict': verdict, 'ok': verdict == 'OK', 'scale': scale,
            'max_abs_error': float(error.max(initial=0)),
            'max_rel_error': _ratio(error.max(initial=0), scale),
            'uncertainty': _ratio(u.max(initial=0), scale),
            # the range of the steps taken (with the first central step h0, where central differences ran)
            'steps': (float(h.min(initial=np.inf if central is None else step)),
                      float(h.max(initial=-np.inf if central is None else step))) if k else (step, step),
            'method': 'complex' if central is None else 'central+complex' if settled else 'central',
            'complex_entries': settled,
            'central_verdict': central_verdict, 'reason': reason, 'worst': worst}


def _ratio(value, scale):
    """value / scale for the report: 0 for 0 / 0, inf for a positive value over a zero scale."""
    return float(value / scale) if scale else (0.0 if value == 0 else float('inf'))


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
                    max_entries=100, seed=0, step=STEP, tolerance=None, method='auto'):
    """Check every gradient of model.gradients against the derivatives of the loss.

    Args: model, an RNNLM in float64; X, Y (B, T) token ids; state shaped as
          model.begin_state(B), or None for zeros; dropout_rng, an int seed (a training pass
          with the same masks at every evaluation: dropout, variational dropout, weight drop,
          zoneout, and AR/TAR's terms in f) or None (evaluation); dfinal_state, a gradient
          entering through the final state (then f = objective + sum(final_state *
          dfinal_state)), or None;
          tensors, names of the tensors to check (default: every parameter and state array);
          max_entries, how many entries per tensor (a seeded sample when it is larger);
          seed, for that sample; step, the first h; tolerance, delta (None: each method's
          own); method, 'auto', 'central' or 'complex' (module docstring). The complex step
          runs on the reference cells: a model on the fast paths is checked through its
          converted(impl='reference') twin there, the same function.
    Returns: report rows (see `compare`), one per parameter, then one per state array.
    """
    _float64('a model', model.dtype)
    checks.one_of('method', method, METHODS)
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
    return [compare(name, analytic[name], f, x, f0=f0, max_entries=max_entries, rng=rng, step=step,
                    tolerance=tolerance, method=method,
                    complex_f=None if method == 'central' else
                    model_complex_f(model, X, Y, state, name, dropout_rng=dropout_rng, dfinal_state=dfinal_state))
            for name, x in checked]


def reference_twin(model):
    """The model itself when its cell computes in its inputs' dtype, else a copy on the reference
    cells (model.converted(impl='reference')): the same function, and complex steps pass through."""
    from .cells import CELLS
    return model if model.cell is CELLS[model.cell_name] else model.converted(impl='reference')


def model_complex_f(model, X, Y, state, tensor, *, dropout_rng=None, masks=None, dfinal_state=None):
    """complex_f for `tensor` of a model (a parameter's name, or a state array's: state_names).

    Returns complex_f(z, jitter=False) -> (f, kinks) (see _ComplexSteps): f = the objective
    (model.objective: the loss, plus AR/TAR's terms in a training pass) (+ sum(final_state *
    dfinal_state)) as a Python complex, with the complex array z in the
    tensor's place, and the model's kinks (_model_kinks). It evaluates the model's
    reference_twin, made at the first call (a model on the reference cells is its own twin);
    state as in gradcheck_model (None: zeros).
    """
    state = model.begin_state(len(X)) if state is None else state
    names = state_names(state)
    if tensor not in model.params and tensor not in names:
        raise ConfigError(f'no tensor {tensor} in this model; it has {", ".join(list(model.params) + names)}')
    made = {}            # the twin and the jitter's factors, made when first needed

    def complex_f(z, jitter=False):
        if 'twin' not in made:
            made['twin'] = reference_twin(model)
        twin = made['twin']
        params = {**twin.params, tensor: z} if tensor in twin.params else twin.params
        at = [z if name == tensor else leaf for name, leaf in zip(names, leaves(state))]
        if jitter:
            if 'factors' not in made:
                made['factors'] = dict(zip(list(params) + names, jitter_factors(list(params.values()) + at)))
            params = {k: v * made['factors'][k] for k, v in params.items()}
            at = [leaf * made['factors'][name] for name, leaf in zip(names, at)]
        tape = twin.tape_at(params, X, Y, unflatten(state, at), dropout_rng=dropout_rng, masks=masks)
        value = complex(tape.loss) + complex(tape.penalty)     # the objective, as model.objective
        if dfinal_state is not None:
            value += sum(complex((s * g).sum()) for s, g in zip(leaves(tape.state), leaves(dfinal_state)))
        return value, _model_kinks(twin, tape)
    return complex_f


def _model_kinks(model, tape):
    """Every layer's relu pre-activations from a tape ([] for a smooth model, None when the cell
    cannot give them)."""
    if model.activation in SMOOTH:
        return []
    preactivations = getattr(model.cell, 'preactivations', None)
    if preactivations is None:
        return None
    # the parameters each layer's cell ran with (weight drop: W * M)
    return [preactivations(cache.params, cache.cell) for cache in tape.layers]


def complex_step_gradients(model, X, Y, state=None, *, tensors=None, dropout_rng=None, masks=None,
                           dfinal_state=None):
    """Every entry's derivative of the loss by the complex step, per tensor (no verdict).

    The derivative the gradient checks compare the analytic gradient with, exact to rounding
    where the model is smooth (relu: away from its kinks). Args as gradcheck_model's; dropout
    by dropout_rng (an int seed, or a Generator: its masks are drawn once) or masks.
    Returns: {name: array shaped as the tensor (host, float64)} for the parameters, then the
        state's arrays (tensors: only these).
    """
    _float64('a model', model.dtype)
    X, Y, _ = model.inputs(X, Y)
    if dropout_rng is not None:
        masks, dropout_rng = model.dropout_masks(dropout_rng, *X.shape), None
    state = model.begin_state(len(X)) if state is None else model.check_state('state', state, len(X))
    twin = reference_twin(model)
    arrays = {**twin.params, **dict(zip(state_names(state), leaves(state)))}
    gradients = {}
    for name in arrays if tensors is None else tensors:
        complex_f = model_complex_f(twin, X, Y, state, name, masks=masks, dfinal_state=dfinal_state)
        x = arrays[name]
        gradients[name] = complex_step_gradient(complex_f, x, range(x.size)).reshape(x.shape)
    return gradients


def gradcheck_cell(cell, *, batch_size=3, num_steps=5, num_hiddens=4, sigma=0.5, activation=None,
                   device='cpu', seed=0, max_entries=100, step=STEP, tolerance=None,
                   impl='reference', method='auto', dropout_hidden=0.0, zoneout=0.0, zoneout_cell=0.0):
    """Check one recurrent cell's backward pass alone, against f = sum(Hs * dHs) + sum(final * dfinal).

    Random upstream gradients dHs (T, B, H) and dfinal (shaped as the state) enter at every
    step and through the final state, so every path of the backward pass is exercised, and
    without the 1/(B*T) of a mean loss the gradients are not small next to f.

    Args: cell, a name in cells.CELLS or a module with the interface of cells/__init__.py;
          sizes B, T, H; sigma, the std of the random parameters (biases too, so no path is
          zero); activation, one of the cell's (default its first); device 'cpu' or 'gpu';
          impl, for a cell named by a string: 'fast' or 'reference' (cells.implementation);
          method, tolerance as in gradcheck_model (the complex step runs on a fast path's
          reference cell, the same function); dropout_hidden, zoneout, zoneout_cell: the
          regularisers inside the recurrence (those in the cell's REGULARISERS), their masks
          drawn once from the seed.
    Returns: report rows (see `compare`): every cell parameter, then the dense input 'X'
        (T, B, H), then the state's arrays.

    Example, a cell of your own (see cells/__init__.py for the interface):
        import minirnn.gradcheck as gc
        rows = gc.gradcheck_cell(my_cell_module, num_hiddens=5)
        print(gc.format_report([('my cell', rows)]))
    """
    from .cells import CELLS, implementation
    checks.one_of('method', method, METHODS)
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

    reference = getattr(cell, 'reference', cell)       # a fast path's reference computes in complex
    names = state_names(state)
    inputs = {**params, 'X': X, **dict(zip(names, leaves(state)))}
    factors = {}           # the jitter's, made when first needed

    def complex_f_of(tensor):
        def complex_f(z, jitter=False):
            at = {**inputs, tensor: z}
            if jitter:
                if not factors:
                    factors.update(zip(inputs, jitter_factors(list(inputs.values()))))
                at = {k: v * factors[k] for k, v in at.items()}
            p, state_at = {k: at[k] for k in params}, unflatten(state, [at[name] for name in names])
            with complex_kept('the cell'):
                Hs, final, cache = reference.forward(p, at['X'], state_at, activation=activation,
                                                     **regularisers)
                value = complex((Hs * dHs).sum()) + sum(complex((s * g).sum())
                                                        for s, g in zip(leaves(final), leaves(dfinal)))
            if activation in SMOOTH:
                return value, []
            preactivations = getattr(reference, 'preactivations', None)
            return value, None if preactivations is None else [preactivations(p, cache)]
        return complex_f

    checked = [(k, grads.get(k), p) for k, p in params.items()]
    checked.append(('X', dX, X))
    checked += [(name, d, s) for name, d, s in zip(names, leaves(dstate), leaves(state))]
    missing = [k for k, g, _ in checked if g is None]
    if missing:
        raise ConfigError(f'the cell\'s backward returns no gradient for {", ".join(missing)}')
    sample_rng, f0 = make_rng(seed), f()
    return [compare(name, g, f, x, f0=f0, max_entries=max_entries, rng=sample_rng, step=step,
                    tolerance=tolerance, method=method,
                    complex_f=None if method == 'central' else complex_f_of(name))
            for name, g, x in checked]


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


def format_report(results, tolerance=None):
    """The table `cli.py gradcheck` prints, from [(label, rows)]: a line per tensor (with the method
    that settled it), the reason and worst entries under each FAIL or INCONCLUSIVE, and a summary
    line with the counts. tolerance: the one the check was given (None: each method's own)."""
    width = max([len('case')] + [len(label) for label, _ in results])
    names = max([len('tensor')] + [len(r['name']) for _, rows in results for r in rows])
    methods = max([len('method')] + [len(r.get('method', 'central')) for _, rows in results for r in rows])
    lines = [f'{"case":<{width}}  {"tensor":<{names}}  {"shape":<9} {"checked":>9} {"step h":>12} '
             f'{"abs err":>9} {"scale":>9} {"rel err":>9}  {"method":<{methods}}  verdict']
    sampled, settled = False, 0
    for label, rows in results:
        for r in rows:
            shape = 'x'.join(str(d) for d in r['shape'])
            checked = str(r['checked'])
            if r['checked'] < r['size']:
                checked, sampled = f'{r["checked"]}/{r["size"]}', True
            low, high = r['steps']
            step = f'{low:.0e}' if low == high else f'{low:.0e}..{high:.0e}'
            settled += r.get('complex_entries', 0)
            lines.append(f'{label:<{width}}  {r["name"]:<{names}}  {shape:<9} {checked:>9} {step:>12} '
                         f'{r["max_abs_error"]:>9.1e} {r["scale"]:>9.1e} {r["max_rel_error"]:>9.1e}  '
                         f'{r.get("method", "central"):<{methods}}  {r["verdict"]}')
            if r['verdict'] != 'OK':
                lines.append(f'    {r["verdict"]}: {r["reason"]}')
                lines += [f'    at {w["index"]}: analytic {w["analytic"]:.6e}, '
                          f'{w.get("method", "central")} {w["numeric"]:.6e} (h={w["step"]:.1e})'
                          for w in r['worst']]
    counts = count_verdicts(results)
    summary = ', '.join(f'{counts[v]} {v}' for v in VERDICTS)
    if counts['FAIL']:
        outcome = 'gradients FAILED: a FAIL is a disagreement beyond what rounding and the step explain, a bug'
    elif counts['INCONCLUSIVE']:
        outcome = 'no FAIL, but not every tensor could be settled (reasons above)'
    else:
        outcome = 'all gradients OK'
    rows = [r for _, rows in results for r in rows]
    central = any(r.get('method', 'central') != 'complex' for r in rows)
    if tolerance is not None or not settled:
        criterion = f'tolerance {TOLERANCE if tolerance is None else tolerance:.0e} x scale'
    elif central:
        criterion = f'tolerance {TOLERANCE:.0e} x scale for central differences, {COMPLEX_TOLERANCE:.0e} for the complex step'
    else:
        criterion = f'tolerance {COMPLEX_TOLERANCE:.0e} x scale for the complex step'
    if settled:
        criterion += f', which settled {settled} entries'
    lines.append(f'{summary} ({criterion}'
                 + ('; n/size: a seeded sample of the entries' if sampled else '') + f'): {outcome}')
    return '\n'.join(lines)


# --- `minirnn.gradcheck` is this module, and calling it checks a model --------------------------

class _CallableModule(types.ModuleType):
    """The stable public API calls `minirnn.gradcheck(model, X, Y, state)`; making the module
    callable keeps that working while `import minirnn.gradcheck as gc` gives the module."""

    def __call__(self, *args, **kwargs):
        return gradcheck_model(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
