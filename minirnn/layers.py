"""Stateless forward/backward pairs around the recurrent cell: embedding, linear, softmax cross-entropy.

Each `<name>_forward(...) -> (out, cache)` sits right above its `<name>_backward(dout, cache)`,
which returns the gradients of the forward's inputs in the forward's order. The functions
take their array module from their inputs (`xp_of`), so they run unchanged on NumPy and CuPy.

Legend: N = number of rows (T*B tokens), V = vocabulary size, D = input width, H = output width.
"""
from typing import NamedTuple

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
        y += b
    return y, LinearCache(x, W, b is not None)


def linear_backward(dy, cache):
    """Args: dy (N, H). Returns: dx (N, D), dW (D, H), db (H,) (None without a bias)."""
    dx = dy @ cache.W.T
    dW = cache.x.T @ dy
    db = dy.sum(axis=0) if cache.has_bias else None
    return dx, dW, db


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

    Args: logits (N, V); y (N,) integer ids in [0, V).
    Returns: loss (0-d array, mean over N), cache.
    """
    xp = xp_of(logits)
    n = logits.shape[0]
    exp = logits - logits.max(axis=1, keepdims=True)          # (N, V), max entry of each row is 0
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
