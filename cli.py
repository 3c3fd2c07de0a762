"""minirnn's command line: parses arguments, calls the package, prints results.

Subcommands: train, generate, eval, gradcheck, probe, bench, download (`python cli.py SUBCOMMAND -h`).
Results go to stdout, progress and diagnostics to stderr. Bad arguments exit 2 and package
errors (MiniRNNError) exit 1, each with one line on stderr, never a traceback.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr (no usage block) and exit code 2."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message}\n')


# --- argument types: each rejects bad values with a message argparse puts on one line ---------

def _int(s, minimum, wanted):
    try:
        value = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected {wanted}, got {s!r}') from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f'expected {wanted}, got {s!r}')
    return value


def positive_int(s):
    return _int(s, 1, 'a positive integer')


def non_negative_int(s):
    return _int(s, 0, 'an integer >= 0')


def _float(s, ok, wanted):
    try:
        value = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected {wanted}, got {s!r}') from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f'expected {wanted}, got {s!r}')
    return value


def positive_float(s):
    return _float(s, lambda v: v > 0, 'a positive number')


def non_negative_float(s):
    return _float(s, lambda v: v >= 0, 'a number >= 0')


def fraction(s):
    return _float(s, lambda v: 0 <= v < 1, 'a fraction in [0, 1)')


def max_tokens(s):
    return None if s.lower() == 'all' else positive_int(s)


def optional_positive_int(s):
    return None if s.lower() == 'none' else positive_int(s)


# --- the parser ------------------------------------------------------------------------------

def build_parser():
    from minirnn.backend import DEVICES
    from minirnn.batching import SAMPLERS
    from minirnn.cells import CELLS
    from minirnn.config import PRESETS
    from minirnn.model import DTYPES
    from minirnn.optim import OPTIMIZERS
    from minirnn.text import PREPROCESS_MODES, TOKEN_KINDS
    activations = sorted({a for cell in CELLS.values() for a in cell.ACTIVATIONS})

    parser = Parser(prog='minirnn', description='Recurrent language models with hand-written '
                    'backpropagation through time on NumPy (CPU) and CuPy (GPU).')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=Parser)
    sub.required = True
    S = argparse.SUPPRESS   # train options left out keep the preset's value

    p = sub.add_parser('train', help='train a model; writes DIR/model.npz, history.jsonl, perplexity.png',
                       argument_default=S)
    p.add_argument('--preset', choices=sorted(PRESETS), help='the book\'s run to start from (default d2l-v1)')
    g = p.add_argument_group('data')
    g.add_argument('--data', help='a registered corpus (timemachine, war_of_the_worlds, sherlock_holmes) or a text file')
    g.add_argument('--encoding', help='text encoding of --data (default utf-8)')
    g.add_argument('--preprocess', choices=PREPROCESS_MODES, help='letters: the book (lowercase letters and spaces); raw: every character')
    g.add_argument('--token', choices=TOKEN_KINDS, help='character or word tokens')
    g.add_argument('--max-tokens', type=max_tokens, help='use the first N tokens ("all" for the whole text)')
    g.add_argument('--val-fraction', type=fraction, help='hold out this tail of the corpus for validation')
    g.add_argument('--num-train-windows', type=optional_positive_int,
                   help='windows sampler: train on the first N windows ("none": all; d2l-v2: 10000)')
    g.add_argument('--num-val-windows', type=optional_positive_int,
                   help='windows sampler: validate on the next N windows ("none": no validation; d2l-v2: 5000)')
    g = p.add_argument_group('model')
    g.add_argument('--cell', choices=sorted(CELLS), help='recurrent cell: rnn (the book\'s vanilla cell), gru or lstm')
    g.add_argument('--num-layers', type=positive_int, help='recurrent layers stacked (the book\'s deep RNN)')
    g.add_argument('--num-hiddens', type=positive_int, help='hidden state size H')
    g.add_argument('--activation', choices=activations, help='the vanilla cell\'s nonlinearity (gated cells: tanh)')
    g.add_argument('--embed-dim', type=positive_int, help='learn an embedding of this size instead of one-hot input')
    g.add_argument('--sigma', type=positive_float, help='standard deviation of the initial weights (default 0.01)')
    g.add_argument('--dropout', type=fraction, help='inverted dropout on each layer\'s output, in training (default 0)')
    g = p.add_argument_group('optimization')
    g.add_argument('--batch-size', type=positive_int, help='sequences per minibatch')
    g.add_argument('--num-steps', type=positive_int, help='time steps per sequence (BPTT length)')
    g.add_argument('--sampler', choices=SAMPLERS, help='sequential (state carried), random, or windows (the 2nd edition)')
    g.add_argument('--optimizer', choices=sorted(OPTIMIZERS), help='sgd (the book), adagrad or adam')
    g.add_argument('--lr', type=positive_float, help='learning rate')
    g.add_argument('--num-epochs', type=positive_int, help='epochs to train (with --resume: the new total)')
    g.add_argument('--clip', type=non_negative_float, help='max global gradient norm; 0 disables clipping')
    g = p.add_argument_group('bookkeeping')
    g.add_argument('--out', default=None, help='run directory (default runs/<date-time>)')
    g.add_argument('--resume', action='store_true', default=False, help='continue the run in --out')
    g.add_argument('--overwrite', action='store_true', default=False, help='start over in an --out that holds a checkpoint')
    g.add_argument('--seed', type=non_negative_int, help='seed for initialisation and batching (default 0)')
    g.add_argument('--prefix', dest='prefixes', action='append', help='text to continue after training (repeatable)')
    g.add_argument('--num-preds', type=non_negative_int, help='tokens to generate after each prefix')
    g.add_argument('--quiet', action='store_true', default=False, help='no progress output')
    g = p.add_argument_group('device')
    g.add_argument('--device', choices=DEVICES, help='cpu (NumPy), gpu (CuPy) or auto')
    g.add_argument('--dtype', choices=DTYPES, help='float32 (default) or float64')
    g.add_argument('--threads', type=positive_int, help='CPU threads splitting each batch (default: every core)')
    p.set_defaults(func=cmd_train)

    p = sub.add_parser('generate', help='continue a prefix with a trained model')
    p.add_argument('--checkpoint', required=True, help='a model.npz written by train')
    p.add_argument('--prefix', required=True, help='text to continue')
    p.add_argument('--num-preds', type=non_negative_int, default=50, help='tokens to generate (default 50)')
    p.add_argument('--strategy', choices=('greedy', 'sample'), default='greedy', help='greedy (the book) or sample')
    p.add_argument('--temperature', type=positive_float, default=1.0, help='sampling temperature')
    p.add_argument('--alpha', type=positive_float, default=1.0, help='sharpening: sample from P^alpha')
    p.add_argument('--top-k', type=positive_int, default=None, help='sample among the k most likely tokens')
    p.add_argument('--seed', type=non_negative_int, default=None, help='seed for sampling')
    p.add_argument('--device', choices=DEVICES, default='cpu')
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser('eval', help='perplexity of a text under a trained model')
    p.add_argument('--checkpoint', required=True, help='a model.npz written by train')
    p.add_argument('--data', required=True, help='a registered corpus or a text file')
    p.add_argument('--encoding', default='utf-8')
    p.add_argument('--max-tokens', type=max_tokens, default=None, help='evaluate the first N tokens only')
    p.add_argument('--batch-size', type=positive_int, default=64, help='rows evaluated in parallel')
    p.add_argument('--num-steps', type=positive_int, default=64, help='steps per forward call')
    p.add_argument('--device', choices=DEVICES, default='cpu')
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser('gradcheck', help='check every gradient against finite differences (float64)')
    p.add_argument('--device', choices=DEVICES, default='cpu')
    p.add_argument('--seed', type=non_negative_int, default=0)
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser('probe', help='gradient flow through time for one batch: per-step gradient norms, '
                       'Jacobian gains, recurrent spectra (JSON lines on stdout, a PNG)')
    p.add_argument('--checkpoint', nargs='+', default=None, metavar='FILE',
                   help='model.npz files to probe (several: one line each in the plot); without it, '
                   'a fresh model from the options below')
    p.add_argument('--data', default=None, help='text of the batch (default: the checkpoint\'s own, or timemachine)')
    p.add_argument('--batch-size', type=positive_int, default=32, help='sequences in the batch')
    p.add_argument('--num-steps', type=positive_int, default=35, help='steps T of the batch')
    p.add_argument('--cell', choices=sorted(CELLS), default='rnn', help='fresh model: recurrent cell')
    p.add_argument('--num-layers', type=positive_int, default=1, help='fresh model: layers')
    p.add_argument('--num-hiddens', type=positive_int, default=512, help='fresh model: hidden size H')
    p.add_argument('--sigma', type=positive_float, default=0.01, help='fresh model: initial weights\' std')
    p.add_argument('--activation', choices=activations, default='tanh', help='fresh model: the vanilla cell\'s nonlinearity')
    p.add_argument('--embed-dim', type=positive_int, default=None, help='fresh model: embedding size')
    p.add_argument('--seed', type=non_negative_int, default=0, help='fresh model\'s weights, the batch\'s position, the Jacobian probes')
    p.add_argument('--jacobian-probes', type=positive_int, default=16,
                   help='random vectors estimating each Jacobian norm (>= H: exact)')
    p.add_argument('--dtype', choices=DTYPES, default='float64',
                   help='float64 (default) so vanishing gradients are measured, not flushed to zero')
    p.add_argument('--plot', default='probe.png', help='PNG to write')
    p.add_argument('--device', choices=DEVICES, default='cpu')
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser('bench', help='training-step throughput; the last stdout line is JSON')
    p.add_argument('--batch-size', type=positive_int, default=32)
    p.add_argument('--num-steps', type=positive_int, default=35)
    p.add_argument('--num-hiddens', type=positive_int, default=512)
    p.add_argument('--vocab-size', type=positive_int, default=28)
    p.add_argument('--iters', type=positive_int, default=20)
    p.add_argument('--warmup', type=non_negative_int, default=3)
    p.add_argument('--device', choices=DEVICES, default='cpu')
    p.add_argument('--dtype', choices=DTYPES, default='float32')
    p.add_argument('--threads', type=positive_int, default=None,
                   help='CPU threads splitting the batch (default: every core; 1: the reference path)')
    p.add_argument('--cell', choices=sorted(CELLS), default='rnn', help='recurrent cell')
    p.add_argument('--num-layers', type=positive_int, default=1, help='recurrent layers stacked')
    p.add_argument('--dropout', type=fraction, default=0.0, help='dropout on each layer\'s output')
    p.add_argument('--embed-dim', type=positive_int, default=None, help='an embedding instead of one-hot input')
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser('download', help='fetch a registered corpus into data/ and verify its checksum')
    p.add_argument('name', help='timemachine, war_of_the_worlds or sherlock_holmes')
    p.set_defaults(func=cmd_download)
    return parser


# --- one function per subcommand: no math, only calls into the package -------------------------

def cmd_train(args):
    from minirnn.config import TrainConfig, make_config
    from minirnn.errors import ConfigError, MiniRNNError
    from minirnn.rundir import RunDir
    from minirnn.train import fit, format_ppl
    options = {k: v for k, v in vars(args).items()
               if k not in ('command', 'func', 'preset', 'out', 'resume', 'overwrite', 'quiet')}
    if args.resume:
        if args.out is None:
            raise ConfigError('--resume needs the --out directory of the run to continue')
        if getattr(args, 'preset', None):
            raise ConfigError('--preset starts a new run; --resume continues with the saved settings')
    out = RunDir(args.out or Path('runs') / time.strftime('%Y%m%d-%H%M%S'))
    if args.resume:       # the saved settings, with the options given now on top
        config = TrainConfig.from_dict({**out.saved_config().to_dict(), **options})
    else:
        config = make_config(getattr(args, 'preset', None), **options)
    result = fit(config, out, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    if result.history:
        last = result.history[-1]
        val = '' if 'val_ppl' not in last or last['val_ppl'] is None else \
            f', validation perplexity {format_ppl(last["val_ppl"])}'
        print(f'epoch {last["epoch"]}: train perplexity {format_ppl(last["train_ppl"])}{val}, '
              f'{last["tokens_per_s"]:,.0f} tokens/s on {config.device}')
    if result.finished:
        from minirnn.generate import predict
        for prefix in config.prefixes:
            try:      # the model is trained and saved: a prefix it cannot read is only a warning
                print(predict(result.model, result.vocab, prefix, config.num_preds,
                              preprocess=config.preprocess, token=config.token))
            except MiniRNNError as exc:
                print(f'minirnn: warning: no continuation of {prefix!r}: {exc}', file=sys.stderr)
    print(f'saved {out.checkpoint_path}')
    return 0 if result.finished else 130


def cmd_generate(args):
    from minirnn import checkpoint
    from minirnn.generate import predict
    ckpt = checkpoint.load(args.checkpoint, device=args.device)
    preprocess, token = checkpoint.text_options(ckpt)
    print(predict(ckpt.model, ckpt.vocab, args.prefix, args.num_preds,
                  preprocess=preprocess, token=token, strategy=args.strategy,
                  temperature=args.temperature, alpha=args.alpha, top_k=args.top_k, rng=args.seed))
    return 0


def cmd_eval(args):
    from minirnn import checkpoint, text
    from minirnn.optim import perplexity
    from minirnn.evaluation import corpus_batches, evaluate
    ckpt = checkpoint.load(args.checkpoint, device=args.device)
    preprocess, token = checkpoint.text_options(ckpt)
    corpus = text.encode_corpus(args.data, ckpt.vocab, preprocess=preprocess, token=token,
                                encoding=args.encoding, max_tokens=args.max_tokens)
    loss = evaluate(ckpt.model, corpus_batches(corpus, args.batch_size, args.num_steps), carry_state=True)
    unknown = float((corpus == ckpt.vocab.unk).mean())
    ppl = perplexity(loss)
    print(json.dumps({'data': args.data, 'tokens': int(len(corpus)), 'loss': loss,
                      'perplexity': ppl if math.isfinite(ppl) else None,   # JSON has no Infinity
                      'unknown_fraction': unknown}))
    return 0


def cmd_gradcheck(args):
    from minirnn.gradcheck import format_report, run_default_cases
    results = run_default_cases(device=args.device, seed=args.seed)
    print(format_report(results))
    return 0 if all(r['ok'] for _, rows in results for r in rows) else 1


def cmd_probe(args):
    from minirnn.plots import plot_probe
    from minirnn.probe import probe, probe_batch
    labels, results = [], []
    for label, model, X, Y in probe_batch(checkpoints=args.checkpoint, data=args.data,
                                          batch_size=args.batch_size, num_steps=args.num_steps,
                                          dtype=args.dtype, device=args.device, seed=args.seed,
                                          model_options=dict(cell=args.cell, num_layers=args.num_layers,
                                                             num_hiddens=args.num_hiddens, sigma=args.sigma,
                                                             activation=args.activation,
                                                             embed_dim=args.embed_dim)):
        result = probe(model, X, Y, jacobian_probes=args.jacobian_probes, seed=args.seed)
        print(json.dumps({'label': label, **result}), flush=True)
        labels.append(label)
        results.append(result)
    plot_probe(results, args.plot, labels)
    print(f'minirnn: wrote {args.plot}', file=sys.stderr)
    return 0


def cmd_bench(args):
    from minirnn.bench import step_throughput
    result = step_throughput(batch_size=args.batch_size, num_steps=args.num_steps,
                             num_hiddens=args.num_hiddens, vocab_size=args.vocab_size,
                             iters=args.iters, warmup=args.warmup, device=args.device, dtype=args.dtype,
                             threads=args.threads, cell=args.cell, num_layers=args.num_layers,
                             dropout=args.dropout, embed_dim=args.embed_dim)
    print(json.dumps(result))
    return 0


def cmd_download(args):
    from minirnn.text import download
    print(download(args.name))
    return 0


def main(argv=None):
    """Run one subcommand; returns the exit code (tests call this in-process)."""
    from minirnn.errors import MiniRNNError
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:      # argparse: --help (0) or a bad argument (2)
        return exc.code
    try:
        return args.func(args)
    except MiniRNNError as exc:
        print(f'minirnn: error: {exc}', file=sys.stderr)
        return 1
    except MemoryError:
        print('minirnn: error: out of memory; try a smaller --batch-size, --num-steps or '
              '--num-hiddens', file=sys.stderr)
        return 1
    except BrokenPipeError:        # stdout closed early (`| head`): stop quietly, as Python's docs advise
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:         # a path the user gave cannot be written or read
        print(f'minirnn: error: {exc.strerror or exc}: {exc.filename or ""}'.rstrip(': '), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('minirnn: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
