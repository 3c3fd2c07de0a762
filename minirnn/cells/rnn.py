"""The vanilla RNN recurrence and its backpropagation through time (BPTT).

    H_t = phi(XW_t + H_{t-1} W_hh + b_h),   t = 1..T,   phi = tanh or relu

XW_t is the input term x_t W_xh, computed by the model (a row gather for one-hot tokens), so
this module holds only what has to be a loop over time. Everything that can be done for all
steps at once (the bias, phi', the weight gradients) is done outside the loop.

Legend: T = num_steps, B = batch_size, H = num_hiddens, D = input width (vocab or embed dim).
Buffers are time-major: H[t] is a (B, H) block, contiguous for the per-step GEMM.
"""
from typing import NamedTuple

from ..backend import xp_of
from ..errors import ConfigError

ACTIVATIONS = ('tanh', 'relu')
GATES = 1   # XW carries one block of H columns per step (a GRU would have 3, an LSTM 4)


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


class RNNCache(NamedTuple):
    H: object           # (T+1, B, H) hidden states, H[0] = h0, H[t] = H_t
    activation: str     # 'tanh' or 'relu', to pick phi' in backward


def forward(params, XW, h0, *, activation='tanh'):
    """Run the recurrence over all T steps.

    Args: params with W_hh (H, H), b_h (H,); XW (T, B, H) input terms; h0 (B, H) initial state.
    Returns: Hs (T, B, H) the states H_1..H_T (a view into the cache), cache.
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f'unknown activation {activation!r}; choose tanh or relu')
    xp = xp_of(XW)
    W_hh = params['W_hh']
    num_steps = XW.shape[0]
    H = xp.empty((num_steps + 1,) + h0.shape, dtype=XW.dtype)   # (T+1, B, H), allocated once
    H[0] = h0
    Z = XW + params['b_h']              # (T, B, H) the bias added once, not once per step
    for t in range(num_steps):
        # H[t+1] = phi(Z_t + H_t W_hh), computed in place in the state buffer
        xp.matmul(H[t], W_hh, out=H[t + 1])
        H[t + 1] += Z[t]
        if activation == 'tanh':
            xp.tanh(H[t + 1], out=H[t + 1])
        else:
            xp.maximum(H[t + 1], 0, out=H[t + 1])
    return H[1:], RNNCache(H, activation)


def backward(params, dHs, cache):
    """BPTT: the gradients of forward's inputs given dL/dH_t for every step.

    Only the recurrence is a loop:  dZ_t = (dH_t + dZ_{t+1} W_hh^T) * phi'(Z_t).
    Then, for all steps at once:    dW_hh = sum_t H_{t-1}^T dZ_t,  db_h = sum_t dZ_t.

    Args: dHs (T, B, H) gradient of the loss w.r.t. each H_t from the layers above.
    Returns: grads {'W_hh': (H, H), 'b_h': (H,)}, dXW (T, B, H), dh0 (B, H).
    """
    xp = xp_of(dHs)
    H = cache.H
    num_steps, batch_size, num_hiddens = dHs.shape
    # phi'(Z_t) from the outputs, for all steps before the loop:
    # tanh' = 1 - tanh^2, relu' = [H_t > 0]; no pre-activations need to be stored.
    if cache.activation == 'tanh':
        dphi = 1 - H[1:] * H[1:]                                  # (T, B, H)
    else:
        dphi = (H[1:] > 0).astype(dHs.dtype)                      # (T, B, H)
    W_hh_T = params['W_hh'].T
    dZ = xp.empty_like(dHs)                                       # (T, B, H)
    dH_next = xp.zeros((batch_size, num_hiddens), dtype=dHs.dtype)  # dZ_{t+1} W_hh^T, 0 past T
    for t in reversed(range(num_steps)):
        xp.add(dHs[t], dH_next, out=dZ[t])      # total gradient reaching H_t
        dZ[t] *= dphi[t]                        # through phi
        xp.matmul(dZ[t], W_hh_T, out=dH_next)   # on to H_{t-1}
    # weight gradients as single GEMMs over all T*B rows
    H_prev = H[:-1].reshape(num_steps * batch_size, num_hiddens)  # (T*B, H) = H_0..H_{T-1}
    dZ2 = dZ.reshape(num_steps * batch_size, num_hiddens)         # (T*B, H)
    grads = {'W_hh': H_prev.T @ dZ2, 'b_h': dZ2.sum(axis=0)}
    return grads, dZ, dH_next
