"""Finite-difference gradient checks: is every hand-written gradient what the loss really does?

For a scalar function f of an array x, the central difference
    n_i = (f(x + h e_i) - f(x - h e_i)) / (2h)
approximates df/dx_i with error O(h^2). Each analytic entry a_i is compared with n_i by the
relative error |a - n| / max(floor, |a| + |n|). Checks run in float64: in float32 the
rounding error of f alone (~1e-7) swamps the differences.

Used by the tests and by `cli.py gradcheck` alike.
"""
import numpy as np

from .backend import make_rng, to_numpy
from .errors import ConfigError
from .tree import leaves, tree_map

STEP = 1e-5        # h: balances truncation (h^2) against rounding (1e-16 / h) in float64
FLOOR = 1e-10      # relative errors of entries below this size are measured against it
TOLERANCE = 1e-6   # what `cli.py gradcheck` and the tests accept


def sample_indices(size, max_entries, rng):
    """Every flat index when size <= max_entries, else a seeded sample of max_entries of them."""
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def numerical_gradient(f, x, indices, step=STEP):
    """Central differences of the scalar f() w.r.t. the entries `indices` of x (perturbed in place).

    Args: f, a function of no arguments returning a Python float and reading x;
          x, the array (NumPy or CuPy) to perturb; indices, flat indices into x.
    Returns: (len(indices),) float64 NumPy array. x is restored exactly afterwards.
    """
    flat = x.reshape(-1)            # a view: writes reach x
    out = np.empty(len(indices))
    for k, i in enumerate(indices):
        i = int(i)
        old = flat[i].item()
        flat[i] = old + step
        f_plus = f()
        flat[i] = old - step
        f_minus = f()
        flat[i] = old
        out[k] = (f_plus - f_minus) / (2 * step)
    return out


def relative_error(analytic, numeric, floor=FLOOR):
    """Elementwise |a - n| / max(floor, |a| + |n|) (NumPy arrays in, NumPy array out)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    return np.abs(analytic - numeric) / np.maximum(floor, np.abs(analytic) + np.abs(numeric))


def compare(name, analytic, f, x, *, max_entries=None, rng=None, step=STEP, tolerance=TOLERANCE):
    """Check one gradient array against central differences of f w.r.t. x.

    Returns a report row: {'name', 'shape', 'checked', 'max_rel_error', 'max_abs_error', 'ok'}.
    """
    rng = make_rng(0 if rng is None else rng)
    analytic = to_numpy(analytic).reshape(-1)
    indices = sample_indices(analytic.size, max_entries, rng)
    numeric = numerical_gradient(f, x, indices, step)
    a = analytic[indices]
    rel = relative_error(a, numeric)
    max_rel = float(rel.max()) if rel.size else 0.0
    return {'name': name, 'shape': tuple(int(d) for d in x.shape), 'checked': int(len(indices)),
            'max_rel_error': max_rel,
            'max_abs_error': float(np.abs(a - numeric).max()) if rel.size else 0.0,
            'ok': bool(max_rel <= tolerance)}


def gradcheck(model, X, Y, state=None, *, max_entries=100, seed=0, step=STEP, tolerance=TOLERANCE):
    """Check model.loss_and_grads against finite differences for every parameter and the state.

    Args: model, an RNNLM in float64; X, Y (B, T) token ids; state (B, H) or None for zeros;
          max_entries, how many entries per tensor (all of them when the tensor is smaller);
          seed, for the sample of entries.
    Returns: a list of report rows (see `compare`), one per parameter, then one for 'state'.
    """
    if model.dtype != np.float64:
        raise ConfigError('gradient checks need a float64 model (dtype="float64"): '
                          'float32 rounding is larger than the differences being measured')
    # a private copy of the state, perturbed in place below
    state = tree_map(lambda a: a.copy(), model.begin_state(len(X)) if state is None
                     else model._check_state('state', state, len(X)))
    result = model.gradients(X, Y, state)

    def f():
        return model.loss(X, Y, state)[0]

    rng = make_rng(seed)
    rows = [compare(name, result.grads[name], f, param, max_entries=max_entries, rng=rng,
                    step=step, tolerance=tolerance)
            for name, param in model.params.items()]
    state_leaves, dstate_leaves = leaves(state), leaves(result.dstate)
    for i, (s, ds) in enumerate(zip(state_leaves, dstate_leaves)):
        name = 'state' if len(state_leaves) == 1 else f'state[{i}]'
        rows.append(compare(name, ds, f, s, max_entries=max_entries, rng=rng,
                            step=step, tolerance=tolerance))
    return rows


# The default set run by `cli.py gradcheck`: small models that exercise every code path.
DEFAULT_CASES = (
    # label,                       model kwargs,                                    B, T, random h0
    ('tanh',                       dict(activation='tanh'),                         3, 5, False),
    ('relu',                       dict(activation='relu'),                         3, 5, False),
    ('embedding',                  dict(embed_dim=4),                               3, 5, False),
    ('batch 1',                    dict(),                                          1, 6, False),
    ('one step',                   dict(),                                          4, 1, True),
    ('non-zero initial state',     dict(),                                          3, 5, True),
)


def run_default_cases(device='cpu', vocab_size=7, num_hiddens=6, seed=0, cases=DEFAULT_CASES):
    """Build each default case as a float64 model with random data and check it.

    The weights are drawn with sigma=0.5 (not the book's 0.01) so the gradients are far from
    zero and the relative errors measure the math, not rounding.
    Returns: a list of (label, rows).
    """
    from .model import RNNLM
    results = []
    for i, (label, kwargs, batch_size, num_steps, random_state) in enumerate(cases):
        rng = make_rng(seed + i)
        model = RNNLM(vocab_size, num_hiddens, sigma=0.5, dtype='float64', device=device,
                      seed=seed + i, **kwargs)
        X = rng.integers(0, vocab_size, (batch_size, num_steps))
        Y = rng.integers(0, vocab_size, (batch_size, num_steps))
        state = rng.standard_normal((batch_size, num_hiddens)) * 0.5 if random_state else None
        results.append((label, gradcheck(model, X, Y, state, seed=seed + i)))
    return results


def format_report(results, tolerance=TOLERANCE):
    """The table `cli.py gradcheck` prints: one line per (case, tensor), OK or FAIL, and a summary."""
    lines = [f'{"case":<24} {"tensor":<7} {"shape":<10} {"checked":>7} {"max rel err":>12}  result']
    worst = 0.0
    for label, rows in results:
        for r in rows:
            worst = max(worst, r['max_rel_error'])
            shape = 'x'.join(str(d) for d in r['shape'])
            lines.append(f'{label:<24} {r["name"]:<7} {shape:<10} {r["checked"]:>7} '
                         f'{r["max_rel_error"]:>12.2e}  {"OK" if r["ok"] else "FAIL"}')
    failed = sum(not r['ok'] for _, rows in results for r in rows)
    lines.append(f'max relative error {worst:.2e} (tolerance {tolerance:.0e}): '
                 + ('all gradients OK' if not failed else f'{failed} FAILED'))
    return '\n'.join(lines)
