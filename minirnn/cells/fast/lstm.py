"""The LSTM's fast path: the recurrence of ../lstm.py with all four gates from one GEMM, in place.

The reference (cells/lstm.py) is the book's six equations, one line each; this computes the
same values with the recurrent weights joined, W_h = [W_hi | W_hf | W_ho | W_hc] (H, 4H)
(torch-rnn's layout), the candidate's tanh written as 2 sigma(2A) - 1 so one exp serves all
four blocks (gates.py), buffers allocated once per call, and each step's derivative factors
formed while its values are in cache. XW_t = X_t [W_xi | W_xf | W_xo | W_xc] is made by
FastCell (fast/__init__.py). Tested equal to the reference (tests/test_fast_cells.py).

The reference's two regularisers, variational dropout on H_{t-1} (hidden_mask, m) and zoneout
on H and C (M^h_t, M^c_t), take the same places here, marked as there; without them no extra
pass runs. Under zoneout on C, tanhC holds tanh of C_t's new value (before C's mix), which is
what H_t's new value and the backward pass use.

Legend: T = num_steps, B = batch_size, H = num_hiddens. Steps t = 1..T; per-step arrays hold
step t at index t-1; the state buffers H, C (T+1, B, H) hold H_t, C_t at index t.
"""
from typing import NamedTuple

from ...backend import xp_of
from ..lstm import RECURRENT_WEIGHTS, SUFFIXES
from .gates import sigmoid_of_negated_


class LSTMCache(NamedTuple):
    H: object           # (T+1, B, H) hidden states, H[t] = H_t, H[0] = H_0
    C: object           # (T+1, B, H) memory cells, C[t] = C_t, C[0] = C_0
    gates: object       # (T, B, 4H) [I_t | F_t | O_t | C~_t] after their nonlinearities
    tanhC: object       # (T, B, H) tanh(C_t)
    H_read: object = None       # [variational dropout] (T, B, H) H_{t-1} * m; None: H[:-1]
    hidden_mask: object = None  # [variational dropout] m (B, H)
    zoneout: object = None      # [zoneout] (M^h, M^c), each (T, B, H), (T, 1, 1) or None


def forward(params, XW, state, *, activation='tanh', hidden_mask=None, zoneout=None):
    """Run the LSTM over all T steps (the module docstring's six equations).

    Args: params with W_hi, W_hf, W_ho, W_hc (H, H) and b_i, b_f, b_o, b_c (H,); XW (T, B, 4H)
          the input terms [X W_xi | X W_xf | X W_xo | X W_xc]; state (H_0, C_0), each (B, H);
          activation 'tanh'; hidden_mask, zoneout: as the reference's (cells/lstm.py), or None.
    Returns: Hs (T, B, H) the states H_1..H_T (a view into the cache), the final state
             (H_T, C_T) (copies, safe to keep), cache.
    """
    xp = xp_of(XW)
    num_steps, batch_size, _ = XW.shape
    H0, C0 = state
    h = H0.shape[1]
    # once per call: the four recurrent weights as one (H, 4H) GEMM operand, and the factors
    # (-1, -1, -1, -2) by block that turn A into S = -[A_i | A_f | A_o | 2 A_c], so that one
    # exp serves all four blocks (gates.py): sigma(A) = 1 / (1 + exp(S)) for the gates, and
    # tanh(A_c) = 2 sigma(2 A_c) - 1 for the candidate
    W_h = xp.concatenate([params[k] for k in RECURRENT_WEIGHTS], axis=1)                # (H, 4H)
    b = xp.concatenate([params['b_i'], params['b_f'], params['b_o'], params['b_c']])    # (4H,)
    negate = xp.repeat(xp.asarray([-1, -1, -1, -2], dtype=XW.dtype), h)                 # (4H,)
    H = xp.empty((num_steps + 1, batch_size, h), dtype=XW.dtype)
    C = xp.empty_like(H)
    gates = xp.empty((num_steps, batch_size, 4 * h), dtype=XW.dtype)
    tanhC = xp.empty((num_steps, batch_size, h), dtype=XW.dtype)
    H_read = None if hidden_mask is None else xp.empty_like(tanhC)   # [variational dropout]
    zone_h, zone_c = (None, None) if zoneout is None else zoneout
    if zoneout is not None:     # [zoneout] 1 - M once per call; the mix is exact where M is 0 or 1
        keep_h, keep_c = (None if M is None else 1 - M for M in zoneout)
        kept = xp.empty_like(tanhC[0])
    H[0], C[0] = H0, C0
    for t in range(1, num_steps + 1):
        g = gates[t - 1]                                                   # (B, 4H)
        H_in = H[t - 1]                     # what the recurrent weights read
        if H_read is not None:              # [variational dropout] H_{t-1} * m
            H_in = H_read[t - 1]
            xp.multiply(H[t - 1], hidden_mask, out=H_in)
        # all four pre-activations from one GEMM: A_t = XW_t + H_{t-1} W_h + b. The input
        # term and the bias are added here, on a step's block in cache, not over all steps
        # at once before the loop: those passes are bound by memory bandwidth (measured)
        xp.matmul(H_in, W_h, out=g)
        g += XW[t - 1]
        g += b
        g *= negate                                                        # S_t
        sigmoid_of_negated_(g)                            # [I_t | F_t | O_t | sigma(2 A_c)]
        # the step's views, made once: each costs a Python object (measurable at small sizes),
        # and CuPy copies an input that is another view object of its output's memory
        I_t, F_t, O_t, c_tilda = g[:, :h], g[:, h:2 * h], g[:, 2 * h:3 * h], g[:, 3 * h:]
        C_t, scratch = C[t], tanhC[t - 1]
        c_tilda *= 2
        c_tilda -= 1                                      # C~_t = tanh(A_c) = 2 sigma(2 A_c) - 1
        # C_t = F_t * C_{t-1} + I_t * C~_t
        xp.multiply(F_t, C[t - 1], out=C_t)
        xp.multiply(I_t, c_tilda, out=scratch)                             # I_t * C~_t
        C_t += scratch
        # H_t = O_t * tanh(C_t)
        xp.tanh(C_t, out=scratch)                                          # now tanh(C_t)
        H_t = H[t]
        xp.multiply(O_t, scratch, out=H_t)
        if zone_c is not None:              # [zoneout] C_t <- (1 - M^c_t) * C_t + M^c_t * C_{t-1}
            C_t *= keep_c[t - 1]
            xp.multiply(C[t - 1], zone_c[t - 1], out=kept)
            C_t += kept
        if zone_h is not None:              # [zoneout] H_t <- (1 - M^h_t) * H_t + M^h_t * H_{t-1}
            H_t *= keep_h[t - 1]
            xp.multiply(H[t - 1], zone_h[t - 1], out=kept)
            H_t += kept
    final = (H[num_steps].copy(), C[num_steps].copy())
    return H[1:], final, LSTMCache(H, C, gates, tanhC, H_read, hidden_mask, zoneout)


def backward(params, dHs, cache, dfinal_state=None, *, carry=None, dH_out=None):
    """BPTT through the LSTM: the gradients of forward's inputs, given dL/dH_t from above.

    With A_i, A_f, A_o, A_c the pre-activations of I, F, O, C~ (so dXW_t = dA_t, in that order),
    two messages flow back, one for H and one for C; the loop runs from t = T down to 1:
        dH_t = dHs_t + c_{t+1} dH_t^next              the total gradient reaching H_t
        dA_o = dH_t * tanh(C_t) * O_t (1 - O_t)
        dC_t = c_{t+1} dC_t^next + dH_t * O_t * (1 - tanh(C_t)^2)   the total reaching C_t
        dA_i = dC_t * C~_t * I_t (1 - I_t)
        dA_f = dC_t * C_{t-1} * F_t (1 - F_t)
        dA_c = dC_t * I_t * (1 - C~_t^2)
        dC_{t-1}^next = dC_t * F_t                     C's message: only through the forget gate
        dH_{t-1}^next = dA_t [W_hi | W_hf | W_ho | W_hc]^T   H's message: through all four
    The terms from step T+1 are dfinal_state = (dH_T, dC_T) (zeros when None); c_t = carry[t-1]
    (1 when None) scales both messages step t sends back. The derivative factors multiplying
    dH_t and dC_t depend on the forward pass only; they are formed step by step inside the
    loop, where the step's values are in cache (measured: over all steps at once, before the
    loop, these passes are bound by memory bandwidth and the backward pass is up to 1.5x
    slower at H = 32). After it:
        dW_h* = sum_t H_{t-1}^T dA_*,   db_* = sum_t dA_*,   dstate = (c_1 dH_0^next, c_1 dC_0^next).

    Args: dHs (T, B, H) dL/dH_t from the layer above; dfinal_state (dH_T, dC_T) or None; carry:
          None or T numbers; dH_out: None or a (T, B, H) array that receives every dH_t.
    Returns: grads {'W_hi', 'W_hf', 'W_ho', 'W_hc': (H, H), 'b_i', 'b_f', 'b_o', 'b_c': (H,)},
             dXW (T, B, 4H), dstate (dH_0, dC_0), each (B, H).
    """
    xp = xp_of(dHs)
    H, C, gates, tanhC = cache.H, cache.C, cache.gates, cache.tanhC
    mask = cache.hidden_mask
    zone_h, zone_c = (None, None) if cache.zoneout is None else cache.zoneout
    num_steps, batch_size, h = dHs.shape
    I, F, O, Cc = (gates[..., k * h:(k + 1) * h] for k in range(4))
    W_h_T = xp.concatenate([params[k] for k in RECURRENT_WEIGHTS], axis=1).T   # (4H, H)
    dA = xp.empty((num_steps, batch_size, 4 * h), dtype=dHs.dtype)      # [dA_i | dA_f | dA_o | dA_c]
    dA4 = dA.reshape(num_steps, batch_size, 4, h)                        # a view of dA by block
    dH = xp.empty_like(dHs) if dH_out is None else dH_out
    # per-step scratch: the derivative factors K_t, laid out as dA's blocks (K[:, k] multiplies
    # dC_t for k = i, f, c~ and dH_t for k = o), and K_c = dC_t / dH_t
    K = xp.empty((batch_size, 4 * h), dtype=dHs.dtype)
    K4 = K.reshape(batch_size, 4, h)
    K_c = xp.empty((batch_size, h), dtype=dHs.dtype)
    dC = xp.empty((batch_size, h), dtype=dHs.dtype)
    if zone_h is not None:            # [zoneout] dH_t split: the kept units' part, and the rest
        kept_h, dH_new = xp.empty_like(dC), xp.empty_like(dC)
    if zone_c is not None:
        kept_c = xp.empty_like(dC)
    if dfinal_state is None:
        dH_next = xp.zeros((batch_size, h), dtype=dHs.dtype)
        dC_next = xp.zeros((batch_size, h), dtype=dHs.dtype)
    else:                                                                # copies: written in place
        dH_next = xp.array(dfinal_state[0], dtype=dHs.dtype)
        dC_next = xp.array(dfinal_state[1], dtype=dHs.dtype)
    # the scratch's blocks as views, made once (each view is a Python object per step otherwise)
    K_i, K_f, K_o, K_cc, K_if = K4[:, 0], K4[:, 1], K4[:, 2], K4[:, 3], K4[:, :2]
    dC_column = dC[:, None]                                              # (B, 1, H)
    for t in range(num_steps, 0, -1):
        s = t - 1                                                        # step t's index
        I_t, F_t, O_t, Cc_t, gates_t, tanhC_t = I[s], F[s], O[s], Cc[s], gates[s], tanhC[s]
        # step t's derivative factors, formed here while its values are in cache
        xp.subtract(1, gates_t, out=K)
        K *= gates_t                                      # sigma' = sigma (1 - sigma): i, f, o
        xp.multiply(Cc_t, Cc_t, out=K_cc)
        xp.subtract(1, K_cc, out=K_cc)                    # tanh' = 1 - C~^2 for the candidate
        K_i *= Cc_t                                       # dA_i / dC_t = C~_t I_t (1 - I_t)
        K_f *= C[s]                                       # dA_f / dC_t = C_{t-1} F_t (1 - F_t)
        K_o *= tanhC_t                                    # dA_o / dH_t = tanh(C_t) O_t (1 - O_t)
        K_cc *= I_t                                       # dA_c / dC_t = I_t (1 - C~_t^2)
        xp.multiply(tanhC_t, tanhC_t, out=K_c)
        xp.subtract(1, K_c, out=K_c)
        K_c *= O_t                                        # dC_t / dH_t = O_t (1 - tanh(C_t)^2)
        dH_t, dA_t, dA_flat = dH[s], dA4[s], dA[s]
        xp.add(dHs[s], dH_next, out=dH_t)
        dH_out_t = dH_t                   # what reaches O_t * tanh(C_t)
        if zone_h is not None:            # [zoneout] H_t = M^h_t * H_{t-1} + (1 - M^h_t) * O_t * tanh(C_t)
            xp.multiply(dH_t, zone_h[s], out=kept_h)
            xp.subtract(dH_t, kept_h, out=dH_new)
            dH_out_t = dH_new
        if zone_c is not None:            # [zoneout] C_t = M^c_t * C_{t-1} + (1 - M^c_t) * (the book's C_t)
            xp.multiply(dC_next, zone_c[s], out=kept_c)
            dC_next -= kept_c
        xp.multiply(dH_out_t, K_o, out=dA_t[:, 2])                       # dA_o
        xp.multiply(dH_out_t, K_c, out=dC)
        dC += dC_next                                                    # dC_t
        xp.multiply(dC_column, K_if, out=dA_t[:, :2])                    # dA_i, dA_f
        xp.multiply(dC, K_cc, out=dA_t[:, 3])                            # dA_c
        xp.multiply(dC, F_t, out=dC_next)
        xp.matmul(dA_flat, W_h_T, out=dH_next)
        if mask is not None:              # [variational dropout] the products read H_{t-1} * m
            dH_next *= mask
        if zone_h is not None:
            dH_next += kept_h
        if zone_c is not None:
            dC_next += kept_c
        if carry is not None and carry[s] != 1:
            dH_next *= carry[s]
            dC_next *= carry[s]
    # weight gradients as single GEMMs over all T*B rows
    rows = num_steps * batch_size
    dA2 = dA.reshape(rows, 4 * h)                                        # (T*B, 4H)
    H_in = H[:-1] if cache.H_read is None else cache.H_read              # what the weights read
    dW_h = H_in.reshape(rows, h).T @ dA2                                 # (H, 4H)
    db = dA2.sum(axis=0)                                                 # (4H,)
    grads = {}
    for k, gate in enumerate(SUFFIXES):
        grads[f'W_h{gate}'] = dW_h[:, k * h:(k + 1) * h]
        grads[f'b_{gate}'] = db[k * h:(k + 1) * h]
    return grads, dA, (dH_next, dC_next)
