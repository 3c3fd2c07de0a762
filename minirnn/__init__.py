"""minirnn: recurrent language models with backpropagation through time written by hand.

NumPy on the CPU, CuPy on a CUDA GPU, no autograd framework. It follows the chapter
"Recurrent Neural Network Implementation from Scratch" of Dive into Deep Learning, and
checks every gradient against finite differences (`gradcheck`).
"""
from .batching import SeqDataLoader, seq_data_iter_random, seq_data_iter_sequential, seq_data_iter_windows
from .errors import CheckpointError, ConfigError, DataError, DivergenceError, MiniRNNError
from .generate import predict
from . import gradcheck   # the module; calling it checks a model (gradcheck_model)
from .gradcheck import gradcheck_cell, gradcheck_model
from .model import RNNLM
from .optim import SGD, Adagrad, Adam, clip_grad_norm, perplexity
from .corpora import download
from .text import Vocab, encode_corpus, load_corpus, split_corpus
from .run import PRESETS, TrainConfig, fit
from .run.checkpoint import Checkpoint

__version__ = '0.1.0'

__all__ = [
    'RNNLM', 'Vocab', 'load_corpus', 'encode_corpus', 'split_corpus', 'download',
    'seq_data_iter_random', 'seq_data_iter_sequential', 'seq_data_iter_windows', 'SeqDataLoader',
    'clip_grad_norm', 'SGD', 'Adagrad', 'Adam', 'perplexity', 'gradcheck', 'gradcheck_model', 'gradcheck_cell', 'predict',
    'TrainConfig', 'PRESETS', 'fit', 'Checkpoint',
    'MiniRNNError', 'DataError', 'ConfigError', 'CheckpointError', 'DivergenceError',
]
