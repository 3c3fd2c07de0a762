"""Recurrent cells: each owns one recurrence and its backpropagation through time.

A cell module provides `init_params(rng, input_dim, num_hiddens, sigma, xp, dtype) -> dict`,
`forward(params, XW, h0, **options) -> (Hs, cache)` and
`backward(params, dHs, cache) -> (grads, dXW, dh0)`. Its input is the precomputed input term
XW (T, B, G*H) (G gates), so a cell does not care whether tokens arrive one-hot or embedded.
Cells are looked up by name in the plain dict CELLS.
"""
from . import rnn

CELLS = {'rnn': rnn}
