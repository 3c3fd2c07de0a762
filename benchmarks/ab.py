"""A/B: the training-step throughput of two minirnn checkouts, alternated in one run.

Each round runs `python cli.py bench` of checkout A and of checkout B as fresh processes,
one after the other (the order alternates each round), at every shape; the report gives each
side's median tokens/s and the median and range of the per-round ratio B / A. Use it to show
that a change makes no benchmarked shape slower:

    git worktree add --detach ../before HEAD~1
    python benchmarks/ab.py --a ../before --b . --rounds 7

Extra `cli.py bench` flags (e.g. --cell lstm) go after `--`; both sides get them. The machine's
load is reported at the end (quiet.py); on a busy machine a warning replaces the verdict.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quiet import LoadGuard  # noqa: E402  (a sibling script, not a package)

DEFAULT_SHAPES = ('32x35x512:20', '1024x32x32:10', '1x100x256:50')


def parse_shape(text):
    dims, _, iters = text.partition(':')
    B, T, H = (int(d) for d in dims.split('x'))
    return (B, T, H), int(iters or 20)


def bench(checkout, shape, iters, extra):
    B, T, H = shape
    argv = [sys.executable, str(Path(checkout) / 'cli.py'), 'bench', '--batch-size', str(B),
            '--num-steps', str(T), '--num-hiddens', str(H), '--iters', str(iters)] + extra
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=checkout)
    if proc.returncode != 0:
        raise SystemExit(f'{checkout}: {proc.stderr.strip().splitlines()[-1]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])['tokens_per_s']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--a', required=True, help='the checkout to compare against (before)')
    parser.add_argument('--b', default='.', help='the checkout under test (after)')
    parser.add_argument('--shapes', nargs='+', default=DEFAULT_SHAPES, metavar='BxTxH[:ITERS]')
    parser.add_argument('--rounds', type=int, default=7)
    args, extra = parser.parse_known_args(argv)
    extra = [x for x in extra if x != '--']
    guard = LoadGuard()
    print('| B, T, H | A tok/s | B tok/s | B/A median | B/A min | B/A max |')
    print('|---|---:|---:|---:|---:|---:|')
    for text in args.shapes:
        shape, iters = parse_shape(text)
        a, b, ratios = [], [], []
        for r in range(args.rounds):
            order = [('a', args.a), ('b', args.b)][::1 if r % 2 == 0 else -1]
            got = {side: bench(path, shape, iters, extra) for side, path in order}
            a.append(got['a'])
            b.append(got['b'])
            ratios.append(got['b'] / got['a'])
            print(f'{text} round {r + 1}: A {got["a"]:,.0f}  B {got["b"]:,.0f}  B/A {ratios[-1]:.3f}',
                  file=sys.stderr)
        print(f'| {", ".join(map(str, shape))} | {statistics.median(a):,.0f} | {statistics.median(b):,.0f} '
              f'| {statistics.median(ratios):.3f} | {min(ratios):.3f} | {max(ratios):.3f} |', flush=True)
    print(guard.verdict())
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
