"""The gate nonlinearity the gated cells (gru, lstm) share: the logistic sigmoid, computed in place.

    sigma(a) = 1 / (1 + exp(-a)) = (1 + tanh(a / 2)) / 2

The tanh form is what runs: it never overflows (exp(-a) does for a < -88 in float32, with a
RuntimeWarning), and it costs the same four elementwise passes. Derivatives are the cells'
business: sigma'(a) = sigma(a) (1 - sigma(a)), formed from the stored gate values.
"""
from ..backend import xp_of


def sigmoid_(a):
    """Replace a (any shape, a view is fine) by sigma(a), in place; returns a."""
    xp = xp_of(a)
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a
