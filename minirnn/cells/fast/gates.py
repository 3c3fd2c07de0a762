"""The gate nonlinearity the gated cells (gru, lstm) share: the logistic sigmoid, computed in place.

    sigma(A) = 1 / (1 + exp(-A)),      and  tanh(A) = 2 sigma(2A) - 1

A step negates its gates' pre-activations in place (an LSTM also doubles its candidate's), so
one exp serves all of a step's gates: NumPy's float32 exp costs about 0.6 of its tanh, and
these passes are most of a step's elementwise time.
Derivatives are the cells' business: sigma' = sigma (1 - sigma), from the stored gate values.
"""
from ...backend import xp_of

# exp(S) overflows float32 above ~88.7 (to inf, with a RuntimeWarning, though 1 / (1 + inf) = 0
# is right); capping S at 80 keeps it finite: sigma(-80) = 1.8e-35 instead of ~1e-35, i.e. zero
EXP_CAP = 80.0


def sigmoid_of_negated_(S):
    """Replace S = -A (any shape; a view is fine) by sigma(A) = 1 / (1 + exp(S)), in place.

    Returns S. Four elementwise passes: cap, exp, + 1, reciprocal.
    """
    xp = xp_of(S)
    xp.minimum(S, EXP_CAP, out=S)
    xp.exp(S, out=S)
    S += 1
    xp.reciprocal(S, out=S)
    return S
