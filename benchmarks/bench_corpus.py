"""Time and peak memory of load_corpus on a large text, one fresh process per configuration.

Builds a ~100 MB text in a temporary folder by repeating the shared books (their Gutenberg
bodies, so stripping keeps all of it), then loads it with every preprocess x token mode.
Peak RSS is the child's own ru_maxrss, interpreter and NumPy included. Nothing is asserted.
Usage: python benchmarks/bench_corpus.py [--size-mb 100] [--data-dir ../shared/data]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from minirnn.corpora import CORPORA
from minirnn.text import read_text, strip_gutenberg

CHILD = r'''
import json, resource, sys, time
from minirnn.text import load_corpus
path, preprocess, token = sys.argv[1:4]
start = time.perf_counter()
corpus, vocab = load_corpus(path, preprocess=preprocess, token=token)
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
print(json.dumps({'seconds': seconds, 'peak_mb': peak_mb, 'tokens': len(corpus), 'vocab': len(vocab),
                  'dtype': str(corpus.dtype)}))
'''


def build_text(data_dir, size_mb, out_path):
    """Write the books' bodies, repeated, until the file holds at least size_mb MB of UTF-8."""
    bodies = [strip_gutenberg(read_text(data_dir / f'{name}.txt'))
              for name in CORPORA if (data_dir / f'{name}.txt').is_file()]
    if not bodies:
        sys.exit(f'no registered corpus found in {data_dir}; pass --data-dir')
    block = '\n\n'.join(bodies).encode('utf-8') + b'\n\n'
    repeats = -(-size_mb * 10**6 // len(block))
    with open(out_path, 'wb') as f:
        for _ in range(repeats):
            f.write(block)
    return repeats * len(block)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mb', type=int, default=100, help='size of the generated text in MB (10^6 bytes)')
    parser.add_argument('--data-dir', type=Path,
                        default=Path(os.environ.get('MINIRNN_DATA_DIR',
                                                    Path(__file__).resolve().parents[2] / 'shared' / 'data')),
                        help='folder holding the shared books (default: $MINIRNN_DATA_DIR or ../shared/data)')
    parser.add_argument('--configs', nargs='+', default=['letters:char', 'raw:char', 'letters:word', 'raw:word'],
                        help='preprocess:token pairs to measure')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'big.txt'
        size = build_text(args.data_dir, args.size_mb, path)
        print(f'text: {size / 1e6:.1f} MB from {args.data_dir}; python {sys.version.split()[0]}, '
              f'{os.cpu_count()} CPUs', file=sys.stderr)
        print(f'| {"preprocess":10} | {"token":5} | {"tokens":>11} | {"vocab":>7} | {"seconds":>7} | {"peak RSS MB":>11} |')
        print(f'|{"-" * 12}|{"-" * 7}|{"-" * 13}|{"-" * 9}|{"-" * 9}|{"-" * 13}|')
        for config in args.configs:
            preprocess, token = config.split(':')
            done = subprocess.run([sys.executable, '-c', CHILD, str(path), preprocess, token],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(f'| {preprocess:10} | {token:5} | failed: {done.stderr.strip().splitlines()[-1]}')
                continue
            r = json.loads(done.stdout)
            print(f'| {preprocess:10} | {token:5} | {r["tokens"]:>11,} | {r["vocab"]:>7,} | '
                  f'{r["seconds"]:>7.2f} | {r["peak_mb"]:>11.0f} |', flush=True)


if __name__ == '__main__':
    main()
