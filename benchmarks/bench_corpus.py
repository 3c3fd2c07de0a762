"""Time and peak memory of load_corpus on a large text, one fresh process per configuration.

Builds a ~100 MB text in a temporary folder by repeating the shared books (their Gutenberg
bodies, so stripping keeps all of it), then loads it with every preprocess x token mode, three
ways: in memory (the whole text read at once, as every text below tokencache.CACHE_FROM_BYTES
is), tokenised in chunks into an empty token cache (a large text's first load), and from that
cache (every later load: a memory map). Peak RSS is the child's own ru_maxrss, interpreter and
NumPy included. Nothing is asserted.
Usage: python benchmarks/bench_corpus.py [--size-mb 100] [--data-dir ../shared/data] [--keep PATH]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from minirnn.corpora import CORPORA
from minirnn.text import read_text, strip_gutenberg

CHILD = r'''
import json, resource, sys, time
from minirnn import tokencache
from minirnn.text import load_corpus
path, preprocess, token, way = sys.argv[1:5]
tokencache.CACHE_FROM_BYTES = 1 << 62 if way == 'memory' else 0
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
    parser.add_argument('--ways', nargs='+', default=['memory', 'first', 'cached'],
                        choices=['memory', 'first', 'cached'], help='how to load (see above)')
    parser.add_argument('--keep', type=Path, help='write the text here and keep it (default: a temporary folder)')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / 'big.txt'
        size = build_text(args.data_dir, args.size_mb, path)
        print(f'text: {size / 1e6:.1f} MB from {args.data_dir}; python {sys.version.split()[0]}, '
              f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}', file=sys.stderr)
        print(f'| {"preprocess":10} | {"token":5} | {"way":6} | {"tokens":>11} | {"vocab":>7} | {"seconds":>7} | '
              f'{"peak RSS MB":>11} |')
        print(f'|{"-" * 12}|{"-" * 7}|{"-" * 8}|{"-" * 13}|{"-" * 9}|{"-" * 9}|{"-" * 13}|')
        env = dict(os.environ, MINIRNN_CACHE_DIR=str(Path(tmp) / 'cache'))
        for config in args.configs:
            preprocess, token = config.split(':')
            shutil.rmtree(Path(tmp) / 'cache', ignore_errors=True)      # 'first' tokenises from scratch
            for way in args.ways:
                done = subprocess.run([sys.executable, '-c', CHILD, str(path), preprocess, token, way],
                                      capture_output=True, text=True, env=env)
                if done.returncode != 0:
                    print(f'| {preprocess:10} | {token:5} | {way:6} | failed: {done.stderr.strip().splitlines()[-1]}')
                    continue
                r = json.loads(done.stdout)
                print(f'| {preprocess:10} | {token:5} | {way:6} | {r["tokens"]:>11,} | {r["vocab"]:>7,} | '
                      f'{r["seconds"]:>7.2f} | {r["peak_mb"]:>11.0f} |', flush=True)


if __name__ == '__main__':
    main()
