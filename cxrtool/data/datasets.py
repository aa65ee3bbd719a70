"""torch Datasets over a splits.csv, and the sampler that fixes each epoch's order.

The sampler yields (epoch, index) pairs, and each sample seeds its own generator from (seed, epoch, index): the
data order and every augmentation are functions of the seed alone, whatever the worker count, whether workers
persist between epochs, and where a resumed run starts.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from cxrtool.data.dicom import dicom_window
from cxrtool.data.images import ImageIndex, ImageReadError, open_image
from cxrtool.data.labels import LABELS
from cxrtool.data.transforms import Transform, patches, resize, sample_generator
from cxrtool.errors import InputError


def _png_decoder() -> Any:
    """torchvision's libpng decoder, or None where this torchvision no longer has it (deprecated in 0.29 in favour
    of TorchCodec); then Pillow decodes everything."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import ImageReadMode, decode_png
    except ImportError:
        return None

    def decode(data: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():  # its deprecation notice, once per image, would drown the logs
            warnings.simplefilter("ignore", DeprecationWarning)
            return decode_png(data, ImageReadMode.UNCHANGED)

    return decode


_DECODE_PNG = _png_decoder()


def read_image(path: Path, *, dicom_window: str | None = None) -> Image.Image:
    """`open_image`, with 8-bit grayscale PNGs (nearly all of ChestX-ray14) decoded by torchvision's libpng decoder,
    ~15% faster than Pillow's here and pixel-identical; anything else, or any doubt, goes through `open_image`
    (DICOM read with `dicom_window`, default the process's `--dicom-window`)."""
    if _DECODE_PNG is not None and path.suffix.lower() == ".png":
        try:
            data = path.read_bytes()
        except OSError:
            return open_image(path, dicom_window=dicom_window)  # which names the file and the errno's meaning
        # IHDR: bit depth at byte 24, colour type at byte 25 (0 = grayscale), interlace at byte 28
        if len(data) > 33 and data[12:16] == b"IHDR" and data[24] == 8 and data[25] == 0 and data[28] == 0:
            try:
                pixels = _DECODE_PNG(torch.frombuffer(bytearray(data), dtype=torch.uint8))
                return Image.fromarray(pixels[0].numpy())
            except RuntimeError:
                pass  # let Pillow read it, and name the file in its error
    return open_image(path, dicom_window=dicom_window)


def rows_for(splits: pd.DataFrame, split: str, *, limit: int | None, seed: int, path: Path) -> pd.DataFrame:
    """The rows of one split; `limit` keeps a seeded random subset of that many (for quick trials)."""
    part = splits[splits["split"] == split].reset_index(drop=True)
    if part.empty:
        raise InputError(f"{path} has no {split} rows; re-run `cxrtool split` (or check --only-present)")
    if limit is not None and limit < len(part):
        keep = np.sort(np.random.default_rng([seed, 7]).permutation(len(part))[:limit])
        part = part.iloc[keep].reset_index(drop=True)
    return part


def resolve_paths(rows: pd.DataFrame, index: ImageIndex) -> list[Path]:
    """Every image of `rows` under the --images folder, or an error naming the missing ones."""
    missing = [name for name in rows["image"] if name not in index]
    if missing:
        raise InputError(
            f"{len(missing)} image(s) of the split are not under {index.root} (--images), e.g. "
            f"{', '.join(missing[:3])}; point --images at the right folder or re-run `cxrtool split --images "
            f"{index.root} --only-present`"
        )
    return [index.path(name) for name in rows["image"]]


def label_matrix(rows: pd.DataFrame, labels: Sequence[str] = LABELS) -> np.ndarray:
    return rows[list(labels)].to_numpy(dtype=np.float32)


class ImageDataset(Dataset):
    """One transformed image (and its labels, if any) per item: {"index", "image", "target"}.

    With `skip_unreadable`, an unreadable file is the item {"index", "error"} instead of an exception, so that one
    bad file does not stop a DataLoader (`predict` lists it and goes on). The `--dicom-window` in force when the
    dataset is made travels with it into worker processes, whatever their start method."""

    def __init__(
        self,
        paths: Sequence[Path],
        targets: np.ndarray | None,
        transform: Transform,
        *,
        seed: int,
        tag: str,
        skip_unreadable: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.targets = targets
        self.transform = transform
        self.seed = seed
        self.tag = tag
        self.skip_unreadable = skip_unreadable
        self.dicom_window = dicom_window()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        epoch, index = item
        try:
            img = read_image(self.paths[index], dicom_window=self.dicom_window)
        except ImageReadError as e:
            if not self.skip_unreadable:
                raise
            return {"index": index, "error": str(e)}
        x = self.transform(img, sample_generator(self.seed, epoch, index, self.tag))
        out: dict[str, Any] = {"index": index, "image": x}
        if self.targets is not None:
            out["target"] = torch.from_numpy(self.targets[index])
        return out


class PatchDataset(Dataset):
    """`count` random patches of one full-resolution image per item (stage 2): image is count×1×P×P.

    Validation uses fixed patches: its generator ignores the epoch (drawn once from the seed)."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        size: int,
        count: int,
        seed: int,
        flips: bool,
        fixed: bool,
        downscale: int | None = None,
    ) -> None:
        self.paths = list(paths)
        self.size, self.count, self.seed, self.flips, self.fixed = size, count, seed, flips, fixed
        self.downscale = downscale  # the reproduction's variant: patches of a downscaled image
        self.dicom_window = dicom_window()  # into worker processes with the dataset (see ImageDataset)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        epoch, index = item
        g = sample_generator(self.seed, -1 if self.fixed else epoch, index, "patches")
        img = read_image(self.paths[index], dicom_window=self.dicom_window)
        if self.downscale:
            img = resize(img, self.downscale)
        x = patches(img, g, size=self.size, count=self.count, flips=self.flips)
        return {"index": index, "image": x}


class EpochSampler(Sampler):
    """This rank's share of one epoch's order, as (epoch, index) pairs.

    Like torch's DistributedSampler: a permutation seeded by (seed, epoch), padded by repeating its head to a
    multiple of the world size, then every world-th item from `rank`. `start` skips items this rank has already
    consumed in the epoch (resuming mid-epoch)."""

    def __init__(self, n: int, *, seed: int, shuffle: bool, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch = 1
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        pad = (-self.n) % self.world
        padded = order + (order * (pad // max(self.n, 1) + 1))[:pad]  # repeat the head, cyclically if n < pad
        return padded[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, i) for i in self.order()[self.start :]])

    def __len__(self) -> int:
        return -(-self.n // self.world) - self.start  # this rank's share of the padded order, without drawing it
