import numpy as np
import pytest
from PIL import Image

from cxrtool.data.images import ImageIndex, ImageReadError, _to_single_channel, load_gray, to_unit
from cxrtool.errors import InputError

GRADIENT = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1))  # 48x64, values 0..252


def _save(path, array, mode=None, **kwargs):
    Image.fromarray(array, mode=mode).save(path, **kwargs)
    return path


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P"])
def test_eight_bit_modes_load_to_unit_gray(tmp_path, mode):
    gray = Image.fromarray(GRADIENT, mode="L")
    img = gray.convert(mode) if mode != "LA" else Image.merge("LA", [gray, Image.new("L", gray.size, 7)])
    img.save(tmp_path / "x.png")
    out = load_gray(tmp_path / "x.png")
    assert out.shape == (48, 64) and out.dtype == np.float32
    assert np.allclose(out, GRADIENT / 255.0, atol=1 / 255 + 1e-6)  # gray stays gray, alpha ignored


def test_sixteen_bit_is_scaled_by_its_own_depth(tmp_path):
    data = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.frombytes("I;16", (64, 48), data.astype("<u2").tobytes()).save(tmp_path / "x16.png")
    with Image.open(tmp_path / "x16.png") as im:
        assert im.mode in ("I;16", "I")
    out = load_gray(tmp_path / "x16.png")
    assert np.allclose(out, data / 65535.0, atol=1e-6)
    assert out.max() > 0.98  # 16-bit data is not clipped at 255


def test_mode_I_is_read_as_sixteen_bit():
    # Some Pillow versions hand 16-bit PNGs over as mode I; Pillow 13 cannot write such a PNG, so test in memory.
    data = np.array([[0, 32768, 65535]], dtype=np.int32)
    single = _to_single_channel(Image.fromarray(data, mode="I"))
    assert np.allclose(to_unit(single), data / 65535.0, atol=1e-6)


def test_jpeg_and_odd_sizes(tmp_path):
    rgb = np.stack([GRADIENT[:, :63]] * 3, axis=-1)
    _save(tmp_path / "x.jpg", rgb, quality=95)
    out = load_gray(tmp_path / "x.jpg")
    assert out.shape == (48, 63)
    assert np.abs(out - GRADIENT[:, :63] / 255.0).mean() < 0.02


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_file_names_it(tmp_path, damage):
    path = _save(tmp_path / "bad.png", np.random.default_rng(0).integers(0, 255, (128, 128), dtype=np.uint8))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else b"not an image at all")
    with pytest.raises(ImageReadError, match=r"bad\.png"):
        load_gray(path)


@pytest.mark.parametrize(
    "layout",
    [
        ["images/a.png", "images/b.png"],
        ["images_001/images/a.png", "images_002/images/b.png"],
        ["x/y/z/a.png", "b.png"],
    ],
)
def test_index_finds_images_in_any_layout(tmp_path, layout):
    for rel in layout:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        _save(tmp_path / rel, GRADIENT)
    (tmp_path / "notes.txt").write_text("not an image")
    index = ImageIndex.build(tmp_path)
    assert sorted(index.relpaths) == ["a.png", "b.png"]
    assert index.path("a.png") == tmp_path / layout[0]


def test_index_refuses_duplicate_names(tmp_path):
    for rel in ("images_001/images/a.png", "images_002/images/a.png"):
        (tmp_path / rel).parent.mkdir(parents=True)
        _save(tmp_path / rel, GRADIENT)
    with pytest.raises(InputError, match=r"a.png: images_001/images/a.png, images_002/images/a.png"):
        ImageIndex.build(tmp_path)
    with pytest.raises(InputError, match="--images"):
        ImageIndex.build(tmp_path / "missing")


def test_real_images_load(real_data):
    index = ImageIndex.build(real_data / "images")
    assert len(index) == 120
    modes = {}
    for name in sorted(index.relpaths):
        with Image.open(index.path(name)) as im:
            modes[name] = im.mode
        out = load_gray(index.path(name))
        assert out.shape == (1024, 1024) and 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.05
    assert sorted(n for n, m in modes.items() if m == "RGBA") == [
        "00004934_000.png",
        "00005224_000.png",
        "00005813_000.png",
    ]
