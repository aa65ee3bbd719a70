"""An 8-bit Pillow image's pixels as a numpy array without copying them, for `compress`'s encoder.

`np.array(img)` copies the pixels twice (Pillow's `tobytes`, then numpy): ~0.5 ms for a 1024² image on the 2-core
dev machine, ~2% of what `compress` spends on an image, and `compress` is bound by CPU. Pillow (≥ 11.2) exports an
image's memory through the Arrow C data interface (`Image.__arrow_c_array__`, a documented, ABI-stable format:
https://arrow.apache.org/docs/format/CDataInterface.html); an 8-bit image in one block is an Arrow uint8 array whose
data buffer is the H×W pixels, row after row. `pixels` wraps that buffer (~10 µs) and keeps the exported capsules,
and through them the image's memory, alive as long as the array is. Anything else (another mode, an image Pillow
keeps in several blocks, an older Pillow) is copied as before.
"""

from __future__ import annotations

import ctypes

import numpy as np
from PIL import Image


class _ArrowSchema(ctypes.Structure):
    _fields_ = [
        ("format", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("metadata", ctypes.c_char_p),
        ("flags", ctypes.c_int64),
        ("n_children", ctypes.c_int64),
        ("children", ctypes.c_void_p),
        ("dictionary", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


class _ArrowArray(ctypes.Structure):
    _fields_ = [
        ("length", ctypes.c_int64),
        ("null_count", ctypes.c_int64),
        ("offset", ctypes.c_int64),
        ("n_buffers", ctypes.c_int64),
        ("n_children", ctypes.c_int64),
        ("buffers", ctypes.POINTER(ctypes.c_void_p)),
        ("children", ctypes.c_void_p),
        ("dictionary", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


class _ExportedPixels:
    """numpy's view of the exported buffer; holding it holds the capsules, whose release frees Pillow's hold."""

    def __init__(self, img: Image.Image) -> None:
        schema, array = img.__arrow_c_array__()
        fmt = _ArrowSchema.from_address(_capsule_pointer(schema, b"arrow_schema"))
        data = _ArrowArray.from_address(_capsule_pointer(array, b"arrow_array"))
        width, height = img.size
        if fmt.format != b"C" or data.length != width * height or data.offset or data.n_buffers != 2:
            raise ValueError("not one block of uint8 pixels")
        self._capsules = (schema, array)
        self.__array_interface__ = {
            "version": 3,
            "shape": (height, width),
            "typestr": "|u1",
            "data": (data.buffers[1], False),  # writable memory (Pillow's own); the encoder only reads it
        }


def pixels(img: Image.Image) -> np.ndarray:
    """An `L` image as an H×W uint8 array: a view of Pillow's memory where it exports one, else a copy."""
    if img.mode != "L" or not hasattr(img, "__arrow_c_array__"):
        return np.array(img)
    try:
        return np.asarray(_ExportedPixels(img))
    except (ValueError, TypeError, OSError):  # several blocks, an empty image, or an export this Pillow refuses
        return np.array(img)
