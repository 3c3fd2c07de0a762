"""Train minirnn from PyTorch's initial weights: `cli.py train` with the start torch_lm.py would take.

benchmarks/torch_lm.py builds its model right after torch.manual_seed(seed). This script builds
the same model, copies its initial parameters into minirnn's names and layout (PyTorch stores
W as (out, in) with the gates in the order i, f, g, o; its two biases per gate add up to the
book's one: b = b_ih + b_hh), and runs `cli.py train` with the rest of the arguments, its
init='uniform' draw replaced by those weights. With `--bias-lr-mult 2` the update is PyTorch's
too (tests/test_pytorch_reference.py), so the two frameworks then differ only in the dropout
masks' random draws. PyTorch is a benchmark-only install (pip install torch==2.13.0).

    python benchmarks/torch_start.py --torch-seed 0 train --preset tm-lstm2 --bias-lr-mult 2 --out runs/from-torch
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'benchmarks'))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from minirnn import cli  # noqa: E402
from minirnn import model as minirnn_model  # noqa: E402
from minirnn.model import param_name  # noqa: E402
from torch_lm import LanguageModel  # noqa: E402

TORCH_GATES = {'rnn': 'h', 'lstm': 'ifco'}     # PyTorch's gate order, in the book's letters


def torch_start(m, seed):
    """PyTorch's initial parameters for the minirnn model m's configuration, in m's names."""
    if m.cell_name not in TORCH_GATES or m.embed_dim is None:
        raise SystemExit('torch_start.py: the rnn and lstm cells with --embed-dim only')
    torch.manual_seed(seed)
    t = LanguageModel(m.vocab_size, m.cell_name, m.num_hiddens, m.num_layers, m.dropout, m.embed_dim)
    H, out = m.num_hiddens, {}
    out['W_emb'] = t.embedding.weight.detach().numpy()
    out['W_hq'], out['b_q'] = t.out.weight.detach().numpy().T, t.out.bias.detach().numpy()
    for layer in range(m.num_layers):
        w_ih = getattr(t.rnn, f'weight_ih_l{layer}').detach().numpy().T
        w_hh = getattr(t.rnn, f'weight_hh_l{layer}').detach().numpy().T
        b = (getattr(t.rnn, f'bias_ih_l{layer}') + getattr(t.rnn, f'bias_hh_l{layer}')).detach().numpy()
        for j, g in enumerate(TORCH_GATES[m.cell_name]):
            cols = slice(j * H, (j + 1) * H)
            out[param_name(f'W_x{g}', layer)] = w_ih[:, cols]
            out[param_name(f'W_h{g}', layer)] = w_hh[:, cols]
            out[param_name(f'b_{g}', layer)] = b[cols]
    return out


def main(argv):
    if len(argv) < 3 or argv[0] != '--torch-seed':
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    seed, rest = int(argv[1]), argv[2:]

    def from_torch(self, rng, params):
        start = torch_start(self, seed)
        assert set(start) == set(params), set(start) ^ set(params)
        return {k: self.xp.asarray(np.ascontiguousarray(start[k]).astype(self.dtype)) for k in params}
    minirnn_model.RNNLM._uniform_init = from_torch
    return cli.main(rest)


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
