"""The PyTorch side of benchmarks/quality.py: the same language model, data and training rules.

A character model like minirnn's (an nn.Embedding or one-hot input, nn.RNN / nn.GRU / nn.LSTM
with dropout between layers, dropout on the top layer's output, an nn.Linear head; its two
biases per gate trained, or b_hh held at zero: --bias-lr-mult), trained on exactly minirnn's
batches (minirnn.batching's sequential sampler, the state carried and detached between
batches), with Adam and gradient-norm clipping (and --ema as minirnn's), validated after each
epoch on the same held-out tail with the state carried (minirnn/run/evaluation.py), keeping the best
epoch, and stopping before an epoch that would end past --max-minutes, as `cli.py train
--max-minutes` does. PyTorch is a benchmark-only install (pip install torch==2.13.0).
Prints one JSON line per epoch, then a summary line.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from minirnn import text  # noqa: E402
from minirnn.batching import SeqDataLoader  # noqa: E402
from minirnn.run.evaluation import corpus_batches  # noqa: E402
from minirnn.optim import Schedule  # noqa: E402


class LanguageModel(nn.Module):
    """tokens (B, T) -> embedding or one-hot -> L recurrent layers -> dropout -> logits (B, T, V)."""

    def __init__(self, vocab_size, cell, num_hiddens, num_layers, dropout, embed_dim):
        super().__init__()
        self.vocab_size, self.cell = vocab_size, cell
        self.embedding = nn.Embedding(vocab_size, embed_dim) if embed_dim else None
        layer = {'rnn': nn.RNN, 'gru': nn.GRU, 'lstm': nn.LSTM}[cell]
        self.rnn = layer(embed_dim or vocab_size, num_hiddens, num_layers,
                         dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(num_hiddens, vocab_size)

    def forward(self, X, state):
        x = self.embedding(X) if self.embedding is not None else \
            nn.functional.one_hot(X, self.vocab_size).float()
        H, state = self.rnn(x, state)
        return self.out(self.drop(H)), state


def detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def evaluate(model, corpus, batch_size, num_steps):
    """Mean loss per token over the corpus, the state carried (minirnn.run.evaluation.evaluate's rule)."""
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for X, Y in corpus_batches(corpus, batch_size, num_steps):
            X, Y = torch.from_numpy(np.ascontiguousarray(X)).long(), torch.from_numpy(np.ascontiguousarray(Y)).long()
            logits, state = model(X, state)
            total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1),
                                                 reduction='sum').item()
            count += Y.numel()
    model.train()
    return total / count


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='timemachine')
    p.add_argument('--max-tokens', type=int, default=None)
    p.add_argument('--val-fraction', type=float, default=0.1)
    p.add_argument('--cell', choices=('rnn', 'gru', 'lstm'), default='lstm')
    p.add_argument('--num-layers', type=int, default=1)
    p.add_argument('--num-hiddens', type=int, default=512)
    p.add_argument('--embed-dim', type=int, default=None)
    p.add_argument('--dropout', type=float, default=0.0)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--num-steps', type=int, default=64)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--lr-schedule', choices=('constant', 'cosine'), default='constant',
                   help='cosine: to 0 over --num-epochs, per optimizer step (minirnn.optim.Schedule)')
    p.add_argument('--weight-decay', type=float, default=0.0)
    p.add_argument('--clip', type=float, default=1.0)
    p.add_argument('--num-epochs', type=int, default=1000)
    p.add_argument('--max-minutes', type=float, default=15.0)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--bias-lr-mult', type=float, default=2.0,
                   help="2 (default): PyTorch's layers as they come, training b_ih and b_hh, which "
                        "moves their sum at twice the rate (minirnn's --bias-lr-mult 2); any other M "
                        "holds b_hh at zero and gives b_ih M times the rate (1: minirnn's default)")
    p.add_argument('--ema', type=float, default=None,
                   help='validate a moving average of the weights with this decay per step, its zero '
                        'start corrected (minirnn.optim.Optimizer ema)')
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    corpus, vocab = text.load_corpus(args.data, max_tokens=args.max_tokens)
    train_corpus, val_corpus = text.split_corpus(corpus, args.val_fraction)
    loader = SeqDataLoader(train_corpus, args.batch_size, args.num_steps, 'sequential',
                           np.random.default_rng(args.seed))
    model = LanguageModel(len(vocab), args.cell, args.num_hiddens, args.num_layers, args.dropout, args.embed_dim)
    two_biases = args.bias_lr_mult == 2
    if not two_biases:
        for name, param in model.rnn.named_parameters():
            if name.startswith('bias_hh'):
                param.data.zero_()
                param.requires_grad_(False)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    cell_bias = [p for n, p in trained if n.startswith('rnn.bias')]
    groups = [{'params': [p for n, p in trained if 'bias' not in n], 'weight_decay': args.weight_decay,
               'mult': 1.0},
              {'params': [p for n, p in trained if 'bias' in n and not n.startswith('rnn.bias')],
               'weight_decay': 0.0, 'mult': 1.0},
              {'params': cell_bias, 'weight_decay': 0.0, 'mult': 1.0 if two_biases else args.bias_lr_mult}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    schedule = Schedule(args.lr, args.lr_schedule, total_steps=args.num_epochs * len(loader))
    averages = {n: torch.zeros_like(p) for n, p in model.named_parameters()} if args.ema else None
    best, best_epoch, history, steps = math.inf, None, [], 0
    started, last_epoch = time.monotonic(), 0.0
    for epoch in range(1, args.num_epochs + 1):
        if time.monotonic() - started + last_epoch > 60 * args.max_minutes:
            break
        epoch_start = time.monotonic()
        state, loss_sum, tokens, train_seconds = None, 0.0, 0, 0.0
        for X, Y in loader:
            tick = time.perf_counter()
            X, Y = torch.from_numpy(X).long(), torch.from_numpy(Y).long()
            logits, state = model(X, detach(state))
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip:
                nn.utils.clip_grad_norm_([p for _, p in trained], args.clip)
            for group in optimizer.param_groups:     # the same rate per step as minirnn's
                group['lr'] = schedule(steps, epoch) * group['mult']
            optimizer.step()
            steps += 1
            if averages is not None:
                with torch.no_grad():
                    for n, p in model.named_parameters():
                        averages[n].mul_(args.ema).add_(p, alpha=1 - args.ema)
            loss_sum += loss.item() * Y.numel()
            tokens += Y.numel()
            train_seconds += time.perf_counter() - tick
        if averages is None:
            val = evaluate(model, val_corpus, args.batch_size, args.num_steps)
        else:         # the average in, validated, the training weights back
            with torch.no_grad():
                own = {n: p.detach().clone() for n, p in model.named_parameters()}
                for n, p in model.named_parameters():
                    p.copy_(averages[n] / (1 - args.ema ** steps))
                val = evaluate(model, val_corpus, args.batch_size, args.num_steps)
                for n, p in model.named_parameters():
                    p.copy_(own[n])
        if val < best:
            best, best_epoch = val, epoch
        row = {'epoch': epoch, 'train_ppl': math.exp(loss_sum / tokens), 'val_ppl': math.exp(val),
               'tokens_per_s': tokens / train_seconds, 'minutes': (time.monotonic() - started) / 60}
        history.append(row)
        print(json.dumps(row), flush=True)
        last_epoch = time.monotonic() - epoch_start
    print(json.dumps({'framework': 'pytorch', 'torch': torch.__version__, **vars(args),
                      'epochs': len(history), 'best_val_ppl': math.exp(best), 'best_epoch': best_epoch,
                      'final_val_ppl': history[-1]['val_ppl'] if history else None,
                      'tokens_per_s': float(np.median([r['tokens_per_s'] for r in history])) if history else None}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
