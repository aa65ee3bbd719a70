"""Reconstructions as DICOM: `decompress --format dicom`.

Each image becomes a Secondary Capture (PS3.3 A.8.1) with 8-bit MONOCHROME2 pixels, Explicit VR Little Endian, new
UIDs and empty patient and study attributes (a store keeps no source header yet, so nothing identifying can be
written), flagged lossy as PS3.3 C.7.6.1.1.5 asks: Lossy Image Compression "01", the ratio, and a method naming
cxrtool's codec (CS allows 16 characters: `CXRTOOL_` and the encoder identity's first 8 hex digits); the full
SHA-256 identity and the version are in Derivation Description.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrtool import __version__
from cxrtool.artifacts import atomic_path

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def lossy_method(identity: str) -> str:
    """The Lossy Image Compression Method value: at most 16 characters of A–Z, 0–9 and `_` (VR CS)."""
    return f"CXRTOOL_{identity[:8].upper()}"


def write_dicom(pixels: np.ndarray, path: Path, *, identity: str, ratio: float) -> None:
    """Write one H×W uint8 reconstruction to `path` atomically as an 8-bit MONOCHROME2 Secondary Capture."""
    from pydicom import Dataset, FileMetaDataset, dcmwrite
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError(f"expected an H×W uint8 image, not {pixels.dtype} {pixels.shape}")
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SECONDARY_CAPTURE)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"CXRTOOL_{__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = UID(SECONDARY_CAPTURE), sop_uid
    ds.ImageType = ["DERIVED", "SECONDARY"]
    # Patient and General Study modules: type 2, present and empty (no source header is kept)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "", "", "", ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = "", "", "", "", ""
    ds.Modality = "OT"  # the source modality is unknown without its header
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientOrientation = ""
    ds.ConversionType = "WSD"  # SC Equipment module: made on a workstation
    ds.Manufacturer = "cxrtool"
    ds.SoftwareVersions = __version__
    ds.DerivationDescription = (
        f"Reconstructed by cxrtool {__version__} from a learned 4x-per-side latent; lossy. Encoder identity "
        f"(SHA-256 of the encoder and decoder tensors): {identity}"
    )
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = f"{ratio:.6g}"
    ds.LossyImageCompressionMethod = lossy_method(identity)
    # Image Pixel module: 8-bit unsigned MONOCHROME2, as the 8-bit PNG that --format png writes
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds["PixelData"].VR = "OB"
    with atomic_path(path) as tmp:
        dcmwrite(tmp, ds, enforce_file_format=True)
