"""Training: one epoch of BPTT, and fit(), the whole run.

fit() runs the data flow of the README's architecture: corpus -> loader -> gradients -> clip -> step, at the
learning rate of optim.Schedule. The sequential sampler carries the hidden state from batch to
batch as a constant (the book's detach: BPTT is truncated at batch boundaries); the others
start every batch from zeros. After each epoch the run directory (rundir.py) is written. A
diverged run stops with DivergenceError; Ctrl-C stops after the current batch and saves a
checkpoint that --resume continues exactly. Settings live in config.py, held-out evaluation in
evaluation.py, what the user sees meanwhile in feedback.py.
"""
import contextlib
import dataclasses
import math
import time
from typing import NamedTuple, Optional

import numpy as np

from . import parallel, text
from .backend import to_device, to_numpy, tune_host_allocator
from .batching import SeqDataLoader
from .errors import ConfigError, DataError, DivergenceError
from .evaluation import corpus_batches, evaluate
from .feedback import Interrupt, Reporter, format_ppl  # noqa: F401 (format_ppl: re-exported)
from .model import RNNLM
from .monitor import EpochMonitor
from .optim import OPTIMIZERS, Schedule, bias_lr_mults, clip_grad_norm, perplexity
from .rundir import RunDir
from .stopping import (divergence_advice, divergence_facts, early_stop_line, finite_params, improves,
                       loss_bound, uniform_bound)
from .tree import leaves, unflatten
from .truncation import Detach, from_config

SAMPLE_NUM_PREDS = 40   # tokens in each sample taken while training (--sample-every)


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
    carry = loader.sampler == 'sequential'
    bptt = truncation or Detach()
    bptt.start_epoch()       # a replayed epoch's full BPTT restarts at the resumed batch
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
        # the carried state enters as a constant: BPTT stops at the batch boundary (unless
        # truncation 'full' carries the gradient on through the kept earlier batches)
        result = bptt.gradients(model, X, Y, state if carry else None, dropout_rng,
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
        state = result.state if carry else None
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


def _finite(x):
    """x, or None where JSON has no number for it (a perplexity past float range, a NaN norm)."""
    return x if x is not None and math.isfinite(x) else None


def history_row(epoch, progress, val_loss, seconds, *, optimizer_steps=None, lr=None):
    """The history.jsonl record of one epoch (numbers beyond float range are null).

    batches: this epoch's; optimizer_steps: the run's total after it; lr: its last step's rate.
    """
    return {'epoch': epoch,
            'train_ppl': _finite(perplexity(progress.loss_sum / progress.tokens)),
            'val_ppl': None if val_loss is None else _finite(perplexity(val_loss)),
            'tokens_per_s': progress.tokens / progress.seconds if progress.seconds else None,
            'grad_norm_mean': _finite(progress.norm_sum / progress.batches),
            'grad_norm_max': _finite(progress.norm_max),
            'clipped_fraction': progress.clipped / progress.batches,
            'seconds': seconds,
            'batches': progress.batches,
            'optimizer_steps': optimizer_steps,
            'lr': lr}


class FitResult(NamedTuple):
    model: RNNLM
    vocab: text.Vocab
    history: list           # one dict per finished epoch (history_row)
    finished: bool          # False when Ctrl-C stopped the run (a checkpoint was saved)
    stopped_early: bool = False   # early_stop ended the run before num_epochs
    averaged: Optional[dict] = None   # --ema: the moving average of the weights (use_weights)


@contextlib.contextmanager
def use_weights(model, weights):
    """Within the block the model holds `weights` (name -> array; None: no change), copied in
    place; its own come back, bit for bit, after it. --ema validates, samples and predicts
    with the moving average of the weights while training goes on with the weights themselves."""
    if weights is None:
        yield model
        return
    own = {name: p.copy() for name, p in model.params.items()}
    for name, p in model.params.items():
        p[...] = weights[name]
    try:
        yield model
    finally:
        for name, p in model.params.items():
            p[...] = own[name]


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
    if not finite_params(model):
        raise DivergenceError(
            f'training diverged in epoch {epoch}: an update made the parameters NaN or infinite; '
            f'the run directory was left as the last finished epoch wrote it. Try gradient '
            f'clipping (--clip 1) or a lower learning rate (--lr)')


def _budget_line(config, started, last_epoch_seconds):
    """The line that ends the run before an epoch that would end past config.max_minutes, else None.

    The next epoch is expected to take as long as the last one did (training, validation and
    saving), so whole epochs only are trained and the budget is not overrun.
    """
    if config.max_minutes is None:
        return None
    elapsed = time.monotonic() - started
    if elapsed + last_epoch_seconds <= 60 * config.max_minutes:
        return None
    return (f'minirnn: stopping: another epoch would end past --max-minutes {config.max_minutes:g} '
            f'({elapsed / 60:.1f} min trained, the last epoch took {last_epoch_seconds:.0f} s)')


def _schedule(config, loader):
    return Schedule(config.lr, config.lr_schedule, warmup_steps=config.warmup_steps,
                    decay=config.lr_decay, decay_every=config.lr_decay_every,
                    decay_after=config.lr_decay_after, total_steps=config.num_epochs * loader.max_len())


def _sample_prefix(config, model, vocab, train_corpus):
    """The text --sample-every continues: the first prefix (else the text's first token), checked now."""
    from .generate import predict
    prefix = config.prefixes[0] if config.prefixes else vocab.to_tokens(int(train_corpus[0]))
    try:
        predict(model, vocab, prefix, 0, preprocess=config.preprocess, token=config.token)
    except ConfigError as exc:
        raise ConfigError(f'--sample-every continues the first --prefix {prefix!r}, but {exc}') from None
    return prefix


def fit(config, out_dir, *, resume=False, overwrite=False, quiet=False):
    """Train a model as `config` says, writing the run directory `out_dir` after every epoch.

    out_dir: a path, or a rundir.RunDir (whose saved checkpoint may have been read already).
    resume: continue DIR/model.npz exactly where it stopped (same batches, same updates; only
    the fields in rundir.RESUMABLE_CHANGES may differ from the saved config). Without resume,
    an existing run in DIR is an error unless overwrite. Nothing in DIR changes before the
    first epoch ends, so a run that fails early leaves the directory as it was.
    quiet: no progress bar and no progress lines on stderr (outcomes are still printed).
    Returns a FitResult. Raises DivergenceError when training diverges (see train_epoch); its
    `row` attribute is the history row of the diverged epoch, with "diverged": true.
    """
    tune_host_allocator()
    run = out_dir if isinstance(out_dir, RunDir) else RunDir(out_dir)
    run.check(config, resume=resume, overwrite=overwrite)
    saved = run.load(config.device) if resume else None

    corpus, vocab = text.load_corpus(config.data, preprocess=config.preprocess, token=config.token,
                                     max_tokens=config.max_tokens, encoding=config.encoding,
                                     min_freq=config.min_freq)
    init_rng, data_rng, dropout_rng, truncation_rng = [
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(4)]
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
                      num_layers=config.num_layers, dropout=config.dropout, threads=config.threads,
                      init=config.init, impl=config.impl)
    optimizer = OPTIMIZERS[config.optimizer](config.lr, weight_decay=config.weight_decay,
                                             lr_mults=bias_lr_mults(model.params, config.bias_lr_mult),
                                             ema=config.ema)
    (train_corpus, window_options), validate_weights = _split(config, corpus, model)

    def validate_used_weights():
        """Held-out loss of the weights a user gets: with --ema, their moving average."""
        with use_weights(model, optimizer.averaged_params()):
            return validate_weights()
    validate = None if validate_weights is None else validate_used_weights
    loader = SeqDataLoader(train_corpus, config.batch_size, config.num_steps, config.sampler,
                           data_rng, model.xp, **window_options)
    schedule = _schedule(config, loader)
    history, epoch, progress, max_loss = [], 1, EpochProgress(), None
    if saved is not None:
        if saved.optimizer_state is not None:
            optimizer.load_state_dict(saved.optimizer_state, model.xp)
        position = saved.meta['position']
        loader.load_state_dict(position['loader'])
        for name, rng in (('dropout_rng', dropout_rng), ('truncation_rng', truncation_rng)):
            if name in position:
                rng.bit_generator.state = position[name]
        history, epoch = list(saved.meta['history']), position['epoch']
        progress = EpochProgress(**position['progress'])
        max_loss = position.get('loss_bound') or uniform_bound(len(vocab))
    with np.errstate(all='ignore'):     # an overflow shows as a non-finite loss: reported once, below
        if max_loss is None:
            max_loss = loss_bound(model, train_corpus, config.batch_size, config.num_steps)
        sample_prefix = _sample_prefix(config, model, vocab, train_corpus) if config.sample_every else None

    def save(epoch, next_epoch, loader_state, progress, best=False):
        """Save after `epoch`; a resume starts at `next_epoch` from `loader_state` and `progress`."""
        _check_finite(model, epoch)
        # the dropout Generator as it is now: a replayed epoch skips its finished batches
        # without drawing masks, so it continues from exactly here
        run.save(model, vocab, optimizer, config, history,
                 {'epoch': next_epoch, 'loader': loader_state, 'progress': dataclasses.asdict(progress),
                  'dropout_rng': dropout_rng.bit_generator.state,
                  'truncation_rng': truncation_rng.bit_generator.state, 'loss_bound': max_loss}, best=best)

    def give_up(epoch, row, reason):
        """End a diverged run: no checkpoint is saved; history.jsonl records the epoch's row,
        flagged `diverged`, and the exception carries it."""
        row['diverged'] = True
        run.write_history(history + [row])
        error = DivergenceError(f'{reason}; {divergence_advice(config, epoch, run.checkpoint_path.exists())}')
        error.row = row
        raise error

    def on_batch(epoch, progress):
        """Feedback after each optimizer step: evaluations and samples every N steps, the bar."""
        step = optimizer.steps
        if config.eval_every and step % config.eval_every == 0:
            ppl = _finite(perplexity(validate()))
            progress.evals.append({'step': step, 'val_ppl': ppl})
            report.line(f'step {step} (epoch {epoch}): val ppl {format_ppl(ppl)}')
        if config.sample_every and step % config.sample_every == 0:
            from .generate import predict
            # drawn (as min-char-rnn does: greedy text of a young model repeats itself) from its
            # own Generator, so a sample is reproducible and no training draw changes
            with use_weights(model, optimizer.averaged_params()):
                sample = predict(model, vocab, sample_prefix, SAMPLE_NUM_PREDS, preprocess=config.preprocess,
                                 token=config.token, strategy='sample',
                                 rng=np.random.default_rng([config.seed, step]))
            progress.samples.append({'step': step, 'text': sample})
            report.line(f'step {step} (epoch {epoch}) sample:{chr(10) if chr(10) in sample else " "}{sample}')
        report.batch(progress)

    run.open()                        # fail now, not after the first epoch's work
    report = Reporter(config.num_epochs, quiet=quiet)
    report.line(f'minirnn: training into {run.path}: {len(train_corpus):,} tokens, vocabulary {len(vocab)}, '
                f'{len(loader)} batches per epoch on {config.device}')
    log_every = max(1, config.num_epochs // 10)
    stopped_early = False
    bptt = from_config(config, truncation_rng)
    monitor = EpochMonitor()
    started, last_epoch_seconds = time.monotonic(), 0.0
    try:
        with Interrupt() as interrupt, np.errstate(all='ignore'), \
                parallel.blas_context(config.batch_size, config.num_hiddens, model.threads):
            while epoch <= config.num_epochs:
                stop = early_stop_line(config, history) or _budget_line(config, started, last_epoch_seconds)
                if stop:
                    report.line(stop, always=True)
                    stopped_early = True
                    break
                loader_state = loader.state_dict()   # replays this epoch if it is interrupted
                epoch_started = time.monotonic()
                monitor.start_epoch()
                report.start_epoch(epoch, len(loader), progress.batches)
                try:
                    finished = train_epoch(model, loader, optimizer, config.clip, epoch, progress, interrupt,
                                           dropout_rng if config.dropout else None, schedule=schedule,
                                           max_loss=max_loss, truncation=bptt, monitor=monitor,
                                           on_batch=lambda p, epoch=epoch: on_batch(epoch, p))
                except DivergenceError as exc:
                    give_up(epoch, history_row(epoch, progress, None, progress.seconds,
                                               optimizer_steps=optimizer.steps, lr=optimizer.last_lr), str(exc))
                if not finished:
                    save(epoch, epoch, loader_state, progress)
                    run.plot(history, config, force=True)
                    report.line(f'minirnn: interrupted in epoch {epoch}; {run.checkpoint_path} saved, '
                                f'continue with --resume', always=True)
                    return FitResult(model, vocab, history, False, averaged=optimizer.averaged_params())
                start = time.perf_counter()
                val_loss = validate() if validate else None
                row = history_row(epoch, progress, val_loss, progress.seconds + time.perf_counter() - start,
                                  optimizer_steps=optimizer.steps, lr=optimizer.last_lr)
                if not finite_params(model):
                    give_up(epoch, row, f'training diverged in epoch {epoch}: an update made the '
                                        f'parameters NaN or infinite')
                best = validate is not None and improves(row['val_ppl'], history)
                if validate is not None:
                    row['best'] = best
                if config.eval_every:
                    row['evals'] = progress.evals
                if config.sample_every:
                    row['samples'] = progress.samples
                row.update(monitor.row(model, progress.seconds,
                                       force_spectra=epoch in (1, config.num_epochs)))
                history.append(row)
                save(epoch, epoch + 1, loader.state_dict(), EpochProgress(), best=best)
                run.plot(history, config, force=epoch == config.num_epochs)
                if epoch % log_every == 0 or epoch == config.num_epochs:
                    val = '' if validate is None else f'  val ppl {format_ppl(row["val_ppl"])}'
                    report.line(f'epoch {epoch}/{config.num_epochs}  train ppl {format_ppl(row["train_ppl"])}'
                                f'{val}  {row["tokens_per_s"]:,.0f} tokens/s')
                epoch += 1
                progress = EpochProgress()
                last_epoch_seconds = time.monotonic() - epoch_started
    finally:
        report.close()
    return FitResult(model, vocab, history, True, stopped_early, optimizer.averaged_params())
