import numpy as np
import pytest
from PIL import features

from cxrtool.compression import baselines
from cxrtool.compression.baselines import (
    CodecUnavailable,
    decode,
    downsampled_shape,
    encode_with,
    resample_roundtrip,
    search_setting,
    search_setting_for_set,
)
from cxrtool.errors import CxrError, InputError, RunFailure
from cxrtool.stats.quality import psnr_8bit

CODEC_FEATURES = {"jpeg": "jpg", "webp": "webp", "jpeg2000": "jpg_2000"}
CODECS = [
    pytest.param(codec, marks=pytest.mark.skipif(not features.check(feature), reason=f"Pillow lacks {feature}"))
    for codec, feature in CODEC_FEATURES.items()
]
MID_SETTING = {"jpeg": 50, "webp": 50, "jpeg2000": 12.0}


def radiograph(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a bright disc, a dark band and mild noise: enough structure for codecs to care."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = 60 + 120 * y + 40 * np.sin(6 * x + seed)
    image += 50 * ((y - 0.5) ** 2 + (x - 0.35) ** 2 < 0.04)
    image -= 40 * ((y > 0.2) & (y < 0.3))
    image += rng.normal(0, 4, size=(height, width))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return radiograph(96, 128)


@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
@pytest.mark.parametrize("shape", [(64, 64), (66, 70), (63, 97)])
def test_resample_roundtrip_keeps_the_shape_and_range(method, shape):
    source = radiograph(*shape)
    out = resample_roundtrip(source / 255.0, 4, method)
    assert out.shape == shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert psnr_8bit(source, out) > 24.0  # blurrier, but the same picture, not shifted by the padding
    assert downsampled_shape(shape, 4) == (-(-shape[0] // 4), -(-shape[1] // 4))


def test_resample_roundtrip_pads_odd_sides_by_edge_so_a_constant_stays_constant():
    flat = np.full((30, 45), 77, dtype=np.uint8)
    for method in ("bicubic", "lanczos"):
        assert np.array_equal(resample_roundtrip(flat, 4, method), np.full((30, 45), 77 / 255, dtype=np.float32))
    assert np.array_equal(resample_roundtrip(flat, 1, "bicubic") * 255, flat.astype(np.float32))


def test_resample_roundtrip_refuses_bad_arguments(image):
    with pytest.raises(InputError, match="unknown resampling method"):
        resample_roundtrip(image, 4, "nearest")
    with pytest.raises(InputError, match="positive integer"):
        resample_roundtrip(image, 0, "bicubic")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("shape", [(96, 128), (37, 53)])
def test_each_codec_round_trips_to_the_original_shape(codec, shape):
    source = radiograph(*shape)
    data = encode_with(source, codec, MID_SETTING[codec])
    out = decode(data)
    assert out.shape == shape and out.dtype == np.uint8
    assert psnr_8bit(source, out) > 22.0  # the same picture (small files: headers take much of the budget)


@pytest.mark.parametrize("codec", CODECS)
def test_file_size_follows_the_setting(codec, image):
    low, high = (20, 90) if codec != "jpeg2000" else (40.0, 4.0)  # a larger ratio means a smaller file
    assert len(encode_with(image, codec, low)) < len(encode_with(image, codec, high))


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_search_picks_the_quality_nearest_the_target(codec, image):
    target = 1.07 * len(encode_with(image, codec, 60))  # between two qualities, most likely
    setting, data = search_setting(image, codec, target)
    assert isinstance(setting, int)
    assert data == encode_with(image, codec, setting)
    distance = abs(len(data) - target)
    for neighbour in (setting - 1, setting + 1):
        assert abs(len(encode_with(image, codec, neighbour)) - target) >= distance


@pytest.mark.parametrize("codec", CODECS)
def test_search_saturates_at_the_ends_of_the_range(codec, image):
    tiny, huge = search_setting(image, codec, 1), search_setting(image, codec, 10 * image.size)
    spec = baselines.CODECS[codec]
    smallest, largest = (spec.low, spec.high) if spec.grows else (spec.high, spec.low)
    # At high JPEG 2000 ratios the file is all headers, so several ratios tie: compare sizes, not settings.
    assert len(tiny.data) <= len(encode_with(image, codec, smallest))
    assert len(huge.data) >= len(encode_with(image, codec, largest))


@pytest.mark.skipif(not features.check("jpg_2000"), reason="Pillow lacks OpenJPEG")
def test_jpeg2000_search_hits_the_target_by_bisecting_the_ratio(image):
    target = 0.5 * image.size / 8  # 0.5 bpp, the autoencoder's rate
    ratio, data = search_setting(image, "jpeg2000", target)
    assert isinstance(ratio, float) and 1.0 <= ratio
    assert data == encode_with(image, "jpeg2000", ratio)
    assert abs(len(data) - target) <= 0.01 * target
    for nearby in (ratio * 0.98, ratio * 1.02):  # a ratio 2% away is not nearer
        assert abs(len(encode_with(image, "jpeg2000", nearby)) - target) >= abs(len(data) - target)


@pytest.mark.parametrize("codec", CODECS)
def test_one_setting_for_a_set_lands_nearest_the_target_rate(codec):
    images = [radiograph(64, 80, seed=1), radiograph(48, 48, seed=2), radiograph(70, 65, seed=3)]
    pixels = sum(a.size for a in images)
    setting, bpp, files = search_setting_for_set(images, codec, 1.5)
    assert len(files) == 3 and [decode(f).shape for f in files] == [a.shape for a in images]
    assert files == [encode_with(a, codec, setting) for a in images]
    assert bpp == pytest.approx(8 * sum(len(f) for f in files) / pixels)

    def pooled_bpp(s: float) -> float:
        return 8 * sum(len(encode_with(a, codec, s)) for a in images) / pixels

    neighbours = (setting - 1, setting + 1) if isinstance(setting, int) else (setting * 0.98, setting * 1.02)
    spec = baselines.CODECS[codec]
    for neighbour in neighbours:
        if spec.low <= neighbour <= spec.high:
            assert abs(pooled_bpp(neighbour) - 1.5) >= abs(bpp - 1.5)


def test_a_codec_missing_from_pillow_is_a_typed_error(monkeypatch, image):
    monkeypatch.setattr(baselines.features, "check", lambda name: name != "jpg_2000")
    with pytest.raises(CodecUnavailable, match=r"'jpeg2000'.*Pillow") as caught:
        encode_with(image, "jpeg2000", 10.0)
    assert isinstance(caught.value, RunFailure) and isinstance(caught.value, CxrError)
    with pytest.raises(CodecUnavailable):
        search_setting_for_set([image], "jpeg2000", 0.5)
    assert decode(encode_with(image, "jpeg", 50)).shape == image.shape  # the others still work


def test_bad_codec_arguments_are_input_errors(image):
    with pytest.raises(InputError, match="unknown codec"):
        encode_with(image, "png", 50)
    for codec, setting in [("jpeg", 0), ("jpeg", 96), ("jpeg", 50.5), ("webp", 101), ("jpeg2000", 0.5)]:
        with pytest.raises(InputError, match=f"{codec} setting must be"):
            encode_with(image, codec, setting)
    with pytest.raises(InputError, match="uint8"):
        encode_with(image / 255.0, "jpeg", 50)
    with pytest.raises(InputError, match="positive number"):
        search_setting(image, "jpeg", 0)
    with pytest.raises(InputError, match="at least one image"):
        search_setting_for_set([], "jpeg", 0.5)
    with pytest.raises(InputError, match="cannot decode"):
        decode(b"not an image")
