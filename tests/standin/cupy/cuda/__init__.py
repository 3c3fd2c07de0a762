"""cupy.cuda for the stand-in: one device (0) and its current stream.

backend.py asks runtime.getDeviceCount() whether a GPU is there and waits for queued work with
get_current_stream().synchronize(); each wait counts as a sync (the host blocks on the device).
"""
from .. import _standin
from . import runtime  # noqa: F401


def is_available():
    return True


class Device:
    """cupy.cuda.Device: only device 0 exists."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise runtime.CUDARuntimeError('cudaErrorInvalidDevice: invalid device ordinal')

    compute_capability = '90'

    def synchronize(self):
        _standin.sync()

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f'<CUDA Device {self.id}>'


class Stream:
    """cupy.cuda.Stream: work is never really queued here, but waiting for it still counts."""

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.null = null

    def synchronize(self):
        _standin.sync()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


Stream.null = Stream(null=True)


def get_current_stream(device_id=None):
    return Stream.null
