"""minirnn's language model and training step against PyTorch's own layers (skipped without torch).

benchmarks/quality.py compares held-out perplexity with a PyTorch model "of the same
configuration" (benchmarks/torch_lm.py: nn.Embedding -> nn.RNN / nn.LSTM with dropout between
layers -> dropout -> nn.Linear, Adam, global-norm clipping). These tests prove the two are the
same function and the same update, so that a gap between the table's rows comes from the
random draws (initial weights, dropout masks), not from a difference in the formulas:

- loss, every parameter gradient, the final state and dL/d(initial state) agree in float64,
  with minirnn's dropout masks applied between PyTorch's layers;
- a few Adam steps with clipping leave both with the same parameters.

PyTorch keeps two biases per layer (b_ih + b_hh) where the book keeps one: minirnn's bias goes
into b_ih, b_hh stays zero, and both receive the same gradient, minirnn's one.
The GRU is left out on purpose: PyTorch's applies the reset gate after the recurrent product
(r * (W_hn h + b_hn)), the book's before it ((R * H) W_hh), so they are different cells.
"""
import numpy as np
import pytest

from minirnn.model import RNNLM, param_name
from minirnn.optim import Adam, bias_lr_mults, clip_grad_norm

torch = pytest.importorskip('torch')
nn = torch.nn

V, E, H, B, T, L, P = 13, 6, 8, 3, 7, 2, 0.4
# PyTorch's gate order in weight_ih / weight_hh / biases, in the book's letters (g is C~)
TORCH_GATES = {'rnn': ('h',), 'lstm': ('i', 'f', 'c', 'o')}


def names(letter):
    """The book's names of one gate's input weight, recurrent weight and bias."""
    return f'W_x{letter}', f'W_h{letter}', f'b_{letter}'


class TorchLM(nn.Module):
    """benchmarks/torch_lm.py's LanguageModel with one nn.RNN / nn.LSTM per layer, so that given
    dropout masks can go between the layers (nn.LSTM(num_layers=L, dropout=p) draws its own)."""

    def __init__(self, cell):
        super().__init__()
        layer = {'rnn': nn.RNN, 'lstm': nn.LSTM}[cell]
        self.embedding = nn.Embedding(V, E)
        self.layers = nn.ModuleList(layer(E if k == 0 else H, H, batch_first=True) for k in range(L))
        self.out = nn.Linear(H, V)

    def forward(self, X, states, masks):
        x, finals = self.embedding(X), []
        for layer, state, mask in zip(self.layers, states, masks):
            x, final = layer(x, state)
            x = x * mask                                   # inverted dropout on the layer's output
            finals.append(final)
        return self.out(x), finals


def to_torch_state(cell, state):
    """minirnn's per-layer state -> nn.RNN's h (1, B, H) or nn.LSTM's (h, c)."""
    t = lambda a: torch.tensor(a[None], requires_grad=True)   # noqa: E731
    return t(state) if cell == 'rnn' else (t(state[0]), t(state[1]))


def copy_into(model, tm, cell):
    """minirnn's parameters into the PyTorch model (transposed: PyTorch stores W as (out, in))."""
    with torch.no_grad():
        tm.embedding.weight.copy_(torch.tensor(model.params['W_emb']))
        for k, layer in enumerate(tm.layers):
            gates = [[model.params[param_name(n, k)] for n in names(g)] for g in TORCH_GATES[cell]]
            layer.weight_ih_l0.copy_(torch.tensor(np.concatenate([x for x, _, _ in gates], 1).T))
            layer.weight_hh_l0.copy_(torch.tensor(np.concatenate([h for _, h, _ in gates], 1).T))
            layer.bias_ih_l0.copy_(torch.tensor(np.concatenate([b for _, _, b in gates])))
            layer.bias_hh_l0.zero_()
        tm.out.weight.copy_(torch.tensor(model.params['W_hq'].T))
        tm.out.bias.copy_(torch.tensor(model.params['b_q']))


def torch_grads(tm, cell):
    """PyTorch's gradients under minirnn's names and shapes."""
    g = {'W_emb': tm.embedding.weight.grad.numpy(), 'W_hq': tm.out.weight.grad.numpy().T,
         'b_q': tm.out.bias.grad.numpy()}
    for k, layer in enumerate(tm.layers):
        w_ih, w_hh = layer.weight_ih_l0.grad.numpy().T, layer.weight_hh_l0.grad.numpy().T
        b_ih, b_hh = layer.bias_ih_l0.grad.numpy(), layer.bias_hh_l0.grad.numpy()
        np.testing.assert_allclose(b_ih, b_hh, rtol=1e-12)    # one sum, one gradient
        for j, letter in enumerate(TORCH_GATES[cell]):
            x, h, b = names(letter)
            cols = slice(j * H, (j + 1) * H)
            g[param_name(x, k)], g[param_name(h, k)], g[param_name(b, k)] = w_ih[:, cols], w_hh[:, cols], b_ih[cols]
    return g


def setup(cell, seed=0):
    model = RNNLM(V, H, embed_dim=E, num_layers=L, cell=cell, dropout=P, init='uniform',
                  dtype='float64', seed=seed, threads=1)
    tm = TorchLM(cell).double()
    copy_into(model, tm, cell)
    return model, tm


def reference_case(cell):
    """The cases' model and batch (a random initial state, dropout masks), and PyTorch's run of
    it: (model, X, Y, state, masks, tstates (their .grad set), finals, loss)."""
    model, tm = setup(cell)
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = model.begin_state(B)
    state = tuple(tuple(rng.standard_normal((B, H)) * 0.5 for _ in s) if cell == 'lstm'
                  else rng.standard_normal((B, H)) * 0.5 for s in state)
    # the masks minirnn draws for dropout_rng=seed 5 (per layer, (B, T, H))
    masks = model.dropout_masks(np.random.default_rng(5), B, T)
    assert 0.2 < float(np.mean([(m == 0).mean() for m in masks])) < 0.6      # dropout is on
    tstates = [to_torch_state(cell, s) for s in state]
    logits, finals = tm(torch.tensor(X), tstates, [torch.tensor(m) for m in masks])
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), torch.tensor(Y).reshape(-1))
    loss.backward()
    return model, tm, X, Y, state, masks, tstates, finals, loss


@pytest.mark.parametrize('cell', ['rnn', 'lstm'])
def test_loss_gradients_and_state_equal_pytorchs_layers(cell):
    model, tm, X, Y, state, masks, tstates, finals, loss = reference_case(cell)
    result = model.gradients(X, Y, state, dropout_rng=np.random.default_rng(5))

    assert result.loss == pytest.approx(loss.item(), rel=1e-12)
    expected = torch_grads(tm, cell)
    assert set(expected) == set(result.grads)
    for name, g in expected.items():
        np.testing.assert_allclose(result.grads[name], g, rtol=1e-9, atol=1e-12, err_msg=name)
    for k in range(L):
        ours, theirs = result.state[k], finals[k]
        pairs = [(ours, theirs)] if cell == 'rnn' else list(zip(ours, theirs))
        pairs += [(result.dstate[k], tstates[k].grad)] if cell == 'rnn' else \
            list(zip(result.dstate[k], [s.grad for s in tstates[k]]))
        for a, b in pairs:
            np.testing.assert_allclose(a, b.detach().numpy()[0], rtol=1e-9, atol=1e-12)


def adam_steps(cell, freeze_b_hh, steps, clip, bias_lr_mult=1):
    """`steps` Adam steps with clipping from one start, the same batches and masks, in both.

    minirnn: clip_grad_norm, Adam. PyTorch: the benchmark's clip_grad_norm_ and AdamW without
    decay; freeze_b_hh keeps b_hh at zero, so the bias is one parameter as in the book;
    bias_lr_mult: minirnn's (optim.bias_lr_mults).
    Returns (model, tm, minirnn's norms, PyTorch's norms).
    """
    model, tm = setup(cell, seed=2)
    for layer in tm.layers:
        layer.bias_hh_l0.requires_grad_(not freeze_b_hh)
    opt = Adam(lr=2e-3, lr_mults=bias_lr_mults(model.params, bias_lr_mult))
    topt = torch.optim.AdamW([p for p in tm.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.0)
    rng = np.random.default_rng(3)
    norms, tnorms = [], []
    for step in range(steps):
        X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
        masks = model.dropout_masks(np.random.default_rng(step), B, T)
        result = model.gradients(X, Y, dropout_rng=np.random.default_rng(step))
        norms.append(clip_grad_norm(result.grads, clip))
        opt.step(model.params, result.grads)

        topt.zero_grad()
        logits, _ = tm(torch.tensor(X), [None] * L, [torch.tensor(m) for m in masks])
        nn.functional.cross_entropy(logits.reshape(-1, V), torch.tensor(Y).reshape(-1)).backward()
        tnorms.append(nn.utils.clip_grad_norm_([p for p in tm.parameters() if p.requires_grad], clip).item())
        topt.step()
    return model, tm, norms, tnorms


def in_torch_layout(model, cell):
    tm = TorchLM(cell).double()
    copy_into(model, tm, cell)
    return tm.state_dict()


@pytest.mark.parametrize('cell', ['rnn', 'lstm'])
def test_adam_steps_with_clipping_equal_pytorchs_with_one_bias(cell):
    """With b_hh held at zero the update is the same: after 4 clipped Adam steps both models hold
    the same parameters (a doubled bias step would differ by 2e-3)."""
    clip = 0.1
    model, tm, norms, tnorms = adam_steps(cell, freeze_b_hh=True, steps=4, clip=clip)
    np.testing.assert_allclose(norms, tnorms, rtol=1e-9)
    assert max(norms) > clip                              # clipping took part
    ours, theirs = in_torch_layout(model, cell), tm.state_dict()
    start = in_torch_layout(setup(cell, seed=2)[0], cell)
    for name in ours:
        assert not np.allclose(ours[name].numpy(), start[name].numpy()) or 'bias_hh' in name, name  # it moved
        # Adam's step divides by sqrt(v): where a gradient is near zero, rounding in it shows
        # relatively larger; 1e-8 is a 1/200000 of one step of 2e-3
        np.testing.assert_allclose(ours[name].numpy(), theirs[name].numpy(), rtol=1e-5, atol=1e-8,
                                   err_msg=name)


@pytest.mark.parametrize('cell', ['rnn', 'lstm'])
def test_bias_lr_mult_2_is_pytorchs_update_with_two_biases(cell):
    """minirnn's --bias-lr-mult 2 against PyTorch's layers as they come (b_ih and b_hh trained):
    after 4 Adam steps the same parameters, b_ih + b_hh being the bias. The clipping bound is
    out of reach, as PyTorch's norm counts each bias gradient twice."""
    model, tm, norms, tnorms = adam_steps(cell, freeze_b_hh=False, steps=4, clip=1e6, bias_lr_mult=2)
    ours, theirs = in_torch_layout(model, cell), tm.state_dict()
    for name in ours:
        if 'bias_hh' in name:
            continue
        if 'bias_ih' in name:
            theirs[name] = theirs[name] + theirs[name.replace('bias_ih', 'bias_hh')]
        np.testing.assert_allclose(ours[name].numpy(), theirs[name].numpy(), rtol=1e-5, atol=1e-8,
                                   err_msg=name)


@pytest.mark.parametrize('cell', ['rnn', 'lstm'])
def test_pytorchs_second_bias_doubles_the_bias_step_under_adam(cell):
    """PyTorch's default layers train b_ih and b_hh, each with the same gradient. Adam's step is
    about lr * sign(g) whatever the gradient's scale, so the bias that counts, b_ih + b_hh, moves
    twice as far per step as minirnn's one bias, while the weights move alike (clipping scales the
    gradients, and the first Adam step does not see the scale)."""
    model, tm, norms, tnorms = adam_steps(cell, freeze_b_hh=False, steps=1, clip=0.5)
    # the norm counts every bias gradient twice: sqrt(|g|^2 + |g_b|^2) > |g|
    assert tnorms[0] > norms[0] * (1 + 1e-9)
    start, ours, theirs = (in_torch_layout(setup(cell, seed=2)[0], cell), in_torch_layout(model, cell),
                           tm.state_dict())
    for name in ours:
        if 'bias_hh' in name:
            continue
        step = (ours[name] - start[name]).numpy()
        if 'bias_ih' in name:
            sum_step = (theirs[name] + theirs[name.replace('bias_ih', 'bias_hh')] - start[name]).numpy()
            np.testing.assert_allclose(sum_step, 2 * step, rtol=1e-3, atol=1e-9, err_msg=name)
        else:
            np.testing.assert_allclose((theirs[name] - start[name]).numpy(), step, rtol=1e-3, atol=1e-9,
                                       err_msg=name)


@pytest.mark.parametrize('cell', ['rnn', 'lstm'])
def test_complex_step_derivatives_equal_pytorchs_autograd(cell):
    """The gradient checks' complex step, Im L(x + ih e_i) / h on minirnn's own forward pass (the
    reference cells, an embedding, two layers, dropout, a random initial state), is PyTorch's
    autograd for every entry of every parameter and of the initial state, to 1e-12 of each
    tensor's scale: two independent derivatives of one function."""
    from minirnn.gradcheck import complex_step_gradients, state_names
    model, tm, X, Y, state, masks, tstates, _, _ = reference_case(cell)
    values = complex_step_gradients(model, X, Y, state, masks=masks)
    expected = torch_grads(tm, cell)
    torch_state = [s.grad.numpy()[0] for layer in tstates for s in ((layer,) if cell == 'rnn' else layer)]
    expected.update(zip(state_names(model.begin_state(B)), torch_state))
    assert set(values) == set(expected)
    for name, g in expected.items():
        scale = np.abs(g).max()
        assert scale > 0 and np.abs(values[name] - g).max() <= 1e-12 * scale, name
