"""Gradient clipping and the optimizers: SGD (the book), Adagrad (min-char-rnn) and Adam.

Optimizers update the model's parameter dict in place and keep their slots (running sums,
moments) per parameter name, on the parameters' device. `state_dict`/`load_state_dict` move
that state in and out of checkpoints as host NumPy arrays.
"""
import math
import numbers

from .backend import to_numpy, xp_of
from .errors import ConfigError


def clip_grad_norm(grads, max_norm):
    """Scale all parameter gradients together so their global L2 norm is at most max_norm.

    This is the book's `grad_clipping`: norm = sqrt(sum over parameters of sum(g^2)); if it
    exceeds max_norm, every gradient is multiplied by max_norm / norm, in place. The 'state'
    entry (gradient w.r.t. the initial state) is not a parameter and is left alone.

    Args: grads, dict name -> array; max_norm, a positive float, or 0/None to only measure.
    Returns: the norm before clipping, a Python float (one device sync).
    """
    names = [k for k in grads if k != 'state']
    if not names:
        return 0.0
    xp = xp_of(grads[names[0]])
    # vdot on the flattened arrays: a BLAS dot, no squared temporary
    total = sum(xp.vdot(grads[k].ravel(), grads[k].ravel()) for k in names)
    norm = math.sqrt(float(total))
    if max_norm and norm > max_norm:
        scale = max_norm / norm
        for k in names:
            grads[k] *= scale
    return norm


def perplexity(mean_loss):
    """exp of the mean cross-entropy per token (in nats): 1 is perfect, V is uniform guessing."""
    return math.exp(mean_loss) if mean_loss < 709 else math.inf


class Optimizer:
    """Base class: holds lr and per-parameter slots; subclasses define `_update`."""

    slot_names = ()

    def __init__(self, lr):
        if isinstance(lr, bool) or not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f'learning rate must be a positive number, got {lr!r}')
        self.lr = float(lr)
        self.steps = 0
        self.slots = {}      # name -> {slot: array}

    def step(self, params, grads):
        """Update every parameter in `params` from `grads` (same keys; 'state' is ignored)."""
        self.steps += 1
        for name, p in params.items():
            if name not in self.slots:
                xp = xp_of(p)
                self.slots[name] = {s: xp.zeros_like(p) for s in self.slot_names}
            self._update(p, grads[name], self.slots[name])

    def _update(self, p, g, slots):
        raise NotImplementedError

    def state_dict(self):
        """{'steps': int, 'slots': {name: {slot: numpy array}}}: copies, safe to keep or save."""
        return {'steps': self.steps,
                'slots': {n: {s: to_numpy(a).copy() for s, a in sl.items()}
                          for n, sl in self.slots.items()}}

    def load_state_dict(self, state, xp):
        """Take slots from state_dict() output (host arrays), copied onto module xp."""
        self.steps = int(state['steps'])
        self.slots = {n: {s: xp.array(a, copy=True) for s, a in sl.items()}
                      for n, sl in state['slots'].items()}


class SGD(Optimizer):
    """The book's minibatch SGD: p <- p - lr * g (the loss is already a mean over tokens)."""

    def _update(self, p, g, slots):
        p -= self.lr * g


class Adagrad(Optimizer):
    """Adagrad as in min-char-rnn: m <- m + g^2; p <- p - lr * g / sqrt(m + eps)."""

    slot_names = ('sum_sq',)

    def __init__(self, lr, eps=1e-8):
        super().__init__(lr)
        self.eps = eps

    def _update(self, p, g, slots):
        xp = xp_of(p)
        m = slots['sum_sq']
        m += g * g
        p -= self.lr * g / xp.sqrt(m + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction."""

    slot_names = ('m', 'v')

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, p, g, slots):
        xp = xp_of(p)
        m, v = slots['m'], slots['v']
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat_scale = 1 / (1 - self.beta1 ** self.steps)
        v_hat_scale = 1 / (1 - self.beta2 ** self.steps)
        p -= self.lr * (m * m_hat_scale) / (xp.sqrt(v * v_hat_scale) + self.eps)


OPTIMIZERS = {'sgd': SGD, 'adagrad': Adagrad, 'adam': Adam}
