"""Reading a 2048² 12-bit uncompressed DICOM against reading a PNG of the same pixels, through `open_image`.

    PNG:    16-bit grayscale PNG holding the 12-bit values            → open_image → mode F (0–255)
    DICOM:  Explicit VR Little Endian, Bits Stored 12, a rescale and
            a window (the default `--dicom-window file`), and the same
            file read with `minmax` and with `none`                    → open_image → mode F (0–255)

The pixels are real radiographs (ChestX-ray14, 1024²) upsampled to 2048², ×16 and given Gaussian noise of σ = 4
levels, as a detector's low bits would be, so the PNG does not compress unrealistically well. Files are read once
before timing (warm page cache, as in a training epoch after the first).

Run by hand:  .venv/bin/python benchmarks/bench_dicom.py [--images ../shared/nih-cxr14/images] [--n 8] [--repeats 5]
Prints ms per image of each reader (median of interleaved repeats) and the ratio DICOM / PNG (≤ 1 is the target).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cxrtool.data.images import list_image_files, open_image

SIDE = 2048


def make_pixels(source: Path, rng: np.random.Generator) -> np.ndarray:
    with Image.open(source) as img:
        big = img.convert("L").resize((SIDE, SIDE), Image.BILINEAR)
    values = np.asarray(big, dtype=np.float32) * 16.0 + rng.normal(0.0, 4.0, (SIDE, SIDE))
    return np.clip(np.rint(values), 0, 4095).astype(np.uint16)


def write_png(pixels: np.ndarray, path: Path) -> None:
    Image.frombytes("I;16", (SIDE, SIDE), pixels.astype("<u2").tobytes()).save(path)


def write_dicom(pixels: np.ndarray, path: Path) -> None:
    from pydicom import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation, ds.SamplesPerPixel = "DX", "MONOCHROME2", 1
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "US"
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def time_reads(paths: list[Path], window: str | None = None) -> float:
    """ms per image."""
    start = time.perf_counter()
    for path in paths:
        open_image(path, dicom_window=window)
    return 1000.0 * (time.perf_counter() - start) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--images", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "nih-cxr14" / "images"
    )
    parser.add_argument("--n", type=int, default=8, help="images (each written as a PNG and a DICOM)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sources = [args.images / rel for rel in list_image_files(args.images)][: args.n]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        pngs, dicoms = [], []
        for i, source in enumerate(sources):
            pixels = make_pixels(source, rng)
            pngs.append(Path(tmp) / f"{i}.png")
            dicoms.append(Path(tmp) / f"{i}.dcm")
            write_png(pixels, pngs[-1])
            write_dicom(pixels, dicoms[-1])
            # the same pixels in both (the window 2048/4096 maps 12 bits onto [0, 1] almost exactly as /4095 does)
            a, b = np.asarray(open_image(pngs[-1])), np.asarray(open_image(dicoms[-1], dicom_window="none"))
            assert np.abs(a * (65535 / 4095) - b).max() < 1e-2
        png_mb = sum(p.stat().st_size for p in pngs) / len(pngs) / 1e6
        dcm_mb = sum(p.stat().st_size for p in dicoms) / len(dicoms) / 1e6
        print(f"{len(sources)} images {SIDE}² 12-bit: PNG {png_mb:.1f} MB, DICOM {dcm_mb:.1f} MB each; one process")
        readers = {
            "PNG (16-bit)": lambda: time_reads(pngs),
            "DICOM, window file": lambda: time_reads(dicoms, "file"),
            "DICOM, window minmax": lambda: time_reads(dicoms, "minmax"),
            "DICOM, window none": lambda: time_reads(dicoms, "none"),
        }
        for read in readers.values():
            read()  # warm the page cache and the imports
        runs: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(args.repeats):  # interleaved, so a change of machine load hits all alike
            for name, read in readers.items():
                runs[name].append(read())
    medians = {name: statistics.median(v) for name, v in runs.items()}
    base = medians["PNG (16-bit)"]
    for name, ms in medians.items():
        each = [round(r, 1) for r in runs[name]]
        print(f"  {name:22s} {ms:7.1f} ms/image   ratio to PNG {ms / base:5.2f}   runs: {each}")


if __name__ == "__main__":
    main()
