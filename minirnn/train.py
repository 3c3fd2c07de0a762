"""Training: TrainConfig and the book's presets, one epoch of BPTT, evaluation, and fit().

fit() runs the data flow of DESIGN.md: corpus -> loader -> loss_and_grads -> clip -> step.
The sequential sampler carries the hidden state from batch to batch as a constant (the book's
detach: BPTT is truncated at batch boundaries); the random and window samplers start every
batch from zeros. After each epoch the run directory is written atomically: model.npz,
history.jsonl and perplexity.png. Ctrl-C stops after the current batch and saves a checkpoint
that --resume continues exactly.
"""
import dataclasses
import json
import math
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple, Optional, Tuple

import numpy as np

from . import checkpoint, parallel, text
from .backend import DEVICES, host_threads, to_numpy, tune_host_allocator
from .batching import SeqDataLoader
from .errors import CheckpointError, ConfigError, DataError, DivergenceError
from .files import write_text_atomic
from .model import DTYPES, RNNLM
from .optim import OPTIMIZERS, clip_grad_norm, perplexity

SAMPLERS = ('sequential', 'random', 'windows')
PLOT_EVERY_S = 5.0   # perplexity.png is redrawn at most this often (and after the last epoch)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved in every checkpoint. Defaults: the book's d2l-v1."""
    # data
    data: str = 'timemachine'
    encoding: str = 'utf-8'
    preprocess: str = 'letters'
    token: str = 'char'
    max_tokens: Optional[int] = 10000
    val_fraction: float = 0.0
    num_train_windows: Optional[int] = None   # windows sampler: the book's fixed train/val split
    num_val_windows: Optional[int] = None
    # model
    num_hiddens: int = 512
    activation: str = 'tanh'
    embed_dim: Optional[int] = None
    sigma: float = 0.01
    # optimization
    batch_size: int = 32
    num_steps: int = 35
    sampler: str = 'sequential'
    optimizer: str = 'sgd'
    lr: float = 1.0
    num_epochs: int = 500
    clip: float = 1.0          # max global gradient norm; 0 disables clipping
    # device and reproducibility
    device: str = 'cpu'
    dtype: str = 'float32'
    seed: int = 0
    threads: Optional[int] = None   # CPU threads splitting each batch (None: every core)
    # text generated after training
    prefixes: Tuple[str, ...] = ('time traveller', 'the planet mars i scarcely')
    num_preds: int = 50

    def __post_init__(self):
        object.__setattr__(self, 'prefixes', tuple(self.prefixes))
        positive = ['num_hiddens', 'batch_size', 'num_steps', 'num_epochs']
        optional_positive = ['max_tokens', 'num_train_windows', 'num_val_windows', 'embed_dim', 'threads']
        for name in positive + optional_positive:
            value = getattr(self, name)
            if value is None and name in optional_positive:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f'{name} must be a positive integer, got {value!r}')
        if not isinstance(self.num_preds, int) or self.num_preds < 0:
            raise ConfigError(f'num_preds must be a non-negative integer, got {self.num_preds!r}')
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f'lr must be a positive number, got {self.lr!r}')
        if not (isinstance(self.clip, (int, float)) and math.isfinite(self.clip) and self.clip >= 0):
            raise ConfigError(f'clip must be a number >= 0 (0 disables clipping), got {self.clip!r}')
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise ConfigError(f'val_fraction must be in [0, 1), got {self.val_fraction!r}')
        for name, allowed in (('sampler', SAMPLERS), ('optimizer', tuple(OPTIMIZERS)),
                              ('device', DEVICES), ('dtype', DTYPES),
                              ('preprocess', text.PREPROCESS_MODES), ('token', text.TOKEN_KINDS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f'unknown {name} {getattr(self, name)!r}; choose one of {", ".join(allowed)}')
        windows_split = self.num_train_windows is not None or self.num_val_windows is not None
        if windows_split and self.sampler != 'windows':
            raise ConfigError('num_train_windows/num_val_windows apply to the windows sampler only')
        if windows_split and self.val_fraction:
            raise ConfigError('choose either val_fraction or num_train_windows/num_val_windows, not both')
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f'seed must be a non-negative integer, got {self.seed!r}')

    def to_dict(self):
        d = dataclasses.asdict(self)
        d['prefixes'] = list(self.prefixes)
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# The book's two runs, as overrides of TrainConfig's fields.
PRESETS = {
    # 1st edition, section 8.5: The Time Machine, first 10,000 tokens, sequential partitioning
    'd2l-v1': dict(data='timemachine', max_tokens=10000, batch_size=32, num_steps=35,
                   num_hiddens=512, lr=1.0, num_epochs=500, clip=1.0, sampler='sequential',
                   prefixes=('time traveller', 'the planet mars i scarcely'), num_preds=50),
    # 2nd edition, section 9.5: all windows of 33 characters, 10,000 train / 5,000 validate
    'd2l-v2': dict(data='timemachine', max_tokens=None, batch_size=1024, num_steps=32,
                   num_hiddens=32, lr=1.0, num_epochs=100, clip=1.0, sampler='windows',
                   num_train_windows=10000, num_val_windows=5000, prefixes=('it has',), num_preds=20),
}
DEFAULT_PRESET = 'd2l-v1'


def make_config(preset=None, **overrides):
    """TrainConfig from a preset (default d2l-v1) with explicit overrides on top."""
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise ConfigError(f'unknown preset {name!r}; choose one of {", ".join(PRESETS)}')
    values = dict(PRESETS[name])
    # the preset's window split belongs to its windows sampler: choosing another sampler or a
    # val_fraction drops it (unless the window counts are given explicitly too)
    if overrides.get('sampler', 'windows') != 'windows' or overrides.get('val_fraction'):
        for key in ('num_train_windows', 'num_val_windows'):
            if key not in overrides:
                values.pop(key, None)
    return TrainConfig(**{**values, **overrides})


# --- evaluation ---------------------------------------------------------------------------------

def corpus_batches(corpus, batch_size, num_steps):
    """Every token of a corpus once, as batches for a stateful pass (sequential, offset 0).

    The corpus is cut into `batch_size` contiguous rows (fewer if it is short), and the rows
    are walked num_steps columns at a time; the last batch may be narrower. Only the < B
    tokens that do not fill a row are left out. Yields (X, Y) host arrays (B, <= T).
    """
    n = len(corpus) - 1
    if n < 1:
        raise DataError('a text needs at least 2 tokens to be evaluated')
    rows = min(batch_size, n)
    cols = n // rows
    Xs = corpus[:rows * cols].reshape(rows, cols)
    Ys = corpus[1:rows * cols + 1].reshape(rows, cols)
    for j in range(0, cols, num_steps):
        yield Xs[:, j:j + num_steps], Ys[:, j:j + num_steps]


def evaluate(model, batches, carry_state):
    """Mean loss per token over batches of (X, Y) (B, T), forward only.

    carry_state: hand each batch's final state to the next (sequential data), or start every
    batch from zeros (random or window batches). Returns the token-weighted mean loss.
    """
    total, count, state = 0.0, 0, None
    for X, Y in batches:
        loss, state = model.loss(X, Y, state if carry_state else None)
        total += loss * X.size
        count += X.size
    return total / count


# --- one epoch -------------------------------------------------------------------------------

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
    state: Optional[list] = None  # the carried hidden state (sequential sampler), as a list


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


def train_epoch(model, loader, optimizer, clip, epoch, progress, interrupt=None):
    """One pass over the loader, continuing `progress` (batches already done are skipped).

    Returns True when the epoch finished, False when an interrupt stopped it early.
    Raises DivergenceError, before any update, on a NaN or infinite loss or gradient.
    """
    xp = model.xp
    carry = loader.sampler == 'sequential'
    state = None if progress.state is None else xp.asarray(progress.state, dtype=model.dtype)
    stopped = False
    start = time.perf_counter()
    for i, (X, Y) in enumerate(loader):
        if i < progress.batches:
            continue         # replaying an interrupted epoch: these batches were done
        # the carried state enters as a constant, so BPTT stops at the batch boundary
        loss, grads, last_state = model.loss_and_grads(X, Y, state if carry else None)
        norm = clip_grad_norm(grads, clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise DivergenceError(
                f'training diverged at epoch {epoch}, batch {i + 1}: loss {loss}, gradient norm '
                f'{norm}; the run directory was left as the last finished epoch wrote it. Try '
                f'gradient clipping (--clip 1) or a lower learning rate (--lr)')
        optimizer.step(model.params, grads)
        state = last_state if carry else None
        progress.batches += 1
        progress.tokens += X.size
        progress.loss_sum += loss * X.size
        progress.norm_sum += norm
        progress.norm_max = max(progress.norm_max, norm)
        progress.clipped += bool(clip and norm > clip)
        if interrupt is not None and interrupt.requested:
            stopped = True
            break
    progress.seconds += time.perf_counter() - start
    if stopped and state is not None:     # kept for --resume to carry on mid-epoch
        progress.state = to_numpy(state).tolist()
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


# --- a whole run --------------------------------------------------------------------------------

class FitResult(NamedTuple):
    model: RNNLM
    vocab: text.Vocab
    history: list           # one dict per finished epoch (history_row)
    finished: bool          # False when Ctrl-C stopped the run (a checkpoint was saved)


# what a run directory holds; a fresh run refuses a directory with any of them
RUN_FILES = ('model.npz', 'history.jsonl', 'perplexity.png')

# what --resume may change: everything else must match the saved run
RESUMABLE_CHANGES = ('num_epochs', 'device', 'threads', 'prefixes', 'num_preds')


def saved_config(out_dir):
    """The TrainConfig stored in DIR/model.npz, for --resume to start from."""
    return TrainConfig.from_dict(checkpoint.load(Path(out_dir) / 'model.npz').meta['train'])


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


def fit(config, out_dir, *, resume=False, overwrite=False, quiet=False):
    """Train a model as `config` says, writing the run directory `out_dir` after every epoch.

    resume: continue DIR/model.npz exactly where it stopped (same batches, same updates; only
    the fields in RESUMABLE_CHANGES may differ from the saved config). Without resume, an
    existing checkpoint in DIR is an error unless overwrite. Nothing in DIR changes before the
    first epoch ends, so a run that fails early leaves the directory as it was.
    Returns a FitResult.
    """
    from tqdm import tqdm
    tune_host_allocator()
    out = Path(out_dir)
    ckpt_path = out / 'model.npz'
    if out.exists() and not out.is_dir():
        raise ConfigError(f'--out {out} is a file, not a directory')
    saved = None
    if resume:
        if not ckpt_path.is_file():
            raise CheckpointError(f'nothing to resume: {ckpt_path} does not exist')
        saved = checkpoint.load(ckpt_path, device=config.device)
        before = saved.meta['train']
        for name, value in config.to_dict().items():
            if name not in RESUMABLE_CHANGES and name in before and before[name] != value:
                raise ConfigError(f'--resume continues the saved run, whose {name} is {before[name]!r}, '
                                  f'not {value!r}; drop that option or train into a new --out')
    elif not overwrite and any((out / name).exists() for name in RUN_FILES):
        found = ', '.join(name for name in RUN_FILES if (out / name).exists())
        raise ConfigError(f'{out} already holds a run ({found}); continue it with --resume, start '
                          f'over with --overwrite, or choose another --out')

    corpus, vocab = text.load_corpus(config.data, preprocess=config.preprocess, token=config.token,
                                     max_tokens=config.max_tokens, encoding=config.encoding)
    init_rng, data_rng = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(2)]
    if saved is not None:
        if saved.vocab.idx_to_token != vocab.idx_to_token:
            raise DataError(f'{config.data} no longer gives the vocabulary of the saved run; '
                            'resume with the same text and options')
        model = saved.model
        model.threads = host_threads(model.xp, config.threads)
    else:
        model = RNNLM(len(vocab), config.num_hiddens, activation=config.activation,
                      embed_dim=config.embed_dim, sigma=config.sigma, dtype=config.dtype,
                      device=config.device, seed=init_rng, threads=config.threads)
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
        history, epoch = list(saved.meta['history']), position['epoch']
        progress = EpochProgress(**position['progress'])

    def save(epoch, position):
        """Checkpoint and history together, after checking the updates left the model finite."""
        if not all(bool(model.xp.isfinite(p).all()) for p in model.params.values()):
            raise DivergenceError(
                f'training diverged in epoch {epoch}: '
                f'an update made the parameters NaN or infinite; the run directory was left as '
                f'the last finished epoch wrote it. Try gradient clipping (--clip 1) or a lower '
                f'learning rate (--lr)')
        checkpoint.save(ckpt_path, model, vocab, optimizer_state=optimizer.state_dict(),
                        meta={'train': config.to_dict(), 'epoch': len(history),
                              'position': position, 'history': history})
        write_text_atomic(out / 'history.jsonl', ''.join(json.dumps(r) + '\n' for r in history))

    try:                              # fail now, not after the first epoch's work
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise ConfigError(f'cannot write into --out {out}: {exc.strerror or exc}') from None
    if not quiet:
        print(f'minirnn: training into {out}: {len(train_corpus):,} tokens, vocabulary {len(vocab)}, '
              f'{len(loader)} batches per epoch on {config.device}', file=sys.stderr)
    log_every = max(1, config.num_epochs // 10)
    last_plot = -math.inf
    bar = tqdm(total=config.num_epochs, initial=epoch - 1, unit='epoch', file=sys.stderr,
               disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True)
    try:
        slices = parallel.plan(config.batch_size, config.num_hiddens, model.threads)
        with Interrupt() as interrupt, parallel.single_threaded_blas(slices):
            while epoch <= config.num_epochs:
                loader_state = loader.state_dict()   # replays this epoch if it is interrupted
                if not train_epoch(model, loader, optimizer, config.clip, epoch, progress, interrupt):
                    save(epoch, {'epoch': epoch, 'loader': loader_state,
                                 'progress': dataclasses.asdict(progress)})
                    if history:
                        _plot(history, out / 'perplexity.png', config)
                    elif (out / 'perplexity.png').exists():      # an overwritten run's curve
                        (out / 'perplexity.png').unlink()
                    print(f'minirnn: interrupted in epoch {epoch}; {ckpt_path} saved, '
                          f'continue with --resume', file=sys.stderr)
                    return FitResult(model, vocab, history, False)
                start = time.perf_counter()
                val_loss = validate() if validate else None
                history.append(history_row(epoch, progress, val_loss,
                                           progress.seconds + time.perf_counter() - start))
                save(epoch, {'epoch': epoch + 1, 'loader': loader.state_dict(),
                             'progress': dataclasses.asdict(EpochProgress())})
                if time.monotonic() - last_plot >= PLOT_EVERY_S or epoch == config.num_epochs:
                    _plot(history, out / 'perplexity.png', config)
                    last_plot = time.monotonic()
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


def _plot(history, path, config):
    if all(r['train_ppl'] is None and r['val_ppl'] is None for r in history):
        return            # every perplexity past float range: nothing to draw
    from .plots import plot_history
    title = f'{config.data}: {config.sampler} sampler, H={config.num_hiddens}'
    plot_history(history, path, title=title)
