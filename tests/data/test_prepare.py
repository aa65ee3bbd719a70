import json

import numpy as np
import pytest
from PIL import Image

from cxrtool.data.prepare import cache_size, prepare_cache
from cxrtool.errors import InputError
from cxrtool.layouts import PrepareCache


def _images(folder, names, size=64):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / name)


def test_prepare_writes_same_names_at_size_and_resumes(tmp_path):
    names = [f"{i:08d}_000.png" for i in range(6)]
    _images(tmp_path / "src" / "images_001" / "images", names)
    out = tmp_path / "cache"
    report = prepare_cache([*names, "absent.png"], tmp_path / "src", out, size=16, workers=1)
    assert report.written == 6 and report.missing == ["absent.png"] and not report.errors
    assert sorted(p.name for p in (out / "images").iterdir()) == names
    with Image.open(out / "images" / names[0]) as img:
        assert img.size == (16, 16) and img.mode == "L"
    assert cache_size(out) == 16 and json.loads((out / PrepareCache.MARKER).read_text())["complete"] is True
    (out / "images" / names[1]).unlink()  # as if the first run had been killed before it
    again = prepare_cache(names, tmp_path / "src", out, size=16, workers=1)
    assert again.written == 1 and again.skipped == 5
    with pytest.raises(InputError, match="cache of 16"):
        prepare_cache(names, tmp_path / "src", out, size=32)


def test_prepare_matches_the_training_resize(tmp_path):
    from cxrtool.data.images import open_image
    from cxrtool.data.transforms import resize

    _images(tmp_path / "src", ["a.png"], size=100)
    prepare_cache(["a.png"], tmp_path / "src", tmp_path / "c", size=25, workers=1)
    direct = np.asarray(resize(open_image(tmp_path / "src" / "a.png"), 25))
    cached = np.asarray(Image.open(tmp_path / "c" / "images" / "a.png"))
    assert np.array_equal(direct, cached)  # training from the cache sees the same pixels


def test_prepare_lists_unreadable_and_refuses_out_inside_images(tmp_path):
    _images(tmp_path / "src", ["a.png"])
    (tmp_path / "src" / "b.png").write_bytes(b"broken")
    report = prepare_cache(["a.png", "b.png"], tmp_path / "src", tmp_path / "c", size=16, workers=1)
    assert report.written == 1 and len(report.errors) == 1 and "b.png" in report.errors[0]
    with pytest.raises(InputError, match="inside"):
        prepare_cache(["a.png"], tmp_path / "src", tmp_path / "src" / "cache", size=16)
