"""The vanilla cell's fast path: the recurrence of ../rnn.py computed in place in preallocated buffers.

    A_t = XW_t + H_{t-1} W_hh + b_h,   H_t = phi(A_t),   t = 1..T

The reference (cells/rnn.py) is the book's equation; this is the same math with every step
written into a buffer allocated once per call (no temporary per step), and phi' taken from the
outputs for all steps before the backward loop. XW_t = X_t W_xh is made by FastCell (fast/__init__.py).
Tested equal to the reference (tests/test_fast_cells.py).

The reference's two regularisers, variational dropout on H_{t-1} (hidden_mask, m) and zoneout
(M_t), take the same places here, marked as there; without them no extra pass runs.

Legend: T = num_steps, B = batch_size, H = num_hiddens. Per-step arrays (XW, Hs, dHs, dA) hold
step t at index t-1; the state buffer H (T+1, B, H) holds H_t at index t, H_0 at index 0.
"""
from typing import NamedTuple

from ...backend import xp_of


class RNNCache(NamedTuple):
    H: object           # (T+1, B, H) hidden states, H[t] = H_t, H[0] = H_0
    activation: str     # 'tanh' or 'relu', to pick phi' in backward
    H_read: object = None       # [variational dropout] (T, B, H) H_{t-1} * m, what W_hh read; None: H[:-1]
    H_new: object = None        # [zoneout] (T, B, H) phi(A_t) before the mix; None: H[1:]
    hidden_mask: object = None  # [variational dropout] m (B, H)
    zoneout: object = None      # [zoneout] M (T, B, H) or (T, 1, 1)


def forward(params, XW, state, *, activation='tanh', hidden_mask=None, zoneout=None):
    """Run the recurrence over all T steps.

    Args: params with W_hh (H, H), b_h (H,); XW (T, B, H) input terms; state H_0 (B, H);
          activation one of the reference's ACTIVATIONS; hidden_mask, zoneout: as the
          reference's (cells/rnn.py), or None.
    Returns: Hs (T, B, H) the states H_1..H_T (a view into the cache), the final state H_T
             (B, H) (a copy, safe to keep), cache.
    """
    xp = xp_of(XW)
    W_hh = params['W_hh']
    num_steps = XW.shape[0]
    H = xp.empty((num_steps + 1,) + state.shape, dtype=XW.dtype)   # (T+1, B, H), allocated once
    H[0] = state
    XWb = XW + params['b_h']               # (T, B, H): the bias added once, not once per step
    H_read = None if hidden_mask is None else xp.empty_like(XWb)    # [variational dropout]
    H_new = None if zoneout is None else xp.empty_like(XWb)         # [zoneout]
    if zoneout is not None:     # 1 - M once per call; the mix below is exact where M is 0 or 1
        keep_new, kept = 1 - zoneout, xp.empty_like(XWb[0])
    for t in range(1, num_steps + 1):
        # H_t = phi(XWb_t + H_{t-1} W_hh), computed in place in the state buffer. One view
        # object serves as input and output: CuPy copies an input that is another view of
        # its output's memory before launching, NumPy does not care
        H_prev = H[t - 1]
        if H_read is not None:             # [variational dropout] W_hh reads H_{t-1} * m
            H_prev = H_read[t - 1]
            xp.multiply(H[t - 1], hidden_mask, out=H_prev)
        H_t = H[t] if H_new is None else H_new[t - 1]
        xp.matmul(H_prev, W_hh, out=H_t)
        H_t += XWb[t - 1]
        if activation == 'tanh':
            xp.tanh(H_t, out=H_t)
        else:
            xp.maximum(H_t, 0, out=H_t)
        if H_new is not None:              # [zoneout] H_t = (1 - M_t) * phi(A_t) + M_t * H_{t-1}
            out = H[t]
            xp.multiply(H_t, keep_new[t - 1], out=out)
            xp.multiply(H[t - 1], zoneout[t - 1], out=kept)
            out += kept
    return H[1:], H[num_steps].copy(), RNNCache(H, activation, H_read, H_new, hidden_mask, zoneout)


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
    mask, zone = cache.hidden_mask, cache.zoneout
    num_steps, batch_size, num_hiddens = dHs.shape
    # phi'(A_t) from the outputs, for all steps before the loop:
    # tanh' = 1 - tanh^2, relu' = [H_t > 0]; no pre-activations need to be stored.
    out = H[1:] if cache.H_new is None else cache.H_new            # phi(A_t)
    if cache.activation == 'tanh':
        dphi = 1 - out * out                                      # (T, B, H)
    else:
        dphi = (out > 0).astype(dHs.dtype)                        # (T, B, H)
    if zone is not None:                  # [zoneout] phi(A_t) enters H_t times (1 - M_t)
        dphi *= 1 - zone
        kept = xp.empty((batch_size, num_hiddens), dtype=dHs.dtype)
    W_hh_T = params['W_hh'].T
    dA = xp.empty_like(dHs)                                       # (T, B, H)
    dH = dA if dH_out is None else dH_out   # where dH_t is formed: in dA itself unless kept
    if dfinal_state is None:
        dH_next = xp.zeros((batch_size, num_hiddens), dtype=dHs.dtype)
    else:
        dH_next = xp.array(dfinal_state, dtype=dHs.dtype)         # a copy: written in place below
    for t in range(num_steps, 0, -1):
        # one view object per step and array: when dH is dA, a second view of the same rows as
        # out= would make CuPy copy the input before the kernel runs
        dH_t = dH[t - 1]
        dA_t = dH_t if dH is dA else dA[t - 1]
        xp.add(dHs[t - 1], dH_next, out=dH_t)           # dH_t: from above and from step t+1
        if zone is not None:                            # [zoneout] the units that keep H_{t-1}
            xp.multiply(dH_t, zone[t - 1], out=kept)    # (before dA_t, which may be dH_t, is written)
        xp.multiply(dH_t, dphi[t - 1], out=dA_t)        # through phi
        xp.matmul(dA_t, W_hh_T, out=dH_next)            # on to H_{t-1}
        if mask is not None:                            # [variational dropout]
            dH_next *= mask
        if zone is not None:
            dH_next += kept
        if carry is not None and carry[t - 1] != 1:
            dH_next *= carry[t - 1]
    # weight gradients as single GEMMs over all T*B rows
    H_read = H[:-1] if cache.H_read is None else cache.H_read     # what W_hh read
    H_prev = H_read.reshape(num_steps * batch_size, num_hiddens)  # (T*B, H) = H_0..H_{T-1}
    dA2 = dA.reshape(num_steps * batch_size, num_hiddens)         # (T*B, H)
    grads = {'W_hh': H_prev.T @ dA2, 'b_h': dA2.sum(axis=0)}
    return grads, dA, dH_next
