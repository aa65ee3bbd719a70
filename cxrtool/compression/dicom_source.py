"""What `compress --keep-dicom-header` and `compress --dicom-uids` take from each DICOM source, read in the worker
process that reads its pixels: the header (the file without its pixel data, `read_dicom_header`) and the Study,
Series and SOP Instance UIDs. Non-DICOM inputs give nothing. Both are off by default: a header holds the patient's
name, ID and dates, and UIDs can link an image to a patient."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import NamedTuple

from cxrtool.data.dicom import DicomError, read_dicom_header
from cxrtool.data.images import is_dicom_file

UID_TAGS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class KeepDicom:
    header: bool = False  # --keep-dicom-header
    uids: bool = False  # --dicom-uids

    def __bool__(self) -> bool:
        return self.header or self.uids


class SourceTags(NamedTuple):
    header: bytes  # b"" where not kept or not a DICOM
    uids: tuple[str, str, str] | None  # study, series, SOP instance; None where not asked or not a DICOM


NONE = SourceTags(b"", None)


def source_tags(path: Path, keep: KeepDicom) -> SourceTags:
    """What `keep` asks of the file at `path`; DicomError where it is a DICOM whose header cannot be read."""
    if not keep or not is_dicom_file(path):
        return NONE
    header = read_dicom_header(path)
    uids = None
    if keep.uids:
        from pydicom import dcmread

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = dcmread(BytesIO(header), force=True, specific_tags=list(UID_TAGS))
                study, series, sop = (str(ds.get(tag) or "") for tag in UID_TAGS)
        except Exception as e:  # pydicom raises many types for a malformed file
            raise DicomError(f"unreadable UIDs ({e})") from None
        uids = (study, series, sop)
    return SourceTags(header if keep.header else b"", uids)
