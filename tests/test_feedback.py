"""What a run shows while it trains: perplexities for people, the per-batch bar, lines, quiet."""
import io
import math

import pytest

from minirnn.optim import format_ppl
from minirnn.run.feedback import Reporter
from minirnn.train import EpochProgress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_large_perplexities_print_in_scientific_notation():
    assert format_ppl(27.456) == '27.46'
    assert format_ppl(99999.0) == '99999.00'
    assert format_ppl(1.5e8) == '1.50e+08'
    assert format_ppl(1.4846e34) == '1.48e+34'
    assert format_ppl(None) == format_ppl(math.inf) == format_ppl(math.nan) == 'inf'


def batches(report, n, loss=2.0):
    progress = EpochProgress()
    for _ in range(n):
        progress.batches += 1
        progress.tokens += 100
        progress.loss_sum += loss * 100
        progress.seconds += 0.01
        report.batch(progress)
    return progress


def test_the_bar_advances_per_batch_with_loss_and_tokens_per_second():
    stream = Terminal()
    report = Reporter(num_epochs=3, stream=stream)
    report.start_epoch(1, num_batches=4, done=0)
    assert report.bar.total == 12
    batches(report, 4)
    assert report.bar.n == 4
    report.start_epoch(2, num_batches=5, done=0)       # another offset: one more batch
    assert report.bar.total == 4 + 2 * 5
    batches(report, 5)
    report.bar.refresh()
    text = stream.getvalue()
    assert 'epoch 2/3' in text and 'loss 2.000' in text and f'ppl {math.exp(2):.2f}' in text
    assert '10,000 tokens/s' in text
    report.line('epoch 2/3  train ppl 7.39')
    report.close()
    assert 'epoch 2/3  train ppl 7.39\n' in stream.getvalue()


def test_a_resumed_run_counts_its_bar_from_where_it_is():
    report = Reporter(num_epochs=3, stream=Terminal())
    report.start_epoch(2, num_batches=10, done=4)
    assert (report.bar.n, report.bar.total) == (0, 16)
    report.close()


@pytest.mark.parametrize('stream, quiet, bar, lines', [
    (Terminal(), False, True, True), (io.StringIO(), False, False, True),   # a log file: lines only
    (Terminal(), True, False, False), (io.StringIO(), True, False, False)])
def test_the_bar_needs_a_terminal_and_quiet_silences_progress(stream, quiet, bar, lines):
    report = Reporter(num_epochs=1, quiet=quiet, stream=stream)
    report.start_epoch(1, num_batches=3, done=0)
    batches(report, 3)
    report.line('progress line')
    report.line('outcome line', always=True)
    report.close()
    text = stream.getvalue()
    assert (report.bar is not None) == bar and ('tokens/s' in text) == bar
    assert ('progress line' in text) == lines and 'outcome line' in text


def test_off_a_terminal_a_plain_line_reports_progress_every_so_often(monkeypatch):
    """A notebook cell or a nohup run shows how far an epoch got, without a bar."""
    stream = io.StringIO()                      # not a terminal: no bar
    report = Reporter(3, stream=stream)
    monkeypatch.setattr(Reporter, 'LINE_EVERY_S', 0.0)
    report.start_epoch(2, num_batches=10, done=0)
    progress = EpochProgress(batches=4, tokens=400, loss_sum=400 * math.log(3.0), seconds=0.5)
    report.batch(progress)
    assert stream.getvalue().strip() == 'epoch 2/3: batch 4/10, loss 1.099, ppl 3.00, 800 tokens/s'
    quiet = io.StringIO()
    report = Reporter(3, stream=quiet, quiet=True)
    report.start_epoch(1, num_batches=10, done=0)
    report.batch(progress)
    assert quiet.getvalue() == ''
