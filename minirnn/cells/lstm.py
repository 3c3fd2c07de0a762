"""Long short-term memory (the book's "Long Short-Term Memory (LSTM)" from scratch) and its BPTT.

    I_t  = sigma(X_t W_xi + H_{t-1} W_hi + b_i)      input gate
    F_t  = sigma(X_t W_xf + H_{t-1} W_hf + b_f)      forget gate
    O_t  = sigma(X_t W_xo + H_{t-1} W_ho + b_o)      output gate
    C~_t = tanh(X_t W_xc + H_{t-1} W_hc + b_c)       candidate memory
    C_t  = F_t * C_{t-1} + I_t * C~_t                memory cell
    H_t  = O_t * tanh(C_t),    t = 1..T

The state is the pair (H, C); A_i, A_f, A_o, A_c name the arguments of sigma and tanh above.
This is the reference: each equation one line of `forward`,
each line of `backward` under the forward line it inverts. The fast path (fast/lstm.py) is
tested against it. The input terms X_t W_x* are made for all steps before the loop, the
weight gradients after it.

Two regularisers act inside the recurrence, in lines marked [variational dropout] and
[zoneout] (both off by default, which leaves the book's lines alone): the four recurrent
products read H_{t-1} * m, m (B, H) one mask per sequence (Gal & Ghahramani 2016); and
zoneout (Krueger et al. 2016) mixes each of C_t and H_t, as the book computes them, with its
previous value,

    C_t <- M^c_t * C_{t-1} + (1 - M^c_t) * C_t,     H_t <- M^h_t * H_{t-1} + (1 - M^h_t) * H_t,

M_t (B, H) per step 1 where a unit keeps its value (the probability itself in evaluation),
with separate masks and rates for C and H. As in the paper, H_t's new value is O_t * tanh of
C_t's new value (before C's mix).

Legend: T = num_steps, B = batch_size, H = num_hiddens, D = input width. Steps t = 1..T;
per-step arrays (I, F, O, C_tilde, dA_*) hold step t at index t-1; the state buffers H, C
(T+1, B, H) hold H_t, C_t at index t, the initial state at index 0.
"""
from typing import NamedTuple

from .. import layers
from ..backend import xp_of
from ..checks import one_of
from .sigmoid import sigmoid

ACTIVATIONS = ('tanh',)       # the candidate's and the output's; the gates are sigmoids
INPUT_WEIGHTS = ('W_xi', 'W_xf', 'W_xo', 'W_xc')
RECURRENT_WEIGHTS = ('W_hi', 'W_hf', 'W_ho', 'W_hc')
SUFFIXES = ('i', 'f', 'o', 'c')  # the four (W_x*, W_h*, b_*) triples, in the book's order
# what forward takes beyond the book (model.py draws them); zoneout_cell zones C, the state's second array
REGULARISERS = ('dropout_hidden', 'zoneout', 'zoneout_cell')


def init_params(init, input_dim, num_hiddens):
    """The layer's parameters in the book's order, as `init` (initialization.Init) draws them:
    the book's policy gives every weight ~ N(0, sigma^2) and every bias zero.

    torch-rnn (after Jozefowicz et al., 2015) starts the forget bias b_f at 1, so that F ~ 0.73
    and the memory is kept from the first step; we keep the book's zero (F = 0.5 at first),
    because minirnn reproduces the book's runs and its numbers.
    Returns W_xi (D, H), W_hi (H, H), b_i (H,), then the same for f, o, c.
    """
    params = {}
    for gate in SUFFIXES:
        params[f'W_x{gate}'] = init.weight(input_dim, num_hiddens)
        params[f'W_h{gate}'] = init.weight(num_hiddens, num_hiddens)
        params[f'b_{gate}'] = init.bias(num_hiddens)
    return params


def begin_state(batch_size, num_hiddens, xp, dtype):
    """The state before the first step: (H_0, C_0), both zeros (B, H)."""
    return (xp.zeros((batch_size, num_hiddens), dtype=dtype),
            xp.zeros((batch_size, num_hiddens), dtype=dtype))


def hidden(state):
    """The part of the state the layer outputs: H of (H, C)."""
    return state[0]


class LSTMCache(NamedTuple):
    X: dict             # gate -> layers.InputCache of X_t W_x<gate>
    H: object           # (T+1, B, H) hidden states, H[t] = H_t, H[0] = H_0
    C: object           # (T+1, B, H) memory cells, C[t] = C_t, C[0] = C_0
    I: object           # (T, B, H) input gates
    F: object           # (T, B, H) forget gates
    O: object           # (T, B, H) output gates
    C_tilde: object     # (T, B, H) candidate memories
    C_new: object = None        # [zoneout] (T, B, H) C_t before its mix, or None (C_t itself)
    hidden_mask: object = None  # [variational dropout] m (B, H), or None
    zoneout: object = None      # [zoneout] (M^h, M^c), each (T, B, H), (T, 1, 1) or None; or None


def forward(params, X, state, *, activation='tanh', hidden_mask=None, zoneout=None):
    """Run the LSTM over all T steps (the module docstring's six equations).

    Args: params W_x* (D, H), W_h* (H, H), b_* (H,) for * = i, f, o, c; X the layer's input,
          token ids (T, B) or dense (T, B, D); state (H_0, C_0), each (B, H); activation 'tanh';
          hidden_mask: None or m (B, H); zoneout: None, or (M^h, M^c) shaped as the state, each
              None (not zoned), (T, B, H) (training) or (T, 1, 1) holding p (evaluation).
    Returns: Hs (T, B, H) the states H_1..H_T (a view into the cache), the final state
             (H_T, C_T) (copies, safe to keep), cache.
    """
    one_of('activation', activation, ACTIVATIONS)
    p = params
    xp = xp_of(p['W_hi'])
    # the input terms X_t W_x* of all steps at once, (T, B, H) each
    (XW_xi, XW_xf, XW_xo, XW_xc), x_caches = zip(*(layers.input_forward(X, p[f'W_x{g}']) for g in SUFFIXES))
    num_steps = XW_xi.shape[0]
    # the states' dtype is that of every input together (complex when any is: complex steps)
    dtype = xp.result_type(XW_xi, XW_xf, XW_xo, XW_xc, *state, *p.values())
    H = xp.empty((num_steps + 1,) + state[0].shape, dtype=dtype)
    C = xp.empty_like(H)
    I, F, O, C_tilde = (xp.empty_like(H[1:]) for _ in range(4))
    zone_h, zone_c = (None, None) if zoneout is None else zoneout
    C_new = None if zone_c is None else xp.empty_like(I)              # [zoneout] C_t before its mix
    H[0], C[0] = state
    for t in range(1, num_steps + 1):
        s = t - 1                                                         # step t's index
        H_prev = H[t - 1] if hidden_mask is None else H[t - 1] * hidden_mask   # [variational dropout]
        I[s] = sigmoid(XW_xi[s] + H_prev @ p['W_hi'] + p['b_i'])
        F[s] = sigmoid(XW_xf[s] + H_prev @ p['W_hf'] + p['b_f'])
        O[s] = sigmoid(XW_xo[s] + H_prev @ p['W_ho'] + p['b_o'])
        C_tilde[s] = xp.tanh(XW_xc[s] + H_prev @ p['W_hc'] + p['b_c'])
        C[t] = F[s] * C[t - 1] + I[s] * C_tilde[s]
        H[t] = O[s] * xp.tanh(C[t])
        if zone_c is not None:                                                  # [zoneout]
            C_new[s] = C[t]
            C[t] = zone_c[s] * C[t - 1] + (1 - zone_c[s]) * C_new[s]
        if zone_h is not None:                                                  # [zoneout]
            H[t] = zone_h[s] * H[t - 1] + (1 - zone_h[s]) * H[t]
    cache = LSTMCache(dict(zip(SUFFIXES, x_caches)), H, C, I, F, O, C_tilde, C_new, hidden_mask, zoneout)
    return H[1:], (H[num_steps].copy(), C[num_steps].copy()), cache


def backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None):
    """BPTT through the LSTM: the gradients of forward's inputs, given dL/dH_t from above.

    A_i, A_f, A_o, A_c are the pre-activations of I, F, O, C~. Two messages flow back, one
    for H and one for C; the loop runs from t = T down to 1. C's message passes only through
    the forget gate (dC_{t-1} = dC_t * F_t), H's through all four pre-activations. Then, for
    all steps at once:
        dW_h* = sum_t H_{t-1}^T dA_*,   db_* = sum_t dA_*,   dW_x* and dX from dA_* through X_t W_x*.

    Args: dHs (T, B, H) dL/dH_t from the layer above; dfinal_state (dH_T, dC_T) or None (zeros);
          carry: None or T numbers, carry[t-1] scales both messages step t sends back;
          dH_out: None or a (T, B, H) array that receives every dH_t.
    Returns: grads (every parameter, shaped as it), dX (T, B, D) (None for token ids),
             dstate (dH_0, dC_0), each (B, H).
    """
    xp = xp_of(dHs)
    p, H, C, I, F, O, C_tilde = params, cache.H, cache.C, cache.I, cache.F, cache.O, cache.C_tilde
    mask = cache.hidden_mask
    zone_h, zone_c = (None, None) if cache.zoneout is None else cache.zoneout
    num_steps, batch_size, num_hiddens = dHs.shape
    # (T, B, H): recomputed, one pass, instead of kept; of C_t's new value under zoneout
    tanh_C = xp.tanh(C[1:] if cache.C_new is None else cache.C_new)
    dA_i, dA_f, dA_o, dA_c = (xp.empty_like(dHs) for _ in range(4))    # (T, B, H) each
    if dfinal_state is None:
        dH_next, dC_next = xp.zeros_like(dHs[0]), xp.zeros_like(dHs[0])
    else:
        dH_next, dC_next = (xp.asarray(d, dtype=dHs.dtype) for d in dfinal_state)
    for t in range(num_steps, 0, -1):
        s = t - 1
        # the total gradient reaching H_t: from the layer above and from step t+1
        dH = dHs[s] + dH_next
        if dH_out is not None:
            dH_out[s] = dH
        if zone_h is not None:    # [zoneout] H_t = M^h_t * H_{t-1} + (1 - M^h_t) * O_t * tanh(C_t)
            dH_kept = dH * zone_h[s]
            dH = dH * (1 - zone_h[s])
        if zone_c is not None:    # [zoneout] C_t = M^c_t * C_{t-1} + (1 - M^c_t) * (the book's C_t)
            dC_kept = dC_next * zone_c[s]
            dC_next = dC_next * (1 - zone_c[s])
        # H_t = O_t * tanh(C_t)
        dO = dH * tanh_C[s]
        dC = dC_next + dH * O[s] * (1 - tanh_C[s] ** 2)
        # C_t = F_t * C_{t-1} + I_t * C~_t
        dF = dC * C[t - 1]
        dI = dC * C_tilde[s]
        dC_tilde = dC * I[s]
        dC_prev = dC * F[s]
        # I_t, F_t, O_t = sigma(A_*):  sigma' = sigma (1 - sigma)
        dA_i[s] = dI * I[s] * (1 - I[s])
        dA_f[s] = dF * F[s] * (1 - F[s])
        dA_o[s] = dO * O[s] * (1 - O[s])
        # C~_t = tanh(A_c):  tanh' = 1 - tanh^2
        dA_c[s] = dC_tilde * (1 - C_tilde[s] ** 2)
        # A_* = X_t W_x* + H_{t-1} W_h* + b_*
        dH_prev = (dA_i[s] @ p['W_hi'].T + dA_f[s] @ p['W_hf'].T
                   + dA_o[s] @ p['W_ho'].T + dA_c[s] @ p['W_hc'].T)
        if mask is not None:      # [variational dropout] the four products read H_{t-1} * m
            dH_prev = dH_prev * mask
        if zone_h is not None:    # [zoneout] the units that kept their values
            dH_prev = dH_prev + dH_kept
        if zone_c is not None:
            dC_prev = dC_prev + dC_kept
        if carry is not None and carry[s] != 1:
            dH_prev *= carry[s]
            dC_prev *= carry[s]
        dH_next, dC_next = dH_prev, dC_prev
    # the weights are shared by all steps: their gradients add up over t, one GEMM each
    rows = num_steps * batch_size
    H_read = H[:-1] if mask is None else H[:-1] * mask                  # [variational dropout]
    H_prev = H_read.reshape(rows, num_hiddens)                          # (T*B, H) = H_0..H_{T-1}
    grads, dX = {}, None
    for gate, dA in zip(SUFFIXES, (dA_i, dA_f, dA_o, dA_c)):
        grads[f'W_h{gate}'] = H_prev.T @ dA.reshape(rows, num_hiddens)
        grads[f'b_{gate}'] = dA.sum(axis=(0, 1))
        dx, grads[f'W_x{gate}'] = layers.input_backward(dA, cache.X[gate])
        dX = layers.add_input_gradients(dX, dx)
    return {k: grads[k] for k in params}, dX, (dH_next, dC_next)
