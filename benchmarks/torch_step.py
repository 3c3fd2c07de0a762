"""The same training step as `minirnn.bench`, in PyTorch on the CPU, as a point of comparison.

--impl nn:      torch.nn.RNN (or nn.GRU / nn.LSTM with --cell, num_layers stacked with
                --num-layers) + nn.Linear on one-hot inputs, autograd, clip_grad_norm_,
                torch.optim.SGD (the book's concise implementation).
--impl scratch: the book's from-scratch PyTorch code (d2l 1st edition, section 8.5), copied as
                written: a Python loop over time, F.one_hot inputs, grad_clipping and sgd by hand.
One step = one-hot inputs, forward, mean cross-entropy, backward, clip to norm 1, SGD update,
from a fresh zero state (the random sampler). PyTorch is a benchmark-only install:
pip install torch==2.13.0. Prints one JSON line: tokens_per_s (B*T / median step) and step_ms.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time


NN_LAYERS = {'rnn': 'RNN', 'gru': 'GRU', 'lstm': 'LSTM'}


def _build_nn(torch, vocab_size, num_hiddens, lr, cell='rnn', num_layers=1):
    """The book's RNNModel (nn.RNN/GRU/LSTM + Linear head) and torch.optim.SGD; returns step(X, Y)."""
    nn, F = torch.nn, torch.nn.functional
    rnn_layer = getattr(nn, NN_LAYERS[cell])(vocab_size, num_hiddens, num_layers)
    linear = nn.Linear(num_hiddens, vocab_size)
    params = list(rnn_layer.parameters()) + list(linear.parameters())
    optimizer = torch.optim.SGD(params, lr=lr)

    def step(X, Y):
        # fresh state every step: H (and for an LSTM, C) of every layer
        state = torch.zeros((num_layers, X.shape[0], num_hiddens))
        if cell == 'lstm':
            state = (state, torch.zeros_like(state))
        inputs = F.one_hot(X.T.long(), vocab_size).float()          # (T, B, V)
        H, state = rnn_layer(inputs, state)                         # (T, B, H)
        output = linear(H.reshape(-1, H.shape[-1]))                 # (T*B, V)
        loss = F.cross_entropy(output, Y.T.reshape(-1).long()).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, max_norm=1)
        optimizer.step()
    return step


def _build_scratch(torch, vocab_size, num_hiddens, lr, cell='rnn', num_layers=1):
    """The book's get_params / rnn / grad_clipping / sgd, unchanged; returns step(X, Y)."""
    F = torch.nn.functional

    def get_params(vocab_size, num_hiddens):
        num_inputs = num_outputs = vocab_size

        def normal(shape):
            return torch.randn(size=shape) * 0.01
        W_xh = normal((num_inputs, num_hiddens))
        W_hh = normal((num_hiddens, num_hiddens))
        b_h = torch.zeros(num_hiddens)
        W_hq = normal((num_hiddens, num_outputs))
        b_q = torch.zeros(num_outputs)
        params = [W_xh, W_hh, b_h, W_hq, b_q]
        for param in params:
            param.requires_grad_(True)
        return params

    def rnn(inputs, state, params):
        W_xh, W_hh, b_h, W_hq, b_q = params
        H, = state
        outputs = []
        for X in inputs:
            H = torch.tanh(torch.mm(X, W_xh) + torch.mm(H, W_hh) + b_h)
            Y = torch.mm(H, W_hq) + b_q
            outputs.append(Y)
        return torch.cat(outputs, dim=0), (H,)

    def grad_clipping(params, theta):
        norm = torch.sqrt(sum(torch.sum((p.grad ** 2)) for p in params))
        if norm > theta:
            for param in params:
                param.grad[:] *= theta / norm

    def sgd(params, lr, batch_size):
        with torch.no_grad():
            for param in params:
                param -= lr * param.grad / batch_size
                param.grad.zero_()

    params = get_params(vocab_size, num_hiddens)

    def step(X, Y):
        state = (torch.zeros((X.shape[0], num_hiddens)),)         # fresh state every step
        inputs = F.one_hot(X.T, vocab_size).type(torch.float32)    # (T, B, V)
        y_hat, state = rnn(inputs, state, params)                  # (T*B, V)
        loss = F.cross_entropy(y_hat, Y.T.reshape(-1).long()).mean()
        loss.backward()
        grad_clipping(params, 1)
        sgd(params, lr, batch_size=1)                               # the loss is already a mean
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--impl', choices=('nn', 'scratch'), default='nn',
                        help='nn.RNN + Linear, or the book\'s from-scratch code')
    parser.add_argument('--cell', choices=sorted(NN_LAYERS), default='rnn',
                        help='recurrent cell: nn.RNN, nn.GRU or nn.LSTM (scratch: rnn only)')
    parser.add_argument('--num-layers', type=int, default=1, help='recurrent layers stacked (nn only)')
    parser.add_argument('--batch-size', type=int, default=32, help='B, sequences per step')
    parser.add_argument('--num-steps', type=int, default=35, help='T, tokens per sequence')
    parser.add_argument('--num-hiddens', type=int, default=512, help='H, hidden state width')
    parser.add_argument('--vocab-size', type=int, default=28, help='V, token ids')
    parser.add_argument('--iters', type=int, default=20, help='timed steps')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps before timing')
    parser.add_argument('--threads', type=int, default=os.cpu_count(),
                        help='torch.set_num_threads (default: all cores)')
    parser.add_argument('--lr', type=float, default=1.0, help='SGD learning rate')
    parser.add_argument('--seed', type=int, default=0, help='weights and random tokens')
    args = parser.parse_args(argv)
    for name in ('batch_size', 'num_steps', 'num_hiddens', 'vocab_size', 'iters', 'threads', 'num_layers'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be a positive integer')
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    if args.impl == 'scratch' and (args.cell != 'rnn' or args.num_layers != 1):
        parser.error('--impl scratch is the book\'s one-layer vanilla RNN: use --impl nn for --cell/--num-layers')

    try:
        import torch
    except ImportError:
        print('torch_step.py needs PyTorch, a benchmark-only dependency: '
              'pip install torch==2.13.0', file=sys.stderr)
        return 3
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    build = _build_nn if args.impl == 'nn' else _build_scratch
    step = build(torch, args.vocab_size, args.num_hiddens, args.lr, args.cell, args.num_layers)
    B, T = args.batch_size, args.num_steps
    # made once, like minirnn.bench; the one-hot encoding stays inside the step, as in the book
    X = torch.randint(0, args.vocab_size, (B, T), dtype=torch.int64)
    Y = torch.randint(0, args.vocab_size, (B, T), dtype=torch.int64)

    for _ in range(args.warmup):
        step(X, Y)
    times = []
    start = time.perf_counter()
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step(X, Y)                     # CPU tensors: the work is done when step returns
        times.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    median = statistics.median(times)
    print(json.dumps({
        'impl': args.impl, 'cell': args.cell, 'num_layers': args.num_layers, 'batch_size': B, 'num_steps': T, 'num_hiddens': args.num_hiddens,
        'vocab_size': args.vocab_size, 'device': 'cpu', 'dtype': 'float32',
        'iters': args.iters, 'threads': torch.get_num_threads(), 'torch': torch.__version__,
        'python': platform.python_version(), 'seconds': seconds, 'step_ms': median * 1e3,
        'tokens_per_s': B * T / median, 'tokens_per_s_mean': B * T * args.iters / seconds}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
