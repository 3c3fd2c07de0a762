"""CPU training-step throughput: minirnn against PyTorch's nn.RNN and the book's scratch code.

For each shape, each round runs `cli.py bench`, `torch_step.py --impl nn` and
`torch_step.py --impl scratch` as fresh subprocesses with the same B, T, H, V and iters,
one after another (the order rotates each round), so slow drift in the machine's load hits
all three alike. Reports per shape the median tokens/s of each program and the median and
minimum of the per-round ratio minirnn / nn.RNN, as a Markdown table (and JSON with --json).
"""
import argparse
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH_STEP = Path(__file__).resolve().parent / 'torch_step.py'

# (batch_size, num_steps, num_hiddens) -> iters, picked so one subprocess takes ~1-3 s on a laptop:
# the book's setting, a wide batch of small states, and one long sequence (latency-bound)
DEFAULT_SHAPES = {(32, 35, 512): 20, (1024, 32, 32): 10, (1, 100, 256): 50}
PROGRAMS = ('minirnn', 'nn.RNN', 'scratch')


def parse_shape(text):
    """'BxTxH' or 'BxTxH:ITERS' -> ((B, T, H), iters or None)."""
    dims, _, iters = text.partition(':')
    try:
        shape = tuple(int(d) for d in dims.lower().split('x'))
        iters = int(iters) if iters else None
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or (iters is not None and iters < 1):
        raise argparse.ArgumentTypeError(f'shape must look like 32x35x512 or 32x35x512:20, got {text!r}')
    return shape, iters


def command(program, minirnn_cmd, shape, vocab_size, iters, threads):
    """The argv that times one program on one shape (the flags of the `cli.py bench` contract)."""
    B, T, H = shape
    flags = ['--batch-size', str(B), '--num-steps', str(T), '--num-hiddens', str(H),
             '--vocab-size', str(vocab_size), '--iters', str(iters)]
    if program == 'minirnn':
        argv = shlex.split(minirnn_cmd)
        # 'python' means this interpreter, so the runner and what it runs share one venv
        if argv and argv[0] == 'python':
            argv[0] = sys.executable
        return argv + flags + ['--device', 'cpu']
    impl = 'nn' if program == 'nn.RNN' else 'scratch'
    return [sys.executable, str(TORCH_STEP), '--impl', impl, '--threads', str(threads)] + flags


def run_one(argv, timeout):
    """Run argv from the repository root; return the last stdout line as a dict, or an error."""
    try:
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': f'timed out after {timeout} s'}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ['(no stderr)'])[-1]
        return {'error': f'exit {proc.returncode}: {tail}'}
    try:
        result = json.loads(lines[-1])
        float(result['tokens_per_s'])
    except (ValueError, KeyError, TypeError):
        return {'error': f'last stdout line is not JSON with tokens_per_s: {lines[-1][:200]!r}'}
    return result


def summarize(rounds):
    """Per program the median tokens/s over rounds; the per-round ratios minirnn / each torch."""
    out = {}
    for program in PROGRAMS:
        values = [r[program]['tokens_per_s'] for r in rounds
                  if program in r and 'tokens_per_s' in r[program]]
        out[program] = statistics.median(values) if values else None
    for program, key in (('nn.RNN', 'ratio_nn'), ('scratch', 'ratio_scratch')):
        ratios = [r['minirnn']['tokens_per_s'] / r[program]['tokens_per_s'] for r in rounds
                  if 'tokens_per_s' in r.get('minirnn', {}) and 'tokens_per_s' in r.get(program, {})]
        out[key] = {'median': statistics.median(ratios), 'min': min(ratios),
                    'max': max(ratios)} if ratios else None
    return out


def markdown(results, vocab_size):
    """The report table: one row per shape."""
    def num(x):
        return f'{x:,.0f}' if x is not None else 'n/a'

    def ratio(r, field):
        return f'{r[field]:.2f}' if r is not None else 'n/a'
    rows = ['| B | T | H | V | iters | minirnn tok/s | nn.RNN tok/s | scratch tok/s '
            '| minirnn/nn.RNN median | minirnn/nn.RNN min | minirnn/scratch median |',
            '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for entry in results:
        s = entry['summary']
        B, T, H = entry['shape']
        rows.append(f'| {B} | {T} | {H} | {vocab_size} | {entry["iters"]} '
                    f'| {num(s["minirnn"])} | {num(s["nn.RNN"])} | {num(s["scratch"])} '
                    f'| {ratio(s["ratio_nn"], "median")} | {ratio(s["ratio_nn"], "min")} '
                    f'| {ratio(s["ratio_scratch"], "median")} |')
    return '\n'.join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shapes', nargs='+', type=parse_shape, metavar='BxTxH[:ITERS]',
                        help='shapes to time (default: 32x35x512:20 1024x32x32:10 1x100x256:50)')
    parser.add_argument('--vocab-size', type=int, default=28, help='V for every shape')
    parser.add_argument('--rounds', type=int, default=5, help='rounds per shape')
    parser.add_argument('--iters', type=int, help='timed steps for every shape (overrides the defaults)')
    parser.add_argument('--threads', type=int, default=os.cpu_count(),
                        help='torch.set_num_threads; NumPy uses its BLAS default (all cores)')
    parser.add_argument('--minirnn-cmd', default='python cli.py bench',
                        help='command that prints the minirnn JSON line; run from the repository root')
    parser.add_argument('--timeout', type=float, default=600, help='seconds per subprocess')
    parser.add_argument('--json', metavar='FILE', help='also write every round and the summary here')
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.vocab_size < 1 or (args.iters is not None and args.iters < 1):
        parser.error('--rounds, --vocab-size and --iters must be positive')

    shapes = args.shapes or [(shape, iters) for shape, iters in DEFAULT_SHAPES.items()]
    have_torch = importlib.util.find_spec('torch') is not None
    programs = list(PROGRAMS) if have_torch else ['minirnn']
    if not have_torch:
        print('note: PyTorch is not installed, so only minirnn is timed '
              '(pip install torch==2.13.0 for the comparison)', file=sys.stderr)

    results = []
    for shape, shape_iters in shapes:
        iters = args.iters or shape_iters or DEFAULT_SHAPES.get(shape, 20)
        rounds = []
        for r in range(args.rounds):
            order = programs[r % len(programs):] + programs[:r % len(programs)]
            outcome = {}
            for program in order:
                cmd = command(program, args.minirnn_cmd, shape, args.vocab_size, iters, args.threads)
                outcome[program] = run_one(cmd, args.timeout)
                got = outcome[program]
                shown = f'{got["tokens_per_s"]:,.0f} tok/s' if 'tokens_per_s' in got else got['error']
                print(f'{"x".join(map(str, shape))} round {r + 1}/{args.rounds} {program}: {shown}',
                      file=sys.stderr)
            rounds.append(outcome)
        results.append({'shape': list(shape), 'iters': iters, 'rounds': rounds,
                        'summary': summarize(rounds)})

    table = markdown(results, args.vocab_size)
    print(table)
    if not have_torch:
        print('\n(nn.RNN and scratch skipped: PyTorch is not installed)')
    if args.json:
        meta = {'date': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'python': platform.python_version(),
                'platform': platform.platform(), 'processor': platform.processor(),
                'cpu_count': os.cpu_count(), 'threads': args.threads, 'rounds': args.rounds,
                'vocab_size': args.vocab_size, 'minirnn_cmd': args.minirnn_cmd,
                'torch_available': have_torch}
        Path(args.json).write_text(json.dumps({'meta': meta, 'shapes': results}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
