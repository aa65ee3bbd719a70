import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cxrtool.cli.app import app
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import save_model

runner = CliRunner()


def write_images(root: Path) -> None:
    rng = np.random.default_rng(0)
    for rel, (h, w) in {"a/img0.png": (33, 47), "a/b/img1.png": (32, 40), "photo.jpg": (30, 30)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(root / rel)


def save_ae(path: Path, init: str = "box") -> Path:
    torch.manual_seed(0)
    save_model(path, AutoEncoder(init=init), kind="autoencoder", labels=(), input_spec={}, config={})
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("codec_cli")
    write_images(root / "in")
    (root / "in" / "zz_bad.png").write_bytes(b"not an image")
    return root / "in", save_ae(root / "ae.safetensors")


def test_help_has_examples() -> None:
    for name in ("compress", "decompress", "compress-merge"):
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Example" in result.output


def test_compress_decompress_merge(setup: tuple[Path, Path], tmp_path: Path) -> None:
    images, ckpt = setup
    out = tmp_path / "store"
    args = ["compress", str(images), str(out), "--ckpt", str(ckpt), "--shard-size", "2", "--workers", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output  # one unreadable image: partial success
    assert "| bits_per_pixel" in result.stdout and "zz_bad.png" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 1 and summary["dtype"] == "uint8+png" and summary["workers"] == 0
    strict = runner.invoke(app, [*args[:2], str(tmp_path / "strict"), *args[3:], "--strict"])
    assert strict.exit_code == 2 and "zz_bad.png" in strict.stderr

    rec = runner.invoke(app, ["decompress", str(out), str(tmp_path / "rec")])  # the checkpoint from the summary
    assert rec.exit_code == 0, rec.output
    assert (tmp_path / "rec" / "a" / "img0.png").is_file() and (tmp_path / "rec" / "photo.png").is_file()
    again = runner.invoke(app, ["decompress", str(out), str(tmp_path / "rec")])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    other = save_ae(tmp_path / "other.safetensors", init="random")
    wrong = runner.invoke(app, ["decompress", str(out), str(tmp_path / "rec2"), "--ckpt", str(other)])
    assert wrong.exit_code == 2 and "encoder identity" in wrong.stderr

    parts = []
    for i, code in enumerate((0, 3)):  # zz_bad.png is in shard 1, part 1's
        part = tmp_path / f"part{i}"
        assert runner.invoke(app, [*args[:2], str(part), *args[3:], "--shard", f"{i}/2"]).exit_code == code
        parts.append(str(part))
    merged = runner.invoke(app, ["compress-merge", *parts, "--out", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "merged" / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()


def test_bad_options_exit_2(setup: tuple[Path, Path], tmp_path: Path) -> None:
    images, ckpt = setup
    bad = (["--size", "30"], ["--dtype", "int4"], ["--shard", "2/2"], ["--entropy", "zip"])
    for extra in (*bad, ["--dtype", "float16", "--entropy", "png"]):
        result = runner.invoke(app, ["compress", str(images), str(tmp_path / "s"), "--ckpt", str(ckpt), *extra])
        assert result.exit_code == 2 and extra[0] in result.stderr, result.output
