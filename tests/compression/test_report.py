import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, features
from typer.testing import CliRunner

from cxrtool.cli.app import app
from cxrtool.compression.latent_format import encode_png
from cxrtool.compression.report import COLUMNS, best_marks, codec_report, list_images, resolve_codecs
from cxrtool.data.labels import LABELS
from cxrtool.errors import InputError
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import save_model
from cxrtool.stats.quality import psnr_8bit, ssim

runner = CliRunner()
AVAILABLE = [c for c, f in (("jpeg", "jpg"), ("webp", "webp"), ("jpeg2000", "jpg_2000")) if features.check(f)]
CODED = ["uint8+png", *(["uint8+webp"] if features.check("webp") else [])]  # lossless codings of the uint8 latent
SHAPES = [(64, 64), (96, 96), (80, 96), (96, 64), (72, 88), (66, 70)]  # the last has sides that are not ×4


def radiograph(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = 60 + 120 * y + 40 * np.sin(6 * x + seed) + 50 * ((y - 0.5) ** 2 + (x - 0.35) ** 2 < 0.04)
    return np.clip(np.round(image + rng.normal(0, 4, size=(height, width))), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    for i, shape in enumerate(SHAPES):
        folder = images / "sub" if i == 5 else images
        Image.fromarray(radiograph(*shape, seed=i), mode="L").save(folder / f"img{i}.png")
    (images / "notes.txt").write_text("not an image")
    ckpt = root / "ae.safetensors"
    save_model(ckpt, AutoEncoder(init="box"), kind="autoencoder", labels=LABELS, input_spec={}, config={})
    return images, ckpt


def test_report_rows_rates_and_scores(data):
    images, ckpt = data
    paths = list_images(images, limit=5)  # sides multiples of 4
    assert [p.name for p in paths] == [f"img{i}.png" for i in range(5)]
    report = codec_report(paths, ckpt, codecs=None)
    table = report.table
    assert tuple(table.columns) == COLUMNS
    methods = list(zip(table["method"], table["setting"].str.split("=").str[0]))
    ae = [("autoencoder", s) for s in ("uint8", *CODED, "float16")]
    assert methods[: len(ae) + 2] == [*ae, ("bicubic", "4x"), ("lanczos", "4x")]
    assert [m for m, _ in methods[len(ae) + 2 :]] == AVAILABLE
    assert (table["images"] == 5).all()
    rates = dict(zip(table["setting"], table["bpp"]))
    assert rates["uint8"] == 0.5 and rates["float16"] == 1.0 and (table["bpp"].iloc[len(ae) : len(ae) + 2] == 0.5).all()
    for bpp in table["bpp"].iloc[len(ae) + 2 :]:
        assert abs(bpp - 0.5) < 0.15  # headers of ~100–300 B weigh on 64–96 px images
    assert any("outside [0, 1]" in note for note in report.notes)

    # The uint8 row is the plain module's reconstruction with a rounded latent, scored image by image.
    model = AutoEncoder(init="box").eval()
    psnrs, ssims, png_bytes = [], [], 0
    with torch.no_grad():
        for path in paths:
            ref = np.asarray(Image.open(path))
            z = model.encode(torch.from_numpy(ref / np.float32(255))[None, None].float())
            latent = torch.round(z.clamp(0, 1) * 255)
            x_hat = model.decoder(latent / 255)[0, 0].numpy()
            psnrs.append(psnr_8bit(ref, x_hat))
            ssims.append(ssim(ref, x_hat))
            png_bytes += len(encode_png(latent[0, 0].to(torch.uint8).numpy()))
    rows = table.set_index("setting")
    assert rows.loc["uint8", "psnr"] == pytest.approx(np.mean(psnrs), abs=0.02)
    assert rows.loc["uint8", "ssim"] == pytest.approx(np.mean(ssims), abs=1e-4)
    for coded in CODED:  # lossless: the raw latent's scores, in fewer bits
        assert rows.loc[coded, ["psnr", "ssim"]].tolist() == rows.loc["uint8", ["psnr", "ssim"]].tolist()
        assert 0 < rows.loc[coded, "bpp"] < 0.5
    pixels = sum(np.asarray(Image.open(p)).size for p in paths)
    # The coded files, whole (headers too); the plain module rounds a few latent values differently: 1%.
    assert rows.loc["uint8+png", "bpp"] == pytest.approx(8 * png_bytes / pixels, rel=0.01)
    assert rows.loc["float16", "psnr"] >= rows.loc["uint8", "psnr"] - 0.05  # float16 keeps more of the latent
    assert all(20 < p < 60 for p in table["psnr"]) and all(0 < s <= 1 for s in table["ssim"])


def test_odd_sides_are_padded_and_cost_their_padding(data):
    images, ckpt = data
    odd = images / "sub" / "img5.png"
    table = codec_report([odd], ckpt, codecs=[]).table.set_index("setting")
    assert len(table) == 4 + len(CODED)
    assert table.loc["uint8", "bpp"] == pytest.approx(8 * 17 * 18 / (66 * 70))  # ceil(66/4)·ceil(70/4) bytes
    assert table.loc["float16", "bpp"] == pytest.approx(2 * table.loc["uint8", "bpp"])
    assert table.loc["uint8", "psnr"] > 25


def test_an_exact_reconstruction_reports_inf_and_warns(data, tmp_path):
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((32, 40), 77, dtype=np.uint8), mode="L").save(flat)
    report = codec_report([flat], data[1], codecs=[])
    # Resampling keeps a flat image exactly; the box encoder's zero padding darkens the first row and column.
    assert list(np.isinf(report.table["psnr"])) == [False] * (2 + len(CODED)) + [True, True]
    assert any(w.startswith("PSNR is inf for bicubic 4x, lanczos 4x") for w in report.warnings)


def test_codecs_are_checked_and_best_marks(tmp_path):
    with pytest.raises(InputError, match="unknown codec"):
        resolve_codecs(["gif"])
    assert resolve_codecs(None)[0] == AVAILABLE
    frame = pd.DataFrame({"psnr": [30.0, 35.0, math.inf, 35.0], "ssim": [0.9, 0.95, 0.8, 0.99]})
    assert best_marks(frame) == ["", "", "psnr", "ssim"]
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="no images"):
        list_images(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        list_images(tmp_path / "nowhere")


def test_cli_writes_the_csv_and_refuses_to_overwrite(data, tmp_path):
    images, ckpt = data
    out = tmp_path / "report.csv"
    args = ["codec-report", str(images), "--ckpt", str(ckpt), "--out", str(out), "--codecs", AVAILABLE[0]]
    result = runner.invoke(app, [*args, "--size", "48"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert tuple(table.columns) == COLUMNS and len(table) == 5 + len(CODED) and (table["images"] == 6).all()
    assert table["bpp"].iloc[0] == 0.5  # 48×48 after --size
    with Image.open(tmp_path / "report.png") as plot:  # the rate-distortion plot, beside the CSV
        assert plot.format == "PNG" and plot.width > 600
    assert "| best" in result.stdout and "psnr" in result.stdout
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    out.unlink()
    plot_left = runner.invoke(app, args)  # the plot is an output too
    assert plot_left.exit_code == 2 and "report.png" in plot_left.output and not out.exists()
    bad = runner.invoke(app, [*args[:-1], "gif", "--overwrite"])
    assert bad.exit_code == 2 and "unknown codec" in bad.output
    assert "Example:" in runner.invoke(app, ["codec-report", "--help"]).output


def test_cli_skips_unreadable_images_with_exit_3(data, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(radiograph(64, 64, seed=0), mode="L").save(folder / "a.png")
    (folder / "b.png").write_bytes(b"not a png")
    out = tmp_path / "report.csv"
    result = runner.invoke(
        app, ["codec-report", str(folder), "--ckpt", str(data[1]), "--out", str(out), "--codecs", "jpeg"]
    )
    assert result.exit_code == 3 and "b.png" in result.output
    assert (pd.read_csv(out)["images"] == 1).all()
