"""DICOM reading: the pixel pipeline against numpy and pydicom's own LUT functions, transfer syntaxes made here and
shipped with pydicom, discovery without a suffix, and what is refused."""

from io import BytesIO

import numpy as np
import pytest
from dicom_support import PATIENT_ID, PATIENT_NAME, write_dicom, write_report
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels.processing import apply_modality_lut, apply_windowing
from pydicom.uid import ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from cxrtool.data.dicom import WINDOW_ENV, read_dicom_header
from cxrtool.data.images import ImageReadError, image_header, list_image_files, open_image

RNG = np.random.default_rng(7)
FULL8 = RNG.integers(0, 256, (36, 43)).astype(np.uint8)
FULL8[0, :2] = (0, 255)  # spans 0–255
STORED12 = RNG.integers(0, 4096, (36, 43)).astype(np.uint16)


def unit(path, window="file"):
    """open_image's result on [0, 1] and its mode."""
    img = open_image(path, dicom_window=window)
    return np.asarray(img, dtype=np.float64) / 255.0, img.mode


def pydicom_window(stored, ds):
    """pydicom's Modality LUT and windowing, its output range mapped onto [0, 1] (the reference for windows)."""
    bits, signed = ds.BitsStored, ds.PixelRepresentation == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    y0, y1 = lo * slope + intercept, hi * slope + intercept
    return (apply_windowing(apply_modality_lut(stored, ds), ds) - y0) / (y1 - y0)


def test_eight_bit_without_window_reads_exactly_as_its_png(tmp_path):
    mono2 = write_dicom(tmp_path / "m2.dcm", FULL8)
    mono1 = write_dicom(tmp_path / "m1.dcm", 255 - FULL8, photometric="MONOCHROME1")
    Image.fromarray(FULL8).save(tmp_path / "x.png")
    png = open_image(tmp_path / "x.png")
    for path in (mono2, mono1):
        img = open_image(path)
        assert img.mode == "L" and np.array_equal(np.asarray(img), np.asarray(png))
    # the window that maps 8 bits onto itself (128/256) is exact too; `none` is 8 bits over their range
    windowed = write_dicom(tmp_path / "w.dcm", FULL8, WindowCenter=128, WindowWidth=256)
    assert open_image(windowed).mode == "L" and np.array_equal(np.asarray(open_image(windowed)), FULL8)
    narrow = write_dicom(tmp_path / "n.dcm", np.clip(FULL8, 10, 200))
    assert np.array_equal(np.asarray(open_image(narrow, dicom_window="none")), np.clip(FULL8, 10, 200))


def test_minmax_is_the_image_own_range(tmp_path):
    narrow = np.clip(FULL8, 10, 200)
    path = write_dicom(tmp_path / "n.dcm", narrow)
    t, mode = unit(path)  # no window in the file: `file` falls back to minmax
    assert mode == "F" and np.allclose(t, (narrow - 10) / 190.0, atol=1e-6)
    inverted = write_dicom(tmp_path / "i.dcm", narrow, photometric="MONOCHROME1")
    assert np.allclose(unit(inverted)[0], 1.0 - (narrow - 10) / 190.0, atol=1e-6)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
@pytest.mark.parametrize(
    "window",
    [
        {"WindowCenter": 1500, "WindowWidth": 3000},
        {"WindowCenter": 1500, "WindowWidth": 3000, "VOILUTFunction": "LINEAR_EXACT"},
        {"WindowCenter": 900, "WindowWidth": 2500, "VOILUTFunction": "SIGMOID"},
        {"WindowCenter": [800, 3000], "WindowWidth": [1000, 200]},  # several windows: the first
        {"WindowCenter": 700.0, "WindowWidth": 1},  # LINEAR of width 1: a threshold
    ],
)
def test_twelve_bit_rescale_and_window_match_pydicom(tmp_path, photometric, window):
    path = write_dicom(
        tmp_path / "x.dcm", STORED12, photometric=photometric, bits=12, RescaleSlope=2, RescaleIntercept=-1024, **window
    )
    ds = dcmread(path)
    expected = pydicom_window(ds.pixel_array, ds)
    expected = 1.0 - expected if photometric == "MONOCHROME1" else expected
    t, mode = unit(path)
    assert mode == "F" and np.abs(t - expected).max() < 1e-5
    assert 0.05 < t.mean() < 0.95  # not a degenerate all-black or all-white window


def test_signed_padding_excluded_from_minmax_and_none_uses_bits_stored(tmp_path):
    stored = (STORED12.astype(np.int16) // 2 - 1000).astype(np.int16)  # within signed 12 bits
    stored[:3] = -2000  # padding, below everything else
    path = write_dicom(tmp_path / "s.dcm", stored, bits=12, PixelPaddingValue=-2000)
    real = stored[3:]
    expected = (stored - real.min()) / float(real.max() - real.min())
    t, _ = unit(path, "minmax")
    assert np.allclose(t[3:], expected[3:], atol=1e-6) and np.all(t[:3] == 0)
    t_none, _ = unit(path, "none")
    assert np.allclose(t_none, (stored + 2048) / 4095.0, atol=1e-6)  # signed 12 bits: −2048…2047


def test_voi_lut_sequence_is_applied(tmp_path):
    from pydicom import Dataset
    from pydicom.sequence import Sequence

    table = (np.linspace(0, 1, 256) ** 0.5 * 4095).astype(np.uint16)  # a 256-entry gamma LUT with 12-bit output
    item = Dataset()
    item.LUTDescriptor = [256, 1000, 12]  # entries, first stored value mapped, bits per entry
    item.LUTData = table.astype("<u2").tobytes()  # VR OW, as most files hold it
    path = write_dicom(tmp_path / "lut.dcm", STORED12, bits=12, VOILUTSequence=Sequence([item]))
    index = np.clip(STORED12.astype(np.int64) - 1000, 0, 255)
    t, _ = unit(path)
    assert np.allclose(t, table[index] / 4095.0, atol=1e-6)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, RLELossless, JPEG2000Lossless])
@pytest.mark.parametrize("bits", [8, 12])
def test_transfer_syntaxes_encoded_here_decode_to_the_same_pixels(tmp_path, syntax, bits):
    stored = FULL8 if bits == 8 else STORED12
    tags = {"WindowCenter": 2000, "WindowWidth": 3000} if bits == 12 else {}
    reference = write_dicom(tmp_path / "ref.dcm", stored, bits=bits, **tags)
    other = write_dicom(tmp_path / "other.dcm", stored, bits=bits, syntax=syntax, **tags)
    assert dcmread(other).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(np.asarray(open_image(other)), np.asarray(open_image(reference)))


MR_VARIANTS = [
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
]


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_pydicom_bundled_lossless_syntaxes(name):
    """pydicom's own files: big endian, RLE, JPEG 2000 and JPEG-LS lossless of one signed 16-bit MR with a window."""
    reference = dcmread(get_testdata_file("MR_small.dcm", download=False))
    expected = pydicom_window(reference.pixel_array, reference)
    t, _ = unit(get_testdata_file(name, download=False))
    assert np.abs(t - expected).max() < 1e-5


@pytest.mark.parametrize(
    "name", ["JPGExtended.dcm", "JPEG2000.dcm", "JPEGLSNearLossless_16.dcm", "image_dfl.dcm", "CT_small.dcm"]
)
def test_pydicom_bundled_lossy_and_deflated_files_read_as_minmax_of_their_pixels(name):
    """JPEG extended 12-bit, JPEG 2000 lossy, JPEG-LS near-lossless, deflate; none has a window, so `file` is minmax
    (CT_small's Pixel Padding Value −2000 excluded)."""
    path = get_testdata_file(name, download=False)
    ds = dcmread(path)
    stored = ds.pixel_array
    real = stored[stored != ds.PixelPaddingValue] if "PixelPaddingValue" in ds else stored
    expected = (stored.astype(np.float64) - real.min()) / float(real.max() - real.min())
    t, _ = unit(path)
    assert t.shape == (ds.Rows, ds.Columns) and np.abs(t - np.clip(expected, 0, 1)).max() < 1e-5


def test_colour_and_multi_frame_warn_and_read_as_grey_first_frame(tmp_path, capsys):
    rgb = RNG.integers(0, 256, (12, 9, 3)).astype(np.uint8)
    path = write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")
    assert np.array_equal(np.asarray(open_image(path)), np.asarray(Image.fromarray(rgb).convert("L")))
    frames = np.stack([FULL8, 255 - FULL8])
    multi = write_dicom(tmp_path / "multi.dcm", frames)
    assert np.array_equal(np.asarray(open_image(multi)), FULL8)
    err = capsys.readouterr().err
    assert "rgb.dcm is a colour DICOM (RGB)" in err and "multi.dcm holds 2 frames" in err


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb_jpeg_gdcm.dcm",  # JPEG Lossless, Process 14 SV1
        "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline, YBR_FULL
        "examples_ybr_color.dcm",  # JPEG Baseline, YBR_FULL_422, 30 frames: the first
        "SC_rgb_rle_16bit.dcm",  # RLE, 16-bit RGB
    ],
)
def test_pydicom_bundled_colour_files_read_as_luma(name):
    """pydicom decodes (and turns YBR into RGB); the grey is ITU-R 601 luma, as Pillow's `L` for 8 bits."""
    path = get_testdata_file(name, download=False)
    ds = dcmread(path)
    rgb = ds.pixel_array[0] if int(ds.get("NumberOfFrames") or 1) > 1 else ds.pixel_array
    if rgb.dtype == np.uint8:
        expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    else:
        expected = rgb.astype(np.float64) @ [0.299, 0.587, 0.114] * (255.0 / 65535.0)
    assert np.abs(np.asarray(open_image(path), dtype=np.float64) - expected).max() < 1e-3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: write_report(d / "sr.dcm"), r"without pixel data \(Modality SR"),
        (lambda d: get_testdata_file("rtdose.dcm", download=False), "Bits Stored 32"),
        (lambda d: get_testdata_file("MR_truncated.dcm", download=False), "less than expected"),
        (lambda d: _write(d / "junk.dcm", b"\0" * 128 + b"DICM" + b"junk"), "DICOM"),
    ],
)
def test_files_that_are_not_readable_images_raise_image_read_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ImageReadError, match=message) as info:
        open_image(path)
    assert "\n" not in str(info.value) and PATIENT_NAME not in str(info.value)


def test_listing_finds_dicom_by_suffix_and_by_preamble(tmp_path):
    write_dicom(tmp_path / "a.dcm", FULL8)
    (tmp_path / "s").mkdir()
    write_dicom(tmp_path / "s" / "1.2.826.0.1.3680043.8.498.17", FULL8)  # named by its UID, as archives do
    write_dicom(tmp_path / "s" / "IM0001", FULL8)
    write_dicom(tmp_path / "b.DICOM", FULL8)
    write_report(tmp_path / "DICOMDIR")  # a media directory: preamble, but never an image
    (tmp_path / "notes.txt").write_text("x" * 200)
    (tmp_path / "README").write_bytes(b"y" * 300)
    assert list_image_files(tmp_path) == ["a.dcm", "b.DICOM", "s/1.2.826.0.1.3680043.8.498.17", "s/IM0001"]


def test_a_png_named_dcm_reads_as_a_png(tmp_path):
    """A `prepare` cache of a DICOM dataset keeps the names: files are told apart by their content."""
    Image.fromarray(FULL8).save(tmp_path / "x.dcm", format="PNG")
    assert np.array_equal(np.asarray(open_image(tmp_path / "x.dcm")), FULL8)
    assert image_header(tmp_path / "x.dcm") == (43, 36, "L")


def test_header_without_decoding(tmp_path):
    path = write_dicom(tmp_path / "x.dcm", STORED12, photometric="MONOCHROME1", bits=12)
    assert image_header(path) == (43, 36, "MONOCHROME1:12")
    signed = write_dicom(tmp_path / "s.dcm", STORED12.astype(np.int16), bits=16)
    assert image_header(signed) == (43, 36, "MONOCHROME2:16s")
    with pytest.raises(ImageReadError, match="without Rows"):
        image_header(write_report(tmp_path / "sr.dcm"))


def test_read_dicom_header_keeps_everything_but_the_pixels(tmp_path):
    path = write_dicom(tmp_path / "x.dcm", STORED12, bits=12, WindowCenter=100, WindowWidth=50)
    header = read_dicom_header(path)
    ds = dcmread(BytesIO(header))
    assert str(ds.PatientName) == PATIENT_NAME and ds.PatientID == PATIENT_ID and ds.Rows == 36
    assert "PixelData" not in ds and len(header) < STORED12.nbytes


def _as_tensor(img, g):
    from cxrtool.data.transforms import to_tensor

    return to_tensor(img)


@pytest.mark.slow  # a spawned worker imports torch afresh: ~10 s on a loaded 2-core machine
def test_the_window_travels_with_a_dataset_into_spawned_workers(tmp_path, monkeypatch):
    """The setting is captured when the dataset is made: a spawned worker (a fresh interpreter) reads as asked."""
    import torch
    from torch.utils.data import DataLoader

    from cxrtool.data.datasets import EpochSampler, ImageDataset
    from cxrtool.data.dicom import set_dicom_window

    path = write_dicom(tmp_path / "x.dcm", STORED12, bits=12, WindowCenter=300, WindowWidth=200)
    monkeypatch.setenv(WINDOW_ENV, "file")
    set_dicom_window("none")
    dataset = ImageDataset([path], None, _as_tensor, seed=0, tag="eval")
    monkeypatch.setenv(WINDOW_ENV, "file")  # what a fresh worker would otherwise fall back to
    loader = DataLoader(
        dataset, sampler=EpochSampler(1, seed=0, shuffle=False), num_workers=1, multiprocessing_context="spawn"
    )
    got = next(iter(loader))["image"][0, 0]
    expected = torch.from_numpy((STORED12 / 4095.0).astype(np.float32))
    assert torch.allclose(got, expected, atol=1e-6)


def test_prepare_reads_dicoms_with_the_window_it_was_given(tmp_path, monkeypatch):
    """`prepare`'s worker processes get the window explicitly; the cache keeps the name (a PNG called x.dcm)."""
    from cxrtool.data.dicom import set_dicom_window
    from cxrtool.data.prepare import prepare_cache

    stored = STORED12[:32, :32]
    (tmp_path / "src").mkdir()
    write_dicom(tmp_path / "src" / "x.dcm", stored, bits=12, WindowCenter=300, WindowWidth=200)
    monkeypatch.setenv(WINDOW_ENV, "file")
    set_dicom_window("none")
    report = prepare_cache(["x.dcm"], tmp_path / "src", tmp_path / "cache", size=32, workers=1)
    assert report.written == 1 and not report.errors
    with Image.open(tmp_path / "cache" / "images" / "x.dcm") as img:
        assert img.format == "PNG" and img.mode == "L"
        cached = np.asarray(img).astype(int)
    assert np.abs(cached - np.floor(stored * 255.0 / 4095.0 + 0.5)).max() <= 1  # `none`, not the narrow window
    assert np.array_equal(np.asarray(open_image(tmp_path / "cache" / "images" / "x.dcm")), cached)
