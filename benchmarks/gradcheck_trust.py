"""Can the gradient check's verdict be trusted? Correct code over many seeds and configurations
must give zero FAIL; every planted bug must FAIL.

Three parts, each printed as a table row with its counts of OK / FAIL / INCONCLUSIVE tensors:
  suite     the default suite of `cli.py gradcheck` (every cell and code path), --seeds seeds
  grid      configurations a user would try: sigma 0.01, 0.1, 0.5; T 1 to 50; tanh and relu;
            an embedding; every cell, one and two layers (dropout with a fixed mask);
            --grid-seeds seeds each, 30 sampled entries per tensor
  planted   the planted bugs of tests/test_gradcheck.py (one entry 2% off, a tensor scaled by
            1.01, a transposed recurrent gradient, a dropped bias gradient, a zeroed state
            gradient) for every cell, at the book's init (sigma 0.01, T=35) and at sigma 0.5
            (T=10), --grid-seeds seeds each: the buggy tensor's verdict

    python benchmarks/gradcheck_trust.py --seeds 200 --grid-seeds 10 --jobs 2
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
from minirnn.gradsuite import BUGS, PLANT_IN, check_case, planted_model, planted_target, run_default_cases  # noqa: E402

GRID = [dict(sigma=s, T=T, activation=a) for s in (0.01, 0.1, 0.5) for T in (1, 5, 20, 35, 50)
        for a in ('tanh', 'relu')]
GRID += [dict(sigma=s, T=T, embed_dim=4) for s in (0.01, 0.5) for T in (5, 35)]
GRID += [dict(sigma=s, T=T, cell=c) for c in ('gru', 'lstm') for s in (0.01, 0.1, 0.5) for T in (1, 20, 50)]
GRID += [dict(sigma=s, T=8, cell=c, num_layers=2, dropout=0.3) for c in ('rnn', 'gru', 'lstm') for s in (0.01, 0.5)]



def suite(seed):
    return [r['verdict'] for _, rows in run_default_cases(seed=seed) for r in rows]


def grid(config, seed):
    config = dict(config)
    T = config.pop('T')
    rows = check_case({'num_hiddens': 6, **config}, 3, T, True, seed=seed, max_entries=30)
    return [r['verdict'] for r in rows]


def planted(cell, bug, sigma, T, seed):
    target = planted_target(cell, bug)
    m = planted_model(bug, target, 9, 6, sigma=sigma, dtype='float64', seed=seed, cell=cell, threads=1)
    rng = np.random.default_rng(seed)
    X, Y = rng.integers(0, 9, (3, T)), rng.integers(0, 9, (3, T))
    names = gc.state_names(m.begin_state(3)) if bug == 'state gradient zeroed' else [target]
    return [r['verdict'] for r in gc.gradcheck_model(m, X, Y, tensors=names, max_entries=None)]


def counts(verdicts):
    return {v: sum(x == v for x in verdicts) for v in gc.VERDICTS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', type=int, default=200, help='seeds of the default suite')
    parser.add_argument('--grid-seeds', type=int, default=10, help='seeds per grid configuration and planted bug')
    parser.add_argument('--jobs', type=int, default=2, help='worker processes')
    parser.add_argument('--out', default=None, help='also write the results as JSON here')
    args = parser.parse_args(argv)
    start = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        suite_runs = pool.map(suite, range(args.seeds))
        grid_jobs = [(c, s) for c in GRID for s in range(args.grid_seeds)]
        grid_runs = pool.map(grid, *zip(*grid_jobs))
        plant_jobs = [(c, b, sigma, T, s) for c in PLANT_IN for b in BUGS
                      for sigma, T in ((0.01, 35), (0.5, 10)) for s in range(args.grid_seeds)]
        plant_runs = pool.map(planted, *zip(*plant_jobs))
        results = {'suite': counts([v for run in suite_runs for v in run])}
        grid_verdicts = list(grid_runs)
        results['grid'] = counts([v for run in grid_verdicts for v in run])
        results['grid_inconclusive'] = sorted({json.dumps(c) for (c, _), run in zip(grid_jobs, grid_verdicts)
                                               if 'INCONCLUSIVE' in run})
        results['grid_fail'] = sorted({json.dumps(c) for (c, _), run in zip(grid_jobs, grid_verdicts)
                                       if 'FAIL' in run})
        plant_verdicts = list(plant_runs)
        results['planted'] = counts([v for run in plant_verdicts for v in run])
        results['planted_missed'] = [list(job) for job, run in zip(plant_jobs, plant_verdicts)
                                     if any(v != 'FAIL' for v in run)]
    results['seconds'] = round(time.monotonic() - start, 1)
    print('| part | runs | OK | FAIL | INCONCLUSIVE |')
    print('|---|---:|---:|---:|---:|')
    for part, runs in (('suite (correct code)', args.seeds), ('grid (correct code)', len(GRID) * args.grid_seeds),
                       ('planted bugs (the buggy tensors)', len(plant_jobs))):
        c = results[part.split()[0]]
        print(f'| {part} | {runs} | {c["OK"]} | {c["FAIL"]} | {c["INCONCLUSIVE"]} |')
    print(f'grid configurations with an INCONCLUSIVE tensor: {results["grid_inconclusive"] or "none"}')
    print(f'grid configurations with a FAIL: {results["grid_fail"] or "none"}')
    print(f'planted bugs that did not FAIL: {results["planted_missed"] or "none"}')
    print(f'{results["seconds"]} s')
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + '\n')
    return 1 if results['grid']['FAIL'] or results['suite']['FAIL'] or results['planted_missed'] else 0


if __name__ == '__main__':
    raise SystemExit(main())
