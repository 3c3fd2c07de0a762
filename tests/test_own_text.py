"""A text of one's own: the defaults `train --data FILE` starts from, what it says it used, and
what a run keeps so it can be resumed, restarted or continued from anywhere."""
import json
import os
from pathlib import Path

import pytest

from minirnn import cli
from minirnn.errors import ConfigError
from minirnn.run import checkpoint, fit
from minirnn.run.config import TrainConfig, make_config, preset_for
from minirnn.run.rundir import RunDir
from minirnn.text import load_text, strip_gutenberg

pytestmark = pytest.mark.usefixtures('books')


def run(capsys, *argv):
    code = cli.main(list(argv), prog='minirnn')
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def my_text(tmp_path, data_dir):
    """A text of one's own: 40,000 characters of Sherlock Holmes, capitals, digits and newlines kept."""
    path = tmp_path / 'my.txt'
    path.write_text(strip_gutenberg((data_dir / 'sherlock_holmes.txt').read_text())[:40000])
    return path


TINY = ['--num-hiddens', '16', '--num-layers', '1', '--embed-dim', '4', '--num-epochs', '1', '--batch-size', '16',
        '--num-steps', '16', '--num-preds', '5', '--quiet']


def test_a_file_of_ones_own_trains_on_all_of_it_raw_with_a_validation_split(capsys, tmp_path, my_text):
    code, out, err = run(capsys, 'train', '--data', str(my_text), '--out', str(tmp_path / 'r'), *TINY[:-1])
    assert code == 0, err
    saved = checkpoint.load(tmp_path / 'r' / 'model.npz')
    train = saved.meta['train']
    assert (train['preprocess'], train['max_tokens'], train['val_fraction']) == ('raw', None, 0.05)
    assert 'own-text' in err
    assert 'A' in saved.vocab.token_to_idx and '\n' in saved.vocab.token_to_idx   # capitals, newlines kept
    assert (tmp_path / 'r' / 'best.npz').exists()
    # the sample continues the text's own start, not the book's "time traveller"
    first_line = my_text.read_text().split('\n')[0]
    assert out.splitlines()[1].startswith('greedy: ' + first_line[:24])


def test_the_books_keep_the_books_settings():
    assert preset_for('timemachine') == 'd2l-v1' and preset_for(None) == 'd2l-v1'
    assert preset_for('/some/file.txt') == 'own-text' and preset_for('/some/file.txt', 'tm-rnn') == 'tm-rnn'
    assert make_config().preprocess == 'letters' and make_config().max_tokens == 10000


def test_the_run_says_what_the_text_gave_and_what_preprocessing_dropped(capsys, tmp_path, small):
    fit(TrainConfig(**small), tmp_path / 'r')
    err = capsys.readouterr().err
    assert 'the first 3,000 of 173,428 char tokens' in err
    assert "made spaces of" in err and "'\\n'" in err and "','" in err
    _, _, summary = load_text('timemachine', preprocess='raw')
    assert summary.dropped == 0 and summary.used_tokens == summary.total_tokens


def test_a_file_joining_several_gutenberg_books_keeps_every_books_body(data_dir, tmp_path):
    books = [(data_dir / name).read_text() for name in ('war_of_the_worlds.txt', 'sherlock_holmes.txt')]
    joined = strip_gutenberg(books[0] + '\n' + books[1] + '\n' + books[0])
    bodies = [strip_gutenberg(b) for b in books]
    assert joined == '\n\n'.join([bodies[0], bodies[1], bodies[0]])
    assert 'PROJECT GUTENBERG' not in joined.upper().replace('PROJECT GUTENBERG-TM', '')[:2000]


def test_the_data_path_is_stored_absolute_and_resume_works_from_elsewhere(capsys, tmp_path, my_text, monkeypatch):
    monkeypatch.chdir(my_text.parent)
    code, _, err = run(capsys, 'train', '--data', 'my.txt', '--out', 'r', *TINY)
    assert code == 0, err
    assert checkpoint.load(tmp_path / 'r' / 'model.npz').meta['train']['data'] == str(my_text)
    monkeypatch.chdir(tmp_path.parent)
    code, _, err = run(capsys, 'train', '--resume', '--out', str(tmp_path / 'r'), '--num-epochs', '2', '--quiet')
    assert code == 0, err


def test_resume_takes_the_text_at_a_new_path_when_it_is_the_same_file(capsys, tmp_path, my_text):
    code, _, err = run(capsys, 'train', '--data', str(my_text), '--out', str(tmp_path / 'r'), *TINY)
    assert code == 0, err
    moved = tmp_path / 'moved.txt'
    os.rename(my_text, moved)
    code, _, err = run(capsys, 'train', '--resume', '--out', str(tmp_path / 'r'), '--num-epochs', '2', '--quiet')
    assert code == 1 and 'no such file' in err
    code, _, err = run(capsys, 'train', '--resume', '--out', str(tmp_path / 'r'), '--num-epochs', '2', '--quiet',
                       '--data', str(moved))
    assert code == 0, err
    moved.write_text(moved.read_text()[:-10])           # another text: refused
    code, _, err = run(capsys, 'train', '--resume', '--out', str(tmp_path / 'r'), '--num-epochs', '3', '--quiet',
                       '--data', str(moved))
    assert code == 1 and 'has changed since the run trained on it' in err


def test_resuming_a_finished_run_says_what_num_epochs_means(capsys, tmp_path, small):
    fit(TrainConfig(**small), tmp_path / 'r', quiet=True)
    code, _, err = run(capsys, 'train', '--resume', '--out', str(tmp_path / 'r'), '--quiet')
    assert code == 1 and 'finished its 2 epochs' in err and '--num-epochs 12' in err


def test_ctrl_c_says_the_exact_command_that_continues(capsys, tmp_path, small, ctrl_c_after):
    ctrl_c_after(3)
    code, _, err = run(capsys, 'train', '--max-tokens', '3000', '--num-hiddens', '16', '--num-epochs', '2',
                       '--out', str(tmp_path / 'my run'), '--num-preds', '0')
    assert code == 130
    assert f"continue with: minirnn train --resume --out '{tmp_path / 'my run'}'" in err


def test_a_divergence_gives_the_command_that_starts_again_and_its_directory_does_not_block(capsys, tmp_path):
    argv = ['train', '--max-tokens', '2000', '--num-hiddens', '16', '--lr', '500', '--clip', '0',
            '--num-epochs', '2', '--num-preds', '0', '--quiet', '--out', str(tmp_path / 'r')]
    code, _, err = run(capsys, *argv)
    assert code == 3
    restart = err.split('To start again: minirnn ')[1].split()
    assert restart[restart.index('--lr') + 1] == '250' and restart[restart.index('--clip') + 1] == '1'
    assert restart.count('--clip') == 1
    rows = [json.loads(line) for line in (tmp_path / 'r' / 'history.jsonl').read_text().splitlines()]
    if all(r.get('diverged') for r in rows):       # it diverged in epoch 1: nothing saved, nothing blocks
        assert '--overwrite' not in restart
        code, _, err = run(capsys, *restart)
        assert code == 0, err


def test_a_second_process_on_the_same_directory_is_refused_naming_the_first(tmp_path):
    first = RunDir(tmp_path / 'r')
    first.open()
    try:
        with pytest.raises(ConfigError, match=f'process {os.getpid()} is training into it'):
            RunDir(tmp_path / 'r').open()
    finally:
        first.close()
    assert not (tmp_path / 'r' / '.lock').exists()
    second = RunDir(tmp_path / 'r')
    second.open()                                   # free again once the first has ended
    second.close()


def test_without_out_a_run_goes_to_the_first_free_runs_v(capsys, tmp_path, monkeypatch):
    """The README's quick start writes runs/v1, the next run runs/v2: nothing is overwritten."""
    monkeypatch.chdir(tmp_path)
    argv = ['train', '--max-tokens', '2000', '--num-hiddens', '8', '--num-epochs', '1', '--num-preds', '0', '--quiet']
    for n in (1, 2):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert f'saved {Path("runs") / f"v{n}" / "model.npz"}' in out


def test_a_checkpoints_text_options_travel_into_predict_and_eval(capsys, tmp_path, my_text):
    """A raw-trained model's prefix keeps its capitals in Python too, and eval reads a text the
    way the model's own was read (its encoding included)."""
    from minirnn import predict
    code, _, err = run(capsys, 'train', '--data', str(my_text), '--out', str(tmp_path / 'r'), *TINY)
    assert code == 0, err
    ckpt = checkpoint.load(tmp_path / 'r' / 'model.npz')
    assert ckpt.vocab.text_options == {'preprocess': 'raw', 'token': 'char', 'encoding': 'utf-8'}
    assert predict(ckpt.model, ckpt.vocab, 'The PSF', 5).startswith('The PSF')
    latin = tmp_path / 'latin.txt'
    latin.write_bytes(('Café au lait. Naïve. ' * 20).encode('latin-1'))
    code, _, err = run(capsys, 'train', '--data', str(latin), '--encoding', 'latin-1', '--out', str(tmp_path / 'l'),
                       '--num-hiddens', '8', '--num-layers', '1', '--embed-dim', '4', '--num-epochs', '1',
                       '--batch-size', '2', '--num-steps', '4', '--num-preds', '2',
                       '--quiet')
    assert code == 0, err
    code, out, err = run(capsys, 'eval', '--checkpoint', str(tmp_path / 'l' / 'model.npz'), '--data', str(latin))
    assert code == 0, err                         # read as latin-1, as the model's text was
    assert json.loads(out)['unknown_fraction'] == 0
