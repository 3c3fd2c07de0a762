"""Training-step throughput: how many tokens per second one full SGD step processes.

One step is what train.py does per batch with the random sampler: model.gradients from a
fresh zero state, clip_grad_norm, SGD.step, under the same thread plan. Data loading is left
out (X, Y are random ids made once and moved to the device once), and so is everything a
training loop does between steps (metrics, logging). `minirnn bench` calls `step_throughput`.
"""
import dataclasses
import statistics
import time

import numpy as np

from . import checks, parallel
from .backend import device_name, make_rng, synchronize, to_device, tune_host_allocator
from .errors import ConfigError
from .model import ModelConfig, RNNLM
from .optim import SGD, clip_grad_norm


def step_throughput(batch_size=32, num_steps=35, vocab_size=28, iters=20, warmup=3, device='cpu',
                    seed=0, max_norm=1.0, lr=1.0, threads=None, **model):
    """Time `iters` training steps of an RNNLM on random tokens, after `warmup` untimed ones.

    One step = model.gradients(X, Y, state=None) (forward, softmax cross-entropy, BPTT
    over all num_steps, from a fresh zero state as with the random sampler) + clip_grad_norm
    (max_norm; one host sync for the norm) + SGD(lr).step. The clock is read after
    backend.synchronize, so queued GPU work is counted in the step that queued it.

    Args: batch_size B, num_steps T, vocab_size V, iters and warmup (counts of steps), device
        ('cpu' | 'gpu' | 'auto'), seed (model init and tokens), max_norm (0 disables clipping
        but still measures the norm), lr, threads (CPU threads that split the batch; None:
        every core, 1: the whole batch in one thread); model: ModelConfig's fields (num_hiddens
        H, cell, num_layers, dtype, impl, ...; dropout's and the other regularisers' masks are
        drawn every step, as in training).
    Returns: a JSON-serialisable dict with the shape, the model's fields, device, iters,
        `seconds` (total timed wall time), `step_ms` (median step), `tokens_per_s` (B*T /
        median step) and `tokens_per_s_mean` (B*T*iters / seconds).
    """
    for name, value in (('batch_size', batch_size), ('num_steps', num_steps),
                        ('vocab_size', vocab_size), ('iters', iters)):
        checks.integer(name, value)
    checks.integer('warmup', warmup, minimum=0)
    checks.number('max_norm', max_norm, minimum=0)
    try:
        spec = ModelConfig(**model)
    except TypeError as exc:      # a name that is not a model option
        raise ConfigError(f'step_throughput: {exc}') from None

    tune_host_allocator()   # as fit() does
    rng = make_rng(seed)
    model = RNNLM.from_config(vocab_size, spec, device=device, seed=rng, threads=threads)
    dropout_rng = rng if spec.has_training_mode else None
    xp = model.xp
    optimizer = SGD(lr)
    # made once on the host and moved once, so the timing holds no host-to-device copies
    X = to_device(rng.integers(0, vocab_size, size=(batch_size, num_steps), dtype=np.int32), xp)
    Y = to_device(rng.integers(0, vocab_size, size=(batch_size, num_steps), dtype=np.int32), xp)

    def step():
        result = parallel.gradients(model, X, Y, None, dropout_rng=dropout_rng)
        clip_grad_norm(result.grads, max_norm)
        optimizer.step(model.params, result.grads)

    # as in training: while threads split the batch, BLAS stays single-threaded (parallel.py)
    with parallel.blas_context(batch_size, spec.num_hiddens, model.threads):
        for _ in range(warmup):
            step()
        synchronize(xp)
        times = []
        start = time.perf_counter()
        for _ in range(iters):
            t0 = time.perf_counter()
            step()
            synchronize(xp)
            times.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - start

    tokens = batch_size * num_steps
    median = statistics.median(times)
    return {'batch_size': int(batch_size), 'num_steps': int(num_steps), 'vocab_size': int(vocab_size),
            **dataclasses.asdict(spec), 'device': device_name(xp), 'threads': model.threads,
            'iters': int(iters),
            'seconds': seconds, 'step_ms': median * 1e3,
            'tokens_per_s': tokens / median, 'tokens_per_s_mean': tokens * iters / seconds}

