"""Training: one epoch of BPTT, and fit(), the whole run.

fit() runs the data flow of DESIGN.md: corpus -> loader -> gradients -> clip -> step. The
sequential sampler carries the hidden state from batch to batch as a constant (the book's
detach: BPTT is truncated at batch boundaries); the random and window samplers start every
batch from zeros. After each epoch the run directory (rundir.py) is written. Ctrl-C stops
after the current batch and saves a checkpoint that --resume continues exactly.
The settings live in config.py, held-out evaluation in evaluation.py.
"""
import dataclasses
import math
import signal
import sys
import time
from typing import NamedTuple, Optional

import numpy as np

from . import parallel, text
from .backend import to_device, to_numpy, tune_host_allocator
from .batching import SeqDataLoader
from .errors import DataError, DivergenceError
from .evaluation import corpus_batches, evaluate
from .model import RNNLM
from .optim import OPTIMIZERS, clip_grad_norm, perplexity
from .rundir import RunDir
from .tree import leaves, unflatten


@dataclasses.dataclass
class EpochProgress:
    """How far an epoch got: enough to report it, and to resume it exactly after Ctrl-C."""
    batches: int = 0
    tokens: int = 0
    loss_sum: float = 0.0       # sum over batches of mean loss * tokens
    norm_sum: float = 0.0
    norm_max: float = 0.0
    clipped: int = 0
    seconds: float = 0.0        # training time only (batching included, evaluation and I/O not)
    state: Optional[list] = None  # the carried state (sequential sampler): its arrays as lists


class Interrupt:
    """SIGINT handler: the first Ctrl-C asks to stop after the current batch, the second stops now."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:       # not the main thread: leave Ctrl-C as it is
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print('\nminirnn: stopping after this batch (Ctrl-C again to stop at once)', file=sys.stderr)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def train_epoch(model, loader, optimizer, clip, epoch, progress, interrupt=None, dropout_rng=None):
    """One pass over the loader, continuing `progress` (batches already done are skipped).

    dropout_rng: the Generator that draws the dropout masks (None: no dropout).
    Returns True when the epoch finished, False when an interrupt stopped it early.
    Raises DivergenceError, before any update, on a NaN or infinite loss or gradient.
    """
    carry = loader.sampler == 'sequential'
    state = None
    if progress.state is not None:
        state = unflatten(model.begin_state(loader.batch_size),
                          [to_device(np.asarray(a), model.xp, model.dtype) for a in progress.state])
    stopped = False
    start = time.perf_counter()
    for i, (X, Y) in enumerate(loader):
        if i < progress.batches:
            continue         # replaying an interrupted epoch: these batches were done
        # the carried state enters as a constant, so BPTT stops at the batch boundary
        result = model.gradients(X, Y, state if carry else None, dropout_rng=dropout_rng)
        norm = clip_grad_norm(result.grads, clip)
        if not (math.isfinite(result.loss) and math.isfinite(norm)):
            raise DivergenceError(
                f'training diverged at epoch {epoch}, batch {i + 1}: loss {result.loss}, gradient norm '
                f'{norm}; the run directory was left as the last finished epoch wrote it. Try '
                f'gradient clipping (--clip 1) or a lower learning rate (--lr)')
        optimizer.step(model.params, result.grads)
        state = result.state if carry else None
        progress.batches += 1
        progress.tokens += X.size
        progress.loss_sum += result.loss * X.size
        progress.norm_sum += norm
        progress.norm_max = max(progress.norm_max, norm)
        progress.clipped += bool(clip and norm > clip)
        if interrupt is not None and interrupt.requested:
            stopped = True
            break
    progress.seconds += time.perf_counter() - start
    if stopped and state is not None:     # kept for --resume to carry on mid-epoch
        progress.state = [to_numpy(a).tolist() for a in leaves(state)]
    return not stopped


def _finite(x):
    """x, or None where JSON has no number for it (a perplexity past float range)."""
    return x if math.isfinite(x) else None


def format_ppl(x):
    """A perplexity from a history row for people: 2 decimals, 'inf' for null."""
    return 'inf' if x is None else f'{x:.2f}'


def history_row(epoch, progress, val_loss, seconds):
    """The history.jsonl record of one finished epoch (perplexities beyond float range are null)."""
    return {'epoch': epoch,
            'train_ppl': _finite(perplexity(progress.loss_sum / progress.tokens)),
            'val_ppl': None if val_loss is None else _finite(perplexity(val_loss)),
            'tokens_per_s': progress.tokens / progress.seconds if progress.seconds else None,
            'grad_norm_mean': progress.norm_sum / progress.batches,
            'grad_norm_max': progress.norm_max,
            'clipped_fraction': progress.clipped / progress.batches,
            'seconds': seconds}


class FitResult(NamedTuple):
    model: RNNLM
    vocab: text.Vocab
    history: list           # one dict per finished epoch (history_row)
    finished: bool          # False when Ctrl-C stopped the run (a checkpoint was saved)


def _split(config, corpus, model):
    """The train loader's corpus and window range, and a validate(model) -> loss-or-None."""
    B, T = config.batch_size, config.num_steps
    if config.num_train_windows is not None:       # the book's 2nd edition split
        train = (corpus, dict(start=0, num_windows=config.num_train_windows))
        if not config.num_val_windows:
            return train, None
        val = SeqDataLoader(corpus, B, T, 'windows', xp=model.xp, start=config.num_train_windows,
                            num_windows=config.num_val_windows, shuffle=False)
        return train, lambda: evaluate(model, val, carry_state=False)
    train_corpus, val_corpus = text.split_corpus(corpus, config.val_fraction)
    train = (train_corpus, {})
    if val_corpus is None:
        return train, None
    if len(val_corpus) < 2:
        raise DataError(f'the validation tail holds {len(val_corpus)} token(s); it needs at least 2: '
                        'use a larger --val-fraction or a longer text')
    if config.sampler == 'windows':
        try:
            val = SeqDataLoader(val_corpus, B, T, 'windows', xp=model.xp, shuffle=False)
        except DataError as exc:
            raise DataError(f'the validation tail is too short: {exc}; or a larger --val-fraction') from None
        return train, lambda: evaluate(model, val, carry_state=False)
    return train, lambda: evaluate(model, corpus_batches(val_corpus, B, T), carry_state=True)


def _check_finite(model, epoch):
    """Before a save: an update that made the parameters non-finite must never reach the disk."""
    if not all(bool(model.xp.isfinite(p).all()) for p in model.params.values()):
        raise DivergenceError(
            f'training diverged in epoch {epoch}: an update made the parameters NaN or infinite; '
            f'the run directory was left as the last finished epoch wrote it. Try gradient '
            f'clipping (--clip 1) or a lower learning rate (--lr)')


def fit(config, out_dir, *, resume=False, overwrite=False, quiet=False):
    """Train a model as `config` says, writing the run directory `out_dir` after every epoch.

    out_dir: a path, or a rundir.RunDir (whose saved checkpoint may have been read already).
    resume: continue DIR/model.npz exactly where it stopped (same batches, same updates; only
    the fields in rundir.RESUMABLE_CHANGES may differ from the saved config). Without resume,
    an existing run in DIR is an error unless overwrite. Nothing in DIR changes before the
    first epoch ends, so a run that fails early leaves the directory as it was.
    Returns a FitResult.
    """
    from tqdm import tqdm
    tune_host_allocator()
    run = out_dir if isinstance(out_dir, RunDir) else RunDir(out_dir)
    run.check(config, resume=resume, overwrite=overwrite)
    saved = run.load(config.device) if resume else None

    corpus, vocab = text.load_corpus(config.data, preprocess=config.preprocess, token=config.token,
                                     max_tokens=config.max_tokens, encoding=config.encoding)
    init_rng, data_rng, dropout_rng = [np.random.default_rng(s) for s in
                                       np.random.SeedSequence(config.seed).spawn(3)]
    if saved is not None:
        if saved.vocab.idx_to_token != vocab.idx_to_token:
            raise DataError(f'{config.data} no longer gives the vocabulary of the saved run; '
                            'resume with the same text and options')
        model = saved.model
        model.threads = parallel.host_threads(model.xp, config.threads)
    else:
        model = RNNLM(len(vocab), config.num_hiddens, activation=config.activation,
                      embed_dim=config.embed_dim, sigma=config.sigma, dtype=config.dtype,
                      device=config.device, seed=init_rng, cell=config.cell,
                      num_layers=config.num_layers, dropout=config.dropout, threads=config.threads)
    optimizer = OPTIMIZERS[config.optimizer](config.lr)
    (train_corpus, window_options), validate = _split(config, corpus, model)
    loader = SeqDataLoader(train_corpus, config.batch_size, config.num_steps, config.sampler,
                           data_rng, model.xp, **window_options)
    history, epoch, progress = [], 1, EpochProgress()
    if saved is not None:
        if saved.optimizer_state is not None:
            optimizer.load_state_dict(saved.optimizer_state, model.xp)
        position = saved.meta['position']
        loader.load_state_dict(position['loader'])
        if 'dropout_rng' in position:
            dropout_rng.bit_generator.state = position['dropout_rng']
        history, epoch = list(saved.meta['history']), position['epoch']
        progress = EpochProgress(**position['progress'])

    def save(epoch, next_epoch, loader_state, progress):
        """Save after `epoch`; a resume starts at `next_epoch` from `loader_state` and `progress`."""
        _check_finite(model, epoch)
        # the dropout Generator as it is now: a replayed epoch skips its finished batches
        # without drawing masks, so it continues from exactly here
        run.save(model, vocab, optimizer, config, history,
                 {'epoch': next_epoch, 'loader': loader_state, 'progress': dataclasses.asdict(progress),
                  'dropout_rng': dropout_rng.bit_generator.state})

    run.open()                        # fail now, not after the first epoch's work
    if not quiet:
        print(f'minirnn: training into {run.path}: {len(train_corpus):,} tokens, vocabulary {len(vocab)}, '
              f'{len(loader)} batches per epoch on {config.device}', file=sys.stderr)
    log_every = max(1, config.num_epochs // 10)
    bar = tqdm(total=config.num_epochs, initial=epoch - 1, unit='epoch', file=sys.stderr,
               disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True)
    try:
        with Interrupt() as interrupt, parallel.blas_context(config.batch_size, config.num_hiddens,
                                                             model.threads):
            while epoch <= config.num_epochs:
                loader_state = loader.state_dict()   # replays this epoch if it is interrupted
                if not train_epoch(model, loader, optimizer, config.clip, epoch, progress, interrupt,
                                   dropout_rng if config.dropout else None):
                    save(epoch, epoch, loader_state, progress)
                    run.plot(history, config, force=True)
                    print(f'minirnn: interrupted in epoch {epoch}; {run.checkpoint_path} saved, '
                          f'continue with --resume', file=sys.stderr)
                    return FitResult(model, vocab, history, False)
                start = time.perf_counter()
                val_loss = validate() if validate else None
                history.append(history_row(epoch, progress, val_loss,
                                           progress.seconds + time.perf_counter() - start))
                save(epoch, epoch + 1, loader.state_dict(), EpochProgress())
                run.plot(history, config, force=epoch == config.num_epochs)
                row = history[-1]
                bar.set_postfix_str(f'ppl {format_ppl(row["train_ppl"])}', refresh=False)
                bar.update(1)
                if not quiet and (epoch % log_every == 0 or epoch == config.num_epochs):
                    val = '' if validate is None else f'  val ppl {format_ppl(row["val_ppl"])}'
                    tqdm.write(f'epoch {epoch}/{config.num_epochs}  train ppl {format_ppl(row["train_ppl"])}'
                               f'{val}  {row["tokens_per_s"]:,.0f} tokens/s', file=sys.stderr)
                epoch += 1
                progress = EpochProgress()
    finally:
        bar.close()
    return FitResult(model, vocab, history, True)
