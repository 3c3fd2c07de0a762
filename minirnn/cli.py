"""minirnn's command line: parses arguments, calls the package, prints results.

Subcommands: train, generate, eval, gradcheck, probe, bench, download (`minirnn SUBCOMMAND -h`).
The same program runs as `python cli.py` (the repository's root), `python -m minirnn` and the
installed `minirnn` command; its examples and messages name it as it was invoked (`invoked_as`).
Results go to stdout, progress and diagnostics to stderr. Exit status: 0 done; 1 a package
error (MiniRNNError); 2 bad arguments; 3 training diverged (DivergenceError: a loss or gradient
NaN, infinite or above stopping.DIVERGENCE_FACTOR x max(log V, the untrained model's loss)); 130
interrupted. Each error is one line on stderr, never a traceback.
"""
import argparse
import contextlib
import dataclasses
import json
import math
import os
import secrets
import sys
import time
import warnings
from pathlib import Path

from minirnn.model import IN_CELL, REGULARISATION, ModelConfig


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr (no usage block) and exit code 2, and
    the help shows every default (HelpFormatter)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        # argparse lists an option without help text bare; give it a line with its default
        if kwargs.get('help') is None and kwargs.get('default') not in (None, argparse.SUPPRESS):
            kwargs['help'] = '(default: %(default)s)'
        return super().add_argument(*args, **kwargs)

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message}\n')


# --- argument types: each rejects bad values with a message argparse puts on one line ---------

def _int(s, minimum, wanted):
    from minirnn import checks
    from minirnn.errors import ConfigError
    try:
        return checks.integer('value', int(s), minimum)      # the package's own check
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f'expected {wanted}, got {s!r}') from None


def positive_int(s):
    return _int(s, 1, 'a positive integer')


def non_negative_int(s):
    return _int(s, 0, 'an integer >= 0')


def _float(s, wanted, **bounds):
    from minirnn import checks
    from minirnn.errors import ConfigError
    try:
        return checks.number('value', float(s), **bounds)    # finite, within bounds
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f'expected {wanted}, got {s!r}') from None


def positive_float(s):
    return _float(s, 'a positive number', above=0)


def non_negative_float(s):
    return _float(s, 'a number >= 0', minimum=0)


def fraction(s):
    return _float(s, 'a fraction in [0, 1)', minimum=0, below=1)


def decay(s):
    return _float(s, 'a decay in (0, 1), such as 0.999', above=0, below=1)


def max_tokens(s):
    return None if s.lower() == 'all' else positive_int(s)


def optional_positive_int(s):
    return None if s.lower() == 'none' else positive_int(s)


# --- the parser ------------------------------------------------------------------------------

class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless its help states it already, or it is a flag) and
    keeps the examples in the epilogs as written."""

    def _get_help_string(self, action):
        if 'default' in (action.help or '') or action.nargs == 0 or action.required:
            return action.help
        return super()._get_help_string(action)


EXIT_STATUS = """exit status: 0 done, 1 an error (one line on stderr), 2 bad arguments, 3 training
diverged (train; or a model with NaN or infinite weights), 130 interrupted"""

EXAMPLES = {
    'train': """examples:
  {prog} train                              # the book's 1st-edition run (--preset d2l-v1)
  {prog} train --data my.txt --out runs/mine  # a text of your own (--preset own-text)
  {prog} train --data sherlock_holmes --max-tokens all --val-fraction 0.1 --num-hiddens 256 \\
      --optimizer adam --lr-schedule cosine --warmup-steps 200 --early-stop 3 --eval-every 500 \\
      --sample-every 500 --num-epochs 20 --out runs/sherlock
  {prog} train --resume --out runs/sherlock --num-epochs 30

Without --lr each optimizer takes its own default; a preset's lr goes with the preset's optimizer.
Divergence: a batch whose mean loss is NaN, infinite or above {divergence_factor:g} x max(log V, the
untrained model's loss) (V: the vocabulary size; log V is uniform guessing), or a NaN/infinite
gradient norm, ends the run with exit status 3; model.npz and best.npz keep the last finished
epoch, and history.jsonl records the diverged one with "diverged": true.

""" + EXIT_STATUS,
    'generate': """examples:
  {prog} generate --checkpoint runs/sherlock/best.npz --prefix 'the door' --num-preds 200
  {prog} generate --checkpoint runs/sherlock/best.npz --prefix 'the door' --temperature 0.8 \\
      --num-samples 3 --seed 1              # three samples, seeded 1, 2 and 3
  {prog} generate --checkpoint runs/sherlock/best.npz --num-preds 200 --strategy sample --seed 1
  echo 'the door' | {prog} generate --checkpoint runs/sherlock/best.npz --prefix-file -
  {prog} generate --checkpoint runs/sherlock/best.npz --prefix 'the door' --strategy beam --beam-size 8

Without a prefix the model starts after a newline, or from a token drawn with --seed when its
vocabulary has no newline. Prefix tokens it never saw are read as <unk>, with a warning.
--temperature 0 is greedy. Beam search prints its text, then a line with the natural log of the
probability of the generated tokens.""",
    'eval': """example:
  {prog} eval --checkpoint runs/sherlock/best.npz --data war_of_the_worlds""",
    'gradcheck': """examples:
  {prog} gradcheck                                    # the default suite: every cell and path
  {prog} gradcheck --cell lstm --num-layers 2 --dropout 0.3 --sigma 0.01 --num-steps 35
  {prog} gradcheck --checkpoint runs/v1/model.npz    # a trained model on its own text
  {prog} gradcheck --level cell --cell gru           # the cell alone, random upstream gradients
  {prog} gradcheck --cell gru --sigma 0.01 --method complex   # every entry by the complex step
  {prog} gradcheck --sigma 0.01 --num-steps 35 --step-sweep sweep.png

Verdicts: OK; FAIL, a disagreement beyond what rounding and the step explain (a bug: the worst
entries are listed); INCONCLUSIVE, neither central differences nor the complex step could settle
it (rounding with --method central, relu's kink), with the reason and what to change. The table's
method column names what settled each tensor. Exit status 0 without a FAIL (with --strict: only
when all OK), 1 otherwise.""",
    'probe': """examples:
  {prog} probe --sigma 0.1 --num-hiddens 256 --plot probe.png   # a fresh model at the book's shapes
  {prog} probe --checkpoint runs/a/model.npz runs/b/model.npz --plot flow.png
  {prog} probe --cell lstm --sigma 0.1 --num-hiddens 64 --masks 0 --vary zoneout=0.5 weight_drop=0.5

One JSON line per model on stdout: per layer and step t, ||dL/dH_t||, ||dl_T/dH_t|| and
||dH_T/dH_t||_F / sqrt(H), and each recurrent weight's spectral radius and largest singular value.""",
    'bench': """example:
  {prog} bench --num-hiddens 256 --batch-size 64 --iters 50""",
    'download': """example:
  {prog} download war_of_the_worlds""",
}


def invoked_as(argv0=None):
    """How the user started this program, for its examples and messages: 'python cli.py',
    'python -m minirnn' or the installed command's name ('minirnn' when it cannot tell)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    name = os.path.basename(argv0 or '')
    if name == 'cli.py':
        return 'python cli.py'
    if name == '__main__.py' and os.path.basename(os.path.dirname(argv0)) == 'minirnn':
        return 'python -m minirnn'
    return 'minirnn'


def regulariser_changes(s):
    """`probe --vary`'s value: 'zoneout=0.5' or 'dropout_output=0.3,dropout_hidden=0.3' ->
    (the text, {option: value}); options of model.REGULARISATION, with - or _."""
    changes = {}
    for part in s.split(','):
        name, _, value = part.partition('=')
        name = name.strip().lstrip('-').replace('-', '_')
        if name not in REGULARISATION:
            raise argparse.ArgumentTypeError(f'expected OPTION=VALUE with OPTION one of {", ".join(REGULARISATION)}, '
                                             f'got {part!r}')
        changes[name] = _float(value, f'a number for {name}', minimum=0)
    return s, changes


def probability(s):
    return _float(s, 'a probability in [0, 1]', minimum=0, maximum=1)


TYPES = {'positive_int': positive_int, 'positive_float': positive_float, 'fraction': fraction,
         'probability': probability, 'non_negative_float': non_negative_float}


def model_fields():
    """The model's options: model.ModelConfig's fields (name, default, help, kind, choices)."""
    import dataclasses
    from minirnn.model import ModelConfig
    return dataclasses.fields(ModelConfig)


def add_model_options(group, defaults, *, skip=(), shown=None, prefix=''):
    """One option per ModelConfig field (--cell, --num-hiddens, ...), its help written once, there.

    defaults: a ModelConfig holding the values an option left out takes (shown in the help);
    with shown (name -> the help's default text, as train's presets give it) an option left out
    is absent from the parsed arguments instead (argparse.SUPPRESS), so the caller can tell
    what was given (model_options). skip: fields this command does not take; prefix: words
    before each help text.
    """
    for field in model_fields():
        name = field.name
        if name in skip:
            continue
        meta = field.metadata
        kwargs = {'type': TYPES[meta['kind']]} if 'kind' in meta else {}
        if 'choices' in meta:
            kwargs['choices'] = meta['choices']()
        value = getattr(defaults, name)
        default = shown(name) if shown else f'default: {"none" if value is None else value}'
        group.add_argument('--' + name.replace('_', '-'), help=f'{prefix}{meta["help"]} ({default})',
                           default=argparse.SUPPRESS if shown else value, **kwargs)


def model_options(args, skip=()):
    """The model's options that the parsed `args` hold, name -> value (but those in skip)."""
    return {f.name: getattr(args, f.name) for f in model_fields()
            if hasattr(args, f.name) and f.name not in skip}


def build_parser(prog=None):
    """The argument parser; prog is how the program was invoked (default: invoked_as())."""
    import minirnn
    from minirnn.run.stopping import DIVERGENCE_FACTOR
    prog = prog or invoked_as()
    parser = Parser(prog='minirnn', description='Recurrent language models with hand-written '
                    'backpropagation through time on NumPy (CPU) and CuPy (GPU).',
                    epilog=f'`{prog} COMMAND -h` shows a command\'s options, with an example.\n\n'
                    + EXIT_STATUS)
    parser.invoked_as = prog
    parser.add_argument('--version', action='version', version=f'%(prog)s {minirnn.__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=Parser)
    for add in (add_train, add_generate, add_eval, add_gradcheck, add_probe, add_bench, add_download):
        add(sub)
    for name, subparser in sub.choices.items():
        subparser.epilog = EXAMPLES[name].format(prog=prog, divergence_factor=DIVERGENCE_FACTOR)
    parser.commands = dict(sub.choices)     # name -> its parser
    return parser


class PresetOption:
    """train's options: one left out keeps the preset's value (argparse.SUPPRESS), so argparse
    knows no defaults; the help shows d2l-v1's (and d2l-v2's where it differs)."""

    def __init__(self):
        from minirnn.run.config import make_config
        self.v1, self.v2 = make_config('d2l-v1'), make_config('d2l-v2')

    def default(self, name, none='none'):
        """'default: <d2l-v1's value>', and d2l-v2's where it differs."""
        def show(value):
            if value is None:
                return none
            if isinstance(value, tuple):
                return ', '.join(repr(v) for v in value)
            return f'{value:g}' if isinstance(value, float) else str(value)
        default = f'default: {show(getattr(self.v1, name))}'
        if getattr(self.v2, name) != getattr(self.v1, name):
            default += f'; d2l-v2: {show(getattr(self.v2, name))}'
        return default

    def __call__(self, group, flag, help, none='none', **kwargs):
        name = kwargs.get('dest', flag[2:].replace('-', '_'))
        group.add_argument(flag, help=f'{help} ({self.default(name, none)})', **kwargs)


def add_train(sub):
    from minirnn.corpora import CORPORA
    from minirnn.run.config import PRESETS
    from minirnn.text import PREPROCESS_MODES, TOKEN_KINDS
    option = PresetOption()
    p = sub.add_parser('train', help='train a model; writes DIR/model.npz, best.npz, history.jsonl, perplexity.png',
                       argument_default=argparse.SUPPRESS)
    p.add_argument('--preset', choices=sorted(PRESETS), help='settings to start from: the book\'s runs '
                   '(d2l-*), the held-out presets (tm-*), or own-text (default: own-text when --data is a '
                   'file, else d2l-v1)')
    g = p.add_argument_group('data')
    option(g, '--data', f'a registered corpus ({", ".join(CORPORA)}) or a text file')
    option(g, '--encoding', 'text encoding of --data')
    option(g, '--preprocess', 'letters: the book (lowercase letters and spaces); raw: every character',
           choices=PREPROCESS_MODES)
    option(g, '--token', 'character or word tokens', choices=TOKEN_KINDS)
    option(g, '--min-freq', 'tokens seen fewer times become <unk> (for --token word)', type=non_negative_int)
    option(g, '--max-tokens', 'use the first N tokens ("all" for the whole text)', none='all', type=max_tokens)
    option(g, '--val-fraction', 'hold out this tail of the corpus for validation', type=fraction)
    option(g, '--num-train-windows', 'windows sampler: train on the first N windows ("none": all)',
           type=optional_positive_int)
    option(g, '--num-val-windows', 'windows sampler: validate on the next N windows ("none": no validation)',
           type=optional_positive_int)
    add_model_options(p.add_argument_group('model'), option.v1, shown=option.default)
    _train_optimization(p, option)
    _train_bptt_and_bookkeeping(p, option)
    p.set_defaults(func=cmd_train)


def _train_optimization(p, option):
    from minirnn.batching import SAMPLERS
    from minirnn.optim import DEFAULT_LR, OPTIMIZERS, SCHEDULES
    g = p.add_argument_group('optimization')
    option(g, '--batch-size', 'sequences per minibatch', type=positive_int)
    option(g, '--num-steps', 'time steps per sequence (BPTT length)', type=positive_int)
    option(g, '--sampler', 'sequential (state carried), random, or windows (the 2nd edition)', choices=SAMPLERS)
    option(g, '--optimizer', 'sgd (the book), adagrad (min-char-rnn) or adam', choices=sorted(OPTIMIZERS))
    g.add_argument('--lr', type=positive_float, help='learning rate (default: the optimizer\'s: ' + ', '.join(
        f'{name} {lr:g}' for name, lr in DEFAULT_LR.items()) + '; a preset\'s lr goes with its optimizer)')
    option(g, '--lr-schedule', 'constant; step: times --lr-decay after epoch --lr-decay-after and every '
           '--lr-decay-every epochs after it (char-rnn); cosine: to 0 over --num-epochs', choices=SCHEDULES)
    g.add_argument('--lr-decay', type=positive_float,
                   help='step schedule: factor per decay, in (0, 1] (default: 0.97, char-rnn\'s)')
    g.add_argument('--lr-decay-every', type=positive_int, help='step schedule: epochs between decays (default: 1)')
    g.add_argument('--lr-decay-after', type=non_negative_int,
                   help='step schedule: the first decay ends this epoch (default: --lr-decay-every)')
    option(g, '--warmup-steps', 'raise the learning rate linearly over the first N optimizer steps '
           '(any schedule)', type=non_negative_int)
    option(g, '--weight-decay', 'shrink the weight matrices (not biases): L2 for sgd and adagrad, '
           'decoupled for adam (AdamW)', type=non_negative_float)
    option(g, '--bias-lr-mult', 'the recurrent cells\' biases learn this many times as fast as the '
           'weights; 2 is PyTorch\'s update, whose layers train two biases (b_ih + b_hh) per gate',
           type=positive_float)
    option(g, '--ema', 'keep a moving average of the weights with this decay per step (0.999: about '
           'the last 1000 steps); validation, best.npz\'s choice, eval and generate use it, training '
           'goes on with the weights themselves', type=decay)
    option(g, '--num-epochs', 'epochs to train (with --resume: the new total)', type=positive_int)
    option(g, '--clip', 'max global gradient norm; 0 disables clipping', type=non_negative_float)
    option(g, '--early-stop', 'stop after N epochs without a better validation perplexity',
           type=positive_int)
    option(g, '--max-minutes', 'start no epoch that would end past this much wall time (the last '
           'epoch\'s time is the estimate); an epoch that runs past it stops after a batch, saved to '
           'continue with --resume', type=positive_float)


def _train_bptt_and_bookkeeping(p, option):
    from minirnn.backend import DEVICES
    from minirnn.run.config import TRUNCATIONS
    from minirnn.run.trainer import SAMPLE_NUM_PREDS
    g = p.add_argument_group('backpropagation through time')
    option(g, '--truncation', 'detach: BPTT within each batch, the carried state a constant (the book); '
           'full: on through every earlier batch of the epoch (sequential sampler); regular: every --k1 '
           'steps, the last k1 losses backpropagated --k2 steps; random: what a step passes back is '
           'multiplied by 0 or 1/--keep-prob (unbiased)', choices=TRUNCATIONS)
    option(g, '--k1', 'regular truncation: steps per chunk of losses', type=positive_int)
    option(g, '--k2', 'regular truncation: steps each chunk is backpropagated (>= k1)', type=positive_int)
    option(g, '--keep-prob', 'random truncation: probability pi that a step passes its gradient back',
           type=positive_float)
    option(g, '--max-tape-mb', 'full truncation: memory for the epoch\'s kept batches', type=positive_int)
    g = p.add_argument_group('bookkeeping')
    g.add_argument('--out', default=None, help='run directory (default: the first of runs/v1, runs/v2, ... '
                   'that holds no run)')
    g.add_argument('--resume', action='store_true', default=False, help='continue the run in --out')
    g.add_argument('--overwrite', action='store_true', default=False, help='start over in an --out that holds a run')
    option(g, '--seed', 'seed for initialisation and batching', type=non_negative_int)
    option(g, '--prefix', 'text to continue after training (repeatable)', dest='prefixes', action='append')
    option(g, '--num-preds', 'tokens to generate after each prefix', type=non_negative_int)
    option(g, '--eval-every', 'print and record the validation perplexity every N optimizer steps',
           type=positive_int)
    option(g, '--sample-every', f'print and record {SAMPLE_NUM_PREDS} tokens sampled after the first '
           '--prefix (seeded by --seed and the step) every N optimizer steps', type=positive_int)
    g.add_argument('--quiet', action='store_true', default=False,
                   help='no progress bar or progress lines (the bar shows only on a terminal anyway)')
    g = p.add_argument_group('device')
    option(g, '--device', 'cpu (NumPy), gpu (CuPy) or auto', choices=DEVICES)
    option(g, '--threads', 'CPU threads splitting each batch', none='every core', type=positive_int)


def add_generate(sub):
    from minirnn.backend import DEVICES
    from minirnn.generate import BEAM_SIZE, STRATEGIES
    p = sub.add_parser('generate', help='continue a prefix, or start from nothing, with a trained model')
    p.add_argument('--checkpoint', required=True, help='a model.npz or best.npz written by train')
    source = p.add_mutually_exclusive_group()
    source.add_argument('--prefix', default=None,
                        help='text to continue (default: none; the model starts after a newline, or, '
                        'when its vocabulary has none, from a token drawn with --seed)')
    source.add_argument('--prefix-file', default=None, metavar='PATH',
                        help='read the prefix from a file, or - for stdin, less one final newline '
                        '(default: none)')
    p.add_argument('--encoding', default='utf-8', help='text encoding of --prefix-file')
    p.add_argument('--num-preds', type=non_negative_int, default=50, help='tokens to generate')
    p.add_argument('--num-samples', type=positive_int, default=1,
                   help='texts to sample, sample i (from 0) seeded with --seed + i (more than 1 '
                   'implies --strategy sample)')
    p.add_argument('--strategy', choices=STRATEGIES, default=None,
                   help='greedy (argmax, the book), sample, or beam (the most likely continuation '
                   'a beam search of --beam-size finds, with its log-probability) (default: greedy; '
                   'sample when --temperature, --alpha, --top-k or --num-samples is given)')
    p.add_argument('--temperature', type=non_negative_float, default=None,
                   help='sample from softmax(logits / temperature); 0 is greedy (default: 1; implies '
                   '--strategy sample)')
    p.add_argument('--alpha', type=positive_float, default=None,
                   help='sharpening: sample from P^alpha (default: 1; implies --strategy sample)')
    p.add_argument('--top-k', type=positive_int, default=None,
                   help='sample among the k most likely tokens (default: all; implies --strategy sample)')
    p.add_argument('--beam-size', type=positive_int, default=None,
                   help=f'continuations --strategy beam keeps at each step (default: {BEAM_SIZE})')
    p.add_argument('--seed', type=non_negative_int, default=None,
                   help='seed for sampling and for the start without a prefix (default: fresh entropy)')
    p.add_argument('--device', choices=DEVICES, default='cpu', help='cpu, gpu or auto')
    p.set_defaults(func=cmd_generate, check=check_generate)


def add_eval(sub):
    from minirnn.backend import DEVICES
    p = sub.add_parser('eval', help='perplexity of a text under a trained model')
    p.add_argument('--checkpoint', required=True, help='a model.npz or best.npz written by train')
    p.add_argument('--data', required=True, help='a registered corpus or a text file')
    p.add_argument('--encoding', default=None, help='text encoding of --data (default: the training text\'s)')
    p.add_argument('--max-tokens', type=max_tokens, default=None,
                   help='evaluate the first N tokens only (default: all)')
    p.add_argument('--batch-size', type=positive_int, default=64, help='rows evaluated in parallel')
    p.add_argument('--num-steps', type=positive_int, default=64, help='steps per forward call')
    p.add_argument('--device', choices=DEVICES, default='cpu', help='cpu, gpu or auto')
    p.set_defaults(func=cmd_eval)


def add_gradcheck(sub):
    from minirnn.backend import DEVICES
    from minirnn.gradcheck import COMPLEX_TOLERANCE, METHODS, STEP, TOLERANCE
    p = sub.add_parser('gradcheck', help='check every gradient against finite differences and complex '
                       'steps (float64), with a verdict per tensor: OK, FAIL or INCONCLUSIVE')
    g = p.add_argument_group('what to check (default: the built-in suite of small models, every '
                             'cell and code path; any model option checks that one model instead)')
    g.add_argument('--checkpoint', default=None, metavar='FILE',
                   help='a trained model (model.npz or best.npz), checked in float64 on a batch of its own text')
    g.add_argument('--level', choices=('model', 'cell'), default='model',
                   help='model: the loss of a whole RNNLM; cell: one cell alone against random upstream '
                   'gradients (its parameters, a dense input X and the initial state)')
    g.add_argument('--vocab-size', type=positive_int, default=None, help='vocabulary size V (default: 28)')
    g.add_argument('--batch-size', type=positive_int, default=None, help='rows B of the batch (default: 4)')
    g.add_argument('--num-steps', type=positive_int, default=None, help='time steps T (default: 35)')
    add_model_options(g, GRADCHECK_MODEL, skip=('dtype',), shown=lambda name: (
        'default: reference, the form the docs explain; a checkpoint: its own' if name == 'impl'
        else f'default: {getattr(GRADCHECK_MODEL, name)}'))
    g = p.add_argument_group('how to check')
    g.add_argument('--tensor', action='append', default=None, metavar='NAME',
                   help='check only this tensor (repeatable; e.g. W_hh, state); default: all')
    g.add_argument('--method', choices=METHODS, default='auto',
                   help='central: central differences at an adapted step; complex: the complex step '
                   'Im f(x + ih) / h, exact to rounding however small the gradient (on the reference '
                   'cells); auto: central differences, then the complex step for every entry they '
                   'leave unresolved (relu: unless a pre-activation lies within the step of its kink)')
    g.add_argument('--step', type=positive_float, default=STEP,
                   help='the first finite-difference step h; each entry then adapts it')
    g.add_argument('--tolerance', type=positive_float, default=None,
                   help='disagreements below this fraction of a tensor\'s scale never FAIL (default: '
                   f'{TOLERANCE:g} for central differences, {COMPLEX_TOLERANCE:g} for the complex step)')
    g.add_argument('--max-entries', type=non_negative_int, default=100,
                   help='entries checked per tensor, a seeded sample of larger ones (0: every entry)')
    g.add_argument('--strict', action='store_true', default=False, help='exit 1 on INCONCLUSIVE too')
    g.add_argument('--step-sweep', default=None, metavar='PNG',
                   help='instead of checking: plot the error of the central difference and of the '
                   'complex step against the step for a few entries of --tensor (default W_hh) of '
                   'the described model')
    g.add_argument('--seed', type=non_negative_int, default=0, help='weights, batch and sampled entries')
    g.add_argument('--device', choices=DEVICES, default='cpu', help='cpu, gpu or auto')
    p.set_defaults(func=cmd_gradcheck, check=check_gradcheck)


def add_probe(sub):
    from minirnn.backend import DEVICES
    from minirnn.model import DTYPES
    p = sub.add_parser('probe', help='gradient flow through time for one batch: per-step gradient norms, '
                       'Jacobian gains, recurrent spectra (JSON lines on stdout, a PNG)')
    p.add_argument('--checkpoint', nargs='+', default=None, metavar='FILE',
                   help='model.npz files to probe (several: one line each in the plot); without it, '
                   'a fresh model from the options below')
    p.add_argument('--data', default=None, help='text of the batch (default: the checkpoint\'s own, or timemachine)')
    p.add_argument('--batch-size', type=positive_int, default=32, help='sequences in the batch')
    p.add_argument('--num-steps', type=positive_int, default=35, help='steps T of the batch')
    add_model_options(p.add_argument_group('a fresh model (without --checkpoint)'), PROBE_MODEL,
                      skip=('dtype',))
    p.add_argument('--seed', type=non_negative_int, default=0, help='fresh model\'s weights, the batch\'s position, the Jacobian probes')
    p.add_argument('--jacobian-probes', type=positive_int, default=16,
                   help='random vectors estimating each Jacobian norm (>= H: exact)')
    p.add_argument('--dtype', choices=DTYPES, default='float64',
                   help='float64 (default) so vanishing gradients are measured, not flushed to zero')
    p.add_argument('--masks', type=non_negative_int, default=None, metavar='SEED',
                   help='probe a training pass with the masks this seed draws (dropout, variational '
                   'dropout, weight drop, zoneout) and AR/TAR\'s terms in the loss (default: evaluation, '
                   'no masks and zoneout\'s expectation)')
    p.add_argument('--vary', nargs='+', default=[], type=regulariser_changes, metavar='OPTION=VALUE',
                   help='also probe the same weights on the same batch with regularisers changed, one '
                   'model per argument (zoneout=0.5, or several joined by commas: '
                   'dropout_output=0.3,dropout_hidden=0.3), one more line each in the plot')
    p.add_argument('--plot', default='probe.png', help='PNG to write')
    p.add_argument('--device', choices=DEVICES, default='cpu', help='cpu, gpu or auto')
    p.set_defaults(func=cmd_probe)


def add_bench(sub):
    from minirnn.backend import DEVICES
    p = sub.add_parser('bench', help='training-step throughput; the last stdout line is JSON')
    p.add_argument('--batch-size', type=positive_int, default=32, help='sequences per step B')
    p.add_argument('--num-steps', type=positive_int, default=35, help='time steps T')
    p.add_argument('--vocab-size', type=positive_int, default=28, help='vocabulary size V (random tokens)')
    p.add_argument('--iters', type=positive_int, default=20, help='timed training steps')
    p.add_argument('--warmup', type=non_negative_int, default=3, help='untimed steps first')
    p.add_argument('--device', choices=DEVICES, default='cpu', help='cpu, gpu or auto')
    p.add_argument('--threads', type=positive_int, default=None,
                   help='CPU threads splitting the batch (default: every core; 1: one thread)')
    add_model_options(p.add_argument_group('model'), ModelConfig())
    p.set_defaults(func=cmd_bench)


def add_download(sub):
    from minirnn.corpora import CORPORA
    p = sub.add_parser('download', help='fetch a registered corpus into data/ and verify its checksum')
    p.add_argument('name', help=', '.join(CORPORA))
    p.set_defaults(func=cmd_download)



def check_generate(args):
    """Sampling options (and --num-samples) imply --strategy sample; with greedy or beam they are a
    mistake, and so is --beam-size without beam."""
    given = [flag for flag, value in (('--temperature', args.temperature), ('--alpha', args.alpha),
                                      ('--top-k', args.top_k)) if value is not None]
    flags = ' and '.join(given)
    if args.strategy == 'beam':
        if given:
            return (f'{flags} shape sampling, and --strategy beam ranks continuations by the model\'s '
                    f'own probabilities; drop {flags}, or sample with --strategy sample')
        if args.num_samples > 1:
            return ('--strategy beam finds one text, the most likely it can; drop --num-samples, or '
                    'draw several with --strategy sample')
    elif args.beam_size is not None:
        return '--beam-size is the width of beam search: add --strategy beam, or drop --beam-size'
    if args.strategy == 'greedy':
        if given:
            return (f'{flags} only {"affects" if len(given) == 1 else "affect"} sampling, and --strategy '
                    f'greedy does not sample; drop --strategy greedy to sample, or drop {flags}')
        if args.num_samples > 1:
            return ('--strategy greedy gives the same text every time; drop it to draw --num-samples '
                    'samples')
    args.strategy = args.strategy or ('sample' if given or args.num_samples > 1 else 'greedy')
    args.temperature = 1.0 if args.temperature is None else args.temperature
    args.alpha = 1.0 if args.alpha is None else args.alpha
    return None


# --- one function per subcommand: no math, only calls into the package -------------------------

def cmd_train(args):
    from minirnn.errors import ConfigError, DivergenceError
    from minirnn.run.config import OWN_TEXT_PRESET, TrainConfig, make_config, preset_for
    from minirnn.run.rundir import RunDir
    from minirnn.run import fit
    from minirnn.run.distributed import launch_command
    options = {k: v for k, v in vars(args).items()
               if k not in ('command', 'func', 'preset', 'out', 'resume', 'overwrite', 'quiet', 'argv', 'prog')}
    if args.resume:
        if args.out is None:
            raise ConfigError('--resume needs the --out directory of the run to continue')
        if getattr(args, 'preset', None):
            raise ConfigError('--preset starts a new run; --resume continues with the saved settings')
    args.out_path = args.out or next_run_dir()
    out, note = RunDir(args.out_path), None
    if args.resume:       # the saved settings, with the options given now on top
        config = TrainConfig.from_dict({**out.saved_config().to_dict(), **options})
    else:
        preset = preset_for(options.get('data'), getattr(args, 'preset', None))
        if preset == OWN_TEXT_PRESET and not getattr(args, 'preset', None):
            note = (f'minirnn: {options["data"]} is a text of your own: starting from --preset {preset} '
                    f'(all of it, every character as it is, 5% held out for validation); --preset d2l-v1 '
                    f'gives the book\'s settings')
        config = make_config(preset, **options)
    try:
        result = fit(config, out, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet,
                     command=launch_command(f'{args.prog} train'), note=note)
    except DivergenceError as exc:
        if not args.resume and getattr(exc, 'config', None) is not None:
            exc.args = (f'{exc}. To start again: {restart_command(args, exc.config, exc.saved)}',)
        raise
    print_results(result, config, out)
    return 0 if result.finished else 130   # an early stop is finished too


def next_run_dir(root='runs'):
    """The first of runs/v1, runs/v2, ... that holds no run: where train writes without --out."""
    from minirnn.run.rundir import RUN_FILES
    n = 1
    while any((Path(root) / f'v{n}' / name).exists() for name in RUN_FILES):
        n += 1
    return Path(root) / f'v{n}'


def restart_command(args, config, saved):
    """The train command as the user typed it, with half the learning rate (and clipping when it
    was off), --out named, and --overwrite when an earlier epoch's checkpoint is in the way."""
    import shlex
    replaced = ('--lr', '--out') + (() if config.clip else ('--clip',))
    argv, skip = [], False
    for word in args.argv:
        if skip:
            skip = False
        elif word in replaced:
            skip = True
        elif not word.startswith(tuple(f'{flag}=' for flag in replaced)) and word != '--overwrite':
            argv.append(word)
    argv += ['--lr', f'{config.lr / 2:g}', '--out', str(args.out_path)]
    if not config.clip:
        argv += ['--clip', '1']
    if saved:
        argv.append('--overwrite')
    from minirnn.run.distributed import launch_command
    return launch_command(f'{args.prog} ' + shlex.join(argv))


def print_results(result, config, out):
    """The last epoch's numbers, the continuations of the prefixes, and the files saved.

    Each prefix gets two lines: 'greedy: ' and the book's greedy continuation, then 'sample: '
    and one drawn at temperature 1 with the run's --seed (what `generate --strategy sample
    --seed SEED` prints for that prefix).
    """
    from minirnn.errors import MiniRNNError
    from minirnn.optim import format_ppl
    if result.history:
        last = result.history[-1]
        val = '' if 'val_ppl' not in last or last['val_ppl'] is None else \
            f', validation perplexity {format_ppl(last["val_ppl"])}'
        print(f'epoch {last["epoch"]}: train perplexity {format_ppl(last["train_ppl"])}{val}, '
              f'{last["tokens_per_s"]:,.0f} tokens/s on {config.device}')
    if result.finished:
        from minirnn.generate import predict
        from minirnn.run.trainer import use_weights
        options = dict(preprocess=config.preprocess, token=config.token)
        for prefix in result.prefixes:
            try:      # the model is trained and saved: a prefix it cannot read is only a warning
                with use_weights(result.model, result.averaged) as model, warnings_to_stderr():
                    greedy = predict(model, result.vocab, prefix, config.num_preds, **options)
                    sample = predict(model, result.vocab, prefix, config.num_preds, **options,
                                     strategy='sample', rng=config.seed)
            except MiniRNNError as exc:
                print(f'minirnn: warning: no continuation of {prefix!r}: {exc}', file=sys.stderr)
            else:
                print(f'greedy: {greedy}\nsample: {sample}')
    best = [r for r in result.history if r.get('best')]
    if best and out.best_path.exists():
        print(f'saved {out.best_path} (epoch {best[-1]["epoch"]}, validation perplexity '
              f'{format_ppl(best[-1]["val_ppl"])})')
    print(f'saved {out.checkpoint_path}')


@contextlib.contextmanager
def warnings_to_stderr():
    """minirnn's warnings (MiniRNNWarning) issued inside the block, as 'minirnn: warning: ...'
    lines on stderr at once, each message once; other warnings go their usual way."""
    from minirnn.errors import MiniRNNWarning
    shown = set()

    def show(message, category, *args, **kwargs):
        if not issubclass(category, MiniRNNWarning):
            return original(message, category, *args, **kwargs)
        if str(message) not in shown:
            shown.add(str(message))
            print(f'minirnn: warning: {message}', file=sys.stderr)
    with warnings.catch_warnings():
        original = warnings.showwarning
        warnings.simplefilter('always', MiniRNNWarning)
        warnings.showwarning = show
        yield


def read_prefix(args):
    """generate's prefix: --prefix as given; --prefix-file's text (- : stdin) without one final
    newline (echo and editors add it); or None."""
    from minirnn import text
    from minirnn.errors import DataError
    if args.prefix_file is None:
        return args.prefix
    if args.prefix_file == '-':
        if sys.stdin is None:                          # started without a stdin at all
            data = b''
        elif hasattr(sys.stdin, 'buffer'):             # bytes, so --encoding decides
            data = sys.stdin.buffer.read()
        else:                                          # a text stream that stands in for stdin
            data = sys.stdin.read().encode(args.encoding)
        if not data:
            raise DataError('--prefix-file -: nothing on stdin; pipe the prefix in '
                            '(echo "the time" | ...) or pass --prefix')
        prefix = text.decode_text(data, args.encoding, source='stdin')
    else:
        prefix = text.read_text(args.prefix_file, args.encoding)
    return prefix[:-1] if prefix.endswith('\n') else prefix


def cmd_generate(args):
    from minirnn.run import checkpoint
    from minirnn.generate import BEAM_SIZE, beam_search, predict
    prefix = read_prefix(args)         # before the checkpoint: an empty stdin is told at once
    ckpt = checkpoint.load(args.checkpoint, device=args.device, averaged=True)
    preprocess, token = checkpoint.text_options(ckpt)
    options = dict(preprocess=preprocess, token=token)
    with warnings_to_stderr():
        if args.strategy == 'beam':
            text, logprob = beam_search(ckpt.model, ckpt.vocab, prefix, args.num_preds,
                                        args.beam_size or BEAM_SIZE, rng=args.seed, **options)
            print(text)
            print(f'log-probability: {logprob:.4f}' + (
                f' over {args.num_preds} tokens (perplexity {math.exp(-logprob / args.num_preds):.3f})'
                if args.num_preds else ''))
            return 0
        # sample i draws with seed + i, so each is what `--seed SEED+i` gives alone; without
        # --seed, several samples get a fresh base seed, shown in their headers
        base = args.seed
        if base is None and args.num_samples > 1:
            base = secrets.randbelow(2 ** 31)
        for i in range(args.num_samples):
            seed = None if base is None else base + i
            if args.num_samples > 1:
                print(f'--- sample {i + 1} of {args.num_samples} (seed {seed}) ---')
            print(predict(ckpt.model, ckpt.vocab, prefix, args.num_preds, strategy=args.strategy,
                          temperature=args.temperature, alpha=args.alpha, top_k=args.top_k, rng=seed,
                          **options), flush=True)
    return 0


def cmd_eval(args):
    from minirnn import text
    from minirnn.run import checkpoint
    from minirnn.optim import perplexity
    from minirnn.run.evaluation import corpus_batches, evaluate, unknown_fraction, unknown_warning
    ckpt = checkpoint.load(args.checkpoint, device=args.device, averaged=True)
    checkpoint.text_options(ckpt)         # a file without training settings: one clear error
    # the text is prepared as the model's own was: its preprocessing, tokens and encoding
    preprocess, token, encoding = text.text_options(ckpt.vocab, encoding=args.encoding)
    corpus = text.encode_corpus(args.data, ckpt.vocab, preprocess=preprocess, token=token,
                                encoding=encoding, max_tokens=args.max_tokens)
    loss = evaluate(ckpt.model, corpus_batches(corpus, args.batch_size, args.num_steps), carry_state=True)
    unknown = unknown_fraction(corpus, ckpt.vocab.unk)
    ppl = perplexity(loss)
    print(json.dumps({'data': args.data, 'tokens': int(len(corpus)), 'loss': loss,
                      'perplexity': ppl if math.isfinite(ppl) else None,   # JSON has no Infinity
                      'unknown_fraction': unknown}))
    warning = unknown_warning(unknown, len(ckpt.vocab), preprocess, token, encoding)
    if warning:       # the number stands, but it measures <unk>s more than the text
        print(f'minirnn: warning: {warning}', file=sys.stderr)
    return 0


# gradcheck's described model: ModelConfig's defaults, but small, on the reference cells, in float64
GRADCHECK_MODEL = ModelConfig(num_hiddens=16, impl='reference', dtype='float64')
GRADCHECK_BATCH = {'vocab_size': 28, 'batch_size': 4, 'num_steps': 35}
# probe's fresh model: ModelConfig's defaults on the reference cells, whose equations the docs explain
PROBE_MODEL = ModelConfig(impl='reference')


def described_options(args):
    """The options that describe a gradcheck model (every model option but --impl, and the batch's)."""
    given = [k for k in model_options(args) if k != 'impl']
    return given + [k for k in GRADCHECK_BATCH if getattr(args, k) is not None]


def check_gradcheck(args):
    described = [k for k in described_options(args) if k not in ('batch_size', 'num_steps')]
    if args.checkpoint and described:
        return f'--checkpoint checks the saved model; drop --{described[0].replace("_", "-")}'
    if args.level == 'cell' and (args.checkpoint or args.step_sweep):
        return '--level cell checks a fresh cell: drop --checkpoint and --step-sweep'
    model_only = [k for k in ('num_layers', 'dropout', 'vocab_size', 'embed_dim', 'init', 'dropout_input',
                              'dropout_output', 'weight_drop', 'ar', 'tar')
                  if k in described] + (['tensor'] if args.tensor else [])
    if args.level == 'cell' and model_only:
        return f'--level cell checks one cell alone: --{model_only[0].replace("_", "-")} belongs to --level model'
    return None


def cmd_gradcheck(args):
    from minirnn import gradsuite
    from minirnn.gradcheck import count_verdicts, format_report
    options = dict(max_entries=args.max_entries or None, step=args.step, tolerance=args.tolerance,
                   method=args.method)
    given = model_options(args)
    model = {**dataclasses.asdict(GRADCHECK_MODEL), **given}
    del model['dtype']                               # always float64
    batch = {k: GRADCHECK_BATCH[k] if getattr(args, k) is None else getattr(args, k) for k in GRADCHECK_BATCH}
    model['vocab_size'] = batch.pop('vocab_size')
    if args.step_sweep:
        return sweep_steps(args, model, batch)
    impl = model['impl']
    if args.level == 'cell':
        results = gradsuite.check_cell(model['cell'], batch_size=batch['batch_size'],
                                       num_steps=batch['num_steps'], num_hiddens=model['num_hiddens'],
                                       sigma=model['sigma'], activation=given.get('activation'),
                                       device=args.device, seed=args.seed, impl=impl,
                                       **{k: model[k] for k in IN_CELL}, **options)
    elif args.checkpoint:
        results = gradsuite.check_checkpoint(args.checkpoint, **batch, device=args.device,
                                             seed=args.seed, tensors=args.tensor, impl=given.get('impl'), **options)
    elif described_options(args):
        label = describe_model(model, batch) + (', fast' if impl == 'fast' else '')
        rows = gradsuite.check_case(model, batch['batch_size'], batch['num_steps'], False,
                                    device=args.device, seed=args.seed, tensors=args.tensor, **options)
        results = [(label, rows)]
    else:
        results = gradsuite.run_default_cases(device=args.device, seed=args.seed, tensors=args.tensor,
                                              impl=impl, **options)
    print(format_report(results, args.tolerance))
    counts = count_verdicts(results)
    return 1 if counts['FAIL'] or (args.strict and counts['INCONCLUSIVE']) else 0


def describe_model(model, batch):
    """A short label for a described model: 'lstm x2, dropout 0.3, H=16, V=28, sigma=0.01, B=4, T=35'."""
    parts = [model['cell'] + (f' x{model["num_layers"]}' if model['num_layers'] > 1 else '')]
    parts += [f'dropout {model["dropout"]:g}'] if model['dropout'] else []
    parts += [model['activation']] if model['cell'] == 'rnn' else []
    parts += [f'E={model["embed_dim"]}'] if model['embed_dim'] else []
    parts += [f'{model["init"]} init'] if model['init'] != 'normal' else []
    parts += [f'{k.replace("_", " ")} {model[k]:g}' for k in REGULARISATION if k != 'dropout' and model[k]]
    parts += [f'H={model["num_hiddens"]}', f'V={model["vocab_size"]}', f'sigma={model["sigma"]:g}',
              f'B={batch["batch_size"]}', f'T={batch["num_steps"]}']
    return ', '.join(parts)


ROUNDING_NOTE = 'K eps |loss| / h, the bound the checker uses'


def sweep_steps(args, model, batch):
    """`gradcheck --step-sweep PNG`: the error-against-step curve, a table on stdout and the PNG."""
    from minirnn import RNNLM, gradsuite
    from minirnn.backend import make_rng
    from minirnn.plots import plot_step_sweep
    net = RNNLM(**model, dtype='float64', device=args.device, seed=args.seed, threads=1)
    X, Y, _ = gradsuite.random_batch(net, batch['batch_size'], batch['num_steps'], make_rng(args.seed), False)
    tensor = (args.tensor or ['W_hh'])[0]
    sweep = gradsuite.step_sweep(net, X, Y, tensor=tensor)
    entries = sweep['entries']
    print(f'# |analytic - central difference| (central) and |analytic - complex step| (complex) for '
          f'entries of {tensor} with |a| = ' + ', '.join(f'{abs(e["analytic"]):.1e}' for e in entries)
          + f'; loss {sweep["loss"]:.4f}; rounding = {ROUNDING_NOTE}; -: not taken')
    print(f'{"step h":>8}  ' + '  '.join(f'{"central " + str(list(e["index"])):>17}' for e in entries)
          + '  ' + '  '.join(f'{"complex " + str(list(e["index"])):>17}' for e in entries) + f'  {"rounding":>9}')
    central = {h: k for k, h in enumerate(sweep['steps'])}
    for k, h in enumerate(sweep['complex_steps']):
        c = central.get(h)
        print(f'{h:>8.1e}  ' + '  '.join('-'.rjust(17) if c is None else f'{e["errors"][c]:>17.2e}' for e in entries)
              + '  ' + '  '.join(f'{e["complex_errors"][k]:>17.2e}' for e in entries)
              + '  ' + ('-'.rjust(9) if c is None else f'{sweep["rounding"][c]:>9.2e}'))
    plot_step_sweep(sweep, args.step_sweep, title=f'dL/d{tensor} by central differences (solid) and the '
                    f'complex step (dashed)\n{describe_model(model, batch)}')
    print(f'minirnn: wrote {args.step_sweep}', file=sys.stderr)
    return 0


def cmd_probe(args):
    from minirnn.plots import plot_probe
    from minirnn.probe import probe, probe_batch
    labels, results = [], []
    for label, model, X, Y in probe_batch(checkpoints=args.checkpoint, data=args.data,
                                          batch_size=args.batch_size, num_steps=args.num_steps,
                                          dtype=args.dtype, device=args.device, seed=args.seed,
                                          model_options=model_options(args, skip=('dtype',))):
        variants = [(label, model)] + [(f'{label}, {text}', model.converted(**changes))
                                       for text, changes in args.vary]
        for name, variant in variants:
            result = probe(variant, X, Y, jacobian_probes=args.jacobian_probes, seed=args.seed,
                           dropout_rng=args.masks)
            print(json.dumps({'label': name, **result}), flush=True)
            labels.append(name)
            results.append(result)
    plot_probe(results, args.plot, labels)
    print(f'minirnn: wrote {args.plot}', file=sys.stderr)
    return 0


def cmd_bench(args):
    from minirnn.bench import step_throughput
    result = step_throughput(batch_size=args.batch_size, num_steps=args.num_steps,
                             vocab_size=args.vocab_size, iters=args.iters, warmup=args.warmup,
                             device=args.device, threads=args.threads, **model_options(args))
    print(json.dumps(result))
    return 0


def cmd_download(args):
    from minirnn.corpora import download
    print(download(args.name))
    return 0


SILENT_RANK_GRACE_S = 2.0     # how long a silent rank that failed alone waits before exiting


def main(argv=None, prog=None):
    """Run one subcommand; returns the exit code (tests call this in-process).

    prog: how the user invoked the program, for examples and messages (default: invoked_as()).
    Under mpiexec every rank runs the command and rank 0 alone prints (its messages, errors and
    results); the others' stdout and stderr go to the null device.
    """
    from minirnn.run.distributed import speaks
    if speaks():
        return run_command(argv, prog)
    with open(os.devnull, 'w') as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        code = run_command(argv, prog)
    if code and 'mpi4py.MPI' not in sys.modules:
        # failed before MPI was up (mpi4py missing): no rank can wait for another, and mpiexec
        # ends the job at the first non-zero exit, so give rank 0 a moment to print the line
        time.sleep(SILENT_RANK_GRACE_S)
    return code


def run_command(argv=None, prog=None):
    """main() in the process that prints: parse, run, and turn every error into one line."""
    from minirnn.errors import DivergenceError, MiniRNNError
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:      # argparse: --help, --version (0) or a bad argument (2)
        return exc.code
    if args.command is None:
        commands = ', '.join(parser.commands)
        print(f'minirnn: error: choose a command: {commands} (`{parser.invoked_as} COMMAND -h` for its '
              'options, `-h` for an overview)', file=sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)     # as typed, for restart commands
    args.prog = parser.invoked_as
    problem = args.check(args) if hasattr(args, 'check') else None
    if problem:
        print(f'minirnn {args.command}: error: {problem}', file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except DivergenceError as exc:   # a run whose numbers blew up: its own status, for scripts
        print(f'minirnn: error: {exc}', file=sys.stderr)
        return 3
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
