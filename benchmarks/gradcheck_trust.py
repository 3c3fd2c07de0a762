"""Can the gradient check's verdict be trusted? Correct code over many seeds and configurations
must give zero FAIL; every planted bug must FAIL.

Five parts, each printed as a table row with its counts of OK / FAIL / INCONCLUSIVE tensors,
under central differences alone and under `--method auto` (the same run: auto takes central
differences first and keeps their verdict beside its own):
  suite     the default suite of `cli.py gradcheck` (every cell and code path), --seeds seeds
  grid      configurations a user would try: sigma 0.01, 0.1, 0.5; T 1 to 50; tanh and relu;
            an embedding; every cell, one and two layers (dropout with a fixed mask);
            --grid-seeds seeds each, 30 sampled entries per tensor
  book      the book's initialisation at `cli.py gradcheck`'s own sizes (sigma 0.01, H=16,
            V=28, B=4, T=35, a zero initial state): every cell, tanh and relu, two layers with
            dropout, where gradients of 1e-10 beside a loss of 3.3 are at rounding level for
            central differences; --grid-seeds seeds each, 30 sampled entries per tensor
  planted   the planted bugs of tests/test_gradcheck.py (one entry 2% off, a tensor scaled by
            1.01, a transposed recurrent gradient, a dropped bias gradient, a zeroed state
            gradient) for every cell, at the book's init (sigma 0.01, T=35) and at sigma 0.5
            (T=10), --grid-seeds seeds each: the buggy tensor's verdict, under auto (and its
            central differences) and again under `--method complex`
  blind     bugs planted at the book's sizes in the tensors whose gradients central
            differences leave INCONCLUSIVE there (the GRU's W_hr, deeper gates' weights of
            two-layer GRUs and LSTMs), --book-seeds seeds each, under auto and complex

    python benchmarks/gradcheck_trust.py --seeds 200 --grid-seeds 10 --book-seeds 3 --jobs 2
"""
import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from minirnn import gradcheck as gc  # noqa: E402
from minirnn.gradsuite import (BUGS, PLANT_IN, check_case, planted_model, planted_target, random_batch,  # noqa: E402
                               run_default_cases)

GRID = [dict(sigma=s, T=T, activation=a) for s in (0.01, 0.1, 0.5) for T in (1, 5, 20, 35, 50)
        for a in ('tanh', 'relu')]
GRID += [dict(sigma=s, T=T, embed_dim=4) for s in (0.01, 0.5) for T in (5, 35)]
GRID += [dict(sigma=s, T=T, cell=c) for c in ('gru', 'lstm') for s in (0.01, 0.1, 0.5) for T in (1, 20, 50)]
GRID += [dict(sigma=s, T=8, cell=c, num_layers=2, dropout=0.3) for c in ('rnn', 'gru', 'lstm') for s in (0.01, 0.5)]

# the book's init at gradcheck's own sizes (cli.GRADCHECK_MODEL, GRADCHECK_BATCH)
BOOK = dict(sigma=0.01, T=35, B=4, num_hiddens=16, vocab_size=28, random_state=False)
BOOK_GRID = [dict(BOOK, activation=a) for a in ('tanh', 'relu')]
BOOK_GRID += [dict(BOOK, cell=c) for c in ('gru', 'lstm')]
BOOK_GRID += [dict(BOOK, cell=c, num_layers=2, dropout=0.3) for c in ('rnn', 'gru', 'lstm')]


# (cell, layers, the tensor, bug): where central differences see nothing at the book's sizes
BLIND = [(cell, layers, target, bug) for cell, layers, target in
         (('gru', 1, 'W_hr'), ('gru', 2, 'W_hr'), ('gru', 2, 'W_hz_l1'), ('lstm', 2, 'W_hi'), ('lstm', 2, 'W_xf_l1'))
         for bug in ('one entry 2% off', 'scaled by 1.01', 'transposed')]
BLIND += [('gru', 2, 'b_r', 'bias gradient dropped')]


def verdicts(rows):
    """(central differences' verdict, auto's verdict) per row."""
    return [(r['central_verdict'], r['verdict']) for r in rows]


def suite(seed):
    return [v for _, rows in run_default_cases(seed=seed) for v in verdicts(rows)]


def grid(config, seed):
    config = dict(config)
    T, B, random_state = config.pop('T'), config.pop('B', 3), config.pop('random_state', True)
    return verdicts(check_case({'num_hiddens': 6, **config}, B, T, random_state, seed=seed, max_entries=30))


def planted(cell, bug, sigma, T, seed, method):
    target = planted_target(cell, bug)
    m = planted_model(bug, target, 9, 6, sigma=sigma, dtype='float64', seed=seed, cell=cell, threads=1)
    rng = np.random.default_rng(seed)
    X, Y = rng.integers(0, 9, (3, T)), rng.integers(0, 9, (3, T))
    names = gc.state_names(m.begin_state(3)) if bug == 'state gradient zeroed' else [target]
    rows = gc.gradcheck_model(m, X, Y, tensors=names, max_entries=None, method=method)
    return [(r['central_verdict'], r['verdict']) for r in rows]


def blind(cell, layers, target, bug, seed, method):
    m = planted_model(bug, target, BOOK['vocab_size'], BOOK['num_hiddens'], sigma=BOOK['sigma'],
                      dtype='float64', seed=seed, cell=cell, num_layers=layers,
                      dropout=0.3 if layers > 1 else 0.0, threads=1)
    X, Y, _ = random_batch(m, BOOK['B'], BOOK['T'], np.random.default_rng(seed), False)
    rows = gc.gradcheck_model(m, X, Y, tensors=[target], max_entries=None, method=method,
                              dropout_rng=seed if layers > 1 else None)
    return [(r['central_verdict'], r['verdict']) for r in rows]


def counts(verdicts):
    return {v: sum(x == v for x in verdicts) for v in gc.VERDICTS}


def configs_with(jobs, runs, verdict, which):
    """The configurations (JSON) of the runs in which some tensor got `verdict` by `which` (0: central, 1: auto)."""
    return sorted({json.dumps(c) for (c, _), run in zip(jobs, runs) if any(v[which] == verdict for v in run)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', type=int, default=200, help='seeds of the default suite')
    parser.add_argument('--grid-seeds', type=int, default=10, help='seeds per grid configuration and planted bug')
    parser.add_argument('--book-seeds', type=int, default=3, help='seeds per bug planted where central differences are blind')
    parser.add_argument('--jobs', type=int, default=2, help='worker processes')
    parser.add_argument('--out', default=None, help='also write the results as JSON here')
    args = parser.parse_args(argv)
    start = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        suite_runs = pool.map(suite, range(args.seeds))
        grid_jobs = [(c, s) for c in GRID for s in range(args.grid_seeds)]
        grid_runs = pool.map(grid, *zip(*grid_jobs))
        book_jobs = [(c, s) for c in BOOK_GRID for s in range(args.grid_seeds)]
        book_runs = pool.map(grid, *zip(*book_jobs))
        plant_jobs = [(c, b, sigma, T, s) for c in PLANT_IN for b in BUGS
                      for sigma, T in ((0.01, 35), (0.5, 10)) for s in range(args.grid_seeds)]
        plant_runs = pool.map(planted, *zip(*plant_jobs), ['auto'] * len(plant_jobs))
        plant_complex_runs = pool.map(planted, *zip(*plant_jobs), ['complex'] * len(plant_jobs))
        blind_jobs = [job + (s,) for job in BLIND for s in range(args.book_seeds)]
        blind_runs = pool.map(blind, *zip(*blind_jobs), ['auto'] * len(blind_jobs))
        blind_complex_runs = pool.map(blind, *zip(*blind_jobs), ['complex'] * len(blind_jobs))
        results, tables = {}, {}
        for part, runs in (('suite', suite_runs), ('grid', grid_runs), ('book', book_runs),
                           ('planted', plant_runs), ('blind', blind_runs)):
            runs = list(runs)
            tables[part] = runs
            flat = [v for run in runs for v in run]
            results[part] = {'central': counts([c for c, _ in flat]), 'auto': counts([a for _, a in flat])}
        for part, jobs in (('grid', grid_jobs), ('book', book_jobs)):
            for verdict in ('INCONCLUSIVE', 'FAIL'):
                for k, method in enumerate(('central', 'auto')):
                    results[f'{part}_{verdict.lower()}_{method}'] = configs_with(jobs, tables[part], verdict, k)
        for part, jobs, complex_runs in (('planted', plant_jobs, plant_complex_runs),
                                         ('blind', blind_jobs, blind_complex_runs)):
            complex_runs = list(complex_runs)
            results[part]['complex'] = counts([a for run in complex_runs for _, a in run])
            results[f'{part}_missed'] = {
                method: [list(job) for job, run in zip(jobs, runs) if any(v[k] != 'FAIL' for v in run)]
                for method, k, runs in (('central', 0, tables[part]), ('auto', 1, tables[part]),
                                        ('complex', 1, complex_runs))}
    results['seconds'] = round(time.monotonic() - start, 1)
    print('| part | runs | central: OK | FAIL | INCONCLUSIVE | auto: OK | FAIL | INCONCLUSIVE |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for part, label, runs in (('suite', 'default suite (correct code)', args.seeds),
                              ('grid', 'grid (correct code)', len(grid_jobs)),
                              ('book', "the book's init at gradcheck's sizes (correct code)", len(book_jobs)),
                              ('planted', 'planted bugs (the buggy tensors)', len(plant_jobs)),
                              ('blind', 'bugs where central differences are blind', len(blind_jobs))):
        c, a = results[part]['central'], results[part]['auto']
        print(f'| {label} | {runs} | {c["OK"]} | {c["FAIL"]} | {c["INCONCLUSIVE"]} '
              f'| {a["OK"]} | {a["FAIL"]} | {a["INCONCLUSIVE"]} |')
    for part in ('planted', 'blind'):
        p = results[part]['complex']
        print(f'{part} under --method complex: {p["OK"]} OK, {p["FAIL"]} FAIL, {p["INCONCLUSIVE"]} INCONCLUSIVE')
    for part in ('grid', 'book'):
        for verdict in ('inconclusive', 'fail'):
            for method in ('central', 'auto'):
                found = results[f'{part}_{verdict}_{method}']
                print(f'{part} configurations with a {verdict.upper()} tensor ({method}): {found or "none"}')
    for part in ('planted', 'blind'):
        for method, missed in results[f'{part}_missed'].items():
            print(f'{part}: bugs that did not FAIL ({method}): {missed or "none"}')
    print(f'{results["seconds"]} s')
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + '\n')
    failed = any(results[part]['auto']['FAIL'] for part in ('suite', 'grid', 'book'))
    missed = any(results[f'{part}_missed'][method] for part in ('planted', 'blind') for method in ('auto', 'complex'))
    return 1 if failed or missed else 0


if __name__ == '__main__':
    raise SystemExit(main())
