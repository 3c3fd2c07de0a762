"""Held-out perplexity for a fixed wall-clock budget on this CPU: minirnn against PyTorch.

Each row is a preset of minirnn/run/config.py ('tm-rnn', 'tm-lstm2', and their regularised
'tm-rnn-reg', 'tm-lstm2-awd'), trained by both frameworks on a whole book (letters; The Time
Machine unless --data names others) with its last 10% held out and never trained on, for at most
the same budget (--budget-minutes of wall time, validation and checkpoints included; neither
starts an epoch that would end past it), on the same batches (the sequential sampler, state
carried), with the preset's Adam, cosine schedule, dropout and clipping. The figure is the
held-out perplexity of the best epoch (both keep the best epoch by that perplexity; the final
epoch's is printed too). minirnn runs `cli.py train --preset NAME --max-minutes`; PyTorch runs
benchmarks/torch_lm.py (pip install torch==2.13.0) with the preset's settings and its own default
initialisation; the preset's bias_lr_mult decides PyTorch's second bias per gate (1: held at zero,
so the update is minirnn's; 2: trained, as PyTorch's layers come, which doubles the bias's step,
as minirnn's --bias-lr-mult 2 does; tests/test_pytorch_reference.py). The runs go one after the
other, never side by side.

PyTorch's nn.RNN / nn.LSTM offer dropout between (and, in torch_lm.py, above) the layers, and
nothing that acts through time: for a regularised preset PyTorch trains its unregularised
counterpart (TORCH_ROW: the same model, data, optimizer and schedule, with dropout), and
--torch-dropouts and --torch-epochs tune its dropout and its number of epochs (each combination
one more PyTorch run per row and seed; the best counts). Another book (--data) keeps each preset's settings but its number of epochs,
scaled by the ratio of the training texts' lengths, so the cosine schedule still ends inside
about the same budget; both frameworks get the same number.

    python benchmarks/quality.py --budget-minutes 15 --out runs/quality            # seed 0
    python benchmarks/quality.py --rows tm-lstm2-awd tm-rnn-reg --data timemachine war_of_the_worlds
        --seeds 0 1 --torch-dropouts 0.3 0.4 0.5 --out runs/quality-reg          (one line; see
        docs/regularisation.md)
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# one row per preset (minirnn/run/config.py); PyTorch gets the same settings from it (from
# TORCH_ROW's preset for a regularised one), except the initialisation (its own default, which
# init='uniform' copies) and the progress options
ROWS = ('tm-rnn', 'tm-lstm2', 'tm-rnn-reg', 'tm-lstm2-awd')
TORCH_ROW = {'tm-rnn-reg': 'tm-rnn', 'tm-lstm2-awd': 'tm-lstm2'}   # what nn.RNN / nn.LSTM can train
TORCH_KEYS = ('cell', 'num_layers', 'num_hiddens', 'embed_dim', 'dropout', 'batch_size', 'num_steps',
              'lr', 'lr_schedule', 'num_epochs', 'clip', 'val_fraction', 'weight_decay', 'bias_lr_mult',
              'ema')
REFERENCE_DATA = 'timemachine'     # the text the presets' numbers of epochs are set for


def torch_options(preset, data=REFERENCE_DATA, dropout=None, epochs=None):
    """The settings PyTorch's run takes for row `preset` on `data`, defaults included: bias_lr_mult
    1 holds PyTorch's second bias at zero, 2 trains both as PyTorch does (torch_lm.py
    --bias-lr-mult). A regularised preset's row trains TORCH_ROW's preset; dropout and epochs
    (None: that preset's; epochs as for The Time Machine) tune it; num_epochs is scaled to
    `data` (epochs_for)."""
    from minirnn.run.config import make_config
    base = TORCH_ROW.get(preset, preset)
    config = make_config(base).to_dict()
    options = {k: config[k] for k in TORCH_KEYS}
    options['num_epochs'] = epochs_for(base, data, epochs)
    if dropout is not None:
        options['dropout'] = dropout
    return options


def train_tokens(data):
    """Tokens of `data`'s training part as the held-out presets prepare it (letters, all of it)."""
    from minirnn import text
    from minirnn.run.config import make_config
    config = make_config('tm-lstm2')
    corpus, _ = text.load_corpus(data, max_tokens=None, preprocess=config.preprocess, token=config.token)
    train, _ = text.split_corpus(corpus, config.val_fraction)
    return len(train)


def epochs_for(preset, data, epochs=None):
    """The preset's num_epochs (or `epochs`) on `data`: as set for The Time Machine, scaled by the
    ratio of the training texts' lengths (at least 1), so a longer book's cosine schedule fits
    the same budget."""
    from minirnn.run.config import make_config
    epochs = epochs or make_config(preset).num_epochs
    if data == REFERENCE_DATA:
        return epochs
    return max(1, round(epochs * train_tokens(REFERENCE_DATA) / train_tokens(data)))


def flags(options):
    out = []
    for key, value in options.items():
        if value is not None:
            out += [f'--{key.replace("_", "-")}', str(value)]
    return out


def run_minirnn(name, budget, out_dir, seed, data=REFERENCE_DATA):
    out = Path(out_dir) / f'{name}-{data}-seed{seed}-minirnn'
    argv = [sys.executable, str(REPO / 'cli.py'), 'train', '--preset', name, '--max-minutes', str(budget),
            '--seed', str(seed), '--num-preds', '0', '--quiet', '--overwrite', '--out', str(out)]
    if data != REFERENCE_DATA:
        argv += ['--data', data, '--num-epochs', str(epochs_for(name, data))]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        return {'error': (proc.stderr.strip().splitlines() or ['?'])[-1]}
    rows = [json.loads(line) for line in (out / 'history.jsonl').read_text().splitlines()]
    best = min(rows, key=lambda r: r['val_ppl'])
    return {'best_val_ppl': best['val_ppl'], 'best_epoch': best['epoch'], 'final_val_ppl': rows[-1]['val_ppl'],
            'final_train_ppl': rows[-1]['train_ppl'], 'epochs': len(rows),
            'tokens_per_s': sorted(r['tokens_per_s'] for r in rows)[len(rows) // 2],
            'curve': [r['val_ppl'] for r in rows], 'minutes': (time.monotonic() - start) / 60,
            'command': ' '.join(argv[1:])}


def run_pytorch(name, budget, out_dir, seed, threads, data=REFERENCE_DATA, dropout=None, epochs=None):
    options = torch_options(name, data, dropout, epochs)
    argv = [sys.executable, str(REPO / 'benchmarks' / 'torch_lm.py'), '--max-minutes', str(budget),
            '--seed', str(seed), '--threads', str(threads), '--data', data] + flags(options)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        return {'error': (proc.stderr.strip().splitlines() or ['?'])[-1]}
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    (Path(out_dir) / f'{TORCH_ROW.get(name, name)}-{data}-seed{seed}-dropout{options["dropout"]:g}'
                     f'-epochs{options["num_epochs"]}-pytorch.jsonl').write_text(proc.stdout)
    summary = lines[-1]
    return {'best_val_ppl': summary['best_val_ppl'], 'best_epoch': summary['best_epoch'],
            'final_val_ppl': summary['final_val_ppl'], 'epochs': summary['epochs'],
            'tokens_per_s': summary['tokens_per_s'], 'dropout': options['dropout'],
            'num_epochs': options['num_epochs'],
            'curve': [line['val_ppl'] for line in lines[:-1]], 'minutes': (time.monotonic() - start) / 60,
            'command': ' '.join(argv[1:])}


def best_of(results):
    """The run with the lowest best_val_ppl among `results` (errors last), or an error."""
    ok = [r for r in results if 'error' not in r]
    return min(ok, key=lambda r: r['best_val_ppl']) if ok else (results[0] if results else {'error': 'not run'})


def cell(result):
    if 'error' in result:
        return f'error: {result["error"]}'
    dropout = f', dropout {result["dropout"]:g}, {result["num_epochs"]} epochs set' if 'dropout' in result else ''
    return (f'**{result["best_val_ppl"]:.3f}** (final {result["final_val_ppl"]:.3f}, {result["epochs"]} epochs, '
            f'{result["tokens_per_s"] / 1e3:.1f}K tok/s{dropout})')


def mean_best(by_seed):
    values = [r['best_val_ppl'] for r in by_seed.values() if 'error' not in r]
    return sum(values) / len(values) if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', nargs='+', choices=ROWS, default=['tm-rnn', 'tm-lstm2'])
    parser.add_argument('--data', nargs='+', default=[REFERENCE_DATA],
                        help='books to run every row on, each with its last 10%% held out (registered '
                        'corpora, e.g. timemachine war_of_the_worlds sherlock_holmes)')
    parser.add_argument('--frameworks', nargs='+', choices=('minirnn', 'pytorch'), default=['minirnn', 'pytorch'])
    parser.add_argument('--budget-minutes', type=float, default=15.0)
    parser.add_argument('--threads', type=int, default=2, help='PyTorch threads (minirnn uses every core)')
    parser.add_argument('--seeds', nargs='+', type=int, default=None, help='seeds, one run of each row per '
                        'seed and framework (default: --seed)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--torch-dropouts', nargs='+', type=float, default=None,
                        help="PyTorch's dropout values to try per row and seed (the best counts; default: the "
                        "preset's own)")
    parser.add_argument('--torch-epochs', nargs='+', type=int, default=None,
                        help="PyTorch's numbers of epochs to try, as for The Time Machine (scaled for another "
                        "book; default: the preset's own)")
    parser.add_argument('--out', default='runs/quality', help='run directories and results.json')
    args = parser.parse_args(argv)
    seeds = args.seeds or [args.seed]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results, torch_runs = {}, {}        # PyTorch's runs are shared by rows that train the same model
    for data in args.data:
        for name in args.rows:
            key = f'{name} on {data}'
            results[key] = {'row': name, 'data': data, 'minirnn': {}, 'pytorch': {}}
            for seed in seeds:
                for framework in args.frameworks:
                    print(f'{key}: {framework}, seed {seed}, {args.budget_minutes:g} minutes ...',
                          file=sys.stderr, flush=True)
                    if framework == 'minirnn':
                        got = run_minirnn(name, args.budget_minutes, args.out, seed, data)
                    else:
                        tries = []
                        for dropout in args.torch_dropouts or [None]:
                            for epochs in args.torch_epochs or [None]:
                                options = torch_options(name, data, dropout, epochs)
                                run_key = (data, seed, tuple(sorted(options.items())))
                                if run_key not in torch_runs:
                                    torch_runs[run_key] = run_pytorch(name, args.budget_minutes, args.out, seed,
                                                                      args.threads, data, dropout, epochs)
                                tries.append(torch_runs[run_key])
                        got = dict(best_of(tries), tried=tries)
                    results[key][framework][seed] = got
                    print(f'{key}: {framework}, seed {seed}: {cell(got)}', file=sys.stderr, flush=True)
                    (Path(args.out) / 'results.json').write_text(json.dumps(results, indent=1) + '\n')
    print(f'| row | data | seeds | minirnn (best held-out perplexity) | PyTorch '
          f'{"" if "pytorch" in args.frameworks else "(not run)"} | minirnn, mean | PyTorch, mean |')
    print('|---|---|---|---|---|---:|---:|')
    for key, got in results.items():
        cells = []
        for framework in ('minirnn', 'pytorch'):
            runs = got[framework]
            cells.append('; '.join(f'seed {seed}: {cell(r)}' for seed, r in runs.items()) or 'not run')
        means = [mean_best(got[f]) for f in ('minirnn', 'pytorch')]
        print(f'| {got["row"]} | {got["data"]} | {", ".join(map(str, seeds))} | {cells[0]} | {cells[1]} | '
              + ' | '.join('' if m is None else f'{m:.3f}' for m in means) + ' |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
