"""fit(): a whole training run, in three phases: build, restore, loop.

    build     the corpus and vocabulary, the random streams, the model, the optimizer, the
              train/validation split, the loader, the schedule and the truncation (a Run)
    restore   a resumed run's optimizer, loader, random streams, history and position, the
              mirror of `position` (what every save records)
    loop      epoch after epoch: train.train_epoch, then validation, the history row, the
              checkpoints and the plot (finish_epoch); early stopping and the time budget
              end it before an epoch, Ctrl-C or the time budget inside one (saved, resumable)

A diverged run stops with DivergenceError and saves nothing of the diverged epoch. Settings
live in config.py, the directory's rules in rundir.py, held-out evaluation in evaluation.py,
what the user sees in feedback.py, when a run stops on its own in stopping.py. Under mpiexec the
ranks split every batch's rows (distributed.py, the communicator `comm` that every phase gets);
rank 0 alone writes and prints.
"""
import contextlib
import dataclasses
import math
import shlex
import time
import warnings
from typing import NamedTuple, Optional

import numpy as np

from .. import parallel, text
from . import distributed
from ..backend import to_device, tune_host_allocator
from ..batching import SeqDataLoader
from ..corpora import fingerprint
from ..errors import ConfigError, DataError, DivergenceError, UnknownTokensWarning
from ..model import RNNLM
from ..optim import OPTIMIZERS, Schedule, bias_lr_mults, format_ppl, perplexity
from ..train import EpochProgress, train_epoch
from ..truncation import from_config
from .evaluation import corpus_batches, evaluate
from .feedback import Interrupt, Reporter
from .monitor import EpochMonitor
from .rundir import NoRunDir, RunDir
from .stopping import (StopRequest, divergence_advice, early_stop_line, finite_params, improves, loss_bound,
                       uniform_bound)

SAMPLE_NUM_PREDS = 40   # tokens in each sample taken while training (--sample-every)
RANDOM_STREAMS = ('init', 'data', 'dropout', 'truncation')   # one Generator each, from config.seed


class FitResult(NamedTuple):
    model: RNNLM
    vocab: text.Vocab
    history: list           # one dict per finished epoch (history_row)
    finished: bool          # False when Ctrl-C stopped the run (a checkpoint was saved)
    stopped_early: bool = False   # early_stop ended the run before num_epochs
    averaged: Optional[dict] = None   # --ema: the moving average of the weights (use_weights)
    prefixes: tuple = ()    # what to continue after training: config.prefixes, or the text's start


def fit(config, out_dir=None, *, resume=False, overwrite=False, quiet=False, command='minirnn train',
        data=None, on_epoch=None, note=None, comm=None):
    """Train a model as `config` says, writing the run directory `out_dir` after every epoch.

    out_dir: a path, or a rundir.RunDir (whose saved checkpoint may have been read already);
    None trains without a directory (nothing written; the FitResult holds the model and history).
    data: None (config.data, a registered corpus or a file), a str (the text itself, prepared
    as config says), or (corpus, vocab) (a 1-D integer array and its text.Vocab).
    on_epoch: None, or a function called with each finished epoch's history row (a dict: epoch,
    train_ppl, val_ppl, ...), e.g. to draw a live plot in a notebook.
    note: a line to print (unless quiet) once the text has loaded, before training.
    resume: continue DIR/model.npz exactly where it stopped (same batches, same updates; only
    the fields in rundir.RESUMABLE_CHANGES may differ from the saved config). Without resume,
    an existing run in DIR is an error unless overwrite. Nothing in DIR changes before the
    first epoch ends, so a run that fails early leaves the directory as it was.
    quiet: no progress bar and no progress lines on stderr (outcomes are still printed).
    command: how the user starts training, for the messages that say how to go on.
    comm: the processes that train together (distributed.py); None: distributed.communicator(),
    one process unless mpiexec started several. Rank 0 alone writes the directory and prints.
    Returns a FitResult. Raises DivergenceError when training diverges (see train_epoch); its
    `row` attribute is the history row of the diverged epoch, with "diverged": true.
    """
    tune_host_allocator()
    comm = distributed.communicator() if comm is None else comm
    directory = (out_dir if isinstance(out_dir, RunDir) else NoRunDir() if out_dir is None
                 else RunDir(out_dir))
    directory = directory if comm.is_root else directory.read_only()
    try:
        run = comm.setup(lambda: start(config, directory, comm, resume=resume, overwrite=overwrite,
                                       data=data, progress=not quiet and comm.is_root))
        run.on_epoch = on_epoch
        report = Reporter(config.num_epochs, quiet=quiet, muted=not comm.is_root)
        if note:
            report.line(note)
        with comm.fatal():
            return loop(run, report, command)
    finally:
        directory.close()


def start(config, directory, comm, *, resume, overwrite, data, progress):
    """Everything before the first epoch: check the directory and the launch, build the run,
    restore a resumed one, and open the directory (which fails now, not after an epoch's work).
    Nothing in the directory changes here. progress: show the tokenisation of a large text."""
    directory.check(config, resume=resume, overwrite=overwrite)
    comm.check_launch(config)
    saved = directory.load(config.device) if resume else None
    run = build(config, directory, saved, data, comm=comm, progress=progress)
    if saved is not None:
        restore(run, saved)
    run.prepare()
    directory.open()
    return run


# --- build ------------------------------------------------------------------------------------

class Run:
    """Everything one run is made of, built once (build) and carried through the loop.

    history, epoch and progress say where the run stands: the finished epochs' rows, the
    epoch to train next, and how far that one got (a resumed run replays its done batches).
    """

    def __init__(self, config, directory, vocab, summary, model, optimizer, split, rngs, comm):
        (train_corpus, window_options), self._validate = split
        self.config, self.directory, self.vocab, self.summary, self.model, self.optimizer = \
            config, directory, vocab, summary, model, optimizer
        self.rngs, self.train_corpus, self.comm = rngs, train_corpus, comm
        self.loader = SeqDataLoader(train_corpus, config.batch_size, config.num_steps, config.sampler,
                                    rngs['data'], model.xp, **window_options)
        self.schedule = Schedule(config.lr, config.lr_schedule, warmup_steps=config.warmup_steps,
                                 decay=config.lr_decay, decay_every=config.lr_decay_every,
                                 decay_after=config.lr_decay_after,
                                 total_steps=config.num_epochs * self.loader.max_len())
        self.truncation = from_config(config, rngs['truncation'], comm)
        self.monitor = EpochMonitor(comm)
        self.history, self.epoch, self.progress = [], 1, EpochProgress()
        self.on_epoch = None      # fit's callback, called with each finished epoch's row
        # a resume checks the text is the same (and may find it moved); given data has no file;
        # only rank 0 saves it
        self.data_fingerprint = (fingerprint(config.data) if directory.path is not None and comm.is_root
                                 else None)
        self.max_loss, self.sample_prefix = None, None

    @property
    def validates(self):
        return self._validate is not None

    def validate(self):
        """Held-out loss of the weights a user gets: with --ema, their moving average."""
        with use_weights(self.model, self.optimizer.averaged_params()):
            return self._validate()

    def prepare(self):
        """The divergence bound (from the untrained model; a resumed run keeps its own) and the
        sample prefix of --sample-every, checked now."""
        with np.errstate(all='ignore'):   # an overflow shows as a non-finite loss: reported once, later
            if self.max_loss is None:
                self.max_loss = loss_bound(self.model, self.train_corpus, self.config.batch_size,
                                           self.config.num_steps)
            if self.config.sample_every:
                self.sample_prefix = _sample_prefix(self.config, self.model, self.vocab, self.train_corpus)


def build(config, directory, saved=None, data=None, *, comm=distributed.SINGLE, progress=False):
    """A Run as `config` says: a fresh model, or the saved one (a Checkpoint) of a resumed run.
    data: as fit() takes it; comm: the processes sharing each batch (every rank builds the same
    run from the same seed); progress: show the tokenisation of a large text."""
    corpus, vocab, summary = _corpus(config, data, progress)
    rngs = dict(zip(RANDOM_STREAMS, (np.random.default_rng(s) for s in
                                     np.random.SeedSequence(config.seed).spawn(len(RANDOM_STREAMS)))))
    threads = comm.threads(config.threads)
    if saved is None:
        model = RNNLM.from_config(len(vocab), config, device=config.device, seed=rngs['init'], threads=threads)
    else:
        if saved.vocab.idx_to_token != vocab.idx_to_token:
            raise DataError(f'{config.data} no longer gives the vocabulary of the saved run; '
                            'resume with the same text and options')
        model = saved.model
        model.threads = parallel.host_threads(model.xp, threads)
    optimizer = OPTIMIZERS[config.optimizer](config.lr, weight_decay=config.weight_decay,
                                             lr_mults=bias_lr_mults(model.params, config.bias_lr_mult),
                                             ema=config.ema)
    return Run(config, directory, vocab, summary, model, optimizer, _split(config, corpus, model, comm), rngs,
               comm)


def _corpus(config, data, progress=False):
    """(corpus, vocab, text.TextSummary) of the run's text: config.data's, or `data` (fit's)."""
    if data is None or isinstance(data, str):
        return text.load_text('the text given' if isinstance(data, str) else config.data,
                              preprocess=config.preprocess, token=config.token, max_tokens=config.max_tokens,
                              encoding=config.encoding, min_freq=config.min_freq, text=data, progress=progress)
    try:
        corpus, vocab = data
        corpus = np.asarray(corpus)
        ok = corpus.ndim == 1 and corpus.dtype.kind in 'iu' and len(corpus) > 1 and isinstance(vocab, text.Vocab)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError('data must be None, the text itself (a str), or (corpus, vocab): a 1-D integer '
                          'array of token ids and its Vocab')
    if corpus.min() < 0 or corpus.max() >= len(vocab):
        raise DataError(f'the corpus holds token ids outside the vocabulary [0, {len(vocab)})')
    corpus = corpus[:config.max_tokens].astype(np.int32)
    return corpus, vocab, text.TextSummary('the corpus given', len(corpus), len(corpus), config.preprocess, 0, ())


def _split(config, corpus, model, comm):
    """The train loader's corpus and window options, and a validate() -> loss (None: no split);
    every process validates its rows of each batch (comm)."""
    B, T = config.batch_size, config.num_steps
    if config.num_train_windows is not None:       # the book's 2nd edition split
        train = (corpus, dict(start=0, num_windows=config.num_train_windows))
        if not config.num_val_windows:
            return train, None
        val = SeqDataLoader(corpus, B, T, 'windows', xp=model.xp, start=config.num_train_windows,
                            num_windows=config.num_val_windows, shuffle=False)
        return train, lambda: evaluate(model, val, carry_state=False, comm=comm)
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
        return train, lambda: evaluate(model, val, carry_state=False, comm=comm)
    return train, lambda: evaluate(model, corpus_batches(val_corpus, B, T), carry_state=True, comm=comm)


def _sample_prefix(config, model, vocab, train_corpus):
    """The text --sample-every continues: the first prefix (else the text's first token), checked now."""
    from ..generate import predict
    prefix = config.prefixes[0] if config.prefixes else vocab.to_tokens(int(train_corpus[0]))
    try:
        # generate reads unknown tokens as <unk> with a warning; before a long run, a prefix the
        # model cannot read is refused instead
        with warnings.catch_warnings():
            warnings.simplefilter('error', UnknownTokensWarning)
            predict(model, vocab, prefix, 0, preprocess=config.preprocess, token=config.token)
    except (ConfigError, UnknownTokensWarning) as exc:
        raise ConfigError(f'--sample-every continues the first --prefix {prefix!r}, but {exc}') from None
    return prefix


# --- save and restore: what a checkpoint records of the run's position, and reading it back -------

def position(run, next_epoch, loader_state, progress):
    """Where a resumed run starts: `next_epoch` from `loader_state` with `progress` done, and
    every random stream as it is now (a replayed epoch skips its finished batches without
    drawing masks, so it continues from exactly here)."""
    return {'epoch': next_epoch, 'loader': loader_state, 'progress': dataclasses.asdict(progress),
            'data_fingerprint': run.data_fingerprint,
            'dropout_rng': run.rngs['dropout'].bit_generator.state,
            'truncation_rng': run.rngs['truncation'].bit_generator.state, 'loss_bound': run.max_loss}


def restore(run, saved):
    """Put a resumed run where `position` left it (saved: the run directory's Checkpoint)."""
    if saved.optimizer_state is not None:
        run.optimizer.load_state_dict(saved.optimizer_state, run.model.xp)
    where = saved.meta['position']
    run.loader.load_state_dict(where['loader'])
    for name in ('dropout', 'truncation'):
        if f'{name}_rng' in where:
            run.rngs[name].bit_generator.state = where[f'{name}_rng']
    run.history, run.epoch = list(saved.meta['history']), where['epoch']
    run.progress = EpochProgress(**where['progress'])
    run.max_loss = where.get('loss_bound') or uniform_bound(len(run.vocab))


def save(run, epoch, next_epoch, loader_state, progress, best=False):
    """Save after `epoch` (finished or interrupted): the checkpoint(s) and history.jsonl."""
    if not finite_params(run.model):   # an update that made the parameters non-finite never reaches the disk
        raise DivergenceError(
            f'training diverged in epoch {epoch}: an update made the parameters NaN or infinite; '
            f'the run directory was left as the last finished epoch wrote it. Try gradient '
            f'clipping (--clip 1) or a lower learning rate (--lr)')
    run.directory.save(run.model, run.vocab, run.optimizer, run.config, run.history,
                       position(run, next_epoch, loader_state, progress), best=best)


# --- loop ------------------------------------------------------------------------------------

def loop(run, report, command):
    """Train epoch after epoch until num_epochs, an early stop, the time budget or Ctrl-C.
    command: how the user starts training (the interruption message says how to go on)."""
    config, comm = run.config, run.comm
    report.line(f'minirnn: text {run.summary.line(config.token)}')
    where = f'into {run.directory.path}' if run.directory.path is not None else 'without a run directory'
    ranks = f' over {comm.size} MPI ranks' if comm.size > 1 else ''
    report.line(f'minirnn: training {where}: {len(run.train_corpus):,} tokens, '
                f'vocabulary {len(run.vocab)}, {len(run.loader)} batches per epoch on {config.device}{ranks}')
    started, last_epoch_seconds, stopped_early = time.monotonic(), 0.0, False
    deadline = None if config.max_minutes is None else started + 60 * config.max_minutes
    comm.check_same(run.model.params, 'before training')
    try:
        with Interrupt() as interrupt, np.errstate(all='ignore'), comm.blas_limit(run.model.threads), \
                parallel.blas_context(config.batch_size // comm.size, config.num_hiddens, run.model.threads):
            stop = comm.agreed(StopRequest(interrupt, deadline))
            while run.epoch <= config.num_epochs:
                line = _stop_line(run, started, last_epoch_seconds)
                if line:
                    report.line(line, always=True)
                    stopped_early = True
                    break
                epoch_started = time.monotonic()
                if not run_epoch(run, stop, report, command):
                    if stop.reason != 'budget':         # Ctrl-C: saved, to be resumed
                        return FitResult(run.model, run.vocab, run.history, False,
                                         averaged=run.optimizer.averaged_params(), prefixes=prefixes(run))
                    stopped_early = True
                    break
                finish_epoch(run, report)
                last_epoch_seconds = time.monotonic() - epoch_started
    finally:
        report.close()
    return FitResult(run.model, run.vocab, run.history, True, stopped_early, run.optimizer.averaged_params(),
                     prefixes(run))


def _stop_line(run, started, last_epoch_seconds):
    """The line that ends the run before the next epoch (early stopping, the time budget), or
    None. Every rank gets the same answer: one rank's clock alone may judge the budget otherwise."""
    config = run.config
    line = early_stop_line(config, run.history) or _budget_line(config, started, last_epoch_seconds)
    if run.comm.sum([line is not None])[0] and line is None:    # another rank's budget ran out
        line = _budget_line(config, started, last_epoch_seconds, force=True)
    return line


def prefixes(run, max_tokens=24):
    """What to continue after training: config.prefixes, or (None) the start of the text's
    first line, at most max_tokens tokens of it (the user's own text, where no prefix fits all)."""
    if run.config.prefixes is not None:
        return run.config.prefixes
    tokens = run.vocab.to_tokens([int(i) for i in run.train_corpus[:max_tokens]])
    if run.config.token == 'char':
        return (''.join(tokens).split('\n')[0] or ''.join(tokens[:1]),)
    return (' '.join(tokens),)


def run_epoch(run, stop, report, command):
    """Train run.epoch (continuing run.progress). Returns False when Ctrl-C or the time budget
    (stop: a StopRequest, or the ranks' agreed one) stopped it after a batch; that position is
    then saved, to be continued exactly; a divergence ends the run (give_up)."""
    epoch, num_batches = run.epoch, len(run.loader)
    loader_state = run.loader.state_dict()   # replays this epoch if it is interrupted
    run.monitor.start_epoch()
    report.start_epoch(epoch, num_batches, run.progress.batches)
    run.progress.state = run.comm.local_rows(run.progress.state)    # a resumed carried state: our rows
    try:
        finished = train_epoch(run.model, run.loader, run.optimizer, run.config.clip, epoch, run.progress,
                               stop, run.rngs['dropout'] if run.model.has_training_mode else None,
                               schedule=run.schedule, max_loss=run.max_loss, truncation=run.truncation,
                               monitor=run.monitor, on_batch=lambda progress: feedback(run, report, progress))
    except DivergenceError as exc:
        give_up(run, history_row(run, None, run.progress.seconds), str(exc))
    if not finished:
        run.progress.state = run.comm.gather_rows(run.progress.state)   # every row, as one process holds it
        save(run, epoch, epoch, loader_state, run.progress)
        run.directory.plot(run.history, run.config, force=True)
        report.line(_stopped_line(run, stop.reason, num_batches, command), always=True)
    return finished


def _stopped_line(run, reason, num_batches, command):
    """What the user reads when Ctrl-C (reason 'interrupt') or the time budget ('budget') stopped
    an epoch after a batch: where, what was saved, and the command that continues."""
    epoch, path = run.epoch, run.directory.path
    what = (f'interrupted in epoch {epoch}' if reason == 'interrupt' else
            f'stopping: --max-minutes {run.config.max_minutes:g} reached in epoch {epoch} after batch '
            f'{run.progress.batches:,} of {num_batches:,}')
    if path is None:
        return f'minirnn: {what} (no run directory: nothing saved)'
    return (f'minirnn: {what}; {run.directory.checkpoint_path} saved; '
            f'continue with: {command} --resume --out {shlex.quote(str(path))}')


def feedback(run, report, progress):
    """After each optimizer step: evaluations and samples every N steps, and the bar."""
    config, step = run.config, run.optimizer.steps
    if config.eval_every and step % config.eval_every == 0:
        ppl = _finite(perplexity(run.validate()))
        progress.evals.append({'step': step, 'val_ppl': ppl})
        report.line(f'step {step} (epoch {run.epoch}): val ppl {format_ppl(ppl)}')
    if config.sample_every and step % config.sample_every == 0:
        from ..generate import predict
        # drawn (as min-char-rnn does: greedy text of a young model repeats itself) from its
        # own Generator, so a sample is reproducible and no training draw changes
        with use_weights(run.model, run.optimizer.averaged_params()):
            sample = predict(run.model, run.vocab, run.sample_prefix, SAMPLE_NUM_PREDS,
                             preprocess=config.preprocess, token=config.token, strategy='sample',
                             rng=np.random.default_rng([config.seed, step]))
        progress.samples.append({'step': step, 'text': sample})
        report.line(f'step {step} (epoch {run.epoch}) sample:{chr(10) if chr(10) in sample else " "}{sample}')
    report.batch(progress)


def finish_epoch(run, report):
    """After a finished epoch: validate, write its history row, save, plot, report, move on."""
    config, epoch, progress = run.config, run.epoch, run.progress
    start = time.perf_counter()
    val_loss = run.validate() if run.validates else None
    row = history_row(run, val_loss, progress.seconds + time.perf_counter() - start)
    if not finite_params(run.model):
        give_up(run, row, f'training diverged in epoch {epoch}: an update made the parameters NaN or infinite')
    best = run.validates and improves(row['val_ppl'], run.history)
    if run.validates:
        row['best'] = best
    if config.eval_every:
        row['evals'] = progress.evals
    if config.sample_every:
        row['samples'] = progress.samples
    row.update(run.monitor.row(run.model, progress.seconds, force_spectra=epoch in (1, config.num_epochs)))
    run.comm.check_same(run.model.params, f'after epoch {epoch}')     # before anything of it is saved
    run.history.append(row)
    save(run, epoch, epoch + 1, run.loader.state_dict(), EpochProgress(), best=best)
    run.directory.plot(run.history, config, force=epoch == config.num_epochs)
    if epoch % max(1, config.num_epochs // 10) == 0 or epoch == config.num_epochs:
        val = f'  val ppl {format_ppl(row["val_ppl"])}' if run.validates else ''
        report.line(f'epoch {epoch}/{config.num_epochs}  train ppl {format_ppl(row["train_ppl"])}'
                    f'{val}  {row["tokens_per_s"]:,.0f} tokens/s')
    if run.on_epoch is not None:
        run.on_epoch(dict(row))
    run.epoch, run.progress = epoch + 1, EpochProgress()


def give_up(run, row, reason):
    """End a diverged run: no checkpoint is saved; history.jsonl records the epoch's row,
    flagged `diverged`, and the DivergenceError raised carries it (row), the run's config and
    whether a checkpoint of an earlier epoch exists (saved)."""
    row['diverged'] = True
    run.directory.write_history(run.history + [row])
    advice = divergence_advice(run.config, run.epoch, run.directory.checkpoint_path.exists())
    error = DivergenceError(f'{reason}; {advice}')
    error.row, error.config, error.saved = row, run.config, run.directory.checkpoint_path.exists()
    raise error


def _budget_line(config, started, last_epoch_seconds, force=False):
    """The line that ends the run before an epoch that would end past config.max_minutes, else
    None (force: the line anyway, when another rank's clock decided).

    The next epoch is expected to take as long as the last one did (training, validation and
    saving), so that the budget is not overrun; an epoch that runs past it all the same (the
    first, or one longer than the last) stops at a batch boundary (run_epoch, StopRequest).
    """
    if config.max_minutes is None:
        return None
    elapsed = time.monotonic() - started
    if elapsed + last_epoch_seconds <= 60 * config.max_minutes and not force:
        return None
    return (f'minirnn: stopping: another epoch would end past --max-minutes {config.max_minutes:g} '
            f'({elapsed / 60:.1f} min trained, the last epoch took {last_epoch_seconds:.0f} s)')


# --- the history row and the weights a user gets -------------------------------------------------

def _finite(x):
    """x, or None where JSON has no number for it (a perplexity past float range, a NaN norm)."""
    return x if x is not None and math.isfinite(x) else None


def history_row(run, val_loss, seconds):
    """The history.jsonl record of run.epoch as run.progress holds it (numbers beyond float
    range are null). batches: this epoch's; optimizer_steps: the run's total after it; lr: its
    last step's rate."""
    progress = run.progress
    return {'epoch': run.epoch,
            'train_ppl': _finite(perplexity(progress.loss_sum / progress.tokens)),
            'val_ppl': None if val_loss is None else _finite(perplexity(val_loss)),
            'tokens_per_s': progress.tokens / progress.seconds if progress.seconds else None,
            'grad_norm_mean': _finite(progress.norm_sum / progress.batches),
            'grad_norm_max': _finite(progress.norm_max),
            'clipped_fraction': progress.clipped / progress.batches,
            'seconds': seconds,
            'batches': progress.batches,
            'optimizer_steps': run.optimizer.steps,
            'lr': run.optimizer.last_lr}


@contextlib.contextmanager
def use_weights(model, weights):
    """Within the block the model holds `weights` (name -> array, host or device; None: no
    change), copied in place; its own come back, bit for bit, after it. --ema validates, samples and predicts
    with the moving average of the weights while training goes on with the weights themselves."""
    if weights is None:
        yield model
        return
    own = {name: p.copy() for name, p in model.params.items()}
    for name, p in model.params.items():
        p[...] = to_device(weights[name], model.xp)
    try:
        yield model
    finally:
        for name, p in model.params.items():
            p[...] = own[name]
