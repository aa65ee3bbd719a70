"""A store made from DICOMs decompresses to 8-bit MONOCHROME2 Secondary Captures flagged lossy, with the PNG
output's pixels, new UIDs and no patient data anywhere."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_support import PATIENT_ID, PATIENT_NAME, write_dicom
from PIL import Image
from pydicom import config, dcmread
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import validate_value
from typer.testing import CliRunner

from cxrtool.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def store(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of DICOM crops of a real radiograph: one of odd size, one MONOCHROME1, one 12-bit, one UID-named."""
    import torch

    from cxrtool.models.autoencoder import AutoEncoder
    from cxrtool.models.checkpoints import save_model

    root = tmp_path_factory.mktemp("dicom_store")
    with Image.open(sorted((real_data / "images").glob("*.png"))[2]) as img:
        pixels = np.asarray(img.convert("L"))[400:480, 300:380]
    images = root / "in"
    (images / "a").mkdir(parents=True)
    write_dicom(images / "a" / "chest.dcm", pixels[:48, :40])
    write_dicom(images / "odd.dcm", 255 - pixels[:33, :45], photometric="MONOCHROME1")  # 33·45: odd byte count
    write_dicom(images / "1.2.826.0.1.3680043.8.498.9", pixels.astype(np.uint16) * 16, bits=12)
    torch.manual_seed(0)
    ckpt = root / "ae.safetensors"
    save_model(ckpt, AutoEncoder(init="box"), kind="autoencoder", labels=(), input_spec={}, config={})
    out = root / "store"
    result = runner.invoke(app, ["compress", str(images), str(out), "--ckpt", str(ckpt), "--workers", "0"])
    assert result.exit_code == 0, result.output
    return out


def test_decompress_to_dicom_is_lossy_flagged_monochrome2_with_the_png_pixels(store, tmp_path):
    out = store
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dicom_window"] == "file"
    for fmt in ("png", "dicom"):
        result = runner.invoke(app, ["decompress", str(out), str(tmp_path / fmt), "--format", fmt])
        assert result.exit_code == 0, result.output
    manifest = pd.read_csv(out / "manifest.csv").set_index("rel_path")
    names = {"a/chest.dcm": "a/chest", "odd.dcm": "odd", "1.2.826.0.1.3680043.8.498.9": "1.2.826.0.1.3680043.8.498.9"}
    for rel, stem in names.items():
        with Image.open(tmp_path / "png" / f"{stem}.png") as img:
            png = np.asarray(img)
        ds = dcmread(tmp_path / "dicom" / f"{stem}.dcm")
        for elem in [*ds.file_meta, *ds]:  # every value valid for its VR (CS characters and lengths, DS, UI...)
            for value in elem.value if isinstance(elem.value, MultiValue) else [elem.value]:
                validate_value(elem.VR, str(value) if elem.VR in ("DS", "IS") else value, config.RAISE)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" == ds.file_meta.MediaStorageSOPClassUID
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsStored == 8 and ds.BitsAllocated == 8
        assert (ds.Rows, ds.Columns) == (manifest.loc[rel, "orig_height"], manifest.loc[rel, "orig_width"])
        assert np.array_equal(ds.pixel_array, png)
        assert ds.LossyImageCompression == "01"
        assert float(ds.LossyImageCompressionRatio) == pytest.approx(png.size / manifest.loc[rel, "bytes"], rel=1e-5)
        assert ds.LossyImageCompressionMethod == "CXRTOOL_" + summary["encoder_sha256"][:8].upper()
        assert summary["encoder_sha256"] in ds.DerivationDescription
        assert str(ds.PatientName) == "" and ds.PatientID == ""
    uids = [dcmread(p).SOPInstanceUID for p in sorted((tmp_path / "dicom").rglob("*.dcm"))]
    assert len(set(uids)) == 3
    # nothing identifying from the sources in the store or in either output
    for path in [*out.rglob("*"), *tmp_path.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert PATIENT_NAME.encode() not in data and PATIENT_ID.encode() not in data, path


def test_decompress_refuses_an_unknown_format(store, tmp_path):
    out = store
    result = runner.invoke(app, ["decompress", str(out), str(tmp_path / "x"), "--format", "tiff"])
    assert result.exit_code == 2 and "--format" in result.stderr
