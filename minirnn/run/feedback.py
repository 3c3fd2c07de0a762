"""A run and its user: what it shows while it trains (on stderr), and Ctrl-C.

The bar (tqdm) advances per batch with the running loss, perplexity and tokens/s; it is drawn
only on a terminal and never when quiet. Lines (epoch summaries, evaluations and samples taken
every N steps) are printed unless quiet, terminal or not. Interrupt turns Ctrl-C into a
request to stop after the batch. What to report is trainer.py's decision, keeping it rundir.py's.
"""
import math
import signal
import sys
import time

from ..optim import format_ppl


class Reporter:
    """The progress bar of one run and the lines printed above it.

    Args: num_epochs, the run's last epoch; quiet, print nothing; stream, where to write
    (stderr). The bar counts batches: its total is re-estimated at the start of each epoch,
    since the samplers' random offsets change an epoch's batch count by one.
    """

    POSTFIX_EVERY_S = 0.2    # the bar's numbers are reformatted at most this often
    LINE_EVERY_S = 30.0      # off a terminal (a notebook, nohup, a pipe): a plain progress line this often

    def __init__(self, num_epochs, *, quiet=False, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.num_epochs = num_epochs
        self.quiet = quiet
        self.shows_bar = not quiet and self.stream.isatty()
        self.bar = None               # drawn from the first epoch on, when its size is known
        self._last_postfix = -math.inf
        self._last_line = time.monotonic()
        self._epoch = None            # (epoch, num_batches) being trained, for the plain lines

    def start_epoch(self, epoch, num_batches, done):
        """Epoch `epoch` of `num_batches` batches begins, `done` of them finished already (a resume)."""
        self._epoch = (epoch, num_batches)
        if not self.shows_bar:
            return
        left = (self.num_epochs - epoch + 1) * num_batches - done    # batches to go, this epoch's estimate
        desc = f'epoch {epoch}/{self.num_epochs}'
        if self.bar is None:
            from tqdm import tqdm
            # a resumed run's bar counts from where the run is, so rate and ETA cover this session
            self.bar = tqdm(total=left, desc=desc, unit='batch', file=self.stream, dynamic_ncols=True,
                            leave=False, bar_format='{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} '
                                                    '[{elapsed}<{remaining}{postfix}]')
        else:
            self.bar.total = self.bar.n + left
            self.bar.set_description_str(desc, refresh=False)

    def batch(self, progress):
        """One batch finished; `progress` is the epoch's train.EpochProgress so far. On a terminal
        the bar moves; elsewhere (unless quiet) a plain line says how far the epoch got, every
        LINE_EVERY_S seconds, so a notebook cell or a nohup run is not silent for minutes."""
        now = time.monotonic()
        if self.bar is None:
            if not self.quiet and self._epoch and now - self._last_line >= self.LINE_EVERY_S:
                self._last_line = now
                epoch, num_batches = self._epoch
                print(f'epoch {epoch}/{self.num_epochs}: batch {progress.batches}/{num_batches}, '
                      f'{self._numbers(progress)}', file=self.stream, flush=True)
            return
        if now - self._last_postfix >= self.POSTFIX_EVERY_S:
            self._last_postfix = now
            self.bar.set_postfix_str(self._numbers(progress), refresh=False)
        self.bar.update(1)

    @staticmethod
    def _numbers(progress):
        """'loss 1.234, ppl 3.43, 12,345 tokens/s' of the epoch so far."""
        loss = progress.loss_sum / progress.tokens
        rate = progress.tokens / progress.seconds if progress.seconds else 0.0
        ppl = math.exp(loss) if loss < 709 else math.inf
        return f'loss {loss:.3f}, ppl {format_ppl(ppl)}, {rate:,.0f} tokens/s'

    def line(self, text, *, always=False):
        """Print a line above the bar (unless quiet; `always` prints it anyway: outcomes, not progress)."""
        if self.quiet and not always:
            return
        if self.bar is None:
            print(text, file=self.stream, flush=True)
        else:
            self.bar.write(text, file=self.stream)

    def close(self):
        if self.bar is not None:
            self.bar.close()


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
