"""The gates' nonlinearity, the logistic sigmoid: sigma(A) = 1 / (1 + exp(-A)).

Written so that exp never overflows: with E = exp(-|A|), sigma(A) = 1 / (1 + E) for A >= 0
and E / (1 + E) for A < 0 (multiply the book's form by exp(A) / exp(A)). Both are accurate to
about one unit in the last place at either end, where 1 / (1 + exp(-A)) would overflow float32 below A = -88.7 and
(1 + tanh(A / 2)) / 2 would lose the relative precision of tiny gates. The sign test reads the
real part, so the same line serves complex inputs. Its derivative, sigma' = sigma (1 - sigma),
is taken from the stored gate values.
"""
from ..backend import xp_of


def sigmoid(A):
    """sigma(A), elementwise, any shape; a new array of A's dtype."""
    xp = xp_of(A)
    positive = A.real >= 0
    E = xp.exp(xp.where(positive, -A, A))          # exp(-|A|): in (0, 1], never overflows
    return xp.where(positive, 1, E) / (1 + E)
