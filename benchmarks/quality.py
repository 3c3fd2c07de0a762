"""Held-out perplexity for a fixed wall-clock budget on this CPU: minirnn against PyTorch.

Each row is a preset of minirnn/config.py ('tm-rnn', 'tm-lstm2'), trained by both frameworks
on The Time Machine (letters, all of it) with the last 10% held out and never trained on, for
at most the same budget (--budget-minutes of wall time, validation and checkpoints included;
neither starts an epoch that would end past it), on the same batches (the sequential sampler,
state carried), with the preset's Adam, cosine schedule, dropout and clipping. The figure is
the held-out perplexity of the best epoch (both keep the best epoch by that perplexity; the
final epoch's is printed too). minirnn runs `cli.py train --preset NAME --max-minutes`;
PyTorch runs benchmarks/torch_lm.py (pip install torch==2.13.0) with the preset's settings and
its own default initialisation; the preset's bias_lr_mult decides PyTorch's second bias per gate
(1: held at zero, so the update is minirnn's; 2: trained, as PyTorch's layers come, which doubles
the bias's step, as minirnn's --bias-lr-mult 2 does; tests/test_pytorch_reference.py). The runs
go one after the other, never side by side.

    python benchmarks/quality.py --budget-minutes 15 --out runs/quality
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# one row per preset (minirnn/config.py); PyTorch gets the same settings from it, except the
# initialisation (its own default, which init='uniform' copies) and the progress options
ROWS = ('tm-rnn', 'tm-lstm2')
TORCH_KEYS = ('cell', 'num_layers', 'num_hiddens', 'embed_dim', 'dropout', 'batch_size', 'num_steps',
              'lr', 'lr_schedule', 'num_epochs', 'clip', 'val_fraction', 'weight_decay', 'bias_lr_mult',
              'ema')


def torch_options(preset):
    """The preset's settings that PyTorch's run takes, defaults included: bias_lr_mult 1 holds
    PyTorch's second bias at zero, 2 trains both as PyTorch does (torch_lm.py --bias-lr-mult)."""
    from minirnn.run.config import make_config
    config = make_config(preset).to_dict()
    return {k: config[k] for k in TORCH_KEYS}


def flags(options):
    out = []
    for key, value in options.items():
        if value is not None:
            out += [f'--{key.replace("_", "-")}', str(value)]
    return out


def run_minirnn(name, budget, out_dir, seed):
    out = Path(out_dir) / f'{name}-minirnn'
    argv = [sys.executable, str(REPO / 'cli.py'), 'train', '--preset', name, '--max-minutes', str(budget),
            '--seed', str(seed), '--num-preds', '0', '--quiet', '--overwrite', '--out', str(out)]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        return {'error': proc.stderr.strip().splitlines()[-1]}
    rows = [json.loads(line) for line in (out / 'history.jsonl').read_text().splitlines()]
    best = min(rows, key=lambda r: r['val_ppl'])
    return {'best_val_ppl': best['val_ppl'], 'best_epoch': best['epoch'], 'final_val_ppl': rows[-1]['val_ppl'],
            'epochs': len(rows), 'tokens_per_s': sorted(r['tokens_per_s'] for r in rows)[len(rows) // 2],
            'minutes': (time.monotonic() - start) / 60, 'command': ' '.join(argv[1:])}


def run_pytorch(name, budget, out_dir, seed, threads):
    argv = [sys.executable, str(REPO / 'benchmarks' / 'torch_lm.py'), '--max-minutes', str(budget),
            '--seed', str(seed), '--threads', str(threads)] + flags(torch_options(name))
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        return {'error': (proc.stderr.strip().splitlines() or ['?'])[-1]}
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    (Path(out_dir) / f'{name}-pytorch.jsonl').write_text(proc.stdout)
    summary = lines[-1]
    return {'best_val_ppl': summary['best_val_ppl'], 'best_epoch': summary['best_epoch'],
            'final_val_ppl': summary['final_val_ppl'], 'epochs': summary['epochs'],
            'tokens_per_s': summary['tokens_per_s'], 'minutes': (time.monotonic() - start) / 60,
            'command': ' '.join(argv[1:])}


def cell(result):
    if 'error' in result:
        return f'error: {result["error"]}'
    return (f'**{result["best_val_ppl"]:.3f}** (final {result["final_val_ppl"]:.3f}, {result["epochs"]} epochs, '
            f'{result["tokens_per_s"] / 1e3:.1f}K tok/s)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', nargs='+', choices=ROWS, default=list(ROWS))
    parser.add_argument('--frameworks', nargs='+', choices=('minirnn', 'pytorch'), default=['minirnn', 'pytorch'])
    parser.add_argument('--budget-minutes', type=float, default=15.0)
    parser.add_argument('--threads', type=int, default=2, help='PyTorch threads (minirnn uses every core)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='runs/quality', help='run directories and results.json')
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.rows:
        results[name] = {}
        for framework in args.frameworks:
            print(f'{name}: {framework}, {args.budget_minutes:g} minutes ...', file=sys.stderr, flush=True)
            if framework == 'minirnn':
                got = run_minirnn(name, args.budget_minutes, args.out, args.seed)
            else:
                got = run_pytorch(name, args.budget_minutes, args.out, args.seed, args.threads)
            results[name][framework] = got
            print(f'{name}: {framework}: {cell(got)}', file=sys.stderr, flush=True)
            (Path(args.out) / 'results.json').write_text(json.dumps(results, indent=1) + '\n')
    print(f'| row | configuration | minirnn | PyTorch {"" if "pytorch" in args.frameworks else "(not run)"} |')
    print('|---|---|---|---|')
    for name, got in results.items():
        config = ', '.join(f'{k}={v}' for k, v in torch_options(name).items())
        print(f'| {name} | {config} | {cell(got.get("minirnn", {"error": "not run"}))} '
              f'| {cell(got.get("pytorch", {"error": "not run"}))} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
