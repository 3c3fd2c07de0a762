"""Kernel launches per time step of each cell's training step, counted under the CuPy stand-in.

On a GPU a small batch's step is bound by kernel launches (a few microseconds each), not by
arithmetic. The test suite's CuPy stand-in (tests/standin: NumPy underneath, CuPy's rules on
top) counts every operation that would be one launch: each ufunc and operator, reduction,
GEMM, copy and gather or scatter. Launches per time step = (count at T2 - count at T1) /
(T2 - T1), for the forward pass (model.loss) and the whole step (gradients + clip + SGD),
the backward pass being their difference. Runs on any machine:

    python benchmarks/launch_counts.py
"""
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / 'tests' / 'standin'), str(REPO)]

import cupy  # noqa: E402  (the stand-in, from tests/standin)

from minirnn import RNNLM, clip_grad_norm  # noqa: E402
from minirnn.optim import SGD  # noqa: E402

T1, T2 = 4, 12


def launches(cell, impl, num_steps, what):
    model = RNNLM(28, 16, cell=cell, impl=impl, device='gpu', seed=0, threads=1)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 28, (4, num_steps)), rng.integers(0, 28, (4, num_steps))
    optimizer = SGD(0.1)
    for _ in range(2):                    # the second call: the optimizer's state exists
        with cupy.standin_counting() as c:
            if what == 'forward':
                model.loss(X, Y)
            else:
                result = model.gradients(X, Y)
                clip_grad_norm(result.grads, 1.0)
                optimizer.step(model.params, result.grads)
    return c.launches


def main():
    assert getattr(cupy, 'STANDIN', False), 'tests/standin must come first on sys.path'
    print('| cell | impl | forward per step | backward per step | step, fixed part (T-independent) |')
    print('|---|---|---|---|---|')
    for cell in ('rnn', 'gru', 'lstm'):
        for impl in ('fast', 'reference'):
            f1, f2 = launches(cell, impl, T1, 'forward'), launches(cell, impl, T2, 'forward')
            s1, s2 = launches(cell, impl, T1, 'step'), launches(cell, impl, T2, 'step')
            forward, step = (f2 - f1) / (T2 - T1), (s2 - s1) / (T2 - T1)
            print(f'| {cell} | {impl} | {forward:g} | {step - forward:g} | {s1 - step * T1:g} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
