"""The command line, in-process through cli.main: every subcommand, and every way to misuse it."""
import functools
import http.server
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from minirnn import cli
from minirnn.run import checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ['--max-tokens', '2000', '--batch-size', '8', '--num-steps', '10', '--num-hiddens', '24',
        '--sigma', '0.1', '--num-epochs', '3', '--quiet']


@pytest.fixture(autouse=True)
def _books(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv('MINIRNN_DATA_DIR', str(data_dir))
    monkeypatch.setenv('MINIRNN_DOWNLOAD_DIR', str(tmp_path / 'downloads'))
    monkeypatch.setenv('MINIRNN_MIRROR', 'http://127.0.0.1:9')   # never the network


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
    """One small model trained through the CLI, shared by the generate/eval tests."""
    out = tmp_path_factory.mktemp('run')
    mp = pytest.MonkeyPatch()
    mp.setenv('MINIRNN_DATA_DIR', str(data_dir))
    try:
        assert cli.main(['train', *TINY, '--out', str(out), '--prefix', 'time traveller',
                         '--num-preds', '10']) == 0
    finally:
        mp.undo()
    return out


def test_train_writes_the_run_directory_and_prints_results(trained):
    assert {p.name for p in trained.iterdir()} >= {'model.npz', 'history.jsonl', 'perplexity.png'}
    rows = [json.loads(line) for line in (trained / 'history.jsonl').read_text().splitlines()]
    assert [r['epoch'] for r in rows] == [1, 2, 3]
    assert rows[-1]['train_ppl'] < rows[0]['train_ppl']


def test_train_stdout_has_the_summary_a_greedy_and_a_seeded_sample_continuation(capsys, tmp_path):
    code, out, err = run(capsys, 'train', *TINY, '--num-epochs', '1', '--out', str(tmp_path / 'r'),
                         '--prefix', 'the time', '--num-preds', '5', '--seed', '4')
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith('epoch 1: train perplexity ')
    assert lines[1].startswith('greedy: the time') and len(lines[1]) == len('greedy: the time') + 5
    assert lines[2].startswith('sample: the time') and len(lines[2]) == len('sample: the time') + 5
    assert lines[-1] == f'saved {tmp_path / "r" / "model.npz"}' and len(lines) == 4
    assert 'Traceback' not in err
    # each is what generate prints for the saved model: greedy, and sampling with the run's seed
    ckpt = str(tmp_path / 'r' / 'model.npz')
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the time', '--num-preds', '5')[1] \
        == lines[1][len('greedy: '):] + '\n'
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the time', '--num-preds', '5',
               '--strategy', 'sample', '--seed', '4')[1] == lines[2][len('sample: '):] + '\n'


def test_a_prefix_the_vocabulary_lacks_is_read_as_unk_with_one_warning_after_training(capsys, tmp_path):
    code, out, err = run(capsys, 'train', *TINY, '--num-epochs', '1', '--out', str(tmp_path / 'r'),
                         '--token', 'word', '--prefix', 'zyzzyva quux', '--num-preds', '3')
    assert code == 0 and out.splitlines()[-1].startswith('saved ')
    greedy, sample = out.splitlines()[1:3]
    assert greedy.startswith('greedy: zyzzyva quux ') and sample.startswith('sample: zyzzyva quux ')
    assert err.count('minirnn: warning: ') == 1 and 'zyzzyva' in err and '<unk>' in err
    assert 'Traceback' not in err


@pytest.mark.parametrize('options', [
    ['--encoding', 'latin-1'], ['--token', 'word', '--batch-size', '4', '--num-steps', '5'],
    ['--preprocess', 'raw'], ['--activation', 'relu'], ['--embed-dim', '8'], ['--dtype', 'float64'],
    ['--optimizer', 'adagrad', '--lr', '0.1'], ['--optimizer', 'adam', '--lr', '0.01'],
    ['--device', 'auto'], ['--sampler', 'random'], ['--sampler', 'windows'], ['--clip', '0'],
    ['--val-fraction', '0.2'], ['--seed', '7'], ['--threads', '1'],
    ['--preset', 'd2l-v2', '--max-tokens', '3000', '--num-train-windows', '1500',
     '--num-val-windows', '500', '--num-hiddens', '8']],
    ids=lambda o: ' '.join(o[:2]))
def test_every_training_option_runs_end_to_end(capsys, tmp_path, options):
    code, out, err = run(capsys, 'train', *TINY, '--num-epochs', '1', '--num-preds', '0',
                         '--out', str(tmp_path / 'r'), *options)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / 'r' / 'history.jsonl').read_text().splitlines()]
    assert len(rows) == 1 and rows[0]['train_ppl'] is not None
    config = checkpoint.load(tmp_path / 'r' / 'model.npz').meta['train']
    flag_values = dict(zip(options[::2], options[1::2]))
    for flag, value in flag_values.items():
        key = flag[2:].replace('-', '_')
        if key in config and key not in ('max_tokens',):
            saved = config[key]
            assert (float(saved) == float(value)) if isinstance(saved, (int, float)) else saved == value, \
                (key, saved, value)


def test_resume_through_the_cli(capsys, tmp_path):
    out = str(tmp_path / 'r')
    assert run(capsys, 'train', *TINY, '--num-epochs', '1', '--out', out, '--num-preds', '0')[0] == 0
    code, stdout, _ = run(capsys, 'train', '--resume', '--out', out, '--num-epochs', '2', '--quiet')
    assert code == 0 and stdout.startswith('epoch 2:')
    code, _, err = run(capsys, 'train', '--resume', '--out', out, '--batch-size', '4')
    assert code == 1 and 'batch_size' in err and len(err.strip().splitlines()) == 1


def test_generate_greedy_and_sampled(capsys, trained):
    ckpt = str(trained / 'model.npz')
    code, out, _ = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'time traveller',
                       '--num-preds', '20')
    assert code == 0 and out.startswith('time traveller') and len(out.rstrip('\n')) == len('time traveller') + 20
    a = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--strategy', 'sample',
            '--temperature', '0.8', '--top-k', '5', '--seed', '3')
    b = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--strategy', 'sample',
            '--temperature', '0.8', '--top-k', '5', '--seed', '3')
    assert a == b and a[0] == 0


def test_eval_reports_perplexity_on_another_book(capsys, trained):
    """The book's exercise: a Time Machine model on The War of the Worlds."""
    code, out, _ = run(capsys, 'eval', '--checkpoint', str(trained / 'model.npz'),
                       '--data', 'war_of_the_worlds', '--max-tokens', '5000')
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and result['tokens'] == 5000
    assert 1 < result['perplexity'] < 28 and result['unknown_fraction'] == 0


def test_gradcheck_prints_its_table_and_passes(capsys):
    code, out, _ = run(capsys, 'gradcheck')
    assert code == 0
    lines = out.strip().splitlines()
    assert 'W_hh' in out and 'state' in out and 'W_hc' in out       # vanilla and gated cases
    assert all(line.split()[-1] == 'OK' for line in lines[1:-1])
    assert ' 0 FAIL, 0 INCONCLUSIVE' in lines[-1] and lines[-1].endswith('all gradients OK')


def test_gradcheck_on_a_model_the_user_describes(capsys):
    code, out, _ = run(capsys, 'gradcheck', '--cell', 'gru', '--num-layers', '2', '--dropout', '0.2',
                       '--num-hiddens', '4', '--vocab-size', '6', '--batch-size', '2', '--num-steps', '5',
                       '--sigma', '0.3', '--max-entries', '8', '--tolerance', '1e-5', '--step', '2e-5')
    lines = out.strip().splitlines()
    assert code == 0 and lines[1].startswith('gru x2, dropout 0.2, H=4, V=6, sigma=0.3, B=2, T=5')
    assert 'W_hh_l1' in out and '8/16' in out and '(tolerance 1e-05 x scale' in lines[-1]


def test_gradcheck_of_a_checkpoint_on_its_own_text(capsys, trained):
    code, out, _ = run(capsys, 'gradcheck', '--checkpoint', str(trained / 'model.npz'), '--batch-size', '2',
                       '--num-steps', '8', '--tensor', 'W_hh', '--tensor', 'state', '--max-entries', '20')
    lines = out.strip().splitlines()
    assert code == 0 and [line.split()[1] for line in lines[1:-1]] == ['W_hh', 'state']
    assert lines[1].startswith(str(trained / 'model.npz'))


def test_gradcheck_of_a_cell_alone(capsys):
    code, out, _ = run(capsys, 'gradcheck', '--level', 'cell', '--cell', 'lstm', '--num-hiddens', '3',
                       '--num-steps', '4')
    assert code == 0 and 'cell lstm' in out and ' X ' in out and 'W_xi' in out and 'fast' not in out
    code, out, _ = run(capsys, 'gradcheck', '--level', 'cell', '--cell', 'gru', '--num-hiddens', '3',
                       '--num-steps', '4', '--impl', 'fast')
    assert code == 0 and 'cell gru (fast)' in out and 'W_xz' in out


def test_gradcheck_inconclusive_passes_unless_strict(capsys):
    argv = ['gradcheck', '--sigma', '1e-5', '--num-steps', '10', '--num-hiddens', '8', '--vocab-size', '10',
            '--batch-size', '3', '--tensor', 'W_hh']
    code, out, _ = run(capsys, *argv)
    assert code == 0 and 'INCONCLUSIVE: the differences are at rounding level' in out
    assert out.strip().splitlines()[-1].startswith('0 OK, 0 FAIL, 1 INCONCLUSIVE')
    assert run(capsys, *argv, '--strict')[0] == 1


def test_gradcheck_exits_1_on_a_fail(capsys, monkeypatch):
    from minirnn.cells import rnn      # gradcheck checks the reference unless told otherwise
    real = rnn.backward

    def wrong(params, dHs, cache, dfinal_state=None, **options):
        grads, dXW, dstate = real(params, dHs, cache, dfinal_state, **options)
        return {**grads, 'b_h': grads['b_h'] * 0.98}, dXW, dstate
    monkeypatch.setattr(rnn, 'backward', wrong)
    code, out, _ = run(capsys, 'gradcheck', '--num-hiddens', '4', '--num-steps', '6', '--sigma', '0.3')
    assert code == 1 and 'FAIL: ' in out and 'gradients FAILED' in out


def test_gradcheck_step_sweep_prints_the_curve_and_writes_a_png(capsys, tmp_path):
    png = tmp_path / 'sweep.png'
    code, out, err = run(capsys, 'gradcheck', '--num-hiddens', '4', '--num-steps', '5', '--sigma', '0.1',
                         '--step-sweep', str(png))
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith('# |analytic - central difference|')
    assert lines[1].split()[:2] == ['step', 'h'] and len(lines) == 47
    errors = np.array([[float(v) for v in line.split()[1:]] for line in lines[2:]])
    assert errors[:, :-1].min() < 1e-8 < errors[:, :-1].max()      # the V of truncation and rounding
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and str(png) in err


def test_bench_ends_with_a_json_line(capsys):
    code, out, _ = run(capsys, 'bench', '--batch-size', '4', '--num-steps', '5', '--num-hiddens', '8',
                       '--iters', '2')
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and result['tokens_per_s'] > 0 and result['batch_size'] == 4


def test_download_from_a_local_mirror(capsys, data_dir, monkeypatch, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(data_dir))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv('MINIRNN_MIRROR', f'http://127.0.0.1:{server.server_port}')
        code, out, err = run(capsys, 'download', 'war_of_the_worlds')
    finally:
        server.shutdown()
        server.server_close()
    path = Path(out.strip())
    assert code == 0 and path.read_bytes() == (data_dir / 'war_of_the_worlds.txt').read_bytes()


# --- generate as char-rnn, torch-rnn and nanoGPT users expect it; eval that says when it cannot read ---

def handmade_checkpoint(path, text, preprocess='raw', token='char'):
    """An untrained model over the vocabulary of `text`, saved with the text options train records."""
    from minirnn import RNNLM
    from minirnn.text import Vocab, preprocess as prepare, tokenize
    vocab = Vocab(tokenize(prepare(text, preprocess), token))
    checkpoint.save(path, RNNLM(len(vocab), 8, sigma=0.5, seed=0), vocab,
                    meta={'train': {'preprocess': preprocess, 'token': token}})
    return str(path)


def test_generate_needs_no_prefix(capsys, trained, tmp_path):
    """char-rnn and torch-rnn sample without prime text; generate required --prefix."""
    ckpt = str(trained / 'model.npz')
    code, out, err = run(capsys, 'generate', '--checkpoint', ckpt, '--num-preds', '20', '--seed', '1')
    assert code == 0 and err == '' and len(out) == 21 + 1 and out[0] != ' '   # a drawn letter, then 20
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--num-preds', '20', '--seed', '1')[1] == out
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', '', '--num-preds', '20',
               '--seed', '1')[1] == out
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', out[0], '--num-preds', '20')[1] == out
    # a raw model starts after a newline, which is not printed
    raw = handmade_checkpoint(tmp_path / 'raw.npz', 'ab\nba\nc a\n')
    code, out, _ = run(capsys, 'generate', '--checkpoint', raw, '--num-preds', '12')
    assert code == 0 and '\n' + out == run(capsys, 'generate', '--checkpoint', raw, '--prefix', '\n',
                                            '--num-preds', '12')[1]


def test_generate_temperature_zero_is_greedy(capsys, trained):
    ckpt = str(trained / 'model.npz')
    greedy = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--num-preds', '30')
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--num-preds', '30',
               '--temperature', '0', '--seed', '2') == greedy and greedy[0] == 0


def test_generate_num_samples_each_seeded_by_seed_and_index(capsys, trained):
    ckpt = str(trained / 'model.npz')
    code, out, err = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--num-preds', '25',
                         '--num-samples', '3', '--seed', '5')
    lines = out.splitlines()
    assert code == 0 and err == '' and len(lines) == 6
    assert lines[0::2] == [f'--- sample {i + 1} of 3 (seed {5 + i}) ---' for i in range(3)]
    samples = lines[1::2]
    assert all(s.startswith('the') and len(s) == 28 for s in samples) and len(set(samples)) > 1
    for i, sample in enumerate(samples):      # each one alone: --strategy sample --seed 5 + i
        alone = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--num-preds', '25',
                    '--strategy', 'sample', '--seed', str(5 + i))[1]
        assert alone == sample + '\n'
    # without --seed the headers name fresh seeds, which repeat the samples
    out = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--num-samples', '2')[1]
    header, sample = out.splitlines()[2:4]
    seed = header.split('seed ')[1].rstrip(') -')
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--temperature', '1',
               '--seed', seed)[1] == sample + '\n'


def test_generate_reads_the_prefix_from_a_file_or_stdin(capsys, trained, tmp_path, monkeypatch):
    ckpt = str(trained / 'model.npz')
    expected = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the time', '--num-preds', '20')
    path = tmp_path / 'prefix.txt'
    path.write_text('the time\n')                            # an editor's final newline is dropped
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--prefix-file', str(path), '--num-preds', '20') \
        == expected
    monkeypatch.setattr('sys.stdin', io.TextIOWrapper(io.BytesIO(b'the time\n')))
    assert run(capsys, 'generate', '--checkpoint', ckpt, '--prefix-file', '-', '--num-preds', '20') == expected
    # bytes from Windows: named as cp1252, then read with --encoding
    path.write_bytes('the \u201ctime\u201d'.encode('cp1252'))
    code, out, err = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix-file', str(path))
    assert code == 1 and out == '' and len(err.strip().splitlines()) == 1 and '--encoding cp1252' in err
    code, out, _ = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix-file', str(path),
                       '--encoding', 'cp1252', '--num-preds', '20')
    assert code == 0 and out.startswith('the time ')       # letters: the quotes became spaces


def test_generate_from_an_empty_stdin_is_one_error_line(capsys, trained, monkeypatch):
    monkeypatch.setattr('sys.stdin', io.TextIOWrapper(io.BytesIO(b'')))
    code, out, err = run(capsys, 'generate', '--checkpoint', str(trained / 'model.npz'), '--prefix-file', '-')
    assert code == 1 and out == '' and len(err.strip().splitlines()) == 1
    assert err.startswith('minirnn: error: ') and 'stdin' in err and 'Traceback' not in err


def test_generate_reads_unknown_prefix_tokens_as_unk_with_one_warning(capsys, tmp_path):
    """generate refused a prefix that eval would have read with <unk>."""
    ckpt = handmade_checkpoint(tmp_path / 'raw.npz', 'abc ab ca\n')
    code, out, err = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'abZ', '--num-preds', '10',
                         '--num-samples', '2', '--seed', '0')
    assert code == 0 and [line for line in out.splitlines() if not line.startswith('---')][0].startswith('abZ')
    assert err.count('\n') == 1 and err.startswith("minirnn: warning: the prefix holds 1 token(s) the model "
                                                   "never saw: 'Z'; it reads them as <unk>")


def test_generate_beam_search_prints_the_text_and_its_log_probability(capsys, trained):
    from minirnn.generate import beam_search
    ckpt = str(trained / 'model.npz')
    code, out, err = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'time traveller',
                         '--num-preds', '20', '--strategy', 'beam', '--beam-size', '4')
    text, logprob_line = out.splitlines()
    loaded = checkpoint.load(ckpt, averaged=True)
    expected, logprob = beam_search(loaded.model, loaded.vocab, 'time traveller', 20, 4)
    assert code == 0 and err == '' and text == expected
    assert logprob_line == f'log-probability: {logprob:.4f} over 20 tokens (perplexity ' \
        f'{np.exp(-logprob / 20):.3f})'
    greedy = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'time traveller', '--num-preds', '20',
                 '--strategy', 'beam', '--beam-size', '1')[1].splitlines()[0]
    assert greedy == run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'time traveller',
                         '--num-preds', '20')[1].rstrip('\n')


def test_eval_warns_when_the_model_cannot_read_the_text(capsys, tmp_path):
    """eval reported perplexity 1881 with 82% unknown tokens and exit 0, without a word."""
    ckpt = handmade_checkpoint(tmp_path / 'words.npz', 'the time traveller for so it will be convenient',
                               preprocess='letters', token='word')
    code, out, err = run(capsys, 'eval', '--checkpoint', ckpt, '--data', 'timemachine', '--max-tokens', '2000')
    result = json.loads(out)
    assert code == 0 and result['unknown_fraction'] > 0.5
    assert len(err.strip().splitlines()) == 1 and err.startswith('minirnn: warning: ')
    assert f'{result["unknown_fraction"]:.0%} of the tokens are unknown' in err
    assert '--preprocess letters --token word' in err and '--encoding' in err
    own = tmp_path / 'own.txt'
    own.write_text('the time traveller for so it will be convenient ' * 5)
    code, out, err = run(capsys, 'eval', '--checkpoint', ckpt, '--data', str(own))
    assert code == 0 and json.loads(out)['unknown_fraction'] == 0 and err == ''


def test_eval_of_a_windows_1252_file_names_cp1252(capsys, trained, tmp_path):
    path = tmp_path / 'windows.txt'
    path.write_bytes(('He said \u201cthe time traveller\u201d \u2014 ' * 20).encode('cp1252'))
    code, out, err = run(capsys, 'eval', '--checkpoint', str(trained / 'model.npz'), '--data', str(path))
    assert code == 1 and out == '' and len(err.strip().splitlines()) == 1
    assert '--encoding cp1252' in err and 'latin-1' not in err.split('cp1252')[0]
    code, out, _ = run(capsys, 'eval', '--checkpoint', str(trained / 'model.npz'), '--data', str(path),
                       '--encoding', 'cp1252')
    assert code == 0 and json.loads(out)['unknown_fraction'] == 0


BAD_ARGUMENTS = [
    ['train', '--batch-size', '0'], ['train', '--num-steps', '-3'], ['train', '--num-hiddens', 'many'],
    ['train', '--lr', '0'], ['train', '--lr', '-0.5'], ['train', '--lr', 'nan'], ['train', '--clip', '-1'],
    ['train', '--num-epochs', '1.5'], ['train', '--max-tokens', '0'], ['train', '--val-fraction', '1'],
    ['train', '--device', 'tpu'], ['train', '--sampler', 'shuffled'], ['train', '--preset', 'd2l-v9'],
    ['train', '--optimizer', 'lbfgs'], ['train', '--embed-dim', '0'], ['train', '--unknown-flag'],
    ['generate', '--prefix', 'x'], ['generate', '--checkpoint', 'm.npz', '--prefix', 'x', '--num-preds', '-1'],
    ['generate', '--checkpoint', 'm.npz', '--prefix', 'x', '--temperature', '-1'],
    ['generate', '--checkpoint', 'm.npz', '--prefix', 'x', '--top-k', '0'],
    ['generate', '--checkpoint', 'm.npz', '--prefix', 'x', '--prefix-file', 'p.txt'],
    ['generate', '--checkpoint', 'm.npz', '--num-samples', '0'],
    ['generate', '--checkpoint', 'm.npz', '--strategy', 'greedy', '--num-samples', '2'],
    ['generate', '--checkpoint', 'm.npz', '--strategy', 'beam', '--temperature', '0.5'],
    ['generate', '--checkpoint', 'm.npz', '--strategy', 'beam', '--top-k', '3'],
    ['generate', '--checkpoint', 'm.npz', '--strategy', 'beam', '--num-samples', '3'],
    ['generate', '--checkpoint', 'm.npz', '--strategy', 'beam', '--beam-size', '0'],
    ['generate', '--checkpoint', 'm.npz', '--beam-size', '3'],
    ['generate', '--checkpoint', 'm.npz', '--strategy', 'sample', '--beam-size', '3'],
    ['eval', '--checkpoint', 'm.npz'], ['bench', '--iters', '0'], ['bench', '--device', 'quantum'],
    ['download'], ['fly'], [],
    ['gradcheck', '--checkpoint', 'm.npz', '--cell', 'gru'], ['gradcheck', '--level', 'cell', '--checkpoint', 'm.npz'],
    ['gradcheck', '--tolerance', '0'], ['gradcheck', '--dropout', '1'],
    ['gradcheck', '--level', 'cell', '--num-layers', '2'],
]


@pytest.mark.parametrize('argv', BAD_ARGUMENTS, ids=[' '.join(a) or 'nothing' for a in BAD_ARGUMENTS])
def test_bad_arguments_exit_2_with_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and 'error' in err and 'Traceback' not in err


def test_package_errors_exit_1_with_one_line(capsys, tmp_path, trained):
    garbage = tmp_path / 'garbage.npz'
    garbage.write_bytes(b'not a checkpoint at all')
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes((trained / 'model.npz').read_bytes()[:500])
    binary = tmp_path / 'binary.txt'
    binary.write_bytes(b'\x00\x01\x02' * 100)
    cases = [
        ['train', '--data', str(tmp_path / 'missing.txt'), '--out', str(tmp_path / 'o1')],
        ['train', '--data', str(binary), '--out', str(tmp_path / 'o2')],
        ['train', *TINY, '--max-tokens', '50', '--out', str(tmp_path / 'o3')],          # too short
        ['train', *TINY, '--out', str(trained)],                                         # would overwrite
        ['train', '--resume', '--out', str(tmp_path / 'nothing-here')],
        ['train', '--resume', '--preset', 'd2l-v2', '--out', str(trained)],
        ['generate', '--checkpoint', str(garbage), '--prefix', 'a'],
        ['generate', '--checkpoint', str(truncated), '--prefix', 'a'],
        ['generate', '--checkpoint', str(tmp_path / 'none.npz'), '--prefix', 'a'],
        ['generate', '--checkpoint', str(trained / 'model.npz'), '--prefix', '1234'],   # empty after letters
        ['generate', '--checkpoint', str(trained / 'model.npz'), '--prefix-file', str(tmp_path / 'no.txt')],
        ['generate', '--checkpoint', str(trained / 'model.npz'), '--prefix-file', str(tmp_path)],
        ['generate', '--checkpoint', str(trained / 'model.npz'), '--prefix-file', str(binary)],
        ['eval', '--checkpoint', str(trained / 'model.npz'), '--data', str(tmp_path / 'missing.txt')],
        ['download', 'no_such_book'],
        ['download', 'sherlock_holmes'],                                                 # mirror unreachable
    ]
    before = (trained / 'model.npz').read_bytes()
    for argv in cases:
        code, out, err = run(capsys, *argv)
        assert code == 1, (argv, err)
        lines = err.strip().splitlines()
        # a download says where it is fetching from before it fails; nothing else prints first
        assert len(lines) == (2 if argv == ['download', 'sherlock_holmes'] else 1), (argv, err)
        assert lines[-1].startswith('minirnn: error: ') and 'Traceback' not in err, (argv, err)
    assert (trained / 'model.npz').read_bytes() == before
    assert not any((tmp_path / d).exists() for d in ('o1', 'o2', 'o3'))


def test_the_program_names_itself_as_it_was_invoked(tmp_path):
    assert cli.invoked_as('/home/me/minirnn/cli.py') == 'python cli.py'
    assert cli.invoked_as('/venv/lib/python3.11/site-packages/minirnn/__main__.py') == 'python -m minirnn'
    assert cli.invoked_as('/venv/bin/minirnn') == 'minirnn'
    assert cli.invoked_as('') == 'minirnn'
    # the three ways in, as subprocesses: each one's examples and its bare-command hint use its name
    for argv, name in (([str(REPO / 'cli.py')], 'python cli.py'), (['-m', 'minirnn'], 'python -m minirnn')):
        shown = subprocess.run([sys.executable, *argv, 'bench', '-h'], capture_output=True, text=True,
                               cwd=tmp_path)
        assert shown.returncode == 0 and f'{name} bench --num-hiddens' in shown.stdout, shown.stderr
        bare = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path)
        assert bare.returncode == 2 and f'`{name} COMMAND -h`' in bare.stderr
    assert 'python cli.py train' in cli.build_parser('python cli.py').commands['train'].format_help()


def test_the_console_script_and_python_cli_py_are_the_same_program():
    result = subprocess.run([sys.executable, str(REPO / 'cli.py'), 'train', '--lr', '-1'],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr
    help_text = subprocess.run([sys.executable, str(REPO / 'cli.py'), 'train', '--help'],
                               capture_output=True, text=True).stdout
    for flag in ('--data', '--encoding', '--preprocess', '--token', '--max-tokens', '--val-fraction',
                 '--batch-size', '--num-steps', '--num-hiddens', '--lr', '--num-epochs', '--clip',
                 '--sampler', '--optimizer', '--activation', '--embed-dim', '--device', '--dtype',
                 '--seed', '--preset', '--out', '--resume'):
        assert flag in help_text


# --- what a char-rnn user reaches for first ----------------------------------------------------

def saved_config(out):
    return checkpoint.load(out / 'model.npz').meta['train']


def test_adam_without_lr_takes_adams_default_not_the_presets(capsys, tmp_path):
    """--optimizer adam kept d2l-v1's SGD rate of 1 and ended at perplexity 1.5e8 with exit 0."""
    code, _, err = run(capsys, 'train', *TINY, '--num-epochs', '1', '--num-preds', '0',
                       '--optimizer', 'adam', '--out', str(tmp_path / 'a'))
    assert code == 0, err
    assert saved_config(tmp_path / 'a')['lr'] == 0.002
    assert run(capsys, 'train', *TINY, '--num-epochs', '1', '--num-preds', '0', '--optimizer', 'adam',
               '--lr', '0.01', '--out', str(tmp_path / 'b'))[0] == 0
    assert saved_config(tmp_path / 'b')['lr'] == 0.01


@pytest.mark.parametrize('options', [['--lr', '1000'], ['--clip', '0', '--lr', '1000'],
                                     ['--optimizer', 'adam', '--lr', '1']])
def test_a_diverging_run_exits_3_naming_the_cause_and_saves_nothing(capsys, tmp_path, options):
    code, out, err = run(capsys, 'train', *TINY, '--out', str(tmp_path / 'r'), *options)
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('minirnn: error: training diverged at epoch 1')
    assert 'learning rate is too high' in err and ('clipping is off' in err) == ('--clip' in options)
    assert 'Warning' not in err and 'Traceback' not in err and out == ''
    assert not (tmp_path / 'r' / 'model.npz').exists()
    rows = [json.loads(line) for line in (tmp_path / 'r' / 'history.jsonl').read_text().splitlines()]
    assert rows[-1]['diverged'] is True and rows[-1]['epoch'] == 1      # the flag in history


def test_sampling_options_imply_sampling_and_contradict_greedy(capsys, trained):
    ckpt = str(trained / 'model.npz')
    implied = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--temperature', '0.8',
                  '--seed', '3', '--num-preds', '30')
    explicit = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--strategy', 'sample',
                   '--temperature', '0.8', '--seed', '3', '--num-preds', '30')
    greedy = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the', '--num-preds', '30')
    assert implied == explicit and implied[0] == 0 and implied[1] != greedy[1]
    for flag, value in (('--temperature', '0.8'), ('--alpha', '2'), ('--top-k', '3')):
        code, out, err = run(capsys, 'generate', '--checkpoint', ckpt, '--prefix', 'the',
                             '--strategy', 'greedy', flag, value)
        assert code == 2 and out == '' and len(err.strip().splitlines()) == 1
        assert flag in err and 'greedy' in err


def test_version_and_the_bare_command(capsys):
    code, out, _ = run(capsys, '--version')
    assert code == 0 and out.strip() == f'minirnn {__import__("minirnn").__version__}'
    code, out, err = run(capsys)
    assert code == 2 and out == '' and len(err.strip().splitlines()) == 1
    for command in ('train', 'generate', 'eval', 'gradcheck', 'probe', 'bench', 'download'):
        assert command in err


def test_every_help_shows_every_default_and_an_example(capsys):
    for name, subparser in cli.build_parser().commands.items():
        code, out, _ = run(capsys, name, '-h')
        assert code == 0 and 'example' in out and f'minirnn {name}' in out, name
        formatter = subparser._get_formatter()
        for action in subparser._actions:
            if action.option_strings and action.nargs != 0 and not action.required:
                assert 'default' in formatter._get_help_string(action), (name, action.option_strings)
    _, out, _ = run(capsys, 'train', '-h')
    flat = ' '.join(out.split())
    for shown in ('sequences per minibatch (default: 32; d2l-v2: 1024)', 'sgd 1, adagrad 0.1, adam 0.002',
                  '(default: 500; d2l-v2: 100)', '--lr-schedule', '--early-stop', '--eval-every',
                  '--sample-every', '--min-freq', '--weight-decay', '--warmup-steps', '3 training diverged',
                  '--bias-lr-mult', '--ema'):
        assert shown in flat, shown


def test_train_init_reaches_the_model_and_its_checkpoint(capsys, tmp_path):

    code, _, err = run(capsys, 'train', *TINY, '--num-epochs', '1', '--embed-dim', '8', '--init', 'uniform',
                       '--num-preds', '0', '--out', str(tmp_path / 'r'))
    assert code == 0, err
    ck = checkpoint.load(tmp_path / 'r' / 'model.npz')
    assert ck.model.init == 'uniform' and ck.meta['train']['init'] == 'uniform'
    code, _, err = run(capsys, 'train', *TINY, '--init', 'xavier', '--out', str(tmp_path / 's'))
    assert code == 2 and len(err.strip().splitlines()) == 1 and '--init' in err
    assert not (tmp_path / 's').exists()


def test_best_npz_from_the_cli_works_with_eval_and_generate(capsys, tmp_path):
    out = tmp_path / 'r'
    code, stdout, err = run(capsys, 'train', *TINY, '--val-fraction', '0.2', '--early-stop', '5',
                            '--eval-every', '4', '--num-preds', '0', '--out', str(out))
    assert code == 0, err
    assert (out / 'best.npz').is_file()
    best = [r for r in map(json.loads, (out / 'history.jsonl').read_text().splitlines()) if r['best']][-1]
    assert stdout.splitlines()[-2] == f'saved {out / "best.npz"} (epoch {best["epoch"]}, validation perplexity ' \
        f'{best["val_ppl"]:.2f})'
    code, stdout, _ = run(capsys, 'eval', '--checkpoint', str(out / 'best.npz'), '--data', 'timemachine',
                          '--max-tokens', '1000')
    assert code == 0 and json.loads(stdout)['perplexity'] < 28
    code, stdout, _ = run(capsys, 'generate', '--checkpoint', str(out / 'best.npz'), '--prefix', 'the',
                          '--num-preds', '5')
    assert code == 0 and len(stdout.strip()) == len('the') + 5


def test_ema_through_the_cli_eval_and_generate_use_the_average(capsys, tmp_path):
    from minirnn import text

    from minirnn.run.evaluation import corpus_batches, evaluate
    from minirnn.optim import perplexity
    out = tmp_path / 'r'
    code, _, err = run(capsys, 'train', *TINY, '--optimizer', 'adam', '--val-fraction', '0.2', '--ema', '0.9',
                       '--num-preds', '0', '--out', str(out))
    assert code == 0, err
    code, stdout, _ = run(capsys, 'eval', '--checkpoint', str(out / 'model.npz'), '--data', 'timemachine',
                          '--max-tokens', '1000', '--batch-size', '4', '--num-steps', '10')
    assert code == 0
    got = json.loads(stdout)['perplexity']
    ppl = {}
    for averaged in (True, False):
        ckpt = checkpoint.load(out / 'model.npz', averaged=averaged)
        corpus = text.encode_corpus('timemachine', ckpt.vocab, max_tokens=1000)
        ppl[averaged] = perplexity(evaluate(ckpt.model, corpus_batches(corpus, 4, 10), carry_state=True))
    assert got == pytest.approx(ppl[True], rel=1e-9) and got != pytest.approx(ppl[False], rel=1e-6)
    code, _, err = run(capsys, 'train', *TINY, '--ema', '1', '--out', str(tmp_path / 's'))
    assert code == 2 and len(err.strip().splitlines()) == 1 and '--ema' in err


def test_min_freq_through_the_cli(capsys, tmp_path):
    out = tmp_path / 'r'
    code, _, err = run(capsys, 'train', *TINY, '--token', 'word', '--batch-size', '4', '--num-steps', '5',
                       '--max-tokens', '500', '--min-freq', '10', '--num-epochs', '1', '--num-preds', '0',
                       '--out', str(out))
    assert code == 0, err
    ckpt = checkpoint.load(out / 'model.npz')
    counts = dict(ckpt.vocab.token_freqs)
    assert ckpt.meta['train']['min_freq'] == 10 and all(counts[t] >= 10 for t in ckpt.vocab.idx_to_token[1:])
    code, stdout, _ = run(capsys, 'eval', '--checkpoint', str(out / 'model.npz'), '--data', 'timemachine',
                          '--max-tokens', '500')
    assert code == 0 and json.loads(stdout)['unknown_fraction'] > 0


def test_settings_that_would_be_ignored_are_refused(capsys, tmp_path):
    for options, word in ((['--early-stop', '3'], 'validation split'), (['--eval-every', '3'], 'validation split'),
                          (['--lr-decay', '0.5'], 'step schedule')):
        code, _, err = run(capsys, 'train', *TINY, '--out', str(tmp_path / 'x'), *options)
        assert code == 1 and word in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'x').exists()
