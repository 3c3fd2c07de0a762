"""CPU training-step throughput: minirnn against PyTorch's nn.RNN / nn.GRU / nn.LSTM and the book's scratch code.

For each shape, each round runs `cli.py bench --cell C --num-layers L`, `torch_step.py --impl nn`
(the same cell and layers; once per --threads value) and, for the one-layer vanilla cell,
`torch_step.py --impl scratch` as fresh subprocesses with the same B, T, H, V and iters, one
after another (the order rotates each round), so slow drift in the machine's load hits all
alike. Reports per shape the median tokens/s of each program and the median and minimum of
the per-round ratio minirnn / each torch program, and / the fastest torch program of the round
when several thread counts are timed, as a Markdown table (and JSON with --json), and then
the machine's load (quiet.py): when other processes ran meanwhile, a warning replaces the verdict.

    python benchmarks/bench_cpu.py --cell lstm --num-layers 2 --shapes 32x35x256:10 --threads 1 2
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quiet import LoadGuard  # noqa: E402  (a sibling script, not a package)

REPO = Path(__file__).resolve().parents[1]
TORCH_STEP = Path(__file__).resolve().parent / 'torch_step.py'

# (batch_size, num_steps, num_hiddens) -> iters, picked so one subprocess takes ~1-3 s on a laptop:
# the book's setting, a wide batch of small states, and one long sequence (latency-bound)
DEFAULT_SHAPES = {(32, 35, 512): 20, (1024, 32, 32): 10, (1, 100, 256): 50}
NN_NAMES = {'rnn': 'nn.RNN', 'gru': 'nn.GRU', 'lstm': 'nn.LSTM'}


def programs_for(cell, num_layers, threads):
    """The programs one round runs: [(label, kind, torch threads)], minirnn first.

    One nn program per torch thread count (labelled with it when there are several); the
    book's scratch code only exists for the one-layer vanilla cell.
    """
    programs = [('minirnn', 'minirnn', None)]
    for n in threads:
        label = NN_NAMES[cell] if len(threads) == 1 else f'{NN_NAMES[cell]} {n}t'
        programs.append((label, 'nn', n))
    if cell == 'rnn' and num_layers == 1:
        programs.append(('scratch', 'scratch', threads[0]))
    return programs


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


def command(kind, minirnn_cmd, shape, vocab_size, iters, threads, cell='rnn', num_layers=1):
    """The argv that times one program on one shape (the flags of the `cli.py bench` contract)."""
    B, T, H = shape
    flags = ['--batch-size', str(B), '--num-steps', str(T), '--num-hiddens', str(H),
             '--vocab-size', str(vocab_size), '--iters', str(iters),
             '--cell', cell, '--num-layers', str(num_layers)]
    if kind == 'minirnn':
        argv = shlex.split(minirnn_cmd)
        # 'python' means this interpreter, so the runner and what it runs share one venv
        if argv and argv[0] == 'python':
            argv[0] = sys.executable
        return argv + flags + ['--device', 'cpu']
    return [sys.executable, str(TORCH_STEP), '--impl', kind, '--threads', str(threads)] + flags


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


def _spread(ratios):
    return {'median': statistics.median(ratios), 'min': min(ratios), 'max': max(ratios)} if ratios else None


def summarize(rounds, labels):
    """Per program the median tokens/s over rounds; the per-round ratios minirnn / each torch
    program, and minirnn / the fastest nn program of each round ('best torch')."""
    def tps(r, label):
        return r.get(label, {}).get('tokens_per_s')
    out = {'tokens_per_s': {}, 'ratios': {}}
    for label in labels:
        values = [tps(r, label) for r in rounds if tps(r, label)]
        out['tokens_per_s'][label] = statistics.median(values) if values else None
    for label in labels[1:]:
        out['ratios'][label] = _spread([tps(r, 'minirnn') / tps(r, label) for r in rounds
                                        if tps(r, 'minirnn') and tps(r, label)])
    nn_labels = [label for label in labels[1:] if label.startswith('nn.')]
    if len(nn_labels) > 1:
        best = []
        for r in rounds:
            torch_best = max((tps(r, label) for label in nn_labels if tps(r, label)), default=None)
            if tps(r, 'minirnn') and torch_best:
                best.append(tps(r, 'minirnn') / torch_best)
        out['ratios']['best torch'] = _spread(best)
    return out


def markdown(results, vocab_size, cell, num_layers):
    """The report table: one row per shape; tokens/s per program, then minirnn's ratios."""
    def num(x):
        return f'{x:,.0f}' if x is not None else 'n/a'
    labels = results[0]['programs']
    ratio_keys = list(results[0]['summary']['ratios'])
    head = ['cell', 'L', 'B', 'T', 'H', 'V', 'iters'] + [f'{label} tok/s' for label in labels]
    head += [f'minirnn/{key} median (min)' for key in ratio_keys]
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---:|' * len(head)]
    for entry in results:
        s = entry['summary']
        cells = [cell, str(num_layers), *map(str, entry['shape']), str(vocab_size), str(entry['iters'])]
        cells += [num(s['tokens_per_s'][label]) for label in labels]
        cells += ['n/a' if s['ratios'][key] is None else
                  f'{s["ratios"][key]["median"]:.2f} ({s["ratios"][key]["min"]:.2f})' for key in ratio_keys]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shapes', nargs='+', type=parse_shape, metavar='BxTxH[:ITERS]',
                        help='shapes to time (default: 32x35x512:20 1024x32x32:10 1x100x256:50)')
    parser.add_argument('--vocab-size', type=int, default=28, help='V for every shape')
    parser.add_argument('--rounds', type=int, default=5, help='rounds per shape')
    parser.add_argument('--iters', type=int, help='timed steps for every shape (overrides the defaults)')
    parser.add_argument('--cell', choices=sorted(NN_NAMES), default='rnn', help='recurrent cell for every program')
    parser.add_argument('--num-layers', type=int, default=1, help='recurrent layers stacked')
    parser.add_argument('--threads', type=int, nargs='+', default=[os.cpu_count()],
                        help='torch.set_num_threads, one nn program per value (e.g. 1 2); '
                             'minirnn uses its defaults (threads split the batch over every core)')
    parser.add_argument('--minirnn-cmd', default='python cli.py bench',
                        help='command that prints the minirnn JSON line; run from the repository root')
    parser.add_argument('--timeout', type=float, default=600, help='seconds per subprocess')
    parser.add_argument('--json', metavar='FILE', help='also write every round and the summary here')
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.vocab_size < 1 or (args.iters is not None and args.iters < 1) \
            or args.num_layers < 1 or min(args.threads) < 1:
        parser.error('--rounds, --vocab-size, --iters, --num-layers and --threads must be positive')

    shapes = args.shapes or [(shape, iters) for shape, iters in DEFAULT_SHAPES.items()]
    have_torch = importlib.util.find_spec('torch') is not None
    programs = programs_for(args.cell, args.num_layers, args.threads)
    if not have_torch:
        programs = programs[:1]
    labels = [label for label, _, _ in programs]
    if not have_torch:
        print('note: PyTorch is not installed, so only minirnn is timed '
              '(pip install torch==2.13.0 for the comparison)', file=sys.stderr)

    guard = LoadGuard()
    results = []
    for shape, shape_iters in shapes:
        iters = args.iters or shape_iters or DEFAULT_SHAPES.get(shape, 20)
        rounds = []
        for r in range(args.rounds):
            order = programs[r % len(programs):] + programs[:r % len(programs)]
            outcome = {}
            for label, kind, threads in order:
                cmd = command(kind, args.minirnn_cmd, shape, args.vocab_size, iters, threads,
                              args.cell, args.num_layers)
                outcome[label] = got = run_one(cmd, args.timeout)
                shown = f'{got["tokens_per_s"]:,.0f} tok/s' if 'tokens_per_s' in got else got['error']
                print(f'{"x".join(map(str, shape))} round {r + 1}/{args.rounds} {label}: {shown}',
                      file=sys.stderr)
            rounds.append(outcome)
        results.append({'shape': list(shape), 'iters': iters, 'programs': labels, 'rounds': rounds,
                        'summary': summarize(rounds, labels)})

    table = markdown(results, args.vocab_size, args.cell, args.num_layers)
    print(table)
    if not have_torch:
        print('\n(the PyTorch programs were skipped: PyTorch is not installed)')
    machine = guard.facts()
    print(guard.verdict())
    if args.json:
        meta = {'date': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'python': platform.python_version(),
                'platform': platform.platform(), 'processor': platform.processor(),
                'cpu_count': os.cpu_count(), 'threads': args.threads, 'rounds': args.rounds,
                'vocab_size': args.vocab_size, 'minirnn_cmd': args.minirnn_cmd,
                'cell': args.cell, 'num_layers': args.num_layers,
                'torch_available': have_torch, 'machine': machine,
                'quiet': not guard.busy_reasons(machine)}
        Path(args.json).write_text(json.dumps({'meta': meta, 'shapes': results}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
