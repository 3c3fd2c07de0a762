"""Argument checks at the package's boundary, in one place: each returns the value or raises ConfigError.

Constructors and public functions call these once on what they are given, so the math that
follows can trust its inputs. The messages name the argument and what it got, so a user can
act on them; the CLI builds its argparse types from the same checks.
"""
import math
import numbers

import numpy as np

from .errors import ConfigError


def _is_int(value):
    # bool is an int in Python, but True is never a sensible size
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def integer(name, value, minimum=1, *, optional=False):
    """An int >= minimum (None too when optional); returned as a Python int."""
    if optional and value is None:
        return None
    if not _is_int(value) or value < minimum:
        wanted = 'a positive integer' if minimum == 1 else f'an integer >= {minimum}'
        raise ConfigError(f'{name} must be {wanted}{" or None" if optional else ""}, got {value!r}')
    return int(value)


def number(name, value, *, minimum=None, above=None, below=None, maximum=None, optional=False):
    """A finite real number with optional bounds (minimum <= value, above < value, value < below,
    value <= maximum)."""
    if optional and value is None:
        return None
    ok = _is_number(value) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (above is None or value > above) \
        and (below is None or value < below) and (maximum is None or value <= maximum)
    if not ok:
        bounds = [f'>= {minimum}' if minimum is not None else '', f'> {above}' if above is not None else '',
                  f'< {below}' if below is not None else '', f'<= {maximum}' if maximum is not None else '']
        wanted = ' and '.join(b for b in bounds if b)
        raise ConfigError(f'{name} must be a finite number{" " + wanted if wanted else ""}, got {value!r}')
    return float(value)


def one_of(name, value, choices):
    """value, when it is one of `choices` (a tuple or a dict's keys)."""
    if value not in choices:
        raise ConfigError(f'unknown {name} {value!r}; choose one of {", ".join(map(str, choices))}')
    return value
