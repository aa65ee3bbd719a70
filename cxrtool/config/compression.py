"""The configuration of `compress`: how a folder becomes a latent store. The store settings a rerun must repeat
(the checkpoint aside) are `size`, `dtype`, `entropy`, `shard_size`, `dicom_window`, `keep_dicom_header` and
`dicom_uids`; `workers` and `strict` only change how the work is done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cxrtool.config.fields import DICOM_WINDOW_HELP, DicomWindow, check_choices, option
from cxrtool.config.geometry import LATENT_SCALE
from cxrtool.errors import InputError

LatentDtype = Literal["uint8", "float16"]
Entropy = Literal["none", "png", "webp"]


@dataclass(frozen=True, kw_only=True)
class StoreConfig:
    """`compress`'s options (keyword-only, so that `CompressOptions(ckpt, …)` may extend it)."""

    size: int | None = option(
        None, "Resize to S×S first (a multiple of 4): the size a joint model classifies at, e.g. 896."
    )
    dtype: LatentDtype = option("uint8", "uint8: round(clamp(z,0,1)·255); float16: z unclamped.")
    entropy: Entropy | None = option(
        None,
        "Lossless coding of uint8 latents: png (fast; ~0.24 bits/pixel on radiographs), webp (~0.20; ~10× the "
        "coding time) or none (raw, 0.5). [default: png for uint8; float16 is always raw]",
    )
    shard_size: int = option(1024, "Images per shard file.", min=1)
    workers: int | None = option(
        None, "Processes that read and encode (0: this one) [default: one per CPU core].", min=0
    )
    strict: bool = option(False, "Stop (exit 2) at the first unreadable image instead of skipping.")
    dicom_window: DicomWindow = option("file", DICOM_WINDOW_HELP)
    keep_dicom_header: bool = option(
        False,
        "Keep each DICOM's header (all its tags, no pixels: patient name, ID, dates included) in the store, so that "
        "decompress --format dicom restores them; the bytes count in bits_per_pixel.",
    )
    dicom_uids: bool = option(False, "Add study_uid, series_uid, sop_uid to manifest.csv (empty for non-DICOM images).")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.workers is not None and self.workers < 0:
            raise InputError(f"--workers must be 0 or more, not {self.workers}")
        if self.size is not None and (self.size < LATENT_SCALE or self.size % LATENT_SCALE):
            raise InputError(f"--size must be a positive multiple of {LATENT_SCALE} (e.g. 896), not {self.size}")
        if self.shard_size < 1:
            raise InputError(f"--shard-size must be at least 1, not {self.shard_size}")
