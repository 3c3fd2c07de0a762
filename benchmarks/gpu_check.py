"""Prove the GPU path in one short call: the GPU tests, CPU/GPU agreement, and a step against cuDNN.

On a machine with a CUDA device, CuPy and (for part 3) PyTorch with CUDA installed beforehand
(this script installs nothing), from the repository root:

    python benchmarks/gpu_check.py                 # all three parts, well under 8 minutes
    python benchmarks/gpu_check.py --skip-tests    # parts 2 and 3 only

1. tests     `pytest -m gpu` on real CuPy: every GPU-marked test (the numeric tests' CuPy cases).
2. agreement for every cell at one and two layers (dropout and an embedding included), one
             float64 model on NumPy and its copy on CuPy: the loss and every gradient, the
             largest relative difference (max |cpu - gpu| / max |cpu| per tensor).
3. speed     one training step (forward, BPTT, clip, SGD), minirnn on CuPy against PyTorch's
             nn.RNN / nn.GRU / nn.LSTM on cuDNN (TF32 off, float32, the same one-hot inputs,
             linear head, clipping and SGD as benchmarks/torch_step.py), alternating the two
             in each round; the table has the median tokens/s of each and their ratio, and the
             cuDNN kernels PyTorch launched (which name its RNN algorithm).

Under the CuPy stand-in of the test suite (tests/standin, a NumPy-backed module that enforces
CuPy's host/device rules; `PYTHONPATH=tests/standin`) part 1 is skipped (the suite runs those
tests itself), part 2 runs as on a device, and part 3 times minirnn's step only (tiny sizes
with --quick), so this script is exercised without a GPU (tests/test_gpu_check.py).
Exit status: 0 when every part passed, 1 when a test failed or a difference exceeded --rtol.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (batch_size, num_steps, num_hiddens): the book's setting, a wide batch of small states, one
# long sequence (latency-bound, where kernel launches set the speed), and a large model
SHAPES = ((32, 35, 512), (1024, 32, 32), (1, 100, 256), (128, 64, 1024))
QUICK_SHAPES = ((4, 5, 8), (2, 3, 4))
CELLS = ('rnn', 'gru', 'lstm')
VOCAB = 28


def is_standin(cupy):
    """Whether `cupy` is the test suite's NumPy-backed stand-in, not CuPy on a device."""
    return bool(getattr(cupy, 'STANDIN', False))


def part_tests():
    """pytest -m gpu: every GPU-marked test on real CuPy. Returns True when all passed."""
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-m', 'gpu', '-p', 'no:cacheprovider',
                           'tests'], cwd=REPO)
    return proc.returncode == 0


def part_agreement(rtol):
    """Loss and every gradient of float64 models on NumPy and on CuPy. Returns (rows, ok)."""
    from minirnn import RNNLM
    from minirnn.backend import to_numpy
    rows, ok = [], True
    rng = np.random.default_rng(0)
    B, T = 4, 9
    X, Y = rng.integers(0, VOCAB, (B, T)), rng.integers(0, VOCAB, (B, T))
    for cell in CELLS:
        for layers, dropout, embed in ((1, 0.0, None), (2, 0.3, 6)):
            options = dict(cell=cell, num_layers=layers, dropout=dropout, embed_dim=embed,
                           dtype='float64', sigma=0.3, seed=1, threads=1)
            cpu = RNNLM(VOCAB, 16, device='cpu', **options)
            gpu = cpu.converted(device='gpu')
            a = cpu.gradients(X, Y, dropout_rng=2 if dropout else None)
            b = gpu.gradients(X, Y, dropout_rng=2 if dropout else None)
            worst = abs(a.loss - b.loss) / abs(a.loss)
            for name, g in a.grads.items():
                scale = max(float(np.abs(g).max()), 1e-300)
                worst = max(worst, float(np.abs(to_numpy(b.grads[name]) - g).max()) / scale)
            label = f'{cell} x{layers}' + (f', dropout {dropout:g}, E={embed}' if dropout else '')
            rows.append((label, worst))
            ok = ok and worst <= rtol
    return rows, ok


def minirnn_step(cell, shape):
    """One minirnn training step on the GPU (CuPy), the bench's: returns step() -> None."""
    from minirnn import RNNLM, clip_grad_norm, parallel
    from minirnn.backend import to_device
    from minirnn.optim import SGD
    B, T, H = shape
    model = RNNLM(VOCAB, H, cell=cell, device='gpu', seed=0)
    rng = np.random.default_rng(0)
    X = to_device(rng.integers(0, VOCAB, (B, T), dtype=np.int32), model.xp)
    Y = to_device(rng.integers(0, VOCAB, (B, T), dtype=np.int32), model.xp)
    optimizer = SGD(1.0)

    def step():
        result = parallel.gradients(model, X, Y)
        clip_grad_norm(result.grads, 1.0)
        optimizer.step(model.params, result.grads)
    return step


def torch_step(torch, cell, shape):
    """PyTorch's nn.RNN/GRU/LSTM + Linear on cuDNN, the same step: returns step() -> None."""
    nn, F = torch.nn, torch.nn.functional
    B, T, H = shape
    layer = getattr(nn, {'rnn': 'RNN', 'gru': 'GRU', 'lstm': 'LSTM'}[cell])(VOCAB, H).cuda()
    linear = nn.Linear(H, VOCAB).cuda()
    params = list(layer.parameters()) + list(linear.parameters())
    optimizer = torch.optim.SGD(params, lr=1.0)
    X = torch.randint(0, VOCAB, (B, T), device='cuda')
    Y = torch.randint(0, VOCAB, (B, T), device='cuda')

    def step():
        inputs = F.one_hot(X.T, VOCAB).float()
        outputs, _ = layer(inputs)
        loss = F.cross_entropy(linear(outputs.reshape(-1, H)), Y.T.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, max_norm=1)
        optimizer.step()
    return step


def timed(step, synchronize, iters):
    """Median seconds of `iters` steps, each closed by synchronize()."""
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cudnn_kernels(torch, step):
    """The names of the CUDA kernels one PyTorch step launches that belong to its RNN (cuDNN's)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    names = {e.key for e in prof.key_averages()}
    return sorted(n for n in names if any(k in n.lower() for k in ('rnn', 'lstm', 'gru', 'persist', 'elemwise')))


def part_speed(shapes, rounds, iters, with_torch):
    """Alternate minirnn's and PyTorch's step per round; per (cell, shape) the median tokens/s."""
    from minirnn.backend import get_xp, synchronize
    xp = get_xp('gpu')
    torch = None
    if with_torch:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    rows, kernels = [], {}
    for cell in CELLS:
        for shape in shapes:
            programs = {'minirnn': (minirnn_step(cell, shape), lambda: synchronize(xp))}
            if torch is not None:
                programs['cuDNN'] = (torch_step(torch, cell, shape), torch.cuda.synchronize)
            for step, sync in programs.values():        # warm-up: allocations, cuDNN plans
                for _ in range(3):
                    step()
                sync()
            tps = {name: [] for name in programs}
            for r in range(rounds):
                order = list(programs) if r % 2 == 0 else list(programs)[::-1]
                for name in order:
                    step, sync = programs[name]
                    tps[name].append(shape[0] * shape[1] / timed(step, sync, iters))
            row = {'cell': cell, 'shape': 'x'.join(map(str, shape)),
                   **{name: statistics.median(v) for name, v in tps.items()}}
            if torch is not None:
                row['ratio'] = statistics.median(a / b for a, b in zip(tps['minirnn'], tps['cuDNN']))
                kernels.setdefault(cell, cudnn_kernels(torch, programs['cuDNN'][0]))
            rows.append(row)
    return rows, kernels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--skip-tests', action='store_true', help='skip part 1 (pytest -m gpu)')
    parser.add_argument('--quick', action='store_true', help='tiny shapes and few steps (a smoke test)')
    parser.add_argument('--rounds', type=int, default=3, help='alternating rounds per shape (part 3)')
    parser.add_argument('--iters', type=int, default=10, help='timed steps per program and round')
    parser.add_argument('--rtol', type=float, default=1e-10, help='largest CPU/GPU difference allowed (part 2)')
    args = parser.parse_args(argv)
    try:
        import cupy
        from minirnn.backend import get_xp
        get_xp('gpu')
    except Exception as exc:       # no CuPy, no device: say so in one line
        print(f'gpu_check: no usable CuPy device: {exc}', file=sys.stderr)
        return 2
    standin = is_standin(cupy)
    print(f'# CuPy {cupy.__version__}' + (' (the test suite\'s stand-in: CUDA-only parts skipped)' if standin
                                            else f', device {cupy.cuda.runtime.getDeviceProperties(0)["name"]}'))
    ok = True
    if not standin and not args.skip_tests:
        print('\n## 1. pytest -m gpu on CuPy', flush=True)
        ok = part_tests() and ok
    print('\n## 2. CPU (NumPy) against GPU (CuPy), float64: max relative difference of the loss and every gradient')
    agreement, agree = part_agreement(args.rtol)
    for label, worst in agreement:
        print(f'{label:<28} {worst:.1e}')
    print('all within' if agree else 'NOT all within', f'{args.rtol:g}')
    ok = ok and agree
    with_torch = not standin
    if with_torch:
        try:
            import torch
            with_torch = torch.cuda.is_available()
        except ImportError:
            with_torch = False
        if not with_torch:
            print('\n(PyTorch with CUDA is not installed: part 3 times minirnn alone)')
    shapes = QUICK_SHAPES if args.quick else SHAPES
    print(f'\n## 3. training step, float32, V={VOCAB}: tokens/s, median of {args.rounds} rounds of {args.iters} steps')
    rows, kernels = part_speed(shapes, args.rounds, args.iters, with_torch)
    header = ['cell', 'B x T x H', 'minirnn (CuPy)'] + (['PyTorch cuDNN', 'minirnn / cuDNN'] if with_torch else [])
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        cells = [row['cell'], row['shape'], f'{row["minirnn"]:,.0f}']
        if with_torch:
            cells += [f'{row["cuDNN"]:,.0f}', f'{row["ratio"]:.2f}']
        print('| ' + ' | '.join(cells) + ' |')
    if with_torch:
        import torch
        print(f'\ncuDNN {torch.backends.cudnn.version()}, PyTorch {torch.__version__}; kernels of one step:')
        for cell, names in kernels.items():
            print(f'  {cell}: {", ".join(names) or "(none matched)"}')
    print(json.dumps({'ok': ok, 'agreement': dict(agreement), 'speed': rows}))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
