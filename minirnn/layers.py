"""Stateless forward/backward pairs around the recurrent cell: embedding, linear, softmax cross-entropy.

Each `<name>_forward(...) -> (out, cache)` sits right above its `<name>_backward(dout, cache)`,
which returns the gradients of the forward's inputs in the forward's order. The functions
take their array module from their inputs (`xp_of`), so they run unchanged on NumPy and CuPy.

Legend: N = number of rows (T*B tokens), V = vocabulary size, D = input width, H = output width,
T = num_steps, B = batch_size, G = blocks of H columns in a cell's input term.
"""
from typing import NamedTuple

import numpy as np

from .backend import xp_of


# --- embedding: a row gather, which is what one-hot(x) @ W computes -------------------------

class EmbeddingCache(NamedTuple):
    ids: object         # (...) integer token ids
    num_rows: int       # V, rows of the table (so backward can size dW)


def embedding_forward(ids, W):
    """Look up rows of W: out[...] = W[ids[...]], i.e. one_hot(ids) @ W without the one-hot.

    Args: ids (...) integer array; W (V, D).
    Returns: out (..., D), cache.
    """
    xp = xp_of(W)
    out = xp.take(W, ids, axis=0)  # (..., D); take is the fastest gather in NumPy
    return out, EmbeddingCache(ids, W.shape[0])


def embedding_backward(dout, cache):
    """Gradient of the table: dW[v] = sum of dout rows whose id is v.

    This is one_hot(ids)^T @ dout. The one-hot matrix is built here, in the backward pass
    only: it costs N*V, the same as the output layer's (N, H) @ (H, V) product, and a single
    GEMM beats a scatter-add (np.add.at) by an order of magnitude on NumPy.

    Args: dout (..., D); cache from embedding_forward.
    Returns: dW (V, D).
    """
    xp = xp_of(dout)
    ids = cache.ids.reshape(-1)                                  # (N,)
    d = dout.reshape(ids.shape[0], -1)                           # (N, D)
    one_hot = xp.zeros((ids.shape[0], cache.num_rows), d.dtype)  # (N, V)
    one_hot[xp.arange(ids.shape[0]), ids] = 1                    # a scatter: cheaper than ids == arange
    return one_hot.T @ d                                         # (V, D)


# --- linear: y = x W + b ----------------------------------------------------------------------

class LinearCache(NamedTuple):
    x: object   # (N, D) the input, needed for dW
    W: object   # (D, H) the weight, needed for dx
    has_bias: bool


def linear_forward(x, W, b=None, *, column_major=False):
    """Affine map over all rows at once (one GEMM).

    Args: x (N, D); W (D, H); b (H,) or None for no bias;
          column_major: store y column by column (Fortran order). The values are the same;
          the output layer uses it so that the softmax, which reduces each row over a short
          V, walks contiguous memory (about 10x faster in NumPy for V = 28).
    Returns: y (N, H), cache.
    """
    y = (W.T @ x.T).T if column_major else x @ W            # (N, H)
    if b is not None:
        if b.dtype.kind == 'c' and y.dtype.kind != 'c':
            y = y + b       # a complex bias (a complex step) widens y; in place it would not fit
        else:
            y += b
    return y, LinearCache(x, W, b is not None)


def linear_backward(dy, cache):
    """Args: dy (N, H). Returns: dx (N, D), dW (D, H), db (H,) (None without a bias)."""
    dx = dy @ cache.W.T
    dW = cache.x.T @ dy
    db = dy.sum(axis=0) if cache.has_bias else None
    return dx, dW, db


# --- a recurrent layer's input term: X_t W_x for every step at once ------------------------------

class InputCache(NamedTuple):
    inner: object       # the cache of the embedding (token ids) or linear (dense input) pair
    one_hot: bool


def input_forward(x, W):
    """The input term of a cell's equations, X_t W, for all T steps at once.

    Args: x, either integer token ids (T, B) (one-hot input, the book: the product is a row
          gather, the one-hot matrix is never built) or a dense input (T, B, D) (an
          embedding, or the layer below's states); W (D, H).
    Returns: XW (T, B, H), cache.
    """
    if x.ndim == 2:
        XW, inner = embedding_forward(x, W)                               # (T, B, H)
        return XW, InputCache(inner, True)
    T, B, D = x.shape
    XW, inner = linear_forward(x.reshape(T * B, D), W)                    # no bias: the cell's
    return XW.reshape(T, B, -1), InputCache(inner, False)


def input_backward(dXW, cache):
    """Args: dXW (T, B, H). Returns: dx (T, B, D) (None for token ids: they have no gradient), dW (D, H)."""
    if cache.one_hot:
        return None, embedding_backward(dXW, cache.inner)
    T, B, _ = dXW.shape
    dx, dW, _ = linear_backward(dXW.reshape(T * B, -1), cache.inner)
    return dx.reshape(T, B, -1), dW


def add_input_gradients(dx, more):
    """dL/dx summed over the terms that read x (None + None = None: token ids have no gradient)."""
    return more if dx is None else dx + more


class ProjectionCache(NamedTuple):
    inner: InputCache
    widths: tuple       # columns of each W_i, to split dW back into them


def projection_forward(x, weights):
    """Several input terms from one product: x [W_1 | ... | W_G] (the fast cells' layout).

    Concatenating G small (D, H) blocks once per call costs far less than G separate
    products (or gathers) over T*B rows.
    Args: x as in input_forward; weights [W_1, ..., W_G], each (D, H_i).
    Returns: XW (T, B, sum H_i), the blocks side by side in the order of `weights`, cache.
    """
    xp = xp_of(weights[0])
    W = weights[0] if len(weights) == 1 else xp.concatenate(weights, axis=1)   # (D, G*H)
    XW, inner = input_forward(x, W)
    return XW, ProjectionCache(inner, tuple(w.shape[1] for w in weights))


def projection_backward(dXW, cache):
    """Args: dXW (T, B, G*H). Returns: dx (T, B, D) (None for token ids), [dW_1, ..., dW_G]."""
    dx, dW = input_backward(dXW, cache.inner)
    if len(cache.widths) == 1:
        return dx, [dW]
    edges = [0]
    for width in cache.widths:
        edges.append(edges[-1] + width)
    return dx, [dW[:, lo:hi] for lo, hi in zip(edges[:-1], edges[1:])]


# --- inverted dropout between layers ----------------------------------------------------------

class DropoutCache(NamedTuple):
    mask: object        # (T, B, H): 0 where dropped, 1 / (1 - p) where kept


def dropout_mask(rng, shape, p, dtype):
    """A host mask for inverted dropout: each entry kept with probability 1 - p, scaled by 1/(1 - p).

    Drawn from the numpy Generator `rng` on the host, so a seed gives the same mask on CPU and
    GPU, and a thread split cuts one mask instead of drawing several. The per-step dropout
    between layers draws (B, T, H), variational dropout (B, D), weight drop a weight's shape.
    """
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * dtype.type(1 / (1 - p))


def zoneout_mask(rng, shape, p, dtype):
    """A host mask for zoneout: 1 where a unit keeps its previous value (probability p), else 0.

    Not scaled: zoneout mixes two values, H_t = M * H_{t-1} + (1 - M) * H~_t, and its
    evaluation form replaces M by its expectation p. Drawn like dropout_mask, (B, T, H).
    """
    return (rng.random(shape, dtype=np.float32) < p).astype(dtype)


def dropout_forward(x, mask):
    """out = x * mask (training only; evaluation skips the call). Returns: out, cache."""
    return x * mask, DropoutCache(mask)


def dropout_backward(dout, cache):
    """d(x * mask)/dx = mask."""
    return dout * cache.mask


# --- variational ("locked") dropout: one mask per sequence, the same at every step ------------

class LockedDropoutCache(NamedTuple):
    mask: object        # (B, D): 0 where dropped, 1 / (1 - p) where kept, for every step alike


def locked_dropout_forward(x, mask):
    """out[t] = x[t] * mask for every step t (Gal & Ghahramani 2016; AWD-LSTM's LockedDropout).

    Args: x (T, B, D) time-major; mask (B, D) from dropout_mask, one row per sequence: a unit
          dropped in a sequence stays dropped at every step of it (training only).
    Returns: out (T, B, D), cache.
    """
    return x * mask, LockedDropoutCache(mask)


def locked_dropout_backward(dout, cache):
    """d(x[t] * mask)/dx[t] = mask, at every step."""
    return dout * cache.mask


# --- softmax cross-entropy, fused and numerically stable --------------------------------------

class SoftmaxCECache(NamedTuple):
    exp: object       # (N, V) exp(logits - row max): the unnormalised probabilities
    sum_exp: object   # (N,) their row sums
    y: object         # (N,) target ids


def softmax_cross_entropy_forward(logits, y):
    """Mean cross-entropy of integer targets under softmax(logits).

    Stable at any scale: the row maximum is subtracted before exp, so exp never overflows,
    and the log is taken of sum(exp) >= 1, never of a probability that underflowed to 0.
    The probabilities are left unnormalised (exp and its row sums) for backward, which
    normalises and scales them in one pass.

    Complex logits (complex-step derivatives) pass through: the shift is the row maximum of
    the real parts (any constant shift cancels from the loss; a real one keeps |exp| <= 1),
    and exp, the sum and the log are analytic, so Im(loss) carries the derivative along the step.

    Args: logits (N, V), real or complex; y (N,) integer ids in [0, V).
    Returns: loss (0-d array of logits' dtype, mean over N), cache.
    """
    xp = xp_of(logits)
    n = logits.shape[0]
    # (N, V), max real part of each row is 0 (.real of a real array is the array itself)
    exp = logits - logits.real.max(axis=1, keepdims=True)
    # -log softmax(logits)[y] = log(sum exp(shifted)) - shifted[y]
    target = exp[xp.arange(n), y]                              # (N,), read before exp overwrites it
    xp.exp(exp, out=exp)                                       # (N, V), in (0, 1]
    sum_exp = exp.sum(axis=1)                                  # (N,), >= 1
    loss = (xp.log(sum_exp) - target).mean()
    return loss, SoftmaxCECache(exp, sum_exp, y)


def softmax_cross_entropy_backward(dloss, cache):
    """d(mean CE)/dlogits = (softmax - one_hot(y)) * dloss / N.

    Args: dloss, a scalar (1.0 when the loss is the objective).
    Returns: dlogits (N, V).
    """
    xp = xp_of(cache.exp)
    n = cache.exp.shape[0]
    scale = dloss / n
    dlogits = cache.exp * (scale / cache.sum_exp)[:, None]     # softmax * dloss / N, one pass
    dlogits[xp.arange(n), cache.y] -= scale
    return dlogits
