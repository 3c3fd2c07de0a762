"""The gated recurrent unit (the book's "Gated Recurrent Units (GRU)" from scratch) and its BPTT.

    Z_t  = sigma(X_t W_xz + H_{t-1} W_hz + b_z)              update gate
    R_t  = sigma(X_t W_xr + H_{t-1} W_hr + b_r)              reset gate
    H~_t = tanh(X_t W_xh + (R_t * H_{t-1}) W_hh + b_h)       candidate state
    H_t  = Z_t * H_{t-1} + (1 - Z_t) * H~_t,    t = 1..T

This is the reference: each equation one line of `forward`, each line of `backward` under the
forward line it inverts. A_z, A_r, A_h name the arguments of sigma and tanh above. The fast
path (fast/gru.py) is tested against it. The input terms X_t W_x* are made for all steps
before the loop, the weight gradients after it.

Two regularisers act inside the recurrence, in lines marked [variational dropout] and
[zoneout] (both off by default, which leaves the book's lines alone): the three recurrent
products read H_{t-1} * m, m (B, H) one mask per sequence (Gal & Ghahramani 2016), while the
convex mix keeps H_{t-1} itself; and zoneout mixes once more, H_t <- M_t * H_{t-1} +
(1 - M_t) * H_t, M_t (B, H) per step 1 where a unit keeps its value (Krueger et al. 2016),
the probability p itself in evaluation.

Legend: T = num_steps, B = batch_size, H = num_hiddens, D = input width. Steps t = 1..T;
per-step arrays (Z, R, H_tilde, dA_*) hold step t at index t-1; the state buffer H (T+1, B, H)
holds H_t at index t, H_0 at index 0.
"""
from typing import NamedTuple

from .. import layers
from ..backend import xp_of
from ..checks import one_of
from .sigmoid import sigmoid
# the GRU's state is the vanilla cell's: one (B, H) array H, zeros before the first step,
# and all of it is what the layer outputs
from .rnn import begin_state, hidden  # noqa: F401  (part of the cell interface)

ACTIVATIONS = ('tanh',)       # the candidate's; the gates are always sigmoids
INPUT_WEIGHTS = ('W_xz', 'W_xr', 'W_xh')
RECURRENT_WEIGHTS = ('W_hz', 'W_hr', 'W_hh')
SUFFIXES = ('z', 'r', 'h')    # the three (W_x*, W_h*, b_*) triples, in the book's order
REGULARISERS = ('dropout_hidden', 'zoneout')   # what forward takes beyond the book (model.py draws them)


def init_params(init, input_dim, num_hiddens):
    """The layer's parameters in the book's order, as `init` (initialization.Init) draws them:
    the book's policy gives every weight ~ N(0, sigma^2) and every bias zero.

    (torch-rnn and others start an LSTM's forget bias at 1; the GRU has no such custom.)
    Returns the nine arrays W_xz (D, H), W_hz (H, H), b_z (H,), W_xr, W_hr, b_r, W_xh, W_hh, b_h.
    """
    params = {}
    for gate in SUFFIXES:
        params[f'W_x{gate}'] = init.weight(input_dim, num_hiddens)
        params[f'W_h{gate}'] = init.weight(num_hiddens, num_hiddens)
        params[f'b_{gate}'] = init.bias(num_hiddens)
    return params


class GRUCache(NamedTuple):
    X: dict             # gate -> layers.InputCache of X_t W_x<gate>
    H: object           # (T+1, B, H) hidden states, H[t] = H_t, H[0] = H_0
    Z: object           # (T, B, H) update gates
    R: object           # (T, B, H) reset gates
    H_tilde: object     # (T, B, H) candidate states
    hidden_mask: object = None  # [variational dropout] m (B, H), or None
    zoneout: object = None      # [zoneout] M (T, B, H) (or (T, 1, 1) holding p), or None


def forward(params, X, state, *, activation='tanh', hidden_mask=None, zoneout=None):
    """Run the GRU over all T steps (the module docstring's four equations).

    Args: params W_xz, W_xr, W_xh (D, H), W_hz, W_hr, W_hh (H, H), b_z, b_r, b_h (H,); X the
          layer's input, token ids (T, B) or dense (T, B, D); state H_0 (B, H); activation 'tanh';
          hidden_mask: None or m (B, H); zoneout: None or M (T, B, H), or (T, 1, 1) holding p
              (module docstring).
    Returns: Hs (T, B, H) the states H_1..H_T (a view into the cache), the final state H_T
             (B, H) (a copy, safe to keep), cache.
    """
    one_of('activation', activation, ACTIVATIONS)
    p = params
    xp = xp_of(p['W_hh'])
    # the input terms X_t W_x* of all steps at once, (T, B, H) each
    (XW_xz, XW_xr, XW_xh), x_caches = zip(*(layers.input_forward(X, p[f'W_x{g}']) for g in SUFFIXES))
    num_steps = XW_xz.shape[0]
    # the states' dtype is that of every input together (complex when any is: complex steps)
    dtype = xp.result_type(XW_xz, XW_xr, XW_xh, state, *p.values())
    H = xp.empty((num_steps + 1,) + state.shape, dtype=dtype)
    Z, R, H_tilde = (xp.empty_like(H[1:]) for _ in range(3))
    H[0] = state
    for t in range(1, num_steps + 1):
        s = t - 1                                                         # step t's index
        H_prev = H[t - 1] if hidden_mask is None else H[t - 1] * hidden_mask   # [variational dropout]
        Z[s] = sigmoid(XW_xz[s] + H_prev @ p['W_hz'] + p['b_z'])
        R[s] = sigmoid(XW_xr[s] + H_prev @ p['W_hr'] + p['b_r'])
        H_tilde[s] = xp.tanh(XW_xh[s] + (R[s] * H_prev) @ p['W_hh'] + p['b_h'])
        H[t] = Z[s] * H[t - 1] + (1 - Z[s]) * H_tilde[s]
        if zoneout is not None:                                                 # [zoneout]
            H[t] = zoneout[s] * H[t - 1] + (1 - zoneout[s]) * H[t]
    cache = GRUCache(dict(zip(SUFFIXES, x_caches)), H, Z, R, H_tilde, hidden_mask, zoneout)
    return H[1:], H[num_steps].copy(), cache


def backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None):
    """BPTT through the GRU: the gradients of forward's inputs, given dL/dH_t from above.

    A_z, A_r, A_h are the pre-activations of Z, R, H~ (the arguments of sigma and tanh). The
    loop runs from t = T down to 1; H_{t-1} receives gradient through the convex mix, through
    the reset product and through both gates. Then, for all steps at once:
        dW_hz = sum_t H_{t-1}^T dA_z,  dW_hr = sum_t H_{t-1}^T dA_r,  dW_hh = sum_t (R_t * H_{t-1})^T dA_h,
        db_* = sum_t dA_*,  dW_x* and dX from dA_* through X_t W_x*.

    Args: dHs (T, B, H) dL/dH_t from the layer above; dfinal_state (B, H) or None (zero);
          carry: None or T numbers, carry[t-1] scales what step t sends back to H_{t-1};
          dH_out: None or a (T, B, H) array that receives every dH_t.
    Returns: grads (every parameter, shaped as it), dX (T, B, D) (None for token ids),
             dstate (B, H) = dL/dH_0.
    """
    xp = xp_of(dHs)
    p, H, Z, R, H_tilde = params, cache.H, cache.Z, cache.R, cache.H_tilde
    mask, zone = cache.hidden_mask, cache.zoneout
    num_steps, batch_size, num_hiddens = dHs.shape
    dA_z, dA_r, dA_h = (xp.empty_like(dHs) for _ in range(3))          # (T, B, H) each
    dH_next = xp.zeros_like(dHs[0]) if dfinal_state is None else xp.asarray(dfinal_state, dtype=dHs.dtype)
    for t in range(num_steps, 0, -1):
        s = t - 1
        # the total gradient reaching H_t: from the layer above and from step t+1
        dH = dHs[s] + dH_next
        if dH_out is not None:
            dH_out[s] = dH
        if zone is not None:      # [zoneout] H_t = M_t * H_{t-1} + (1 - M_t) * (the book's H_t)
            dH_kept = dH * zone[s]
            dH = dH * (1 - zone[s])
        H_prev = H[t - 1] if mask is None else H[t - 1] * mask                # [variational dropout]
        # H_t = Z_t * H_{t-1} + (1 - Z_t) * H~_t
        dZ = dH * (H[t - 1] - H_tilde[s])
        dH_tilde = dH * (1 - Z[s])
        dH_prev = dH * Z[s]
        # H~_t = tanh(A_h),  A_h = X_t W_xh + (R_t * H_{t-1}) W_hh + b_h
        dA_h[s] = dH_tilde * (1 - H_tilde[s] ** 2)
        dRH = dA_h[s] @ p['W_hh'].T
        dR = dRH * H_prev
        # Z_t = sigma(A_z),  R_t = sigma(A_r):  sigma' = sigma (1 - sigma)
        dA_z[s] = dZ * Z[s] * (1 - Z[s])
        dA_r[s] = dR * R[s] * (1 - R[s])
        if mask is None:
            dH_prev += dRH * R[s]
            # A_z = X_t W_xz + H_{t-1} W_hz + b_z,  A_r = X_t W_xr + H_{t-1} W_hr + b_r
            dH_prev += dA_z[s] @ p['W_hz'].T + dA_r[s] @ p['W_hr'].T
        else:                     # [variational dropout] the three products read H_{t-1} * m
            dH_prev += (dRH * R[s] + dA_z[s] @ p['W_hz'].T + dA_r[s] @ p['W_hr'].T) * mask
        if zone is not None:      # [zoneout] the units that kept H_{t-1}
            dH_prev += dH_kept
        if carry is not None and carry[s] != 1:
            dH_prev *= carry[s]
        dH_next = dH_prev
    # the weights are shared by all steps: their gradients add up over t, one GEMM each
    rows = num_steps * batch_size

    def flat(a):
        return a.reshape(rows, num_hiddens)                               # (T*B, H)
    H_read = H[:-1] if mask is None else H[:-1] * mask                  # [variational dropout]
    H_prev, RH = flat(H_read), flat(R * H_read)    # R_t * H_{t-1} recomputed: one product
    grads = {'W_hz': H_prev.T @ flat(dA_z), 'W_hr': H_prev.T @ flat(dA_r), 'W_hh': RH.T @ flat(dA_h)}
    dX = None
    for gate, dA in zip(SUFFIXES, (dA_z, dA_r, dA_h)):
        grads[f'b_{gate}'] = dA.sum(axis=(0, 1))
        dx, grads[f'W_x{gate}'] = layers.input_backward(dA, cache.X[gate])
        dX = layers.add_input_gradients(dX, dx)
    return {k: grads[k] for k in params}, dX, dH_next
