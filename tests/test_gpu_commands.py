"""Every command with --device gpu, on tiny settings, under the CuPy stand-in (tests/standin):
the CLI paths that real CuPy would run, held to CuPy's host/device rules on any machine; and
benchmarks/gpu_check.py, the script that proves the GPU path where a device is lent, with its
CUDA-only parts skipped."""
import importlib.util
import json
from pathlib import Path

import pytest

from minirnn import cli

REPO = Path(__file__).resolve().parents[1]
TINY = ['--device', 'gpu', '--max-tokens', '1500', '--batch-size', '4', '--num-steps', '6',
        '--num-hiddens', '8', '--num-epochs', '1', '--num-preds', '5', '--quiet']

pytestmark = pytest.mark.usefixtures('standin', 'books')


def run(capsys, *argv):
    code = cli.main(list(argv), prog='minirnn')
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.parametrize('options', [
    [],
    ['--cell', 'gru', '--num-layers', '2', '--dropout', '0.2', '--embed-dim', '5', '--optimizer', 'adam',
     '--lr-schedule', 'step', '--ema', '0.9', '--val-fraction', '0.2', '--eval-every', '5', '--sample-every', '5'],
    ['--cell', 'lstm', '--truncation', 'regular', '--k1', '2', '--k2', '4', '--sampler', 'random'],
    ['--cell', 'lstm', '--truncation', 'full', '--impl', 'reference'],
    ['--truncation', 'random', '--keep-prob', '0.5', '--sampler', 'windows', '--optimizer', 'adagrad'],
], ids=['rnn', 'gru-everything', 'lstm-regular', 'lstm-full-reference', 'random-windows'])
def test_train_and_resume_on_the_gpu(capsys, tmp_path, options):
    out = tmp_path / 'run'
    run(capsys, 'train', *TINY, '--out', str(out), *options)
    run(capsys, 'train', '--resume', '--out', str(out), '--num-epochs', '2', '--quiet')
    assert len((out / 'history.jsonl').read_text().splitlines()) == 2


def test_generate_eval_gradcheck_probe_and_bench_on_the_gpu(capsys, tmp_path):
    out = tmp_path / 'run'
    run(capsys, 'train', *TINY, '--out', str(out), '--cell', 'lstm')
    checkpoint = str(out / 'model.npz')
    assert run(capsys, 'generate', '--checkpoint', checkpoint, '--prefix', 'the', '--num-preds', '5',
               '--device', 'gpu').strip()
    run(capsys, 'generate', '--checkpoint', checkpoint, '--prefix', 'the', '--top-k', '3', '--seed', '1',
        '--device', 'gpu')
    result = json.loads(run(capsys, 'eval', '--checkpoint', checkpoint, '--data', 'timemachine',
                            '--max-tokens', '500', '--device', 'gpu'))
    assert result['perplexity'] > 1
    assert ' 0 FAIL' in run(capsys, 'gradcheck', '--device', 'gpu', '--cell', 'gru', '--num-steps', '4',
                             '--max-entries', '3')
    run(capsys, 'gradcheck', '--device', 'gpu', '--checkpoint', checkpoint, '--num-steps', '4',
        '--max-entries', '3')
    run(capsys, 'probe', '--device', 'gpu', '--num-hiddens', '8', '--batch-size', '2', '--num-steps', '5',
        '--plot', str(tmp_path / 'probe.png'))
    run(capsys, 'probe', '--device', 'gpu', '--checkpoint', checkpoint, '--batch-size', '2',
        '--num-steps', '5', '--plot', str(tmp_path / 'probe2.png'))
    bench = json.loads(run(capsys, 'bench', '--device', 'gpu', '--batch-size', '2', '--num-steps', '3',
                           '--num-hiddens', '4', '--iters', '2', '--cell', 'lstm').splitlines()[-1])
    assert bench['device'] == 'gpu' and bench['tokens_per_s'] > 0


def test_the_gpu_check_script_runs_its_parts_that_need_no_cuda(capsys):
    spec = importlib.util.spec_from_file_location('gpu_check', REPO / 'benchmarks' / 'gpu_check.py')
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    assert gpu_check.main(['--quick', '--rounds', '1', '--iters', '1']) == 0
    out = capsys.readouterr().out
    assert 'stand-in' in out and 'all within' in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary['ok'] and len(summary['agreement']) == 6
    assert {row['cell'] for row in summary['speed']} == {'rnn', 'gru', 'lstm'}
