"""Checkpoints: exact round trips, atomic replacement, and a clear CheckpointError for every bad file."""
import json
import os
import zipfile

import numpy as np
import pytest

from minirnn.run import checkpoint
from minirnn.backend import device_name, to_numpy
from minirnn.errors import CheckpointError
from minirnn.model import RNNLM
from minirnn.optim import Adam, SGD
from minirnn.text import Vocab

TEXT = 'the time traveller for so it will be convenient to speak of him '


def make(xp=np, **kwargs):
    vocab = Vocab(TEXT)
    model = RNNLM(len(vocab), 8, device=device_name(xp), seed=1, sigma=0.3, **kwargs)
    return model, vocab


def batch(vocab, B=2, T=5):
    ids = np.array(vocab[list(TEXT)])
    return ids[:B * T].reshape(B, T), ids[1:B * T + 1].reshape(B, T)


def trained_adam(model, vocab, steps=2):
    X, Y = batch(vocab)
    opt = Adam(lr=0.01)
    for _ in range(steps):
        _, grads, _ = model.loss_and_grads(X, Y)
        opt.step(model.params, grads)
    return opt


@pytest.fixture
def saved(tmp_path):
    """A real checkpoint on disk (with Adam state and trainer meta) and its path."""
    model, vocab = make()
    opt = trained_adam(model, vocab)
    path = tmp_path / 'model.npz'
    checkpoint.save(path, model, vocab, optimizer_state=opt.state_dict(), meta={'epoch': 3})
    return path


# --- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs', [{}, {'embed_dim': 4}, {'dtype': 'float64', 'activation': 'relu'},
                                    {'embed_dim': 4, 'init': 'uniform'}],
                         ids=['one-hot', 'embedding', 'float64-relu', 'uniform-init'])
def test_a_loaded_model_computes_exactly_what_the_saved_one_did(xp, tmp_path, kwargs):
    model, vocab = make(xp, **kwargs)
    trained_adam(model, vocab)          # parameters away from their initial values
    path = tmp_path / 'm.npz'
    checkpoint.save(path, model, vocab)
    ck = checkpoint.load(path, device=device_name(xp))

    assert ck.model.config() == model.config()
    assert set(ck.model.params) == set(model.params)
    for name, p in model.params.items():
        q = ck.model.params[name]
        assert type(q) is xp.ndarray and q.dtype == p.dtype
        np.testing.assert_array_equal(to_numpy(q), to_numpy(p))
    X, Y = batch(vocab)
    h0 = model.begin_state(2) + 0.1
    np.testing.assert_array_equal(to_numpy(ck.model.forward(X, h0)[0]), to_numpy(model.forward(X, h0)[0]))
    assert ck.model.loss(X, Y, h0)[0] == model.loss(X, Y, h0)[0]
    assert ck.vocab.idx_to_token == vocab.idx_to_token
    assert ck.vocab.token_freqs == vocab.token_freqs
    assert ck.optimizer_state is None


def test_optimizer_state_and_meta_round_trip(tmp_path):
    model, vocab = make()
    opt = trained_adam(model, vocab, steps=3)
    meta = {'train': {'lr': 0.01, 'num_steps': 5}, 'epoch': 7, 'history': [{'epoch': 1, 'val_ppl': None}],
            'rng': {'bit_generator': 'PCG64', 'state': {'state': 2 ** 100, 'inc': 5}}}
    path = tmp_path / 'm.npz'
    checkpoint.save(path, model, vocab, optimizer_state=opt.state_dict(), meta=meta)
    ck = checkpoint.load(path)

    for key, value in meta.items():
        assert ck.meta[key] == value
    assert ck.meta['format'] == 'minirnn-checkpoint' and ck.meta['version'] == checkpoint.VERSION
    assert ck.meta['model'] == model.config() and ck.meta['optim_steps'] == 3
    state = opt.state_dict()
    assert ck.optimizer_state['steps'] == 3
    assert {n: set(s) for n, s in ck.optimizer_state['slots'].items()} == \
        {n: set(s) for n, s in state['slots'].items()}
    for name, slots in state['slots'].items():
        for slot, a in slots.items():
            np.testing.assert_array_equal(ck.optimizer_state['slots'][name][slot], a)

    # a resumed optimizer takes the same next step as one that never stopped
    resumed = Adam(lr=0.01)
    resumed.load_state_dict(ck.optimizer_state, np)
    X, Y = batch(vocab)
    _, grads, _ = model.loss_and_grads(X, Y)
    opt.step(model.params, grads)
    _, grads, _ = ck.model.loss_and_grads(X, Y)
    resumed.step(ck.model.params, grads)
    for name in model.params:
        np.testing.assert_array_equal(ck.model.params[name], model.params[name])


def test_sgd_state_without_slots_keeps_its_step_count(tmp_path):
    model, vocab = make()
    opt = SGD(lr=0.1)
    X, Y = batch(vocab)
    opt.step(model.params, model.loss_and_grads(X, Y)[1])
    checkpoint.save(tmp_path / 'm.npz', model, vocab, optimizer_state=opt.state_dict())
    assert checkpoint.load(tmp_path / 'm.npz').optimizer_state == {'steps': 1, 'slots': {}}


def test_the_file_holds_plain_arrays_and_a_json_meta(saved):
    with np.load(saved, allow_pickle=False) as npz:
        assert 'param/W_hh' in npz.files and 'optim/W_hh/m' in npz.files and 'optim/b_q/v' in npz.files
        meta = json.loads(str(npz['meta']))
    assert meta['epoch'] == 3 and meta['vocab']['idx_to_token'][0] == '<unk>'


def test_save_writes_the_path_as_given(tmp_path):
    model, vocab = make()
    checkpoint.save(tmp_path / 'weights.ckpt', model, vocab)
    assert os.listdir(tmp_path) == ['weights.ckpt']      # no '.npz' appended, no temp file left
    assert checkpoint.load(tmp_path / 'weights.ckpt').model.config() == model.config()


# --- atomic save -------------------------------------------------------------------------------

def test_a_failed_save_leaves_the_old_checkpoint_intact(saved, monkeypatch):
    before = saved.read_bytes()
    model, vocab = make()

    def savez_then_fail(f, **arrays):
        f.write(b'PK\x03\x04 half a zip')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(checkpoint.np, 'savez', savez_then_fail)
    with pytest.raises(CheckpointError, match='No space left'):
        checkpoint.save(saved, model, vocab)
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == ['model.npz']
    monkeypatch.undo()
    assert checkpoint.load(saved).meta['epoch'] == 3


def test_an_interrupted_save_leaves_no_temp_file(saved, monkeypatch):
    before = saved.read_bytes()
    model, vocab = make()

    def interrupted(f, **arrays):
        f.write(b'PK')
        raise KeyboardInterrupt
    monkeypatch.setattr(checkpoint.np, 'savez', interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(saved, model, vocab)
    assert saved.read_bytes() == before and os.listdir(saved.parent) == ['model.npz']


def test_meta_that_is_not_json_is_refused_before_anything_is_written(saved):
    before = saved.read_bytes()
    model, vocab = make()
    with pytest.raises(CheckpointError, match='JSON'):
        checkpoint.save(saved, model, vocab, meta={'rng': np.random.default_rng(0)})
    assert saved.read_bytes() == before and os.listdir(saved.parent) == ['model.npz']


def test_meta_may_not_overwrite_the_checkpoints_own_keys(tmp_path):
    model, vocab = make()
    with pytest.raises(CheckpointError, match='version'):
        checkpoint.save(tmp_path / 'm.npz', model, vocab, meta={'version': 99})


def test_saving_into_a_missing_folder_is_a_checkpoint_error(tmp_path):
    model, vocab = make()
    with pytest.raises(CheckpointError, match='cannot write'):
        checkpoint.save(tmp_path / 'nope' / 'm.npz', model, vocab)


# --- bad files ---------------------------------------------------------------------------------

def rewrite(path, change):
    """Rewrite a checkpoint's entries through change(arrays, meta) -> arrays, bypassing save()."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop('meta')))
    arrays = change(arrays, meta)
    arrays['meta'] = np.array(json.dumps(meta))
    with open(path, 'wb') as f:
        np.savez(f, **arrays)


def test_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match='no such checkpoint'):
        checkpoint.load(tmp_path / 'absent.npz')


def test_a_directory(saved):
    with pytest.raises(CheckpointError, match='directory.*did you mean .*model.npz'):
        checkpoint.load(saved.parent)


@pytest.mark.parametrize('content', [b'', b'hello, this is text\n', b'\x93NUMPY\x01\x00junk'])
def test_a_file_that_is_not_an_npz(tmp_path, content):
    path = tmp_path / 'm.npz'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='not an .npz archive'):
        checkpoint.load(path)


@pytest.mark.parametrize('fraction', [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_a_truncated_copy(saved, fraction):
    data = saved.read_bytes()
    saved.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match='not an .npz archive'):
        checkpoint.load(saved)


def test_a_foreign_npz_without_meta(tmp_path):
    path = tmp_path / 'm.npz'
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match='not a minirnn checkpoint.*no meta'):
        checkpoint.load(path)


def test_a_pickled_object_array_is_never_unpickled(saved):
    rewrite(saved, lambda arrays, meta: {**arrays, 'param/W_hh': np.array([{'x': 1}], dtype=object)})
    with pytest.raises(CheckpointError, match='pickled'):
        checkpoint.load(saved)


def test_meta_that_is_not_json(saved):
    with np.load(saved, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays['meta'] = np.array('{not json')
    with open(saved, 'wb') as f:
        np.savez(f, **arrays)
    with pytest.raises(CheckpointError, match='meta entry is not a JSON object'):
        checkpoint.load(saved)


@pytest.mark.parametrize('key, value, match', [
    ('format', 'something-else', 'not a minirnn checkpoint'),
    ('version', checkpoint.VERSION + 1, 'written by a newer minirnn'),
    ('version', 'one', 'bad format version'),
    ('model', {'vocab_size': 3}, 'model settings are invalid'),
    ('model', {'vocab_size': 3, 'num_hiddens': 8, 'activation': 'sigmoid'}, 'model settings are invalid'),
    ('vocab', {'idx_to_token': ['a', 'b']}, 'vocabulary'),
    ('optim_steps', -1, 'optim_steps'),
])
def test_bad_metadata(saved, key, value, match):
    def change(arrays, meta):
        meta[key] = value
        return arrays
    rewrite(saved, change)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(saved)


def test_a_vocabulary_of_the_wrong_size(saved):
    def change(arrays, meta):
        meta['vocab']['idx_to_token'].append('@')
        return arrays
    rewrite(saved, change)
    with pytest.raises(CheckpointError, match='vocabulary has .* tokens but the model was built for'):
        checkpoint.load(saved)


@pytest.mark.parametrize('change, match', [
    (lambda a: {k: v for k, v in a.items() if k != 'param/W_hh'}, 'missing W_hh'),
    (lambda a: {**a, 'param/W_extra': np.zeros(2, np.float32)}, 'unexpected W_extra'),
    (lambda a: {**a, 'param/W_hh': np.zeros((8, 9), np.float32)}, r'W_hh is float32 \(8, 9\).*imply float32 \(8, 8\)'),
    (lambda a: {**a, 'param/b_h': np.zeros(8, np.int64)}, 'b_h is int64'),
    (lambda a: {**a, 'optim/W_hh/m': np.zeros(3, np.float32)}, 'optimizer entry optim/W_hh/m'),
    (lambda a: {**a, 'optim/W_nope/m': np.zeros(3, np.float32)}, 'optimizer entry optim/W_nope/m'),
    (lambda a: {**a, 'extra': np.zeros(1)}, 'unexpected entries extra'),
], ids=['missing', 'extra', 'shape', 'dtype', 'slot-shape', 'slot-name', 'stray-entry'])
def test_parameters_that_do_not_match_the_settings(saved, change, match):
    rewrite(saved, lambda arrays, meta: change(arrays))
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(saved)


def test_a_damaged_member_inside_a_whole_zip(saved):
    # flip bytes inside the W_hh member: the zip directory is intact, its CRC is not
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo('param/W_hh.npy')
    data = bytearray(saved.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[start:start + 8] = b'\xff' * 8
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='damaged'):
        checkpoint.load(saved)


def test_a_version_1_checkpoint_loads_and_its_carried_state_is_migrated(saved):
    """Format 1 (before cells, layers and dropout) stored a carried state as one nested list."""
    state = [[0.5, -0.5, 0.25, 0.0, 1.0, 2.0, 3.0, 4.0]]       # (B=1, H=8)

    def as_version_1(arrays, meta):
        meta['version'] = 1
        for key in ('cell', 'num_layers', 'dropout'):
            del meta['model'][key]
        meta['position'] = {'epoch': 2, 'progress': {'batches': 3, 'state': state}}
        return arrays
    rewrite(saved, as_version_1)
    ck = checkpoint.load(saved)
    assert ck.meta['version'] == checkpoint.VERSION
    assert (ck.model.cell_name, ck.model.num_layers, ck.model.dropout) == ('rnn', 1, 0.0)
    assert ck.meta['position']['progress']['state'] == [state]


def test_a_checkpoint_from_before_the_init_setting_means_the_books_normal_init(saved):
    def without_init(arrays, meta):
        del meta['model']['init']
        return arrays
    rewrite(saved, without_init)
    assert checkpoint.load(saved).model.init == 'normal'


def test_a_version_2_run_resumes_with_the_settings_it_had(tmp_path, data_dir, monkeypatch):
    """Version 3 added optional training settings; a version 2 run means none of them."""
    from minirnn.run.config import TrainConfig
    from minirnn.run import fit
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    config = TrainConfig(max_tokens=2000, batch_size=4, num_steps=5, num_hiddens=8, num_epochs=1,
                         prefixes=())
    out = tmp_path / 'run'
    fit(config, out, quiet=True)

    def as_version_2(arrays, meta):
        meta['version'] = 2
        for key in ('lr_schedule', 'lr_decay', 'lr_decay_every', 'lr_decay_after', 'warmup_steps',
                    'weight_decay', 'early_stop', 'eval_every', 'sample_every', 'min_freq', 'init',
                    'bias_lr_mult'):
            del meta['train'][key]
        del meta['position']['loss_bound']
        return arrays
    rewrite(out / 'model.npz', as_version_2)
    assert checkpoint.load(out / 'model.npz').meta['version'] == checkpoint.VERSION
    result = fit(TrainConfig(**{**config.to_dict(), 'num_epochs': 2}), out, resume=True, quiet=True)
    assert [r['epoch'] for r in result.history] == [1, 2]
