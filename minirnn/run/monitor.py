"""Training-time instrumentation of BPTT, cheap enough to leave on: per-epoch summaries for history.jsonl.

For every epoch: each parameter's gradient norm (before clipping; mean and max over the
batches), and from the epoch's first batch the norm of dL/dH_t at every step and its decay
||dL/dH_1|| / ||dL/dH_T|| per layer (from the backward pass that trains on that batch, so it
costs one (T, B, H) buffer), and the recurrent weights' spectral radius and largest singular
value (probe.spectra), whose eigen-decomposition is timed and skipped while it would cost more
than SPECTRUM_SHARE of the training time since the last one (always done in the first and last
epoch). The gradients come merged from the threads (parallel.MERGE) and the processes
(run/distributed.py), so they are exact.
"""
import time

from .. import parallel, probe
from ..backend import to_numpy, xp_of

SPECTRUM_SHARE = 0.05     # the spectra may take at most this share of the training time


class EpochMonitor:
    """Accumulates one epoch's instrumentation; `row()` returns it as history.jsonl fields."""

    def __init__(self, comm=parallel.WHOLE):
        self.comm = comm                   # the processes sharing each batch's rows
        self._spectrum_cost = 0.0          # seconds the last spectra took
        self._since_spectrum = float('inf')  # training seconds since then
        self.start_epoch()

    def start_epoch(self):
        self.batches = 0
        self._norm_sums, self._norm_max = {}, {}   # device scalars: no sync until row()
        self.step_norms = None             # per layer: ||dL/dH_t|| for t = 1..T of the first batch

    def wants_steps(self):
        """Whether the next batch's backward pass should record dL/dH_t (the epoch's first one)."""
        return self.step_norms is None

    def add_batch(self, result):
        """Take one batch's model.Gradients (before clipping): per-parameter squared norms."""
        self.batches += 1
        for name, g in result.grads.items():
            xp = xp_of(g)
            norm = xp.sqrt(xp.vdot(g.ravel(), g.ravel()))
            if name in self._norm_sums:
                self._norm_sums[name] = self._norm_sums[name] + norm
                self._norm_max[name] = xp.maximum(self._norm_max[name], norm)
            else:
                self._norm_sums[name], self._norm_max[name] = norm, norm
        if self.step_norms is None and result.dH_steps is not None:
            self.step_norms = [self._step_norms(dH) for dH in result.dH_steps]

    def _step_norms(self, dH):
        """||dL/dH_t|| over every row of the batch, for t = 1..T (probe.step_norms, with the
        squares of each process's rows added up)."""
        if self.comm.size == 1:
            return probe.step_norms(dH)
        squares = to_numpy((dH.reshape(dH.shape[0], -1) ** 2).sum(axis=1))
        return [v ** 0.5 for v in self.comm.sum(squares.tolist())]

    def row(self, model, training_seconds, *, force_spectra=False):
        """The epoch's fields: grad_norms {name: mean}, grad_norms_max, grad_norm_by_step (per
        layer, the first batch), grad_decay (per layer ||dL/dH_1|| / ||dL/dH_T||), spectra (or
        None when skipped for time)."""
        self._since_spectrum += training_seconds
        spectra = None
        if force_spectra or self._since_spectrum * SPECTRUM_SHARE >= self._spectrum_cost:
            start = time.perf_counter()
            spectra = probe.spectra(model)
            self._spectrum_cost = time.perf_counter() - start
            self._since_spectrum = 0.0
        decay = None
        if self.step_norms is not None:
            decay = [norms[0] / norms[-1] if norms[-1] else None for norms in self.step_norms]
        n = max(self.batches, 1)
        return {'grad_norms': {k: float(v) / n for k, v in self._norm_sums.items()},
                'grad_norms_max': {k: float(v) for k, v in self._norm_max.items()},
                'grad_norm_by_step': self.step_norms,
                'grad_decay': decay,
                'spectra': spectra}
