"""When a run stops on its own: divergence, early stopping, and which epoch is the best.

Divergence: a batch whose mean loss is NaN, infinite or above DIVERGENCE_FACTOR x max(log V,
the untrained model's loss), or whose gradient norm is not finite. log V is the loss of
uniform guessing, so past the bound the model is far worse than one that knows nothing. The
best epoch has the lowest validation perplexity; early stopping counts the epochs since it.
Carrying the run out is trainer.py's job (the per-batch check, train.py's); these functions
only judge its numbers. StopRequest ends an epoch at a batch boundary: Ctrl-C, or the time budget
(--max-minutes) running out inside an epoch.
"""
import math
import time

from .evaluation import corpus_batches
from ..optim import DEFAULT_LR, format_ppl
from ..train import DIVERGENCE_FACTOR


def loss_bound(model, corpus, batch_size, num_steps):
    """DIVERGENCE_FACTOR x max(log V, the model's loss on the first batch_size x num_steps tokens).

    Taken from the untrained model, so a large initial sigma (whose first losses lie above
    3 log V) is not mistaken for a divergence. Forward only: no random draw is consumed.
    """
    X, Y = next(corpus_batches(corpus, batch_size, num_steps))
    initial = model.loss(X, Y)[0]
    return DIVERGENCE_FACTOR * max(math.log(model.vocab_size), initial if math.isfinite(initial) else 0.0)


def uniform_bound(vocab_size):
    """The bound of a model at uniform guessing: runs saved before the bound was kept get this."""
    return DIVERGENCE_FACTOR * math.log(vocab_size)


def divergence_advice(config, epoch, saved):
    """The likely causes of a divergence in this run's terms, and what is on disk.

    saved: whether the run directory holds a checkpoint (of an earlier epoch: nothing of the
    diverged one is ever written).
    """
    clipping = ('gradient clipping is off (--clip 0; the book clips at 1)' if not config.clip
                else f'gradient clipping at --clip {config.clip:g} did not hold it')
    default = DEFAULT_LR[config.optimizer]
    above = f', above {config.optimizer}\'s default {default:g}' if config.lr > default else ''
    disk = (f'Nothing of epoch {epoch} was saved; start over with --overwrite and' if saved
            else 'Nothing was saved; start again with')
    return (f'likely causes: {clipping}, and the learning rate is too high (--lr {config.lr:g}{above}). '
            f'{disk} a lower --lr' + ('' if config.clip else ' or --clip 1'))


def finite_params(model):
    """Whether every parameter entry is finite (one device sync per parameter)."""
    return all(bool(model.xp.isfinite(p).all()) for p in model.params.values())


def improves(val_ppl, history):
    """Whether val_ppl beats every validation perplexity in the history (best.npz is then saved)."""
    return val_ppl is not None and all(val_ppl < r['val_ppl'] for r in history if r.get('val_ppl') is not None)


def early_stop_line(config, history):
    """The line that ends the run once config.early_stop epochs passed without a better
    val_ppl (counted from the best epoch, or from the start when none was finite); else None."""
    if not config.early_stop or not history:
        return None
    scored = [(r['val_ppl'], r['epoch']) for r in history if r.get('val_ppl') is not None]
    best_ppl, best_epoch = min(scored) if scored else (None, 0)    # ties: the earlier epoch
    waited = history[-1]['epoch'] - best_epoch
    if waited < config.early_stop:
        return None
    best = f'the best, {format_ppl(best_ppl)} at epoch {best_epoch}, is in best.npz' if scored \
        else 'no epoch had a finite validation perplexity'
    return (f'minirnn: stopping early after epoch {history[-1]["epoch"]}: validation perplexity has '
            f'not improved for {waited} epochs (--early-stop {config.early_stop}); {best}')


class StopRequest:
    """Whether to stop after the current batch: Ctrl-C or the time budget, and which (reason).

    interrupt: feedback.Interrupt (its `requested`); deadline: a time.monotonic() value past
    which the run stops (--max-minutes), or None. train_epoch reads `requested` after every
    batch; an MPI run reads flags() on every rank and stops where any rank asked
    (distributed.AgreedStop). reason: 'interrupt', 'budget', or None while neither asked.
    """

    def __init__(self, interrupt, deadline=None):
        self.interrupt, self.deadline, self.reason = interrupt, deadline, None

    def flags(self):
        """(Ctrl-C was pressed, the budget is spent), as booleans."""
        return bool(self.interrupt.requested), self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def requested(self):
        interrupt, budget = self.flags()
        self.reason = 'interrupt' if interrupt else 'budget' if budget else None
        return self.reason is not None
