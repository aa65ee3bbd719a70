"""Test DICOMs made at test time with pydicom: any stored array, photometric, depth, tags and transfer syntax, each
carrying a patient name and ID that must never reach an output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-4417-XYZ"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def _base(sop_class: str, syntax: str) -> Any:
    from pydicom import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, "19610203"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    return ds


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 8,
    syntax: str | None = None,
    **tags: Any,
) -> Path:
    """`stored` (H×W, F×H×W, or H×W×3 for RGB) as a DX image; a signed dtype sets Pixel Representation 1; `tags`
    are further elements by keyword (RescaleSlope=2, WindowCenter=…); `syntax` a transfer syntax UID (compressed
    ones encoded by pydicom)."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    syntax = syntax or ExplicitVRLittleEndian
    native = syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    ds = _base(DX_STORAGE, syntax if native else ExplicitVRLittleEndian)
    ds.Modality = "DX"
    colour = photometric == "RGB"
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    frames = stored.shape[0] if stored.ndim == 3 and not colour else 1
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = stored.shape[-3:-1] if colour else stored.shape[-2:]
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.PixelRepresentation = 1 if np.issubdtype(stored.dtype, np.signedinteger) else 0
    for key, value in tags.items():
        setattr(ds, key, value)
    dtype = f"<{'i' if ds.PixelRepresentation else 'u'}{ds.BitsAllocated // 8}"
    pixels = np.ascontiguousarray(stored.astype(dtype))
    ds.PixelData = pixels.tobytes()
    if not native:
        ds.compress(syntax, pixels)
    ds.save_as(path, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True, enforce_file_format=True)
    return path


def write_report(path: Path) -> Path:
    """A Basic Text SR: a DICOM file without pixel data."""
    from pydicom.uid import ExplicitVRLittleEndian

    ds = _base("1.2.840.10008.5.1.4.1.1.88.11", ExplicitVRLittleEndian)
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    ds.save_as(path, enforce_file_format=True)
    return path
