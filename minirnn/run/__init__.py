"""A training run around the chapter's code: its configuration, directory, checkpoints, what the
user sees, when it stops, held-out evaluation, and fit().

    config.py      TrainConfig (the model's fields from model.ModelConfig, the run's own) and the presets
    trainer.py     fit(): build, restore, loop (the epoch itself is train.train_epoch)
    rundir.py      the run directory's files and the rules for touching them
    checkpoint.py  save/load of a model with its vocabulary, optimizer state and run metadata
    feedback.py    the progress bar, the lines above it, Ctrl-C
    stopping.py    divergence, early stopping, the best epoch
    monitor.py     per-epoch instrumentation of BPTT (gradient norms through time, spectra)
    evaluation.py  held-out perplexity of a text
"""
from .config import PRESETS, TrainConfig, make_config
from .trainer import FitResult, fit

__all__ = ['TrainConfig', 'PRESETS', 'make_config', 'fit', 'FitResult']
