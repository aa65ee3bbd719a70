"""Reconstructions as DICOM: `decompress --format dicom`.

Without a kept header, each image becomes a Secondary Capture (PS3.3 A.8.1) with new UIDs and empty patient and
study attributes, so that nothing identifying can be written. With the header that `compress --keep-dicom-header`
kept, the source's own attributes are restored around the new pixels (`_restored`):

- kept: every patient, study, series and equipment attribute, the SOP Class (a multi-frame source becomes a
  Secondary Capture, since one frame is written), Study and Series Instance UIDs;
- new: the SOP Instance UID (the pixels differ from the source's, so they are another instance), with the source's
  SOP Class and Instance UID in Source Image Sequence, and Image Type's first value DERIVED (PS3.3 C.7.6.1.1.2);
- made true of the new pixels: the Image Pixel module (8-bit MONOCHROME2, Rows and Columns of the written pixels);
  every other group-0028 element (palette, padding, smallest/largest value, ICC profile...) dropped but the few that
  stay true (KEEP_0028); Rescale Slope/Intercept set to 1/0 and a window 128/256 (which maps 0–255 onto itself)
  where the source had a Modality LUT or a VOI, since the new pixels are already the displayed grey levels;
  Presentation LUT Shape IDENTITY; Pixel Intensity Relationship Sign negated where the source's values were
  inverted (MONOCHROME1, or a negative rescale slope); Pixel Spacing, Imager Pixel Spacing and Nominal Scanned
  Pixel Spacing scaled by original/new pixels per axis where `compress --size` changed the pixel count (then the
  Pixel Aspect Ratio and overlay planes, drawn on the old grid, are dropped).

Either way the pixels are 8-bit MONOCHROME2 in Explicit VR Little Endian, flagged lossy as PS3.3 C.7.6.1.1.5 asks:
Lossy Image Compression "01", the ratio, and a method naming cxrtool's codec (CS allows 16 characters: `CXRTOOL_`
and the encoder identity's first 8 hex digits), appended to the source's own values where it was lossy already; the
full SHA-256 identity and the version are in Derivation Description.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from cxrtool import __version__
from cxrtool.artifacts import atomic_path

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# group 0028 elements that stay true of the new pixels; Pixel Spacing and Aspect Ratio are adjusted where resized
KEEP_0028 = frozenset(
    {
        "PixelSpacing",
        "PixelAspectRatio",
        "PixelSpacingCalibrationType",
        "PixelSpacingCalibrationDescription",
        "PixelIntensityRelationship",
        "PixelIntensityRelationshipSign",
        "RescaleType",
        "BurnedInAnnotation",
        "RecognizableVisualFeatures",
        "QualityControlImage",
        "LossyImageCompression",
        "LossyImageCompressionRatio",
        "LossyImageCompressionMethod",
    }
)
SPACINGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")  # row spacing \ column spacing
MULTI_FRAME = ("NumberOfFrames", "FrameIncrementPointer", "SharedFunctionalGroupsSequence")
PER_FRAME = "PerFrameFunctionalGroupsSequence"
IDENTITY_WINDOW = ("128", "256")  # center, width: LINEAR maps 0…255 to itself (PS3.3 C.11.2.1.2.1)


def lossy_method(identity: str) -> str:
    """The Lossy Image Compression Method value: at most 16 characters of A–Z, 0–9 and `_` (VR CS)."""
    return f"CXRTOOL_{identity[:8].upper()}"


def derivation(identity: str) -> str:
    return (
        f"Reconstructed by cxrtool {__version__} from a learned 4x-per-side latent; lossy. Encoder identity "
        f"(SHA-256 of the encoder and decoder tensors): {identity}"
    )


def write_dicom(pixels: np.ndarray, path: Path, *, identity: str, ratio: float, source: bytes | None = None) -> None:
    """Write one H×W uint8 reconstruction to `path` atomically as 8-bit MONOCHROME2: around the attributes of
    `source` (a header kept by `compress --keep-dicom-header`) where given, else as a Secondary Capture."""
    from pydicom import FileMetaDataset, dcmwrite
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError(f"expected an H×W uint8 image, not {pixels.dtype} {pixels.shape}")
    sop_uid = generate_uid()
    ds = _restored(source, pixels.shape, identity) if source else _secondary_capture(identity)
    ds.SOPInstanceUID = sop_uid
    _flag_lossy(ds, identity, ratio)
    # Image Pixel module: 8-bit unsigned MONOCHROME2, as the 8-bit PNG that --format png writes
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds["PixelData"].VR = "OB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"CXRTOOL_{__version__}"[:16]
    ds.file_meta = meta
    with atomic_path(path) as tmp:
        dcmwrite(tmp, ds, enforce_file_format=True)


def _secondary_capture(identity: str) -> Any:
    from pydicom import Dataset
    from pydicom.uid import UID, generate_uid

    ds = Dataset()
    ds.SOPClassUID = UID(SECONDARY_CAPTURE)
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
    ds.DerivationDescription = derivation(identity)
    return ds


def _restored(source: bytes, shape: tuple[int, ...], identity: str) -> Any:
    """The source header made true of new H×W 8-bit MONOCHROME2 pixels (see the module docstring)."""
    from pydicom import Dataset, dcmread
    from pydicom.uid import UID

    ds = dcmread(BytesIO(source), force=True)
    rows, columns = int(ds.get("Rows") or shape[0]), int(ds.get("Columns") or shape[1])
    resized = (rows, columns) != tuple(shape)
    slope = float(ds.get("RescaleSlope") or 1)
    inverted = (str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1") != (slope < 0)
    had_modality = any(k in ds for k in ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence"))
    had_voi = any(k in ds for k in ("WindowCenter", "VOILUTSequence"))
    source_sop = (ds.get("SOPClassUID"), ds.get("SOPInstanceUID"))
    multi_frame = any(k in ds for k in (*MULTI_FRAME, PER_FRAME))

    for elem in list(ds):
        group = elem.tag.group
        pixel_attr = group == 0x0028 and elem.keyword not in KEEP_0028
        overlay = resized and 0x6000 <= group <= 0x601E and group % 2 == 0
        if pixel_attr or overlay or elem.keyword in (*MULTI_FRAME, PER_FRAME):
            del ds[elem.tag]
    if multi_frame:  # one frame is written: a single-frame Secondary Capture rather than the multi-frame IOD
        ds.SOPClassUID = UID(SECONDARY_CAPTURE)
        ds.ConversionType = ds.get("ConversionType") or "WSD"
    if had_modality:
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
    if had_voi:
        ds.WindowCenter, ds.WindowWidth = IDENTITY_WINDOW
    if "PresentationLUTShape" in ds:
        ds.PresentationLUTShape = "IDENTITY"
    if inverted and "PixelIntensityRelationshipSign" in ds:
        ds.PixelIntensityRelationshipSign = -int(ds.PixelIntensityRelationshipSign)
    if resized:
        _scale_spacing(ds, rows / shape[0], columns / shape[1])
    image_type = [str(v) for v in (ds.get("ImageType") or ["DERIVED", "SECONDARY"])]
    ds.ImageType = ["DERIVED", *image_type[1:]] if image_type else ["DERIVED", "SECONDARY"]
    if source_sop[0] and source_sop[1]:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = source_sop
        ds.SourceImageSequence = [ref]
    before = str(ds.get("DerivationDescription") or "")
    ds.DerivationDescription = (derivation(identity) + (f" Before: {before}" if before else ""))[:1024]  # VR ST
    return ds


def _scale_spacing(ds: Any, row_factor: float, column_factor: float) -> None:
    """Pixel spacings (row \\ column, in mm) for pixels `row_factor` and `column_factor` times as large."""
    from pydicom.valuerep import format_number_as_ds

    for keyword in SPACINGS:
        values = ds.get(keyword)
        if values is not None and len(values) == 2:
            row, column = (float(v) for v in values)
            scaled = (float(f"{row * row_factor:.10g}"), float(f"{column * column_factor:.10g}"))  # no float noise
            setattr(ds, keyword, [format_number_as_ds(v) for v in scaled])
    if "PixelAspectRatio" in ds:
        del ds.PixelAspectRatio  # the spacings say it; an integer ratio could not


def _flag_lossy(ds: Any, identity: str, ratio: float) -> None:
    """Lossy Image Compression "01", its ratio and method: appended to the source's where it was lossy already
    (PS3.3 C.7.6.1.1.5: one value per lossy step, in order)."""
    ratios: list[str] = []
    methods: list[str] = []
    if str(ds.get("LossyImageCompression", "")).strip() == "01":
        ratios = [str(v) for v in _values(ds.get("LossyImageCompressionRatio"))]
        methods = [str(v) for v in _values(ds.get("LossyImageCompressionMethod"))]
        if len(ratios) != len(methods):
            ratios, methods = [], []  # an inconsistent history cannot be extended: start it here
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.6g}"]
    ds.LossyImageCompressionMethod = [*methods, lossy_method(identity)]


def _values(value: Any) -> list[Any]:
    from pydicom.multival import MultiValue

    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue) else [value]
