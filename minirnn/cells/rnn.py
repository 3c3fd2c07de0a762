"""The vanilla RNN cell (the book's): its recurrence and backpropagation through time (BPTT).

    A_t = XW_t + H_{t-1} W_hh + b_h        pre-activation
    H_t = phi(A_t),   t = 1..T,  phi = tanh (the book) or relu

XW_t = x_t W_xh is the input term, computed by the layer loop in model.py (a row gather for
one-hot tokens), so this module holds only what has to be a loop over time. The bias, phi'
and the weight gradients are done for all steps at once, outside the loop.

Legend: T = num_steps, B = batch_size, H = num_hiddens, D = input width (vocab or embed dim).
Time: steps t = 1..T as in the book. Per-step arrays (XW, Hs, dHs, dA) hold step t at index
t-1; the state buffer H (T+1, B, H) holds H_t at index t, with the initial state H_0 at 0.
"""
from typing import NamedTuple

from ..backend import xp_of
from ..checks import one_of

GATES = 1                     # XW carries one block of H columns per step
ACTIVATIONS = ('tanh', 'relu')
INPUT_WEIGHTS = ('W_xh',)     # multiplied by the layer's input to make XW (model.py)
RECURRENT_WEIGHTS = ('W_hh',)


def init_params(rng, input_dim, num_hiddens, sigma, xp, dtype):
    """The book's initialisation: weights ~ N(0, sigma^2), bias zero.

    Drawn on the host from `rng` (a numpy Generator) so CPU and GPU runs start identically.
    Returns {'W_xh': (D, H), 'W_hh': (H, H), 'b_h': (H,)} as arrays of module `xp`.
    """
    def normal(*shape):
        return xp.asarray((rng.standard_normal(shape) * sigma).astype(dtype))
    return {'W_xh': normal(input_dim, num_hiddens),
            'W_hh': normal(num_hiddens, num_hiddens),
            'b_h': xp.zeros(num_hiddens, dtype=dtype)}


def begin_state(batch_size, num_hiddens, xp, dtype):
    """The state before the first step: H_0 = zeros (B, H)."""
    return xp.zeros((batch_size, num_hiddens), dtype=dtype)


def hidden(state):
    """The part of the state the layer outputs: H itself."""
    return state


class RNNCache(NamedTuple):
    H: object           # (T+1, B, H) hidden states, H[t] = H_t, H[0] = H_0
    activation: str     # 'tanh' or 'relu', to pick phi' in backward


def forward(params, XW, state, *, activation='tanh'):
    """Run the recurrence over all T steps.

    Args: params with W_hh (H, H), b_h (H,); XW (T, B, H) input terms; state H_0 (B, H);
          activation one of ACTIVATIONS.
    Returns: Hs (T, B, H) the states H_1..H_T (a view into the cache), the final state H_T
             (B, H) (a copy, safe to keep), cache.
    """
    one_of('activation', activation, ACTIVATIONS)
    xp = xp_of(XW)
    W_hh = params['W_hh']
    num_steps = XW.shape[0]
    H = xp.empty((num_steps + 1,) + state.shape, dtype=XW.dtype)   # (T+1, B, H), allocated once
    H[0] = state
    XWb = XW + params['b_h']               # (T, B, H): the bias added once, not once per step
    for t in range(1, num_steps + 1):
        # H_t = phi(XWb_t + H_{t-1} W_hh), computed in place in the state buffer
        xp.matmul(H[t - 1], W_hh, out=H[t])
        H[t] += XWb[t - 1]
        if activation == 'tanh':
            xp.tanh(H[t], out=H[t])
        else:
            xp.maximum(H[t], 0, out=H[t])
    return H[1:], H[num_steps].copy(), RNNCache(H, activation)


def backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None):
    """BPTT: the gradients of forward's inputs, given dL/dH_t from above for every step.

    Only the recurrence is a loop, from t = T down to 1:
        dH_t = dHs_t + c_{t+1} dA_{t+1} W_hh^T     the total gradient reaching H_t
        dA_t = dH_t * phi'(A_t)
    where the term from step T+1 is dfinal_state (zero when None), and c_t = carry[t-1]
    (1 when carry is None). Then, for all steps at once:
        dW_hh = sum_t H_{t-1}^T dA_t,   db_h = sum_t dA_t,   dXW_t = dA_t,
        dstate = c_1 dA_1 W_hh^T        the gradient w.r.t. H_0.

    Args: dHs (T, B, H) dL/dH_t from the layer above (the output layer or the next layer);
          dfinal_state (B, H) or None: a gradient entering through H_T from beyond the
              sequence (BPTT across batches);
          carry: None, or T numbers; carry[t-1] scales the gradient passed from step t back
              to H_{t-1} (0 cuts it: truncation; 1/p reweights: randomized truncation);
          dH_out: None, or a (T, B, H) array that receives every dH_t (for probes).
    Returns: grads {'W_hh': (H, H), 'b_h': (H,)}, dXW (T, B, H), dstate (B, H).
    """
    xp = xp_of(dHs)
    H = cache.H
    num_steps, batch_size, num_hiddens = dHs.shape
    # phi'(A_t) from the outputs, for all steps before the loop:
    # tanh' = 1 - tanh^2, relu' = [H_t > 0]; no pre-activations need to be stored.
    if cache.activation == 'tanh':
        dphi = 1 - H[1:] * H[1:]                                  # (T, B, H)
    else:
        dphi = (H[1:] > 0).astype(dHs.dtype)                      # (T, B, H)
    W_hh_T = params['W_hh'].T
    dA = xp.empty_like(dHs)                                       # (T, B, H)
    dH = dA if dH_out is None else dH_out   # where dH_t is formed: in dA itself unless kept
    if dfinal_state is None:
        dH_next = xp.zeros((batch_size, num_hiddens), dtype=dHs.dtype)
    else:
        dH_next = xp.array(dfinal_state, dtype=dHs.dtype)         # a copy: written in place below
    for t in range(num_steps, 0, -1):
        xp.add(dHs[t - 1], dH_next, out=dH[t - 1])      # dH_t: from above and from step t+1
        xp.multiply(dH[t - 1], dphi[t - 1], out=dA[t - 1])   # through phi
        xp.matmul(dA[t - 1], W_hh_T, out=dH_next)       # on to H_{t-1}
        if carry is not None and carry[t - 1] != 1:
            dH_next *= carry[t - 1]
    # weight gradients as single GEMMs over all T*B rows
    H_prev = H[:-1].reshape(num_steps * batch_size, num_hiddens)  # (T*B, H) = H_0..H_{T-1}
    dA2 = dA.reshape(num_steps * batch_size, num_hiddens)         # (T*B, H)
    grads = {'W_hh': H_prev.T @ dA2, 'b_h': dA2.sum(axis=0)}
    return grads, dA, dH_next
