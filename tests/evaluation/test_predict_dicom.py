"""`predict` on DICOMs made from a real radiograph: the same probabilities as the PNG of the same pixels, a DICOM
without pixels skipped (exit 3, errors.csv), `--dicom-window` reaching worker processes, no patient data out."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_support import PATIENT_ID, PATIENT_NAME, write_dicom, write_report
from PIL import Image
from pydicom.uid import RLELossless
from typer.testing import CliRunner

from cxrtool.cli.app import app
from cxrtool.config.evaluation import EvaluationConfig, InferenceConfig
from cxrtool.data.dicom import WINDOW_ENV
from cxrtool.data.labels import LABELS

runner = CliRunner()
SIDE = 64  # a real radiograph reduced 16×: DenseNet at the checkpoint's 32-px crop stays cheap on a CPU


def real_pixels(real_data: Path, index: int) -> np.ndarray:
    """One real ChestX-ray14 image, box-reduced to SIDE², made to span 0–255 (as the issue's exactness needs)."""
    source = sorted((real_data / "images").glob("*.png"))[index]
    with Image.open(source) as img:
        pixels = np.asarray(img.convert("L").reduce(img.width // SIDE)).copy()
    pixels[0, 0], pixels[0, 1] = 0, 255
    return pixels


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from cxrtool.models.checkpoints import save_model
    from cxrtool.models.classifier import Classifier

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "c.safetensors"
    spec = {"resize": 36, "crop": 32, "channels": 3, "encoder_first": False}
    save_model(path, Classifier().eval(), kind="classifier", labels=LABELS, input_spec=spec, config={})
    return path


@pytest.fixture(scope="module")
def folder(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x.png and DICOMs of the same pixels, another image's PNG, and a report without pixels."""
    root = tmp_path_factory.mktemp("dicoms")
    pixels = real_pixels(real_data, 0)
    Image.fromarray(pixels).save(root / "x.png")
    Image.fromarray(real_pixels(real_data, 1)).save(root / "other.png")
    write_dicom(root / "mono2.dcm", pixels)
    write_dicom(root / "mono1.dcm", 255 - pixels, photometric="MONOCHROME1")
    write_dicom(root / "mono2_rle.dcm", pixels, syntax=RLELossless)
    write_dicom(root / "1.2.826.0.1.3680043.8.498.42", 255 - pixels, photometric="MONOCHROME1", syntax=RLELossless)
    write_dicom(root / "IM0002", pixels)  # MONOCHROME2, no suffix
    # 12 bits: stored = 16·x + 8, rescaled to m = 2·stored − 1024; the LINEAR window (c, w) with w − 1 = 32·255
    # and c − 0.5 = 16 − 1024 + 16·255 maps m back onto x / 255 (PS3.3 C.11.2.1.2.1)
    stored = pixels.astype(np.uint16) * 16 + 8
    write_dicom(
        root / "twelve.dcm",
        stored,
        bits=12,
        RescaleSlope=2,
        RescaleIntercept=-1024,
        WindowCenter=16 - 1024 + 16 * 255 + 0.5,
        WindowWidth=32 * 255 + 1,
    )
    write_report(root / "report.dcm")
    return root


EIGHT_BIT = ["mono2.dcm", "mono1.dcm", "mono2_rle.dcm", "1.2.826.0.1.3680043.8.498.42", "IM0002"]


def probabilities(csv: Path) -> pd.DataFrame:
    return pd.read_csv(csv).set_index("image")[list(LABELS)]


def test_predict_reads_dicoms_as_the_png_of_their_pixels_and_skips_a_report(folder, ckpt, tmp_path):
    out = tmp_path / "preds" / "predictions.csv"
    args = ["predict", str(folder), "--ckpt", str(ckpt), "--out", str(out), "--workers", "0", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    assert "report.dcm" in result.stderr and "without pixel data" in result.stderr
    errors = pd.read_csv(out.parent / "errors.csv")
    assert list(errors.columns) == ["image", "error"] and list(errors["image"]) == ["report.dcm"]
    probs = probabilities(out)
    assert sorted(probs.index) == sorted([*EIGHT_BIT, "other.png", "twelve.dcm", "x.png"])
    png = probs.loc["x.png"].to_numpy()
    # the comparison can fail: another radiograph moves the probabilities far more than the tolerances
    assert np.abs(probs.loc["other.png"].to_numpy() - png).max() > 1e-3
    for name in EIGHT_BIT:
        assert np.abs(probs.loc[name].to_numpy() - png).max() <= 1e-5, name
    assert np.abs(probs.loc["twelve.dcm"].to_numpy() - png).max() <= 1e-3
    for text in (result.stdout, result.stderr, out.read_text(), (out.parent / "errors.csv").read_text()):
        assert PATIENT_NAME not in text and PATIENT_ID not in text

    again = runner.invoke(app, args)  # errors.csv (and the CSV) are not replaced without --overwrite
    assert again.exit_code == 2 and "--overwrite" in again.stderr


def test_dicom_window_reaches_worker_processes(folder, ckpt, tmp_path, monkeypatch):
    """`--dicom-window none` with a worker process: the 12-bit file is read over its whole 12-bit range, so its
    probabilities leave the windowed ones; a report among the inputs does not kill the DataLoader."""
    from cxrtool.evaluation.predict import predict_files

    monkeypatch.setenv(WINDOW_ENV, "file")  # restored after the test, whatever the command sets
    inputs = [folder / "twelve.dcm", folder / "report.dcm"]
    out = tmp_path / "p.csv"
    cli = [*map(str, inputs), "--ckpt", str(ckpt), "--out", str(out), "--workers", "1", "--device", "cpu"]
    result = runner.invoke(app, ["predict", *cli, "--dicom-window", "none"])
    assert result.exit_code == 3, result.output
    got = probabilities(out).to_numpy()
    assert got.shape == (1, len(LABELS))

    def in_process(window: str) -> np.ndarray:
        monkeypatch.setenv(WINDOW_ENV, window)
        run = InferenceConfig(batch_size=4, workers=0, device="cpu", dicom_window=window)
        frame = predict_files(inputs[:1], ckpt, run=run)
        return frame[list(LABELS)].to_numpy()

    assert np.abs(got - in_process("none")).max() <= 1e-6
    assert np.abs(got - in_process("file")).max() > 1e-4

    bad = runner.invoke(app, ["predict", *cli, "--dicom-window", "auto", "--overwrite"])
    assert bad.exit_code == 2 and "--dicom-window" in bad.stderr


@pytest.mark.slow  # evaluate draws roc.png: several seconds of matplotlib
def test_evaluate_on_a_splits_file_naming_dicoms(synth_small, ckpt, tmp_path, monkeypatch):
    """A splits.csv whose images are DICOMs (MONOCHROME1 here) evaluates as the PNGs of the same pixels, and the
    evaluation records the window it read them with."""
    import json

    from tests_support import splits_for

    from cxrtool.evaluation.evaluate import evaluate_images
    from cxrtool.evaluation.predict import predict_files

    monkeypatch.setenv(WINDOW_ENV, "file")
    splits = pd.read_csv(splits_for(synth_small, tmp_path))
    test = splits[splits["split"] == "test"].head(6).copy()
    dicoms = tmp_path / "dicoms"
    dicoms.mkdir()
    for name in test["image"]:
        with Image.open(synth_small / "images" / name) as img:
            pixels = np.asarray(img.convert("L"))
        # synthetic images need not span 0–255: the window 128/256 is the identity on 8 bits
        inverted = 255 - pixels
        write_dicom(dicoms / name.replace(".png", ".dcm"), inverted, photometric="MONOCHROME1", WindowCenter=128,
                    WindowWidth=256)  # fmt: skip
    pngs = [synth_small / "images" / name for name in test["image"]]
    test["image"] = test["image"].str.replace(".png", ".dcm")
    test["path"] = test["image"]
    test.to_csv(tmp_path / "s.csv", index=False)
    result = evaluate_images(
        ckpt, tmp_path / "s.csv", dicoms, tmp_path / "e_dcm", evaluation=EvaluationConfig(bootstrap=10),
        run=InferenceConfig(device="cpu", workers=0),
    )  # fmt: skip
    assert result.images == 6
    dcm = pd.read_csv(tmp_path / "e_dcm" / "predictions.csv")[list(LABELS)].to_numpy()
    png = predict_files(pngs, ckpt, run=InferenceConfig(batch_size=8, workers=0, device="cpu"))[list(LABELS)].to_numpy()
    assert np.abs(png - dcm).max() <= 1e-5
    assert json.loads((tmp_path / "e_dcm" / "config.json").read_text())["dicom_window"] == "file"
