"""The gate nonlinearity the gated cells (gru, lstm) share: the logistic sigmoid, computed in place.

    sigma(A) = 1 / (1 + exp(-A)),      and  tanh(A) = 2 sigma(2A) - 1

A step negates its gates' pre-activations in place (an LSTM also doubles its candidate's), so
one exp serves all of a step's gates: NumPy's float32 exp costs about 0.6 of its tanh, and
these passes are most of a step's elementwise time.
Derivatives are the cells' business: sigma' = sigma (1 - sigma), from the stored gate values.
"""
import numpy as np

from ...backend import xp_of


def sigmoid_of_negated_(S):
    """Replace S = -A (any shape; a view is fine) by sigma(A) = 1 / (1 + exp(S)), in place.

    Returns S. Three elementwise passes: exp, + 1, reciprocal. exp(S) overflows float32 above
    S = 88.7, to inf, and then 1 / (1 + inf) = 0 is the right value: NumPy's overflow warning
    is silenced instead of capping S first (a minimum() pass costs half an exp; measured).
    CuPy never warns, so the context changes nothing there.
    """
    xp = xp_of(S)
    with np.errstate(over='ignore'):
        xp.exp(S, out=S)
    S += 1
    xp.reciprocal(S, out=S)
    return S
