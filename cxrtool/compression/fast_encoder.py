"""The paper's encoder (Conv5×5/4 → ELU → Conv1×1) for CPU inference at a lower cost per image.

    x (H×W) ── slab of latent rows [r, e): im2col ─► P (26 × R)       25 taps + a row of ones, R = (e−r)·W/4
    P ── [w2·W1 ; W1·log₂e] (1+C × 26) @ P ─┬─► ℓ = z's linear part, Σ w2·y + (b2 − α·Σw2)      W1 = [w1 | b1]
                                            └─► y′ = y·log₂e (C × R) ── m′ = min(y′, 0) ─┬─────────────┐
                                                                                         └─ exp2 ─► e ─┤
                                                          z = ℓ + [−w2·ln 2 | α·w2] @ [m′; e]  (1 × R) ◄┘

since ELU(y) = max(y, 0) + α·(exp(min(y, 0)) − 1) and max(y, 0) = y − min(y, 0).

The issue: the plain module can cost more CPU per 1024² image than the PNG decode (~12–45 ms against ~9–11 ms on
the 2-core dev machine), though its arithmetic is ~0.1 GFLOP. Measured there, its cost swings with things other
than arithmetic:

* page faults: each call allocates fresh 8 MB maps; when glibc serves them with mmap (it depends on what the process
  allocated before), every 4 kB page faults on first touch, ~6,000 faults and ~20 ms per image on that VM;
* ELU through `expm1` costs several times `exp2` per element there (`exp` itself goes through MKL's VML);
* passes over 8 MB maps that do not stay in cache, and, with 2 intra-op threads on a busy machine, a fork/join
  per operator that can cost milliseconds (plain: ~55 ms CPU per image at 2 threads against ~9 at 1).

So: the image goes through in slabs of `slab_pixels` latent pixels whose buffers are kept between calls (no fresh
large tensor, so no faults, and each map stays in cache); the first layer is one BLAS matmul on explicit patches
(im2col) with the bias as a row of ones, and one more row for z's linear part (w2·y, so that max(y, 0) needs no
pass of its own); ELU's −α goes into that row's bias and log₂e into the first layer, so that `exp2` needs no extra
pass; the rest of the 1×1 convolution is one matvec over [min(y′, 0); exp2(min(y′, 0))]. 8-bit input is taken as
it is, with the 1/255 of x = pixels/255 in the first layer's weights, so no float copy of the image is made.
No padded copy of the input is made: taps left of column 0 are never written (they stay zero) and taps above row 0
are zeroed, while the windows never pass the bottom or right edge when H and W are multiples of 4. Everything is
float32; outputs match `encoder(x)` to ~3e-7 (~3e-6 with weights ×4; the issue asks for 1e-5).

The slabs suit ONE intra-op thread, which is how `compress` runs it (each worker process decodes and encodes its
own images on one thread). With more threads every step is a fork/join of the pool, which a busy machine makes
costly, so each image is then one slab. `benchmarks/bench_encoder.py` measures both, alone and behind a decoding
DataLoader; on the 2-core dev machine, quiet, a 1024² image takes ~5.5 ms here against ~13.5 ms to decode its PNG.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

LOG2E = 1.0 / math.log(2.0)
# Latent pixels per slab on one thread (a 1 MB map of 32 channels); 8k and 16k were fastest of 4k–32k measured.
SLAB_PIXELS = 8_192
_SCALE, _KERNEL, _PADDING = 4, 5, 2


class FastEncoder:
    """`FastEncoder(model.encoder)(x)` ≈ `model.encoder(x)` for x of shape (N, 1, H, W), H and W multiples of 4.

    A snapshot: later changes to the encoder's parameters are not seen. Inference only (no autograd). It keeps its
    work buffers between calls, so use one instance per thread. Tensors on another device than the CPU go through
    the plain module, which is already fast there.
    """

    def __init__(self, encoder: nn.Sequential, *, slab_pixels: int | None = SLAB_PIXELS) -> None:
        conv1, act, conv2 = _check_architecture(encoder)
        self._setup(conv1.weight, conv1.bias, conv2.weight, conv2.bias, alpha=float(act.alpha), slab_pixels=slab_pixels)

    @classmethod
    def from_tensors(
        cls,
        w1: torch.Tensor,
        b1: torch.Tensor | None,
        w2: torch.Tensor,
        b2: torch.Tensor | None,
        *,
        alpha: float = 1.0,
        slab_pixels: int | None = SLAB_PIXELS,
    ) -> FastEncoder:
        """From the four tensors: w1 (C, 1, 5, 5), b1 (C,), w2 (1, C, 1, 1), b2 (1,); a bias may be None."""
        if w1.dim() != 4 or tuple(w1.shape[1:]) != (1, _KERNEL, _KERNEL):
            raise ValueError(f"w1 must have shape (C, 1, {_KERNEL}, {_KERNEL}), not {tuple(w1.shape)}")
        if w2.numel() != w1.shape[0]:
            raise ValueError(f"w2 must hold one weight per channel of w1 ({w1.shape[0]}), not {w2.numel()}")
        fast = cls.__new__(cls)
        fast._setup(w1, b1, w2, b2, alpha=alpha, slab_pixels=slab_pixels)
        return fast

    def _setup(
        self,
        w1: torch.Tensor,
        b1: torch.Tensor | None,
        w2: torch.Tensor,
        b2: torch.Tensor | None,
        *,
        alpha: float,
        slab_pixels: int | None,
    ) -> None:
        if slab_pixels is not None and slab_pixels < 1:
            raise ValueError(f"slab_pixels must be a positive number of latent pixels or None, not {slab_pixels}")
        with torch.no_grad():
            w1 = w1.detach().to("cpu", torch.float64)
            c = w1.shape[0]
            b1 = torch.zeros(c, dtype=torch.float64) if b1 is None else b1.detach().to("cpu", torch.float64)
            w2 = w2.detach().to("cpu", torch.float64).reshape(1, c)
            b2 = torch.zeros(1, dtype=torch.float64) if b2 is None else b2.detach().to("cpu", torch.float64)
            self.channels, self.alpha, self.slab_pixels = c, alpha, slab_pixels

            # Folded in float64, then rounded once to float32: against the patches with their row of ones,
            # [w2·W1 + (b2 − α·Σw2) ; W1·log₂e] with W1 = [w1 | b1]; the matvec weights [−w2·ln 2 | α·w2].
            def first_layer(scale: float) -> torch.Tensor:
                w1b = torch.cat([w1.reshape(c, -1) * scale, b1.reshape(c, 1)], 1)
                linear = w2 @ w1b
                linear[0, -1] += b2.reshape(()) - alpha * w2.sum()
                return torch.cat([linear, w1b * LOG2E]).float()

            self._first = first_layer(1.0)
            self._first_u8 = first_layer(1.0 / 255.0)  # uint8 pixels v are read as x = v/255
            self._g = torch.cat([-w2 / LOG2E, w2 * alpha], 1).float()
            self._plain = nn.Sequential(
                nn.Conv2d(1, c, _KERNEL, stride=_SCALE, padding=_PADDING), nn.ELU(alpha=alpha), nn.Conv2d(c, 1, 1)
            ).eval()
            self._plain.load_state_dict(
                {"0.weight": w1, "0.bias": b1, "2.weight": w2.reshape(1, c, 1, 1), "2.bias": b2.reshape(1)}
            )
        self._plain.requires_grad_(False)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._cache_width = 0

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x)
        if x.dtype not in (torch.float32, torch.uint8):
            raise ValueError(f"FastEncoder takes float32 or uint8 (read as x/255) images, not {x.dtype}")
        if x.device.type != "cpu":
            return self._plain.to(x.device)(x if x.is_floating_point() else x.float() / 255.0)
        weights = self._first if x.is_floating_point() else self._first_u8
        n, _, height, width = x.shape
        h, w = height // _SCALE, width // _SCALE
        rows = self._slab_rows(h, w)
        patches, maps = self._buffers(rows * w, w)
        out = torch.empty(n, 1, h * w)
        for i in range(n):
            for r in range(0, h, rows):
                e = min(h, r + rows)
                self._slab(x[i, 0], weights, r, e, patches, maps, out[i, :, r * w : e * w])
        return out.view(n, 1, h, w)

    def _slab_rows(self, h: int, w: int) -> int:
        if self.slab_pixels is None or torch.get_num_threads() > 1:
            return h
        return max(1, self.slab_pixels // w)

    def _buffers(self, pixels: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches (26 × pixels) and maps (1 + 2C × pixels), reused between calls: a fresh multi-MB tensor per call
        costs a page fault per 4 kB, which is most of what made the plain module slow (~6,000 faults per 1024²
        image)."""
        if self._cache is None or self._cache[0].shape[1] != pixels or self._cache_width != w:
            patches = torch.zeros(_KERNEL * _KERNEL + 1, pixels)
            patches[-1] = 1.0  # the bias row
            self._cache = (patches, torch.empty(1 + 2 * self.channels, pixels))
            self._cache_width = w
        return self._cache

    def _slab(
        self,
        x: torch.Tensor,
        weights: torch.Tensor,
        r: int,
        e: int,
        patches: torch.Tensor,
        maps: torch.Tensor,
        z: torch.Tensor,
    ) -> None:
        """Latent rows [r, e) of one H×W image into z (1, (e−r)·W/4)."""
        pixels, c = z.shape[1], self.channels
        _im2col(x, r, e, patches[:-1, :pixels])
        maps = maps[:, :pixels]  # rows: ℓ | y′, then min(y′, 0) | exp(min(y, 0))
        torch.mm(weights, patches[:, :pixels], out=maps[: 1 + c])  # ℓ and y·log₂e, biases included
        torch.clamp_max_(maps[1 : 1 + c], 0.0)  # min(y, 0)·log₂e
        torch.exp2(maps[1 : 1 + c], out=maps[1 + c :])  # exp(min(y, 0))
        torch.addmm(maps[:1], self._g, maps[1:], out=z)


def _im2col(x: torch.Tensor, r: int, e: int, patches: torch.Tensor) -> None:
    """Patches of latent rows [r, e): patches[5·ky + kx, (i − r)·w + j] = x[4i + ky − 2, 4j + kx − 2].

    The windows never pass the bottom or right edge (H, W are multiples of 4), so no padded copy of x is made:
    the taps left of column 0 are never written and stay zero from the buffer's allocation, and those above row 0
    (first slab only) are zeroed here, as a later slab of the previous image wrote there.
    """
    h_slab, w = e - r, x.shape[1] // _SCALE
    taps = patches.view(_KERNEL, _KERNEL, h_slab, w)
    if r == 0:
        taps[:_PADDING, :, 0].zero_()
    s_row, s_col = x.stride()
    for ky0, ky1 in ((0, _PADDING), (_PADDING, _KERNEL)) if r == 0 else ((0, _KERNEL),):
        i0 = 1 if r == 0 and ky0 < _PADDING else 0
        for kx0, kx1, j0 in ((0, _PADDING, 1), (_PADDING, _KERNEL, 0)):
            offset = (_SCALE * (r + i0) + ky0 - _PADDING) * s_row + (_SCALE * j0 + kx0 - _PADDING) * s_col
            src = x.as_strided(
                (ky1 - ky0, kx1 - kx0, h_slab - i0, w - j0),
                (s_row, s_col, _SCALE * s_row, _SCALE * s_col),
                x.storage_offset() + offset,
            )
            taps[ky0:ky1, kx0:kx1, i0:, j0:].copy_(src)


def _check_architecture(encoder: nn.Sequential) -> tuple[nn.Conv2d, nn.ELU, nn.Conv2d]:
    layers = list(encoder)
    ok = len(layers) == 3 and isinstance(layers[1], nn.ELU)
    ok = ok and all(isinstance(layer, nn.Conv2d) for layer in (layers[0], layers[2]))
    if ok:
        conv1, conv2 = cast(nn.Conv2d, layers[0]), cast(nn.Conv2d, layers[2])
        ok = (
            conv1.in_channels == 1
            and conv1.kernel_size == (_KERNEL, _KERNEL)
            and conv1.stride == (_SCALE, _SCALE)
            and conv1.padding == (_PADDING, _PADDING)
            and conv1.dilation == (1, 1)
            and conv1.groups == 1
            and conv1.padding_mode == "zeros"
            and conv2.in_channels == conv1.out_channels
            and conv2.out_channels == 1
            and conv2.kernel_size == (1, 1)
            and conv2.stride == (1, 1)
            and conv2.padding == (0, 0)
        )
    if not ok:
        raise ValueError(
            "FastEncoder needs the paper's encoder, Sequential(Conv2d(1, C, 5, stride=4, padding=2), ELU, "
            f"Conv2d(C, 1, 1)) as built by cxrtool.models.autoencoder.make_encoder; got {encoder}"
        )
    return cast(nn.Conv2d, layers[0]), cast(nn.ELU, layers[1]), cast(nn.Conv2d, layers[2])


def _check_input(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"FastEncoder takes (N, 1, H, W) images, not shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height < _SCALE or width < _SCALE or height % _SCALE or width % _SCALE:
        raise ValueError(
            f"image sides must be positive multiples of {_SCALE}, not {height}×{width}; "
            "pad them first with cxrtool.models.autoencoder.pad_to_multiple"
        )
