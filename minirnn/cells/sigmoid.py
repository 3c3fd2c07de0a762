"""The gates' nonlinearity, the logistic sigmoid: sigma(A) = 1 / (1 + exp(-A)).

Computed as (1 + tanh(A / 2)) / 2, the same function: exp(-A) overflows float32 for
A < -88.7 (to inf, with a RuntimeWarning, though the result 0 would be right), tanh never
does. Its derivative, sigma' = sigma (1 - sigma), is taken from the stored gate values.
"""
from ..backend import xp_of


def sigmoid(A):
    """sigma(A), elementwise, any shape; a new array."""
    xp = xp_of(A)
    return (xp.tanh(A * 0.5) + 1) * 0.5
