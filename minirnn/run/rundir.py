"""The run directory: model.npz, best.npz, history.jsonl, perplexity.png, and the rules for touching them.

A fresh run refuses a directory that holds a run (unless told to overwrite it); a resumed run
reads its checkpoint once and may change only what RESUMABLE_CHANGES lists; every file is
replaced atomically, so a crash leaves the previous version; temporary files that a killed
run left behind are removed when the next run opens the directory; the plot is redrawn at
most every PLOT_EVERY_S seconds. What to train is trainer.py's business.
"""
import json
import math
import os
import tempfile
import time
from pathlib import Path

from . import checkpoint
from .config import TrainConfig
from ..errors import CheckpointError, ConfigError, DataError
from ..files import write_text_atomic

# every file a run writes; a fresh run refuses a directory with any of them.
# model.npz: the latest epoch (what --resume continues); best.npz: the epoch with the lowest
# validation perplexity so far (runs with a validation split only), the same kind of checkpoint;
# bptt.png: the instrumentation of BPTT (plots.plot_bptt)
RUN_FILES = ('model.npz', 'best.npz', 'history.jsonl', 'perplexity.png', 'bptt.png')

# what --resume may change: everything else must match the saved run (none of these changes
# an update; num_epochs may not change under the cosine schedule, which spans it)
RESUMABLE_CHANGES = ('num_epochs', 'device', 'threads', 'prefixes', 'num_preds', 'early_stop',
                     'eval_every', 'sample_every', 'max_minutes', 'max_tape_mb')

LOCK_FILE = '.lock'   # held (flock) by the process training into the directory; holds its pid

PLOT_EVERY_S = 5.0   # perplexity.png is redrawn at most this often (and after the last epoch)


class RunDir:
    """One run directory. Args: path (created when the run starts, not before)."""

    def __init__(self, path):
        self.path = Path(path)
        self.checkpoint_path = self.path / 'model.npz'
        self.best_path = self.path / 'best.npz'
        self._contents = None
        self._last_plot = -math.inf
        self._lock_fd = None

    # --- reading the saved run (once) -------------------------------------------------------------

    def saved(self):
        """The saved checkpoint's checked contents (checkpoint.Contents), read on first use only."""
        if self._contents is None:
            if not self.checkpoint_path.is_file():
                raise CheckpointError(f'nothing to resume: {self.checkpoint_path} does not exist')
            self._contents = checkpoint.read(self.checkpoint_path)
        return self._contents

    def saved_config(self):
        """The TrainConfig of the saved run, for --resume to start from."""
        return TrainConfig.from_dict(self.saved().meta['train'])

    def load(self, device):
        """The saved run's Checkpoint, its model built on `device`."""
        return checkpoint.load(self.checkpoint_path, device, contents=self.saved())

    # --- opening the directory --------------------------------------------------------------------

    def check(self, config, *, resume, overwrite):
        """Refuse what would damage a run: a file for a directory, a takeover, a changed setting.

        Nothing is written here, so a run that fails later, before its first epoch, leaves
        the directory as it was.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f'--out {self.path} is a file, not a directory')
        if resume:
            before = self.saved().meta['train']
            self._check_same_text(before.get('data'), config.data)
            for name, value in config.to_dict().items():
                if name not in RESUMABLE_CHANGES + ('data',) and name in before and before[name] != value:
                    raise ConfigError(f'--resume continues the saved run, whose {name} is {before[name]!r}, '
                                      f'not {value!r}; drop that option or train into a new --out')
            if before.get('lr_schedule') == 'cosine' and before['num_epochs'] != config.num_epochs:
                raise ConfigError(f'the saved run\'s cosine schedule spans its num_epochs, '
                                  f'{before["num_epochs"]}; another --num-epochs would change the learning '
                                  f'rates mid-run: keep it, or start a new run')
            self._check_unfinished(config)
        elif not overwrite and not self._only_a_diverged_start():
            found = [name for name in RUN_FILES if (self.path / name).exists()]
            if found:
                raise ConfigError(f'{self.path} already holds a run ({", ".join(found)}); continue it with '
                                  f'--resume, start over with --overwrite, or choose another --out')

    def _check_unfinished(self, config):
        """--resume of a run that has trained all its epochs: say what --num-epochs means."""
        done = self.saved().meta.get('position', {}).get('epoch', 1) - 1
        if done >= config.num_epochs:
            raise ConfigError(f'{self.path} has finished its {done} epochs; with --resume, --num-epochs is '
                              f'the new total: --num-epochs {done + 10} trains 10 more')

    def read_only(self):
        """The same directory for a process that must not write it (a ReadOnlyRunDir), sharing
        the checkpoint read so far."""
        other = ReadOnlyRunDir(self.path)
        other._contents = self._contents
        return other

    def _only_a_diverged_start(self):
        """Whether the directory holds nothing but the history of a run that diverged in its first
        epoch (no checkpoint was ever saved): a fresh start may take it without --overwrite."""
        history = self.path / 'history.jsonl'
        if any((self.path / name).exists() for name in RUN_FILES if name != 'history.jsonl') \
                or not history.is_file():
            return False
        try:
            rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
        except (OSError, ValueError):
            return False
        return bool(rows) and all(isinstance(r, dict) and r.get('diverged') for r in rows)

    def _check_same_text(self, before, now):
        """A resumed run trains on the bytes it started with: the same size and SHA-1, at the path
        it was saved with or at the new one --data names (the file moved)."""
        from ..corpora import fingerprint
        saved = self.saved().meta.get('position', {}).get('data_fingerprint')
        if saved is None and before == now:        # a run saved before fingerprints were kept
            return
        try:
            same = saved is not None and fingerprint(now) == saved
        except (OSError, DataError):
            if now == before:
                return                             # missing: the loader says so, in its words
            same = False
        if not same:
            why = ('the saved run does not record its text\'s size and checksum' if saved is None
                   else f'{now} is not the same file (its size or SHA-1 differs)' if now != before
                   else f'{now} has changed since the run trained on it (its size or SHA-1 differs)')
            raise ConfigError(f'--resume continues the saved run, which trained on {before}; {why}: '
                              f'resume with the same text, or train into a new --out')

    def open(self):
        """Create the directory, prove it writable, and remove stale temporary files of ours.

        atomic_write names its temporary files .<name>.<random>.tmp; any such file of a run
        file (RUN_FILES: every file a run writes) is left over from a run killed mid-write (a
        finished write renames it).
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=self.path).close()
        except OSError as exc:
            raise ConfigError(f'cannot write into --out {self.path}: {exc.strerror or exc}') from None
        self._lock()
        for name in RUN_FILES:
            for stale in self.path.glob(f'.{name}.*.tmp'):
                stale.unlink(missing_ok=True)

    def _lock(self):
        """Hold DIR/.lock (flock) while the run trains: a second process started on the same
        directory is refused, naming the first. The kernel releases the lock when its holder
        dies, so a killed run's stale file blocks nothing. (No lock where fcntl is missing.)"""
        try:
            import fcntl
        except ImportError:          # not on a POSIX system
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode('ascii', 'replace').strip() or 'another process'
            os.close(fd)
            raise ConfigError(f'{self.path} is in use: process {holder} is training into it; wait for '
                              f'it to end (or stop it), or choose another --out') from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def close(self):
        """Release the directory (the lock and its file); a no-op when not open."""
        if self._lock_fd is not None:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- writing ------------------------------------------------------------------------------------

    def save(self, model, vocab, optimizer, config, history, position, *, best=False):
        """Checkpoint (with the history and the position in the data) and history.jsonl.

        best: this epoch is the best so far; best.npz gets the same checkpoint first, so a
        crash between the two writes leaves a best.npz that the epoch's replay rewrites.
        A history with no best epoch (no validation, or an overwritten run's first save)
        removes an older best.npz, which belongs to another run.
        """
        state = optimizer.state_dict()
        meta = {'train': config.to_dict(), 'epoch': len(history), 'position': position, 'history': history}
        if best:
            checkpoint.save(self.best_path, model, vocab, optimizer_state=state, meta=meta)
        elif not any(r.get('best') for r in history):
            self.best_path.unlink(missing_ok=True)
        checkpoint.save(self.checkpoint_path, model, vocab, optimizer_state=state, meta=meta)
        self.write_history(history)

    def write_history(self, history):
        """history.jsonl, one JSON object per row. A diverged run writes it alone, its last row
        flagged `diverged`, and leaves the checkpoints as the last good epoch saved them; a
        --resume rewrites it from model.npz's own copy."""
        write_text_atomic(self.path / 'history.jsonl', ''.join(json.dumps(r) + '\n' for r in history))

    def plot(self, history, config, *, force=False):
        """Redraw perplexity.png from the history, at most every PLOT_EVERY_S unless forced.

        bptt.png (plots.plot_bptt: gradient norms, their decay over time, spectra) is drawn
        beside it. Drawing costs ~0.1 s, a large share of a short epoch (d2l-v1's take a quarter
        second).
        With no finite perplexity to draw, an old curve (of an overwritten run) is removed.
        """
        if not force and time.monotonic() - self._last_plot < PLOT_EVERY_S:
            return
        path = self.path / 'perplexity.png'
        if all(r['train_ppl'] is None and r['val_ppl'] is None for r in history):
            path.unlink(missing_ok=True)
            return
        from ..plots import plot_bptt, plot_history
        title = f'{config.data}: {config.sampler} sampler, {config.cell} H={config.num_hiddens}'
        plot_history(history, path, title=title)
        plot_bptt(history, self.path / 'bptt.png', title=title)
        self._last_plot = time.monotonic()


class WritesNothing:
    """The writing half of a run directory, as no-ops: for a process that writes, locks and plots
    nothing (ReadOnlyRunDir, NoRunDir)."""

    def open(self):
        pass

    def close(self):
        pass

    def save(self, *args, **kwargs):
        pass

    def write_history(self, history):
        pass

    def plot(self, history, config, *, force=False):
        pass


class ReadOnlyRunDir(WritesNothing, RunDir):
    """The run directory as the ranks of an MPI run other than 0 see it: they read a saved
    checkpoint to resume, and write, lock, check and plot nothing (rank 0 does)."""

    def check(self, config, *, resume, overwrite):
        pass


class NoRunDir(WritesNothing):
    """A run without a directory (fit(config, None) from Python, a notebook): nothing is written,
    locked or plotted; the history lives in the FitResult. It cannot be resumed."""
    path = checkpoint_path = best_path = None

    def check(self, config, *, resume, overwrite):
        if resume:
            raise ConfigError('resume continues a run directory: pass its path as out_dir')

    def read_only(self):
        return self
