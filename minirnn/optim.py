"""Gradient clipping, the optimizers (SGD as the book, Adagrad as min-char-rnn, Adam), and Schedule.

Optimizers update the model's parameter dict in place and keep their slots (running sums,
moments) per parameter name, on the parameters' device. `state_dict`/`load_state_dict` move
that state in and out of checkpoints as host NumPy arrays. A Schedule gives the learning rate
of each step from the step count and the epoch, which checkpoints already hold.
"""
import math
import numbers

from . import checks
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


def format_ppl(x):
    """A perplexity for people: 2 decimals below 10^5, scientific notation above, 'inf' for None."""
    if x is None or not math.isfinite(x):
        return 'inf'
    return f'{x:.2f}' if x < 1e5 else f'{x:.2e}'


def _positive(name, value):
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ConfigError(f'{name} must be a positive number, got {value!r}')
    return float(value)


def bias_lr_mults(params, mult):
    """The lr_mults (see Optimizer) under which the recurrent cells' biases learn `mult` times as fast.

    PyTorch's nn.RNN / nn.GRU / nn.LSTM keep two biases per gate, b_ih and b_hh, where the book
    keeps one (b = b_ih + b_hh). Both receive the book's bias gradient, so under SGD, Adagrad or
    Adam each moves as the book's bias would, and their sum twice as far: mult=2 is PyTorch's
    update (but for its clipping norm, which counts each bias gradient twice). The output
    layer's b_q is one bias in PyTorch too (nn.Linear) and keeps the rate.

    Args: params, name -> array (model.params); mult, a positive number.
    Returns: {name: mult} for every cell bias (b_*, layers included, but b_q); {} when mult is 1.
    """
    mult = _positive('bias_lr_mult', mult)
    if mult == 1:
        return {}
    return {name: mult for name in params if name.startswith('b_') and name != 'b_q'}


def ema_average(slots, ema, steps):
    """name -> avg / (1 - ema^steps) for every 'avg' slot in slots (Optimizer.averaged_params)."""
    correction = 1 / (1 - ema ** steps)
    return {name: sl['avg'] * correction for name, sl in slots.items() if 'avg' in sl}


class Optimizer:
    """Base class: holds lr, weight decay and per-parameter slots; subclasses define `_update`.

    Args: lr, the learning rate (None: the class's default_lr); weight_decay >= 0, applied to
    the weight matrices (2-D parameters: W_xh, W_hh, W_hq, W_emb), never to the biases, as
    nanoGPT does; each subclass says how (L2 in the gradient, or decoupled);
    lr_mults: None, or parameter name -> a positive factor on the learning rate of that
    parameter (the others take the rate as it is); see bias_lr_mults;
    ema: None, or a decay D in (0, 1): keep an exponential moving average of every parameter
    after each step, in the slot 'avg' (see averaged_params).
    """

    slot_names = ()
    default_lr = None

    def __init__(self, lr=None, *, weight_decay=0.0, lr_mults=None, ema=None):
        self.lr = _positive('learning rate', self.default_lr if lr is None else lr)
        self.ema = checks.number('ema', ema, above=0, below=1, optional=True)
        self.lr_mults = {name: _positive(f'learning-rate factor of {name}', m)
                         for name, m in (lr_mults or {}).items()}
        if isinstance(weight_decay, bool) or not (isinstance(weight_decay, numbers.Real)
                                                  and math.isfinite(weight_decay) and weight_decay >= 0):
            raise ConfigError(f'weight decay must be a number >= 0, got {weight_decay!r}')
        self.weight_decay = float(weight_decay)
        self.steps = 0
        self.last_lr = None  # the learning rate of the latest step
        self.slots = {}      # name -> {slot: array}

    def step(self, params, grads, lr=None):
        """Update every parameter in `params` from `grads` (same keys; 'state' is ignored).

        lr: this step's learning rate (a Schedule's), or None for self.lr.
        With ema = D, after the update: avg <- D avg + (1 - D) p  (avg starts at 0).
        """
        lr = self.lr if lr is None else float(lr)
        self.steps += 1
        self.last_lr = lr
        names = self.slot_names + (('avg',) if self.ema else ())
        for name, p in params.items():
            if name not in self.slots:
                xp = xp_of(p)
                self.slots[name] = {s: xp.zeros_like(p) for s in names}
            decay = self.weight_decay if p.ndim >= 2 else 0.0
            self._update(p, grads[name], self.slots[name], lr * self.lr_mults.get(name, 1.0), decay)
            if self.ema:
                avg = self.slots[name]['avg']
                avg *= self.ema
                avg += (1 - self.ema) * p

    def averaged_params(self):
        """The moving average of the weights (ema), name -> new array, or None before any step.

        avg / (1 - D^t) after t steps: the average's zero start corrected as Adam's moments are,
        so that it weighs only the weights the steps produced,
        sum_s (1 - D) D^(t-s) p_s / (1 - D^t), never the initial ones.
        """
        if not self.ema or not self.steps:
            return None
        return ema_average(self.slots, self.ema, self.steps)

    def _update(self, p, g, slots, lr, decay):
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
    """The book's minibatch SGD: p <- p - lr * g (the loss is already a mean over tokens).

    Weight decay wd is L2: g + wd * p in place of g, i.e. p <- (1 - lr * wd) p - lr * g
    (for SGD the L2 term and decoupled decay are the same update).
    """

    default_lr = 1.0     # the book's (both editions)

    def _update(self, p, g, slots, lr, decay):
        if decay:
            p *= 1 - lr * decay
        p -= lr * g


class Adagrad(Optimizer):
    """Adagrad as in min-char-rnn: m <- m + g^2; p <- p - lr * g / sqrt(m + eps).

    Weight decay wd is L2, as PyTorch's Adagrad: g + wd * p in place of g, in both lines.
    """

    slot_names = ('sum_sq',)
    default_lr = 0.1     # min-char-rnn's learning_rate

    def __init__(self, lr=None, eps=1e-8, *, weight_decay=0.0, lr_mults=None,
                 ema=None):
        super().__init__(lr, weight_decay=weight_decay, lr_mults=lr_mults, ema=ema)
        self.eps = eps

    def _update(self, p, g, slots, lr, decay):
        xp = xp_of(p)
        if decay:
            g = g + decay * p
        m = slots['sum_sq']
        m += g * g
        p -= lr * g / xp.sqrt(m + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; with weight decay, AdamW (Loshchilov & Hutter).

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  t = steps so far (this one included);
    p <- (1 - lr * wd) p  (decoupled: the decay never enters m or v), then
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    """

    slot_names = ('m', 'v')
    default_lr = 2e-3    # char-rnn's and torch-rnn's learning_rate

    def __init__(self, lr=None, beta1=0.9, beta2=0.999, eps=1e-8, *, weight_decay=0.0, lr_mults=None,
                 ema=None):
        super().__init__(lr, weight_decay=weight_decay, lr_mults=lr_mults, ema=ema)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, p, g, slots, lr, decay):
        xp = xp_of(p)
        m, v = slots['m'], slots['v']
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        if decay:
            p *= 1 - lr * decay
        m_hat_scale = 1 / (1 - self.beta1 ** self.steps)
        v_hat_scale = 1 / (1 - self.beta2 ** self.steps)
        p -= lr * (m * m_hat_scale) / (xp.sqrt(v * v_hat_scale) + self.eps)


OPTIMIZERS = {'sgd': SGD, 'adagrad': Adagrad, 'adam': Adam}
DEFAULT_LR = {name: cls.default_lr for name, cls in OPTIMIZERS.items()}


# --- learning-rate schedules ----------------------------------------------------------------

SCHEDULES = ('constant', 'step', 'cosine')


class Schedule:
    """The learning rate of each optimizer step: base_lr x warm-up x decay.

    For the step that follows `step` finished updates (0 for the first), in epoch `epoch` (1, 2, ...):
      warm-up (any kind): min(1, (step + 1) / warmup_steps), a linear ramp to base_lr;
      constant: no decay;
      step (char-rnn's): decay ** n, n = how many decays have happened, one at the end of epoch
        decay_after and of every decay_every-th epoch after it: n = 0 while epoch <= decay_after,
        else (epoch - 1 - decay_after) // decay_every + 1;
      cosine: (1 + cos(pi * s)) / 2, s = (step - warmup_steps) / (total_steps - warmup_steps)
        clipped to [0, 1]: from base_lr after the warm-up to 0 at total_steps.
    Both arguments are saved in every checkpoint, so a resumed run gets the same rates.
    """

    def __init__(self, base_lr, kind='constant', *, warmup_steps=0, decay=None, decay_every=None,
                 decay_after=None, total_steps=None):
        if kind not in SCHEDULES:
            raise ConfigError(f'unknown lr schedule {kind!r}; choose one of {", ".join(SCHEDULES)}')
        if kind == 'step' and None in (decay, decay_every, decay_after):
            raise ConfigError('the step schedule needs decay, decay_every and decay_after')
        if kind == 'cosine' and total_steps is None:
            raise ConfigError('the cosine schedule needs total_steps')
        self.base_lr, self.kind, self.warmup_steps = _positive('learning rate', base_lr), kind, warmup_steps
        self.decay, self.decay_every, self.decay_after = decay, decay_every, decay_after
        self.total_steps = total_steps

    def __call__(self, step, epoch):
        """The learning rate of the update after `step` finished ones, in epoch `epoch`."""
        lr = self.base_lr
        if self.warmup_steps:
            lr *= min(1.0, (step + 1) / self.warmup_steps)
        if self.kind == 'step' and epoch > self.decay_after:
            lr *= self.decay ** ((epoch - 1 - self.decay_after) // self.decay_every + 1)
        elif self.kind == 'cosine':
            span = max(1, self.total_steps - self.warmup_steps)
            s = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            lr *= (1 + math.cos(math.pi * s)) / 2
        return lr
