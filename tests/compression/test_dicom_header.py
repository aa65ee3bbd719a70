"""`compress --keep-dicom-header` and `--dicom-uids`: what a store keeps of its DICOM sources, and the DICOMs that
`decompress --format dicom` rebuilds around the new pixels. Checked against pydicom reading the sources directly."""

import json
import shutil
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_support import PATIENT_ID, PATIENT_NAME, write_dicom
from PIL import Image
from pydicom import config, dcmread
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import RLELossless
from pydicom.valuerep import validate_value
from safetensors import safe_open
from typer.testing import CliRunner

from cxrtool.cli.app import app

runner = CliRunner()
ACCESSION = "ACC-99321-Q"
DEFAULT_COLUMNS = "image,rel_path,shard,key,orig_width,orig_height,orig_mode,latent_height,latent_width,dtype,bytes"
SOURCES = {"a/chest.dcm": "a/chest", "m1.dcm": "m1", "1.2.826.0.1.3680043.8.498.7": "1.2.826.0.1.3680043.8.498.7"}


def smooth(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(0.5 + 0.3 * np.sin(x / 5.0 + rng.uniform(0, 6)) * np.cos(y / 7.0), 0, 1)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three DICOMs with patient, study and spacing tags (8-bit; 12-bit MONOCHROME1 with rescale, window, padding
    and a DX Presentation LUT; RLE without suffix) and a PNG."""
    root = tmp_path_factory.mktemp("dicom_header") / "in"
    (root / "a").mkdir(parents=True)
    study = {"StudyDate": "20190312", "AccessionNumber": ACCESSION, "StudyDescription": "CHEST PA", "StudyID": "7"}
    write_dicom(
        root / "a" / "chest.dcm",
        (smooth(48, 40, 0) * 255).astype(np.uint8),
        PixelSpacing=[0.143, 0.139],
        ImagerPixelSpacing=[0.15, 0.15],
        **study,
    )
    write_dicom(
        root / "m1.dcm",
        (smooth(36, 44, 1) * 4000).astype(np.uint16),
        photometric="MONOCHROME1",
        bits=12,
        RescaleSlope=2,
        RescaleIntercept=-100,
        WindowCenter=3500,
        WindowWidth=7000,
        PixelPaddingValue=4095,
        PresentationLUTShape="INVERSE",
        PixelIntensityRelationship="LIN",
        PixelIntensityRelationshipSign=1,
        ImageType=["ORIGINAL", "PRIMARY"],
        PixelSpacing=[0.2, 0.2],
        **study,
    )
    write_dicom(
        root / "1.2.826.0.1.3680043.8.498.7", (smooth(40, 40, 2) * 255).astype(np.uint8), syntax=RLELossless, **study
    )
    Image.fromarray((smooth(32, 36, 3) * 255).astype(np.uint8)).save(root / "plain.png")
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from cxrtool.models.autoencoder import AutoEncoder
    from cxrtool.models.checkpoints import save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "ae.safetensors"
    save_model(path, AutoEncoder(init="box"), kind="autoencoder", labels=(), input_spec={}, config={})
    return path


def compress(sources: Path, out: Path, ckpt: Path, *flags: str) -> Path:
    args = ["compress", str(sources), str(out), "--ckpt", str(ckpt), "--workers", "0", "--shard-size", "2", *flags]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def decompress(store: Path, rec: Path, fmt: str) -> Path:
    result = runner.invoke(app, ["decompress", str(store), str(rec), "--format", fmt])
    assert result.exit_code == 0, result.output
    return rec


@pytest.fixture(scope="module")
def stores(sources: Path, ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {
        "plain": compress(sources, root / "plain", ckpt),
        "uids": compress(sources, root / "uids", ckpt, "--dicom-uids"),
        "header": compress(sources, root / "header", ckpt, "--keep-dicom-header"),
        "sized": compress(sources, root / "sized", ckpt, "--keep-dicom-header", "--size", "32"),
    }


def files_of(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def test_nothing_identifying_is_written_without_keep_dicom_header(stores, tmp_path):
    recs = [decompress(stores[name], tmp_path / name, "dicom") for name in ("plain", "uids")]
    for path in files_of(stores["plain"], stores["uids"], *recs):
        data = path.read_bytes()
        for secret in (PATIENT_NAME, PATIENT_ID, ACCESSION):
            assert secret.encode() not in data, (secret, path)
    # the check can fail: the store that keeps headers holds them
    assert any(PATIENT_ID.encode() in p.read_bytes() for p in files_of(stores["header"]))


def test_dicom_uids_columns_are_the_sources_uids(sources, stores):
    plain = (stores["plain"] / "manifest.csv").read_text().splitlines()[0]
    assert plain == DEFAULT_COLUMNS
    assert (stores["uids"] / "manifest.csv").read_text().splitlines()[
        0
    ] == DEFAULT_COLUMNS + ",study_uid,series_uid,sop_uid"
    manifest = pd.read_csv(stores["uids"] / "manifest.csv", dtype=str, keep_default_na=False).set_index("rel_path")
    for rel in SOURCES:
        src = dcmread(sources / rel)
        row = manifest.loc[rel]
        assert (row.study_uid, row.series_uid, row.sop_uid) == (
            src.StudyInstanceUID,
            src.SeriesInstanceUID,
            src.SOPInstanceUID,
        )
    assert tuple(manifest.loc["plain.png", ["study_uid", "series_uid", "sop_uid"]]) == ("", "", "")
    summary = json.loads((stores["uids"] / "summary.json").read_text())
    assert summary["dicom_uids"] is True and summary["config"]["dicom_uids"] is True


def _check_valid(ds) -> None:
    for elem in [*ds.file_meta, *ds]:  # every value valid for its VR (CS characters and lengths, DS, UI...)
        if elem.VR == "SQ":
            continue
        for value in elem.value if isinstance(elem.value, MultiValue) else [elem.value]:
            validate_value(elem.VR, str(value) if elem.VR in ("DS", "IS") else value, config.RAISE)


@pytest.mark.parametrize("name", ["header", "sized"])
def test_kept_headers_are_restored_around_the_new_pixels(name, sources, stores, tmp_path):
    store = stores[name]
    png, dicom = decompress(store, tmp_path / "png", "png"), decompress(store, tmp_path / "dcm", "dicom")
    identity = json.loads((store / "summary.json").read_text())["encoder_sha256"]
    for rel, stem in SOURCES.items():
        src, ds = dcmread(sources / rel), dcmread(dicom / f"{stem}.dcm")
        _check_valid(ds)
        for tag in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "SeriesInstanceUID"):
            assert ds[tag].value == src[tag].value, tag
        for tag in ("StudyDate", "AccessionNumber", "StudyDescription", "StudyID", "Modality", "SOPClassUID"):
            assert ds[tag].value == src[tag].value, tag
        assert ds.SOPInstanceUID != src.SOPInstanceUID == ds.SourceImageSequence[0].ReferencedSOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID and ds.ImageType[0] == "DERIVED"
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert (ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit) == ("MONOCHROME2", 8, 8, 7)
        assert ds.PixelRepresentation == 0 and "PixelPaddingValue" not in ds
        with Image.open(png / f"{stem}.png") as img:
            pixels = np.asarray(img)
        assert np.array_equal(ds.pixel_array, pixels)
        # the restored rescale and window leave the new pixels as they are
        np.testing.assert_allclose(apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds), pixels, atol=1e-9)
        size = (32, 32) if name == "sized" else (src.Rows, src.Columns)
        assert (ds.Rows, ds.Columns) == size == pixels.shape
        for tag in ("PixelSpacing", "ImagerPixelSpacing"):
            if tag in src:
                want = [float(src[tag].value[0]) * src.Rows / size[0], float(src[tag].value[1]) * src.Columns / size[1]]
                np.testing.assert_allclose([float(v) for v in ds[tag].value], want, rtol=1e-9)
        assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "CXRTOOL_" + identity[:8].upper()
    m1 = dcmread(dicom / "m1.dcm")
    assert (m1.RescaleSlope, m1.RescaleIntercept, m1.WindowCenter, m1.WindowWidth) == (1, 0, 128, 256)
    assert m1.PresentationLUTShape == "IDENTITY" and m1.PixelIntensityRelationshipSign == -1  # MONOCHROME1 inverted
    plain = dcmread(dicom / "plain.dcm")  # a PNG source has no header: a Secondary Capture without patient data
    assert plain.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and plain.PatientID == ""


def test_headers_count_in_bits_per_pixel(sources, stores):
    with_h, without = (json.loads((stores[n] / "summary.json").read_text()) for n in ("header", "plain"))
    shards = {n: sorted(stores[n].glob("latents-*.safetensors")) for n in ("header", "plain")}
    sizes = {n: sum(p.stat().st_size for p in shards[n]) for n in shards}
    manifest = pd.read_csv(stores["plain"] / "manifest.csv")
    pixels = int((manifest.orig_width * manifest.orig_height).sum())
    assert with_h["bits_per_pixel"] == pytest.approx(8 * sizes["header"] / pixels, rel=1e-12)
    assert with_h["bits_per_pixel"] - without["bits_per_pixel"] == pytest.approx(
        8 * (sizes["header"] - sizes["plain"]) / pixels, rel=1e-9
    )
    kept = {}
    for path in shards["header"]:
        with safe_open(str(path), framework="np") as f:
            names = f.keys()
            kept.update({k: f.get_tensor(k).tobytes() for k in names if k.startswith("/dicom-header/")})
    assert sorted(kept) == sorted("/dicom-header/" + rel for rel in SOURCES)  # none for the PNG
    assert with_h["dicom_header_bytes"] == sum(map(len, kept.values())) > 0
    assert sizes["header"] - sizes["plain"] > with_h["dicom_header_bytes"]  # plus their entries in the JSON headers
    for key, data in kept.items():
        ds = dcmread(BytesIO(data))
        assert (
            "PixelData" not in ds
            and ds.SOPInstanceUID == dcmread(sources / key[len("/dicom-header/") :]).SOPInstanceUID
        )


def test_resume_with_another_keep_dicom_header_is_refused(sources, stores, ckpt, tmp_path):
    copy = tmp_path / "resume"
    shutil.copytree(stores["plain"], copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    args = ["compress", str(sources), str(copy), "--ckpt", str(ckpt), "--workers", "0", "--shard-size", "2"]
    result = runner.invoke(app, [*args, "--keep-dicom-header"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "dicom_header False (now True)" in lines[0] and "--keep-dicom-header" in lines[0]
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_merged_parts_keep_headers_and_uids(sources, stores, ckpt, tmp_path):
    flags = ("--keep-dicom-header", "--dicom-uids")
    whole = compress(sources, tmp_path / "whole", ckpt, *flags)
    parts = [compress(sources, tmp_path / f"p{i}", ckpt, *flags, "--shard", f"{i}/2") for i in range(2)]
    result = runner.invoke(app, ["compress-merge", *map(str, parts), "--out", str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert merged["dicom_header"] is True and merged["dicom_uids"] is True
    for name in ("manifest.csv", "latents-00000.safetensors", "latents-00001.safetensors"):
        assert (tmp_path / "merged" / name).read_bytes() == (whole / name).read_bytes(), name
    assert merged["dicom_header_bytes"] == json.loads((whole / "summary.json").read_text())["dicom_header_bytes"]
