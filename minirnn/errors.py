"""The package's own exceptions: one base class and one child per kind of user mistake.

The CLI turns any MiniRNNError into one line on stderr and a non-zero exit code, so every
message here should tell the user what to do next, not just what went wrong.
"""


class MiniRNNError(Exception):
    """Base class for every error minirnn raises on purpose."""


class DataError(MiniRNNError):
    """A corpus could not be read, decoded, downloaded or batched."""


class ConfigError(MiniRNNError):
    """A setting is out of range or inconsistent with another."""


class CheckpointError(MiniRNNError):
    """A checkpoint file is missing, truncated, foreign or of an unknown version."""


class DivergenceError(MiniRNNError):
    """Training produced a NaN or infinite loss or gradient."""
