"""The package's own exceptions (one base class and one child per kind of user mistake), and its warnings.

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


class MiniRNNWarning(UserWarning):
    """Base class for minirnn's warnings: the work goes on, but its result may mislead.

    The CLI prints each as one 'minirnn: warning: ...' line on stderr; in Python they are
    ordinary warnings (`warnings.simplefilter('error', MiniRNNWarning)` makes them errors).
    """


class UnknownTokensWarning(MiniRNNWarning):
    """Text holds tokens the model's vocabulary lacks; the model reads each as <unk>."""
