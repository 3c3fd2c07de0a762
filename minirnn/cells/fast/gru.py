"""The GRU's fast path: the recurrence of ../gru.py with both gates from one GEMM, in place.

The reference (cells/gru.py) is the book's four equations, one line each; this computes the
same values with the gates' recurrent weights joined, W_hzr = [W_hz | W_hr] (H, 2H), one exp
for both gates (gates.py), buffers allocated once per call, and each step's derivative
factors formed while its values are in cache. XW_t = X_t [W_xz | W_xr | W_xh] is made by
FastCell (fast/__init__.py). Tested equal to the reference (tests/test_fast_cells.py).

The reference's two regularisers, variational dropout on H_{t-1} (hidden_mask, m: the three
recurrent products read H_{t-1} * m) and zoneout (M_t), take the same places here, marked as
there; without them no extra pass runs.

Legend: T = num_steps, B = batch_size, H = num_hiddens. Steps t = 1..T; per-step arrays hold
step t at index t-1; the state buffer H (T+1, B, H) holds H_t at index t, H_0 at index 0.
"""
from typing import NamedTuple

from ...backend import xp_of
from .gates import sigmoid_of_negated_


class GRUCache(NamedTuple):
    H: object           # (T+1, B, H) hidden states, H[t] = H_t, H[0] = H_0
    ZR: object          # (T, B, 2H) the gates [Z_t | R_t] after the sigmoid
    Hc: object          # (T, B, H) the candidates H~_t after the tanh
    RH: object          # (T, B, H) R_t * H_{t-1}, the input of W_hh (for dW_hh)
    H_read: object = None       # [variational dropout] (T, B, H) H_{t-1} * m; None: H[:-1]
    hidden_mask: object = None  # [variational dropout] m (B, H)
    zoneout: object = None      # [zoneout] M (T, B, H) or (T, 1, 1)


def forward(params, XW, state, *, activation='tanh', hidden_mask=None, zoneout=None):
    """Run the GRU over all T steps (the module docstring's four equations).

    Args: params with W_hz, W_hr, W_hh (H, H) and b_z, b_r, b_h (H,); XW (T, B, 3H) the input
          terms [X W_xz | X W_xr | X W_xh]; state H_0 (B, H); activation 'tanh'; hidden_mask,
          zoneout: as the reference's (cells/gru.py), or None.
    Returns: Hs (T, B, H) the states H_1..H_T (a view into the cache), the final state H_T
             (B, H) (a copy, safe to keep), cache.
    """
    xp = xp_of(XW)
    num_steps, batch_size, _ = XW.shape
    h = state.shape[1]
    # once per call: both gates' recurrent weights as one (H, 2H) GEMM operand, the biases too
    W_hzr = xp.concatenate([params['W_hz'], params['W_hr']], axis=1)        # (H, 2H)
    b_zr = xp.concatenate([params['b_z'], params['b_r']])                   # (2H,)
    W_hh, b_h = params['W_hh'], params['b_h']
    H = xp.empty((num_steps + 1, batch_size, h), dtype=XW.dtype)
    ZR = xp.empty((num_steps, batch_size, 2 * h), dtype=XW.dtype)
    Hc = xp.empty((num_steps, batch_size, h), dtype=XW.dtype)
    RH = xp.empty_like(Hc)
    H_read = None if hidden_mask is None else xp.empty_like(Hc)      # [variational dropout]
    if zoneout is not None:     # [zoneout] 1 - M once per call; the mix is exact where M is 0 or 1
        keep_new, kept = 1 - zoneout, xp.empty_like(Hc[0])
    H[0] = state
    for t in range(1, num_steps + 1):
        H_prev, zr = H[t - 1], ZR[t - 1]
        H_in = H_prev                       # what the recurrent weights read
        if H_read is not None:              # [variational dropout] H_{t-1} * m
            H_in = H_read[t - 1]
            xp.multiply(H_prev, hidden_mask, out=H_in)
        # [Z_t | R_t] = sigma(XW_t[z, r] + H_{t-1} [W_hz | W_hr] + [b_z | b_r]): one GEMM for
        # both gates. The input term and the bias are added here, on a step's block in cache,
        # not over all steps at once before the loop: those passes are memory-bound (measured)
        xp.matmul(H_in, W_hzr, out=zr)
        zr += XW[t - 1, :, :2 * h]
        zr += b_zr
        xp.negative(zr, out=zr)
        sigmoid_of_negated_(zr)                                            # gates.py
        # H~_t = tanh(XW_t[h] + (R_t * H_{t-1}) W_hh + b_h)
        xp.multiply(zr[:, h:], H_in, out=RH[t - 1])
        Hc_t = Hc[t - 1]         # one view object as input and output (see fast/rnn.py)
        xp.matmul(RH[t - 1], W_hh, out=Hc_t)
        Hc_t += XW[t - 1, :, 2 * h:]
        Hc_t += b_h
        xp.tanh(Hc_t, out=Hc_t)
        # H_t = Z_t * H_{t-1} + (1 - Z_t) * H~_t, written as H~_t + Z_t * (H_{t-1} - H~_t)
        H_t = H[t]
        xp.subtract(H_prev, Hc_t, out=H_t)
        H_t *= zr[:, :h]
        H_t += Hc_t
        if zoneout is not None:             # [zoneout] H_t <- (1 - M_t) * H_t + M_t * H_{t-1}
            H_t *= keep_new[t - 1]
            xp.multiply(H_prev, zoneout[t - 1], out=kept)
            H_t += kept
    cache = GRUCache(H, ZR, Hc, RH, H_read, hidden_mask, zoneout)
    return H[1:], H[num_steps].copy(), cache


def backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None):
    """BPTT through the GRU: the gradients of forward's inputs, given dL/dH_t from above.

    With A_z, A_r, A_h the pre-activations of Z, R, H~ (so dXW_t = [dA_z | dA_r | dA_h]_t),
    the loop runs from t = T down to 1:
        dH_t   = dHs_t + c_{t+1} dH_t^next          the total gradient reaching H_t
        dA_h   = dH_t * (1 - Z_t) * (1 - H~_t^2)    through H~ = tanh(A_h)
        dA_z   = dH_t * (H_{t-1} - H~_t) * Z_t (1 - Z_t)
        dRH    = dA_h W_hh^T                        the gradient of R_t * H_{t-1}
        dA_r   = dRH * H_{t-1} * R_t (1 - R_t)
        dH_{t-1}^next = dH_t * Z_t + dRH * R_t + [dA_z | dA_r] [W_hz | W_hr]^T
    i.e. H_{t-1} receives through the convex mix, through the reset product, and through both
    gates. The term from step T+1 is dfinal_state (zero when None); c_t = carry[t-1] (1 when
    None) scales what step t sends back. The derivative factors multiplying dH_t and dRH
    depend on the forward pass only; they are formed step by step inside the loop, where the
    step's values are in cache (measured: over all steps at once, before the loop, these
    passes are bound by memory bandwidth and the backward pass is up to 1.2x slower). After it:
        [dW_hz | dW_hr] = sum_t H_{t-1}^T [dA_z | dA_r],   dW_hh = sum_t (R_t * H_{t-1})^T dA_h,
        db_* = sum_t dA_*,   dstate = c_1 dH_0^next.

    Args: dHs (T, B, H) dL/dH_t from the layer above; dfinal_state (B, H) or None; carry: None
          or T numbers; dH_out: None or a (T, B, H) array that receives every dH_t.
    Returns: grads {'W_hz', 'W_hr', 'W_hh': (H, H), 'b_z', 'b_r', 'b_h': (H,)},
             dXW (T, B, 3H), dstate (B, H).
    """
    xp = xp_of(dHs)
    H, ZR, Hc, RH = cache.H, cache.ZR, cache.Hc, cache.RH
    mask, zone = cache.hidden_mask, cache.zoneout
    num_steps, batch_size, h = dHs.shape
    H_prev = H[:-1]                                                      # (T, B, H)
    H_in = H_prev if cache.H_read is None else cache.H_read              # what the weights read
    Z, R = ZR[..., :h], ZR[..., h:]
    W_hzr_T = xp.concatenate([params['W_hz'], params['W_hr']], axis=1).T   # (2H, H)
    W_hh_T = params['W_hh'].T
    dA = xp.empty((num_steps, batch_size, 3 * h), dtype=dHs.dtype)      # [dA_z | dA_r | dA_h]
    dH = xp.empty_like(dHs) if dH_out is None else dH_out
    # per-step scratch: the derivative factors [K_z | K_r] and K_h, and two products
    K_zr = xp.empty((batch_size, 2 * h), dtype=dHs.dtype)
    K_z, K_r = K_zr[:, :h], K_zr[:, h:]
    K_h = xp.empty((batch_size, h), dtype=dHs.dtype)
    dRH = xp.empty((batch_size, h), dtype=dHs.dtype)
    scratch = xp.empty_like(dRH)
    if zone is not None:              # [zoneout] dH_t split: the kept units' part, and the rest
        kept, dH_new = xp.empty_like(dRH), xp.empty_like(dRH)
    if dfinal_state is None:
        dH_next = xp.zeros((batch_size, h), dtype=dHs.dtype)
    else:
        dH_next = xp.array(dfinal_state, dtype=dHs.dtype)               # a copy: written in place
    for t in range(num_steps, 0, -1):
        s = t - 1                                                        # step t's index
        Z_t, R_t, Hc_t, H_prev_t = Z[s], R[s], Hc[s], H_prev[s]
        # step t's derivative factors, formed here while its values are in cache
        xp.subtract(1, ZR[s], out=K_zr)
        K_zr *= ZR[s]                                     # sigma' = sigma (1 - sigma): z, r
        xp.subtract(H_prev_t, Hc_t, out=scratch)
        K_z *= scratch                                    # dA_z / dH_t = (H_{t-1} - H~_t) Z_t (1 - Z_t)
        K_r *= H_in[s]                                    # dA_r / dRH = H_{t-1} R_t (1 - R_t)
        xp.multiply(Hc_t, Hc_t, out=K_h)
        xp.subtract(1, K_h, out=K_h)
        xp.subtract(1, Z_t, out=scratch)
        K_h *= scratch                                    # dA_h / dH_t = (1 - Z_t) (1 - H~_t^2)
        dH_t, dA_t = dH[s], dA[s]
        xp.add(dHs[s], dH_next, out=dH_t)
        dH_mix = dH_t                     # what reaches the book's H_t
        if zone is not None:              # [zoneout] H_t = M_t * H_{t-1} + (1 - M_t) * (the book's H_t)
            xp.multiply(dH_t, zone[s], out=kept)
            xp.subtract(dH_t, kept, out=dH_new)
            dH_mix = dH_new
        xp.multiply(dH_mix, K_z, out=dA_t[:, :h])                        # dA_z
        xp.multiply(dH_mix, K_h, out=dA_t[:, 2 * h:])                    # dA_h
        xp.matmul(dA_t[:, 2 * h:], W_hh_T, out=dRH)                      # dRH
        xp.multiply(dRH, K_r, out=dA_t[:, h:2 * h])                      # dA_r
        # on to H_{t-1}: through both gates (one GEMM), the mix and the reset product
        xp.matmul(dA_t[:, :2 * h], W_hzr_T, out=dH_next)
        if mask is None:
            xp.multiply(dH_mix, Z_t, out=scratch)
            dH_next += scratch
            xp.multiply(dRH, R_t, out=scratch)
            dH_next += scratch
        else:                             # [variational dropout] the products read H_{t-1} * m
            xp.multiply(dRH, R_t, out=scratch)
            dH_next += scratch
            dH_next *= mask
            xp.multiply(dH_mix, Z_t, out=scratch)
            dH_next += scratch
        if zone is not None:
            dH_next += kept
        if carry is not None and carry[s] != 1:
            dH_next *= carry[s]
    # weight gradients as single GEMMs over all T*B rows
    rows = num_steps * batch_size
    dA2 = dA.reshape(rows, 3 * h)                                        # (T*B, 3H)
    dW_hzr = H_in.reshape(rows, h).T @ dA2[:, :2 * h]                    # (H, 2H)
    db = dA2.sum(axis=0)                                                 # (3H,)
    grads = {'W_hz': dW_hzr[:, :h], 'b_z': db[:h],
             'W_hr': dW_hzr[:, h:], 'b_r': db[h:2 * h],
             'W_hh': RH.reshape(rows, h).T @ dA2[:, 2 * h:], 'b_h': db[2 * h:]}
    return grads, dA, dH_next
