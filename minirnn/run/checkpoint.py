"""Checkpoints: one .npz file holding everything needed to resume training or to generate.

Arrays go under `param/<name>` and `optim/<name>/<slot>`; a `meta` entry holds one JSON string
(format, version, model settings, vocabulary, optimizer steps, and whatever the trainer adds).
Nothing is pickled, the file is replaced atomically, and `load` checks every entry before it
builds a model. How to train, resume or generate is left to train.py and generate.py.
"""
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..backend import device_name, get_xp, to_numpy
from ..errors import CheckpointError, ConfigError, DataError
from ..files import atomic_write
from ..model import RNNLM
from ..optim import ema_average
from ..text import PREPROCESS_MODES, TOKEN_KINDS, Vocab

FORMAT = 'minirnn-checkpoint'
# 1: the vanilla one-layer model, a carried state saved as one nested list (B, H)
# 2: cell, num_layers and dropout in the model settings; a carried state saved as the list of
#    its arrays (tree.leaves), so an LSTM's (H, C) or a deep stack's states fit. Version 1
#    files load unchanged: their settings mean the one-layer vanilla cell (see _migrate).
# 3: the trainer's settings may hold a learning-rate schedule, weight decay and min_freq, and
#    its position the divergence bound and an epoch's evaluations: a minirnn that knew only
#    version 2 would resume such a run without them, so it must refuse it. Version 2 files
#    load unchanged (a constant rate, no decay, the bound of uniform guessing).
# 4: the model settings hold the regularisers (dropout_input, dropout_output, dropout_hidden,
#    weight_drop, zoneout, zoneout_cell, ar, tar), which a minirnn that knew only version 3
#    could not build. Version 3 files load unchanged: their settings mean none of them.
VERSION = 4
_OWN_KEYS = ('format', 'version', 'model', 'vocab', 'optim_steps')


class Contents(NamedTuple):
    arrays: dict             # entry name -> host array, the meta entry removed
    meta: dict               # checked format and version, migrated to the current version


class Checkpoint(NamedTuple):
    model: RNNLM             # rebuilt from meta['model'], parameters loaded, on the requested device
    vocab: Vocab
    optimizer_state: dict    # for Optimizer.load_state_dict, or None when none was saved
    meta: dict               # the whole metadata: our keys plus the trainer's


def save(path, model, vocab, *, optimizer_state=None, meta=None):
    """Write model parameters, vocabulary, optimizer state and `meta` to one .npz file, atomically.

    Args: path (written as given; no '.npz' is appended); model, an RNNLM; vocab, its Vocab;
    optimizer_state, Optimizer.state_dict() output or None; meta, a JSON-serialisable dict
    merged into the stored metadata (it may not use the keys format, version, model, vocab,
    optim_steps).
    """
    meta = dict(meta or {})
    clash = [k for k in _OWN_KEYS if k in meta]
    if clash:
        raise CheckpointError(f'meta may not set {", ".join(clash)}: the checkpoint writes those itself')
    meta.update(format=FORMAT, version=VERSION, model=model.config(), vocab=vocab.to_dict(),
                optim_steps=None if optimizer_state is None else int(optimizer_state['steps']))
    try:
        header = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f'checkpoint metadata is not JSON-serialisable: {exc}') from None

    arrays = {f'param/{name}': to_numpy(p) for name, p in model.params.items()}
    if optimizer_state is not None:
        for name, slots in optimizer_state['slots'].items():
            for slot, a in slots.items():
                arrays[f'optim/{name}/{slot}'] = to_numpy(a)
    arrays['meta'] = np.array(header)   # a 0-d unicode array: readable with allow_pickle=False
    try:
        with atomic_write(path) as f:
            np.savez(f, **arrays)   # to an open file: given a name, savez would append '.npz'
    except OSError as exc:
        raise CheckpointError(f'cannot write checkpoint {path}: {exc.strerror or exc}') from None


def read(path):
    """The checked entries of a checkpoint file, on the host, without building a model.

    Returns: Contents(arrays, meta), meta migrated to the current format version.
    Raises: CheckpointError for a missing, truncated, foreign or newer file.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    meta = _migrate(_read_meta(path, arrays.pop('meta', None)))
    return Contents(arrays, meta)


def load(path, device='cpu', *, contents=None, averaged=False):
    """Read a checkpoint written by `save`, check it, and rebuild the model on `device`.

    Args: path of the .npz file; device 'cpu', 'gpu' or 'auto'; contents: what read(path)
    returned already (so a caller that looked at the metadata does not read the file twice);
    averaged: when the run kept a moving average of its weights (train --ema, stored as the
    optimizer's 'avg' slots), the model gets that average, the weights validation measured
    (eval and generate); otherwise, and always for --resume, the training weights.
    Returns: Checkpoint(model, vocab, optimizer_state, meta). The model has the saved dtype.
    Raises: CheckpointError for a missing, truncated, foreign, newer or inconsistent file.
    """
    path = Path(path)
    xp = get_xp(device)   # a missing GPU is a ConfigError, not a problem with the file
    arrays, meta = read(path) if contents is None else contents
    arrays = dict(arrays)

    try:
        model = RNNLM(**meta['model'], device=device_name(xp), seed=0)
    except (TypeError, KeyError, ConfigError) as exc:
        raise CheckpointError(f'{path}: the stored model settings are invalid ({exc}); '
                              'the file is damaged or was not written by minirnn') from None
    try:
        vocab = Vocab.from_dict(meta['vocab'])
        train = meta.get('train')
        if vocab.text_options is None and isinstance(train, dict) and train.get('preprocess') in PREPROCESS_MODES \
                and train.get('token') in TOKEN_KINDS:      # older files: from the training settings
            vocab.text_options = {'preprocess': train['preprocess'], 'token': train['token'],
                                  'encoding': str(train.get('encoding') or 'utf-8')}
    except (KeyError, DataError) as exc:
        raise CheckpointError(f'{path}: {exc}; the file is damaged') from None
    if len(vocab) != model.vocab_size:
        raise CheckpointError(f'{path}: the vocabulary has {len(vocab)} tokens but the model was '
                              f'built for {model.vocab_size}; the file is damaged')

    # parameters: exactly the names and shapes the settings imply
    stored = {k[len('param/'):]: a for k, a in arrays.items() if k.startswith('param/')}
    _check_names(path, 'parameters', set(stored), set(model.params))
    for name, p in model.params.items():
        a = stored[name]
        if a.shape != p.shape or not np.issubdtype(a.dtype, np.floating):
            raise CheckpointError(f'{path}: parameter {name} is {a.dtype} {a.shape}, but the model '
                                  f'settings imply {p.dtype} {p.shape}; the file is damaged')
        p[...] = xp.asarray(a)   # copied into the freshly built array, so its dtype is kept

    optimizer_state = _optimizer_state(path, arrays, meta, model)
    if averaged:
        _use_average(path, model, optimizer_state, meta)
    unknown = sorted(k for k in arrays if not k.startswith(('param/', 'optim/')))
    if unknown:
        raise CheckpointError(f'{path}: unexpected entries {", ".join(unknown[:5])}; '
                              'not a minirnn checkpoint of this version')
    return Checkpoint(model, vocab, optimizer_state, meta)


def _use_average(path, model, optimizer_state, meta):
    """The model's parameters replaced by the run's moving average (Optimizer.averaged_params)."""
    ema = (meta.get('train') or {}).get('ema')
    if not ema or optimizer_state is None or not optimizer_state['steps']:
        return
    average = ema_average(optimizer_state['slots'], ema, optimizer_state['steps'])
    if set(average) != set(model.params):
        raise CheckpointError(f'{path}: the run kept a moving average (ema {ema}) but not of every '
                              'parameter; the file is damaged')
    for name, p in model.params.items():
        p[...] = model.xp.asarray(average[name])


def _read_arrays(path):
    """All entries of the .npz as host arrays; CheckpointError for anything that is not one."""
    if not path.exists():
        raise CheckpointError(f'{path}: no such checkpoint; pass the model.npz that '
                              '`train --out DIR` wrote')
    if path.is_dir():
        hint = f'; did you mean {path / "model.npz"}?' if (path / 'model.npz').is_file() else ''
        raise CheckpointError(f'{path} is a directory, not a checkpoint file{hint}')
    # a truncated copy loses the zip directory at the end of the file, so this catches it too
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f'{path} is not a minirnn checkpoint: not an .npz archive '
                              '(a truncated copy, or another kind of file)')
    arrays, key = {}, None
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                arrays[key] = npz[key]
    except ValueError as exc:
        if 'pickle' in str(exc):
            raise CheckpointError(f'{path}: entry {key!r} is a pickled Python object; minirnn '
                                  'checkpoints hold only plain arrays and never unpickle, so it '
                                  'was not written by minirnn') from None
        raise CheckpointError(f'{path}: entry {key!r} is not a readable array ({exc}); '
                              'the file is damaged') from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f'{path}: cannot read the archive ({exc}); the file is damaged') from None
    return arrays


def _read_meta(path, entry):
    """The metadata dict, after checking format and version."""
    if entry is None:
        raise CheckpointError(f'{path} is an .npz archive but not a minirnn checkpoint (no meta entry)')
    try:
        meta = json.loads(str(entry[()]))
    except (ValueError, TypeError, IndexError):
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f'{path}: the meta entry is not a JSON object; the file is damaged')
    if meta.get('format') != FORMAT:
        raise CheckpointError(f'{path} is not a minirnn checkpoint (format {meta.get("format")!r})')
    version = meta.get('version')
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f'{path}: bad format version {version!r}; the file is damaged')
    if version > VERSION:
        raise CheckpointError(f'{path} was written by a newer minirnn (format version {version}; '
                              f'this one reads up to {VERSION}); upgrade minirnn to load it')
    return meta


def _migrate(meta):
    """The metadata of an older format version, brought to the current one."""
    if meta['version'] == 1:
        progress = meta.get('position', {}).get('progress', {})
        if progress.get('state') is not None:       # one (B, H) array -> the list of its arrays
            progress['state'] = [progress['state']]
        meta['version'] = 2
    if meta['version'] == 2:        # nothing moved: version 3 only added optional settings
        meta['version'] = 3
    if meta['version'] == 3:        # nothing moved: version 4 only added optional model settings
        meta['version'] = 4
    return meta


def _check_names(path, what, found, expected):
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing or extra:
        parts = ([f'missing {", ".join(missing)}'] if missing else []) + \
                ([f'unexpected {", ".join(extra)}'] if extra else [])
        raise CheckpointError(f'{path}: {what} do not match the model settings '
                              f'({"; ".join(parts)}); the file is damaged')


def _optimizer_state(path, arrays, meta, model):
    """{'steps', 'slots'} from the optim/<name>/<slot> entries, or None when none were saved.

    Optimizers without slots (SGD) store no arrays; their empty per-parameter dicts are not
    kept, and the optimizer recreates them on its first step.
    """
    steps = meta.get('optim_steps')
    keys = [k for k in arrays if k.startswith('optim/')]
    if steps is None:
        if keys:
            raise CheckpointError(f'{path}: optimizer arrays without optim_steps; the file is damaged')
        return None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise CheckpointError(f'{path}: bad optim_steps {steps!r}; the file is damaged')
    slots = {}
    for key in keys:
        parts = key.split('/')
        if len(parts) != 3 or parts[1] not in model.params \
                or arrays[key].shape != model.params[parts[1]].shape:
            raise CheckpointError(f'{path}: optimizer entry {key} {arrays[key].shape} does not match '
                                  'any parameter; the file is damaged')
        slots.setdefault(parts[1], {})[parts[2]] = arrays[key]
    return {'steps': steps, 'slots': slots}


def text_options(ckpt):
    """(preprocess, token): how the model's training text was prepared, from the trainer's meta.

    Generation and evaluation must prepare new text the same way. CheckpointError when the
    checkpoint was saved without training settings (not by `minirnn train`).
    """
    train = ckpt.meta.get('train')
    if not (isinstance(train, dict) and train.get('preprocess') in PREPROCESS_MODES
            and train.get('token') in TOKEN_KINDS):
        raise CheckpointError('the checkpoint does not record how its text was preprocessed '
                              '(no training settings); it was not written by `minirnn train`')
    return train['preprocess'], train['token']
