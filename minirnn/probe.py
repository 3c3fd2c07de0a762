"""Gradient flow through time for one batch: how much gradient reaches each hidden state, and why.

For every layer, with t = 1..T and the distance to the end of the batch T - t:
    grad_norm_full[t-1]   ||dL/dH_t||      L the mean loss over all B*T tokens (what training uses)
    grad_norm_last[t-1]   ||dl_T/dH_t||    l_T the mean loss of the last step alone: its decay
                                           with T - t is the vanishing / exploding gradient
    jacobian_gain[t-1]    ||dH_T/dH_t||_F / sqrt(H), root mean square over the batch's sequences:
                                           the average gain of the Jacobian product (1 at t = T)
and, for each recurrent weight (the vanilla cell's W_hh, a GRU's W_hz, W_hr, W_hh, ...), its
spectral radius (largest |eigenvalue|) and largest singular value, which bound how fast the
products grow or shrink. Norms are Frobenius over the (B, H) block. The passes run on one
thread (model.tape/backprop), so they are exact whatever model.threads says.
"""
import numpy as np

from . import checks
from .backend import make_rng, to_device, to_numpy
from .model import REGULARISATION, param_name
from .tree import leaves, tree_map, unflatten


def spectra(model):
    """{param name: {'spectral_radius', 'max_singular_value'}} for every recurrent weight (host, float64)."""
    out = {}
    for layer in range(model.num_layers):
        for name in model.cell.RECURRENT_WEIGHTS:
            key = param_name(name, layer)
            W = to_numpy(model.params[key]).astype(np.float64)
            out[key] = {'spectral_radius': float(np.abs(np.linalg.eigvals(W)).max()),
                        'max_singular_value': float(np.linalg.norm(W, 2))}
    return out


def step_norms(dH):
    """||dH_t|| over the (B, H) block for every step: dH (T, B, H) -> T Python floats."""
    xp_norms = (dH.reshape(dH.shape[0], -1) ** 2).sum(axis=1) ** 0.5
    return [float(v) for v in to_numpy(xp_norms)]


def _with_hidden(cell, template, hidden):
    """A state shaped like `template`, zero except its hidden part (cell.hidden), set to `hidden`."""
    zeros = tree_map(lambda a: a * 0, template)
    target = cell.hidden(template)
    flat = [hidden if a is target else z for a, z in zip(leaves(template), leaves(zeros))]
    return unflatten(template, flat)


def jacobian_gains(model, tape, probes, rng):
    """Per layer, per step t: ||dH_T/dH_t||_F / sqrt(H), root mean square over the batch.

    v^T (dH_T/dH_t) for a vector v is one backward pass of the layer's recurrence with v
    entering through the final state and nothing from above: the cell's backward with
    dfinal_state = v records it for every t in dH_out. With v ~ N(0, I), E||v^T J||^2 =
    ||J||_F^2, so `probes` random vectors estimate it; with probes >= H the unit vectors give it
    exactly. Returns (gains per layer as lists of T floats, 'exact' or 'estimated').
    """
    xp, cell = model.xp, model.cell
    H = model.num_hiddens
    exact = probes >= H
    gains = []
    for layer, cache in enumerate(tape.layers):
        params = cache.params           # as the forward pass used them (weight drop: W * M)
        final = tape.state if model.num_layers == 1 else tape.state[layer]
        T, B = tape.softmax.y.shape[0] // tape.batch_size, tape.batch_size
        zeros = xp.zeros((T, B, H), dtype=model.dtype)
        total = xp.zeros(T, dtype=np.float64)
        vectors = range(H) if exact else range(probes)
        for i in vectors:
            if exact:
                v = xp.zeros((B, H), dtype=model.dtype)
                v[:, i] = 1
            else:
                v = to_device(rng.standard_normal((B, H)), xp, model.dtype)
            dH = xp.empty_like(zeros)
            cell.backward(params, zeros, cache.cell, _with_hidden(cell, final, v), dH_out=dH)
            total += (dH.reshape(T, -1).astype(np.float64) ** 2).sum(axis=1)
        # sum over vectors (exact) or mean (estimate) of ||v^T J_b||^2, summed over the B rows
        per_sequence = total / (1 if exact else probes) / B      # mean over rows of ||J_b||_F^2
        gains.append([float(g) for g in to_numpy((per_sequence / H) ** 0.5)])
    return gains, 'exact' if exact else f'estimated from {probes} random vectors'


def probe(model, X, Y, state=None, *, jacobian_probes=16, seed=0, dropout_rng=None):
    """Measure gradient flow through time for one batch (see the module docstring).

    Args: model, an RNNLM; X, Y (B, T) token ids; state or None (zeros);
          jacobian_probes: random vectors for the Jacobian estimate (>= H: exact);
          seed: for those vectors;
          dropout_rng: None (evaluation: no masks, zoneout's expectation), or an int seed: a
              training pass with the masks that seed draws (dropout, variational dropout,
              weight drop, zoneout; AR/TAR's terms in the loss), the same in every backward
              pass here. The norms then show what training's backward pass carries.
    Returns: a JSON-ready dict: the model's shape, the loss, and per layer the lists
        grad_norm_full, grad_norm_last, jacobian_gain (index t-1 for step t), the distance
        T - t of each, grad_ratio_first_last = ||dL/dH_1|| / ||dL/dH_T||, and the spectra.
    """
    checks.integer('jacobian_probes', jacobian_probes)
    rng = make_rng(seed)
    if dropout_rng is not None:
        checks.integer('dropout_rng', dropout_rng, 0)
    tape = model.tape(X, Y, state, dropout_rng=dropout_rng)
    T = np.shape(X)[1]
    full = model.backprop(tape, record_steps=True)
    last_only = np.arange(1, T + 1) == T
    # the loss is a mean over T*B tokens; T times it is l_T, the mean over the last step's B
    last = model.backprop(tape, loss_steps=last_only, record_steps=True)
    gains, how = jacobian_gains(model, tape, jacobian_probes, rng)
    weights = spectra(model)
    layers = []
    for layer in range(model.num_layers):
        full_norms = step_norms(full.dH_steps[layer])
        layers.append({
            'layer': layer,
            'distance': [T - t for t in range(1, T + 1)],
            'grad_norm_full': full_norms,
            'grad_norm_last': [T * n for n in step_norms(last.dH_steps[layer])],
            'jacobian_gain': gains[layer],
            'grad_ratio_first_last': full_norms[0] / full_norms[-1] if full_norms[-1] else None,
            'recurrent_weights': {k: v for k, v in weights.items()
                                  if k in {param_name(n, layer) for n in model.cell.RECURRENT_WEIGHTS}},
        })
    return {'cell': model.cell_name, 'num_layers': model.num_layers, 'num_hiddens': model.num_hiddens,
            'activation': model.activation, 'batch_size': int(np.shape(X)[0]), 'num_steps': int(T),
            'loss': full.loss, 'jacobian': how, 'training_pass': dropout_rng is not None,
            'regularisers': {k: v for k, v in model.config().items() if k in REGULARISATION and v},
            'layers': layers}


def probe_batch(*, checkpoints=None, data=None, batch_size=32, num_steps=35, dtype='float64',
                device='cpu', seed=0, model_options=None):
    """What `cli.py probe` measures: (label, model, X, Y) for each checkpoint, or one fresh model.

    A checkpoint's model is converted to `dtype`, and its batch is cut from its own training
    text (or `data`) with its own preprocessing and vocabulary; a fresh model
    (RNNLM(**model_options), the reference cells unless model_options say impl='fast': the
    book's equations, whose per-step gradients the fast paths equal) reads `data` (default
    timemachine). The batch is B rows of T tokens from a seeded position in each of B equal
    parts of the text.
    """
    from . import text
    from .run import checkpoint
    from .model import RNNLM
    checks.integer('batch_size', batch_size)
    checks.integer('num_steps', num_steps)
    rng = make_rng(seed)
    if checkpoints:
        for path in checkpoints:
            ckpt = checkpoint.load(path, device=device)
            preprocess, token = checkpoint.text_options(ckpt)
            source = data or ckpt.meta['train']['data']
            corpus = text.encode_corpus(source, ckpt.vocab, preprocess=preprocess, token=token)
            X, Y = _batch(corpus, batch_size, num_steps, rng)
            yield str(path), ckpt.model.converted(dtype=dtype), X, Y
        return
    corpus, vocab = text.load_corpus(data or 'timemachine')
    model = RNNLM(len(vocab), dtype=dtype, device=device, seed=seed,
                  **{'impl': 'reference', **(model_options or {})})
    X, Y = _batch(corpus, batch_size, num_steps, rng)
    init = f'sigma={model.sigma:g}' if model.init == 'normal' else f'{model.init} init'
    layers = f' x{model.num_layers}' if model.num_layers > 1 else ''
    yield f'{model.cell_name}{layers} H={model.num_hiddens} {init}', model, X, Y


def _batch(corpus, batch_size, num_steps, rng):
    """(X, Y) (B, T): row b starts at a random offset inside the b-th of B equal parts of the text."""
    from .errors import DataError
    part = (len(corpus) - 1) // batch_size
    if part < num_steps:
        raise DataError(f'the text has {len(corpus)} tokens, too few for {batch_size} rows of '
                        f'{num_steps} steps; use a smaller --batch-size or --num-steps')
    starts = np.arange(batch_size) * part + rng.integers(0, part - num_steps + 1, batch_size)
    idx = starts[:, None] + np.arange(num_steps)
    return corpus[idx], corpus[idx + 1]
