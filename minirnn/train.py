"""The book's train_epoch: one pass over the batches, each one BPTT, clipping and an update.

The data flow of one batch: loader -> gradients (as the truncation says, truncation.py) ->
clip -> optimizer step. The sequential sampler's batches continue each other, so the book's
detach hands each batch's final state to the next as a constant (BPTT is truncated at batch
boundaries); the other samplers start every batch from zeros. A batch whose loss or gradient
blows up stops the epoch with DivergenceError. A whole run (epochs, validation, checkpoints,
resume) is run/trainer.py's.
"""
import dataclasses
import math
import time
from typing import Optional

import numpy as np

from .backend import to_device, to_numpy
from .errors import DivergenceError
from .optim import clip_grad_norm, format_ppl, perplexity
from .tree import leaves, unflatten
from .truncation import Detach

# A batch diverged when its mean loss is NaN, infinite or above DIVERGENCE_FACTOR x max(log V,
# the untrained model's loss) (log V: uniform guessing; run/stopping.loss_bound), or its
# gradient norm is not finite.
DIVERGENCE_FACTOR = 3


@dataclasses.dataclass
class EpochProgress:
    """How far an epoch got: enough to report it, and to resume it exactly after Ctrl-C."""
    batches: int = 0
    tokens: int = 0
    loss_sum: float = 0.0       # sum over batches of mean loss * tokens
    norm_sum: float = 0.0
    norm_max: float = 0.0
    clipped: int = 0
    seconds: float = 0.0        # training time only (batching included; evaluation, sampling, I/O not)
    state: Optional[list] = None  # the carried state (sequential sampler): its arrays as lists
    evals: list = dataclasses.field(default_factory=list)    # {'step', 'val_ppl'} (--eval-every)
    samples: list = dataclasses.field(default_factory=list)  # {'step', 'text'} (--sample-every)

    def record(self, result, norm, clip, tokens):
        """Add one batch: result, the model's Gradients; norm, the gradient norm before clipping.

        The one place where per-batch results are accumulated into the epoch's history row.
        """
        self.batches += 1
        self.tokens += tokens
        self.loss_sum += result.loss * tokens
        self.norm_sum += norm
        self.norm_max = max(self.norm_max, norm)
        self.clipped += bool(clip and norm > clip)


def train_epoch(model, loader, optimizer, clip, epoch, progress, interrupt=None, dropout_rng=None, *,
                schedule=None, max_loss=math.inf, on_batch=None, truncation=None, monitor=None):
    """One pass over the loader, continuing `progress` (batches already done are skipped).

    Per batch: gradients (BPTT as `truncation` says: a truncation.py strategy, None for the
    book's detach), monitor.add_batch (per-epoch instrumentation, monitor.py; before clipping),
    clipping to `clip`, the divergence check, progress.record, one optimizer step at
    schedule(steps, epoch) (None: the optimizer's lr), then on_batch(progress) (feedback; its
    time is not counted as training time).
    dropout_rng: the Generator that draws the dropout masks (None: no dropout).
    Returns True when the epoch finished, False when an interrupt stopped it early.
    Raises DivergenceError, before that batch's update, when the loss is NaN, infinite or above
    max_loss, or the gradient norm is not finite; `progress` then includes that batch.
    """
    bptt = truncation or Detach()
    bptt.start_epoch(loader)     # a replayed epoch's full BPTT restarts at the resumed batch
    state = None
    if progress.state is not None:
        state = unflatten(model.begin_state(loader.batch_size),
                          [to_device(np.asarray(a), model.xp, model.dtype) for a in progress.state])
    stopped = False
    tick = time.perf_counter()
    for i, (X, Y) in enumerate(loader):
        if i < progress.batches:
            tick = time.perf_counter()
            continue         # replaying an interrupted epoch: these batches were done
        # a carried state enters as a constant: BPTT stops at the batch boundary (unless
        # truncation 'full' carries the gradient on through the kept earlier batches)
        result = bptt.gradients(model, X, Y, state, dropout_rng,
                                record_steps=monitor is not None and monitor.wants_steps())
        if monitor is not None:
            monitor.add_batch(result)                   # before clipping scales the gradients
        norm = clip_grad_norm(result.grads, clip)
        progress.record(result, norm, clip, X.size)
        if not (math.isfinite(result.loss) and math.isfinite(norm)) or result.loss > max_loss:
            progress.seconds += time.perf_counter() - tick
            raise DivergenceError(f'training diverged at epoch {epoch}, batch {i + 1}: '
                                  f'{divergence_facts(result.loss, norm, max_loss)}')
        lr = None if schedule is None else schedule(optimizer.steps, epoch)
        optimizer.step(model.params, result.grads, lr)
        state = bptt.next_state(result)
        progress.seconds += time.perf_counter() - tick
        if on_batch is not None:
            on_batch(progress)
        tick = time.perf_counter()
        if interrupt is not None and interrupt.requested:
            stopped = True
            break
    progress.seconds += time.perf_counter() - tick
    if stopped and state is not None:     # kept for --resume to carry on mid-epoch
        progress.state = [to_numpy(a).tolist() for a in leaves(state)]
    return not stopped




def divergence_facts(loss, norm, max_loss):
    """What crossed the line, for the error message."""
    if not math.isfinite(loss):
        return f'the loss is {loss}'
    if loss > max_loss:
        return (f'the loss {loss:.3g} (perplexity {format_ppl(perplexity(loss))}) is above '
                f'{DIVERGENCE_FACTOR} x max(log V, initial loss) = {max_loss:.3g}')
    return f'the gradient norm is {norm}'
