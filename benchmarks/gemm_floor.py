"""The GEMM floor of a training step: how fast minirnn could be if everything but its GEMMs were free.

For each shape, one training step of the fast path issues a known list of matrix products (per
time step and layer the recurrent product forward and backward, after the loop the weight
gradients, the output layer, the projections of the layers above the first). This script times
exactly those products, alternating NumPy (minirnn's BLAS) with torch.mm at the same operand
shapes, and in the same rounds times minirnn's whole step (`cli.py bench`) and PyTorch's
(`torch_step.py --impl nn`), each as a fresh subprocess. It reports per shape:

    gemm share  = NumPy GEMM time / minirnn's step        (how much of the step the GEMMs are)
    floor       = PyTorch's step / NumPy GEMM time        (the best minirnn / PyTorch ratio that
                                                           these GEMM calls allow)
    achieved    = PyTorch's step / minirnn's step         (minirnn / PyTorch in tokens/s)
    of floor    = achieved / floor                        (1 would mean the non-GEMM work is free)

Every program runs with every core (BLAS's threads for NumPy, torch.set_num_threads for
PyTorch), and minirnn with --threads 1, so its GEMMs are the ones timed here. The load guard of
bench_cpu.py applies: on a busy machine a warning replaces the verdict.

    python benchmarks/gemm_floor.py --shapes lstm:1:32x35x256 lstm:2:8x64x512 --rounds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quiet import LoadGuard  # noqa: E402  (a sibling script, not a package)

REPO = Path(__file__).resolve().parents[1]
GATES = {'rnn': 1, 'gru': 3, 'lstm': 4}


def step_gemms(cell, num_layers, B, T, H, V):
    """The products of one fast-path training step: [(label, (M, K, N), count)], A (M, K) @ B (K, N)."""
    G = GATES[cell]
    TB = T * B
    out = [('output forward', (V, H, TB), 1), ('output dx', (TB, V, H), 1), ('output dW', (H, TB, V), 1),
           ('layer 0 dW_x (one-hot)', (V, TB, G * H), 1)]
    if cell == 'gru':
        # per step: [Z|R] from (B,H)@(H,2H), the candidate from (B,H)@(H,H); backward: dRH, then [dA_z|dA_r]
        out += [('step forward gates', (B, H, 2 * H), T * num_layers),
                ('step forward candidate', (B, H, H), T * num_layers),
                ('step backward candidate', (B, H, H), T * num_layers),
                ('step backward gates', (B, 2 * H, H), T * num_layers),
                ('dW_h gates', (H, TB, 2 * H), num_layers), ('dW_hh', (H, TB, H), num_layers)]
    else:
        out += [('step forward', (B, H, G * H), T * num_layers),
                ('step backward', (B, G * H, H), T * num_layers),
                ('dW_h', (H, TB, G * H), num_layers)]
    if num_layers > 1:
        out += [('projection forward', (TB, H, G * H), num_layers - 1),
                ('projection dx', (TB, G * H, H), num_layers - 1),
                ('projection dW', (H, TB, G * H), num_layers - 1)]
    return out


def time_gemms(gemms, rounds, torch):
    """Median seconds of all the products of one step, alternated: (NumPy, torch.mm)."""
    import numpy as np
    rng = np.random.default_rng(0)
    operands = [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32), count)
                for _, (m, k, n), count in gemms]
    torch_operands = [(torch.from_numpy(a), torch.from_numpy(b), count) for a, b, count in operands]

    def run(matmul, operands):
        for a, b, count in operands:
            for _ in range(count):
                matmul(a, b)
    programs = [('numpy', np.matmul, operands), ('torch', torch.mm, torch_operands)]
    times = {'numpy': [], 'torch': []}
    for r in range(rounds + 1):
        for name, matmul, ops in programs if r % 2 else programs[::-1]:
            t0 = time.perf_counter()
            run(matmul, ops)
            if r:                                   # round 0 warms up
                times[name].append(time.perf_counter() - t0)
    return statistics.median(times['numpy']), statistics.median(times['torch'])


def step_seconds(argv):
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f'{argv[1]} failed: {(proc.stderr.strip().splitlines() or ["?"])[-1]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])['step_ms'] / 1e3


def parse_shape(text):
    """'cell:layers:BxTxH' -> (cell, layers, B, T, H)."""
    try:
        cell, layers, dims = text.split(':')
        B, T, H = (int(d) for d in dims.split('x'))
        if cell not in GATES or int(layers) < 1 or min(B, T, H) < 1:
            raise ValueError
        return cell, int(layers), B, T, H
    except ValueError:
        raise argparse.ArgumentTypeError(f'shape must look like lstm:2:8x64x512, got {text!r}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shapes', nargs='+', type=parse_shape, required=True, metavar='CELL:L:BxTxH')
    parser.add_argument('--vocab-size', type=int, default=28)
    parser.add_argument('--rounds', type=int, default=3, help='rounds of every program per shape')
    parser.add_argument('--iters', type=int, default=5, help='timed steps per bench subprocess')
    args = parser.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
    except ImportError:
        raise SystemExit('gemm_floor.py compares with PyTorch: pip install torch==2.13.0')
    guard = LoadGuard()
    rows = []
    for cell, layers, B, T, H in args.shapes:
        flags = ['--cell', cell, '--num-layers', str(layers), '--batch-size', str(B), '--num-steps', str(T),
                 '--num-hiddens', str(H), '--vocab-size', str(args.vocab_size), '--iters', str(args.iters)]
        mini_cmd = [sys.executable, 'cli.py', 'bench', '--threads', '1'] + flags
        torch_cmd = [sys.executable, 'benchmarks/torch_step.py', '--impl', 'nn', '--threads',
                     str(os.cpu_count())] + flags
        gemm_np, gemm_torch, mini, nn = [], [], [], []
        for r in range(args.rounds):
            for what in (['gemm', 'mini', 'nn'] if r % 2 == 0 else ['nn', 'mini', 'gemm']):
                if what == 'gemm':
                    a, b = time_gemms(step_gemms(cell, layers, B, T, H, args.vocab_size), 3, torch)
                    gemm_np.append(a)
                    gemm_torch.append(b)
                elif what == 'mini':
                    mini.append(step_seconds(mini_cmd))
                else:
                    nn.append(step_seconds(torch_cmd))
        g, gt, m, n = (statistics.median(v) for v in (gemm_np, gemm_torch, mini, nn))
        rows.append({'cell': cell, 'layers': layers, 'B': B, 'T': T, 'H': H,
                     'numpy_gemm_ms': g * 1e3, 'torch_mm_ms': gt * 1e3, 'minirnn_step_ms': m * 1e3,
                     'pytorch_step_ms': n * 1e3, 'gemm_share': g / m, 'floor': n / g,
                     'achieved': n / m, 'of_floor': (n / m) / (n / g)})
        print(f'{cell} x{layers} {B}/{T}/{H}: gemms {g * 1e3:.1f} ms (torch.mm {gt * 1e3:.1f}), '
              f'minirnn {m * 1e3:.1f} ms, PyTorch {n * 1e3:.1f} ms', file=sys.stderr)
    head = ('| cell x L | B / T / H | NumPy GEMMs ms | torch.mm same GEMMs ms | minirnn step ms | '
            'PyTorch step ms | GEMM share | floor | achieved | of floor |')
    print(head)
    print('|' + '---|' * (head.count('|') - 1))
    for r in rows:
        print(f'| {r["cell"]} x{r["layers"]} | {r["B"]} / {r["T"]} / {r["H"]} | {r["numpy_gemm_ms"]:.1f} | '
              f'{r["torch_mm_ms"]:.1f} | {r["minirnn_step_ms"]:.1f} | {r["pytorch_step_ms"]:.1f} | '
              f'{r["gemm_share"]:.2f} | {r["floor"]:.2f} | {r["achieved"]:.2f} | {r["of_floor"]:.2f} |')
    print(guard.verdict())
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
