"""cupy.cuda.runtime for the stand-in: one device, number 0."""
from .. import _standin


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    return 1


def getDevice():
    return 0


def setDevice(device):
    if device != 0:
        raise CUDARuntimeError('cudaErrorInvalidDevice: invalid device ordinal')


def deviceSynchronize():
    _standin.sync()


def getDeviceProperties(device):
    setDevice(device)
    return {'name': b'CuPy stand-in (NumPy on the host)', 'totalGlobalMem': 0, 'major': 9, 'minor': 0}
