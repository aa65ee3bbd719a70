"""How one latent is stored in a shard, and back: the value type and the lossless coding (SPEC §5). No torch here.

    z (float32) ─┬─ uint8:   round(clamp(z, 0, 1)·255) ─┬─ none: the H×W array            tensor U8  [H, W]
                 │                                      ├─ png:  a PNG file (8-bit grey)   tensor U8  [bytes]
                 │                                      └─ webp: a lossless WebP file      tensor U8  [bytes]
                 └─ float16: z as is ───────────────────── none: the H×W array            tensor F16 [H, W]

A store's `dtype` (summary.json, every shard's `cxrtool.dtype`, the manifest's `dtype` column) names the form:
`uint8`, `float16`, `uint8+png` or `uint8+webp`. A coded latent is a 1-D uint8 tensor holding a whole image file,
which any PNG or WebP reader opens; its H×W is in the shard's `cxrtool.latent_shapes` and the manifest. The coding
is lossless, so a coded store gives back exactly the uint8 latent the raw store holds.

Why these coders: a latent is a smooth 8-bit grey image, which an image coder shrinks a lot. `compress` is bound
by CPU (decoding the source files, encoding, coding), so the default must be cheap: a PNG of one fixed filter (Up:
each row minus the one above) deflated with zlib's RLE strategy takes ~1.2 ms per 256² latent on one core here and
~0.24 bits per original pixel on real radiographs (0.50 raw). Pillow's PNG encoder tries every filter on every row
first, which costs ~1 ms more for ~0.22, so this module writes the PNG itself (signature, IHDR, IDAT, IEND: a
standard file that any PNG reader opens). Lossless WebP (Pillow, method 4) takes ~13 ms for ~0.20.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from cxrtool.errors import InputError

VALUE_DTYPES: dict[str, tuple[str, np.dtype]] = {"uint8": ("U8", np.dtype("u1")), "float16": ("F16", np.dtype("<f2"))}
ENTROPY = ("none", "png", "webp")
DEFAULT_ENTROPY = {"uint8": "png", "float16": "none"}  # what `compress` uses when --entropy is not given
PNG_LEVEL = 1  # zlib's RLE strategy ignores the level beyond 0; 1 says "fast" to any reader of the code
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_FILTER_UP = 2
WEBP_METHOD = 4  # libwebp's effort: 6 is ~4% smaller at ~7× the time; in lossless mode quality is effort too
WEBP_MAX_SIDE = 16383


class LatentCodingError(ValueError):
    """A latent that this coding cannot hold (a WebP side over 16,383 pixels)."""


@dataclass(frozen=True)
class LatentFormat:
    """`dtype` the latent's values (uint8: round(clamp(z, 0, 1)·255); float16: z), `entropy` their lossless coding."""

    dtype: str = "uint8"
    entropy: str = "none"

    def __post_init__(self) -> None:
        if self.dtype not in VALUE_DTYPES:
            raise InputError(f"--dtype must be uint8 or float16, not {self.dtype!r}")
        if self.entropy not in ENTROPY:
            raise InputError(f"--entropy must be one of {', '.join(ENTROPY)}, not {self.entropy!r}")
        if self.dtype != "uint8" and self.entropy != "none":
            raise InputError(
                f"--entropy {self.entropy} codes uint8 latents only; --dtype {self.dtype} is stored raw: "
                "leave --entropy out (or give none)"
            )
        if self.entropy == "webp":
            from PIL import features

            if not features.check("webp"):
                raise InputError("--entropy webp needs Pillow built with WebP support; use --entropy png")

    @classmethod
    def parse(cls, name: str) -> LatentFormat:
        """From a store's dtype: uint8, float16, uint8+png or uint8+webp."""
        dtype, _, entropy = str(name).partition("+")
        try:
            return cls(dtype, entropy or "none")
        except InputError:
            raise InputError(f"unknown latent dtype {name!r} (a store of a newer cxrtool?)") from None

    @classmethod
    def for_options(cls, dtype: str, entropy: str | None) -> LatentFormat:
        """`compress --dtype D [--entropy E]`: without --entropy, PNG for uint8 and raw for float16."""
        if entropy is None:
            entropy = DEFAULT_ENTROPY.get(dtype, "none")
        return cls(dtype, entropy)

    @property
    def name(self) -> str:
        return self.dtype if self.entropy == "none" else f"{self.dtype}+{self.entropy}"

    @property
    def coded(self) -> bool:
        return self.entropy != "none"

    @property
    def tensor_dtype(self) -> str:
        """The safetensors dtype of a stored latent."""
        return VALUE_DTYPES[self.dtype][0]

    def tensor_shape(self, shape: tuple[int, int], nbytes: int) -> tuple[int, ...]:
        """A raw latent is its H×W array; a coded one is the bytes of its file."""
        return (nbytes,) if self.coded else tuple(shape)

    def quantise(self, z: np.ndarray, *, scratch: np.ndarray | None = None) -> np.ndarray:
        """The stored values of a float32 latent (uint8 rounds half to even, as torch.round does). `scratch`, a
        float32 array of z's shape, takes the intermediate values: a caller that keeps one spares a fresh map per
        latent (a third of this function's time)."""
        if self.dtype != "uint8":
            return z.astype(np.float16)
        scaled = np.clip(z, 0.0, 1.0, out=scratch)
        np.multiply(scaled, np.float32(255.0), out=scaled)
        return np.rint(scaled, out=scaled).astype(np.uint8)

    def pack(self, values: np.ndarray) -> bytes:
        """Stored values (uint8 or float16, H×W) → the bytes of their tensor in the shard."""
        if self.entropy == "none":
            return np.ascontiguousarray(values, dtype=VALUE_DTYPES[self.dtype][1]).tobytes()
        if self.entropy == "png":
            return encode_png(values)
        from PIL import Image

        if max(values.shape) > WEBP_MAX_SIDE:
            raise LatentCodingError(
                f"a {values.shape[1]}×{values.shape[0]} latent exceeds WebP's {WEBP_MAX_SIDE}-pixel side; "
                "use --entropy png"
            )
        buffer = io.BytesIO()
        image = Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8), mode="L")
        image.save(buffer, format="WEBP", lossless=True, method=WEBP_METHOD, quality=0)
        return buffer.getvalue()

    def unpack(self, tensor: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """A shard's tensor → the stored values (H×W uint8 or float16); InputError when a coded one is damaged."""
        if not self.coded:
            return tensor
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(tensor.tobytes())) as image:
                values = np.asarray(image)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise InputError(f"a {self.name} latent could not be decoded ({e})") from None
        if values.ndim == 3:  # WebP has no grey: Pillow returns R = G = B
            values = values[..., 0]
        if values.shape != tuple(shape):
            raise InputError(f"a {self.name} latent decodes to {values.shape}, not the {tuple(shape)} recorded")
        return values

    @staticmethod
    def to_float(values: np.ndarray) -> np.ndarray:
        """Stored values → the float32 latent the decoder and the classifier take (uint8 v → v/255)."""
        if values.dtype == np.uint8:  # divided, not multiplied by a rounded 1/255: v/255 correctly rounded
            return values.astype(np.float32) / np.float32(255.0)
        return values.astype(np.float32)


def encode_png(values: np.ndarray) -> bytes:
    """An H×W uint8 array as an 8-bit greyscale PNG: every row with filter Up, deflated with zlib's RLE strategy."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    h, w = values.shape
    rows = np.empty((h, w + 1), np.uint8)
    rows[:, 0] = PNG_FILTER_UP
    rows[0, 1:] = values[0]  # the row above the first is zeros
    np.subtract(values[1:], values[:-1], out=rows[1:, 1:])  # modulo 256, as PNG's filters are
    deflate = zlib.compressobj(PNG_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = deflate.compress(rows) + deflate.flush()  # type: ignore[arg-type]  # numpy types __buffer__ on Python ≥ 3.12 only
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8 bits, greyscale, deflate, filtering 0, no interlace
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))
