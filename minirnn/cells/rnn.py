"""The vanilla RNN cell (the book's "Recurrent Neural Network Implementation from Scratch").

    H_t = phi(A_t),   A_t = X_t W_xh + H_{t-1} W_hh + b_h,    t = 1..T,    phi = tanh (the book) or relu

This is the reference: the book's equation as code, and what the fast path (fast/rnn.py) is
tested against. Everything that is not recurrent is done for all steps at once: the input
term X_t W_xh before the loop (a row gather for token ids), the weight gradients after it.

Two regularisers act inside the recurrence, each in lines marked [variational dropout] or
[zoneout] beside the book's (both off by default, which leaves the book's lines alone):

    [variational dropout]  A_t = X_t W_xh + (H_{t-1} * m) W_hh + b_h    m (B, H): one mask per
                           sequence, the same at every step (Gal & Ghahramani 2016)
    [zoneout]              H_t = M_t * H_{t-1} + (1 - M_t) * phi(A_t)   M_t (B, H) per step: 1
                           where a unit keeps its value (Krueger et al. 2016); in evaluation
                           M_t is the probability p itself

Legend: T = num_steps, B = batch_size, H = num_hiddens, D = input width (vocab or embed dim).
Steps t = 1..T as in the book. Per-step arrays (Hs, dHs, dA) hold step t at index t-1; the
state buffer H (T+1, B, H) holds H_t at index t, with the initial state H_0 at index 0.
"""
from typing import NamedTuple

from .. import layers
from ..backend import xp_of
from ..checks import one_of

ACTIVATIONS = ('tanh', 'relu')
INPUT_WEIGHTS = ('W_xh',)     # multiplied by the layer's input X_t
RECURRENT_WEIGHTS = ('W_hh',)  # multiplied by the previous state H_{t-1}
REGULARISERS = ('dropout_hidden', 'zoneout')   # what forward takes beyond the book (model.py draws them)


def init_params(init, input_dim, num_hiddens):
    """The layer's parameters, as `init` (initialization.Init) draws them: the book's policy
    gives weights ~ N(0, sigma^2) and a zero bias.

    Returns {'W_xh': (D, H), 'W_hh': (H, H), 'b_h': (H,)} (D: the layer's input width).
    """
    return {'W_xh': init.weight(input_dim, num_hiddens),
            'W_hh': init.weight(num_hiddens, num_hiddens),
            'b_h': init.bias(num_hiddens)}


def begin_state(batch_size, num_hiddens, xp, dtype):
    """The state before the first step: H_0 = zeros (B, H)."""
    return xp.zeros((batch_size, num_hiddens), dtype=dtype)


def hidden(state):
    """The part of the state the layer outputs: H itself."""
    return state


class RNNCache(NamedTuple):
    X: object           # layers.InputCache of X_t W_xh
    H: object           # (T+1, B, H) hidden states, H[t] = H_t, H[0] = H_0
    activation: str     # 'tanh' or 'relu', to pick phi' in backward
    H_new: object = None        # [zoneout] (T+1, B, H): phi(A_t) before the mix at index t; None: H
    hidden_mask: object = None  # [variational dropout] m (B, H), or None
    zoneout: object = None      # [zoneout] M (T, B, H) (or (T, 1, 1) holding p), or None


def forward(params, X, state, *, activation='tanh', hidden_mask=None, zoneout=None):
    """Run the recurrence over all T steps.

    Args: params W_xh (D, H), W_hh (H, H), b_h (H,); X the layer's input, token ids (T, B)
          or dense (T, B, D); state H_0 (B, H); activation one of ACTIVATIONS;
          hidden_mask: None, or m (B, H), the variational dropout mask on H_{t-1} (module
              docstring);
          zoneout: None, or M (T, B, H), 1 where a unit keeps H_{t-1} at step t (training),
              or (T, 1, 1) filled with the probability p (evaluation).
    Returns: Hs (T, B, H) the states H_1..H_T (a view into the cache), the final state H_T
             (B, H) (a copy, safe to keep), cache.
    """
    one_of('activation', activation, ACTIVATIONS)
    W_hh, b_h = params['W_hh'], params['b_h']
    xp = xp_of(W_hh)
    phi = xp.tanh if activation == 'tanh' else (lambda A: xp.maximum(A, 0))
    XW_xh, x_cache = layers.input_forward(X, params['W_xh'])          # (T, B, H): X_t W_xh
    num_steps = XW_xh.shape[0]
    # the states' dtype is that of every input together (complex when any is: complex steps)
    dtype = xp.result_type(XW_xh, state, W_hh, b_h)
    H = xp.empty((num_steps + 1,) + state.shape, dtype=dtype)         # (T+1, B, H)
    H_new = H if zoneout is None else xp.empty_like(H)                # [zoneout] phi(A_t) kept apart
    H[0] = state
    for t in range(1, num_steps + 1):
        H_prev = H[t - 1] if hidden_mask is None else H[t - 1] * hidden_mask   # [variational dropout]
        H_new[t] = phi(XW_xh[t - 1] + H_prev @ W_hh + b_h)
        if zoneout is not None:                                                 # [zoneout]
            H[t] = zoneout[t - 1] * H[t - 1] + (1 - zoneout[t - 1]) * H_new[t]
    cache = RNNCache(x_cache, H, activation, None if zoneout is None else H_new, hidden_mask, zoneout)
    return H[1:], H[num_steps].copy(), cache


def preactivations(params, cache):
    """A_t = X_t W_xh + H_{t-1} W_hh + b_h for every step, (T, B, H), recomputed from forward's cache.

    relu is not differentiable where A_t = 0: the gradient checks read A (complex under a complex
    step, Im A / h being dA/dx along it) to tell how near the step passes a kink.
    """
    xp = xp_of(cache.H)
    inner, W_xh = cache.X.inner, params['W_xh']
    # the input term again: a row gather for token ids, a product for a dense input (T*B, D)
    XW_xh = xp.take(W_xh, inner.ids, axis=0) if cache.X.one_hot else inner.x @ W_xh
    return XW_xh.reshape(cache.H[1:].shape) + cache.H[:-1] @ params['W_hh'] + params['b_h']


def backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None):
    """BPTT: the gradients of forward's inputs, given dL/dH_t from above for every step.

    Only the recurrence is a loop, from t = T down to 1; then, for all steps at once:
        dW_hh = sum_t H_{t-1}^T dA_t,   db_h = sum_t dA_t,   dW_xh, dX from dA through X_t W_xh.

    Args: dHs (T, B, H) dL/dH_t from the layer above (the output layer or the next layer);
          dfinal_state (B, H) or None: a gradient entering through H_T from beyond the
              sequence (BPTT across batches; None is zero);
          carry: None, or T numbers; carry[t-1] scales the gradient passed from step t back
              to H_{t-1} (0 cuts it: truncation; 1/p reweights: randomized truncation);
          dH_out: None, or a (T, B, H) array that receives every dH_t (for probes).
    Returns: grads {'W_xh': (D, H), 'W_hh': (H, H), 'b_h': (H,)}, dX (T, B, D) (None for
             token ids), dstate (B, H) = dL/dH_0.
    """
    xp = xp_of(dHs)
    H, W_hh = cache.H, params['W_hh']
    H_new = H if cache.H_new is None else cache.H_new                 # phi(A_t), at index t
    mask, zone = cache.hidden_mask, cache.zoneout
    num_steps, batch_size, num_hiddens = dHs.shape
    dA = xp.empty_like(dHs)                       # (T, B, H) gradients of the pre-activations
    dH_next = xp.zeros_like(dHs[0]) if dfinal_state is None else xp.asarray(dfinal_state, dtype=dHs.dtype)
    for t in range(num_steps, 0, -1):
        # the total gradient reaching H_t: from the layer above and from step t+1
        dH = dHs[t - 1] + dH_next
        if dH_out is not None:
            dH_out[t - 1] = dH
        if zone is not None:      # [zoneout] H_t = M_t * H_{t-1} + (1 - M_t) * phi(A_t)
            dH_kept = dH * zone[t - 1]
            dH = dH * (1 - zone[t - 1])
        # H_t = phi(A_t):  tanh' = 1 - tanh^2,  relu' = [A_t > 0] = [H_t > 0]
        if cache.activation == 'tanh':
            dA[t - 1] = dH * (1 - H_new[t] ** 2)
        else:
            dA[t - 1] = dH * (H_new[t] > 0)
        # A_t = X_t W_xh + H_{t-1} W_hh + b_h
        dH_next = dA[t - 1] @ W_hh.T
        if mask is not None:      # [variational dropout] W_hh read H_{t-1} * m
            dH_next = dH_next * mask
        if zone is not None:      # [zoneout] the units that kept H_{t-1}
            dH_next = dH_next + dH_kept
        if carry is not None and carry[t - 1] != 1:
            dH_next *= carry[t - 1]
    # the weights are shared by all steps: their gradients add up over t, one GEMM each
    rows = num_steps * batch_size
    H_read = H[:-1] if mask is None else H[:-1] * mask                 # [variational dropout]
    H_prev = H_read.reshape(rows, num_hiddens)                         # (T*B, H) = H_0..H_{T-1}
    grads = {'W_hh': H_prev.T @ dA.reshape(rows, num_hiddens), 'b_h': dA.sum(axis=(0, 1))}
    dX, grads['W_xh'] = layers.input_backward(dA, cache.X)
    return {k: grads[k] for k in params}, dX, dH_next
