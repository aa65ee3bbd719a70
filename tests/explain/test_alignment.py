"""Heatmaps line up with the original pixels: on the real boxed radiographs, a model that looks only inside the
radiologist's box must put its map's peak there (and localize must score a pointing hit), through a classifier's
resize and through a joint model's resize, 4× encoder and latent — square and non-square originals alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrtool.data.images import ImageIndex
from cxrtool.data.labels import LABELS
from cxrtool.explain.boxes import read_bbox_list
from cxrtool.explain.maps import Explainer
from cxrtool.explain.scoring import score_boxes

GEOMETRIES = [("classifier", 128), ("joint", 256)]  # DenseNet-input cells of 8 and 16 original pixels


@pytest.fixture(scope="module")
def real_boxes(real_data) -> pd.DataFrame:
    boxes = read_bbox_list(real_data / "metadata" / "BBox_List_2017.csv.gz")
    present = boxes[boxes["image"].map(lambda n: (real_data / "images" / n).is_file())].reset_index(drop=True)
    assert len(present) == 7  # the sample's boxed images (SOURCES.md: 120 of the 201 images are here)
    return present


def _decoy(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % len(LABELS)]


def _check_peak(explainer: Explainer, img: Image.Image, label: str, box: tuple[float, ...], kind: str, crop: int):
    """The map's peak lies in the box, in the DenseNet-input cell where the masked input is largest."""
    j = LABELS.index(label)
    maps = explainer(img, [j, LABELS.index(_decoy(label))])
    full = maps.heatmaps[j].render()
    assert full.shape == (img.height, img.width)
    py, px = np.unravel_index(np.argmax(full), full.shape)
    x, y, w, h = box
    assert x <= px + 0.5 <= x + w and y <= py + 0.5 <= y + h, (kind, label, (px, py), box)
    # Independently of cxrtool's geometry: which cell of the fake's own input holds the peak?
    net = explainer.predictor.model.densenet
    masked = (net.last_input[0, 0] * net.features.masks[j]).numpy()
    scale = 4 if kind == "joint" else 1
    sx, sy = img.width * scale / crop, img.height * scale / crop
    cell = (int((py + 0.5) // sy), int((px + 0.5) // sx))
    assert masked[cell] == pytest.approx(masked.max()), (
        kind,
        label,
        cell,
        np.unravel_index(masked.argmax(), masked.shape),
    )
    # Nothing outside the box, beyond the one-cell reach of bilinear sampling.
    ys, xs = np.nonzero(full > 1e-6 * full.max())
    assert xs.min() >= x - sx and xs.max() <= x + w + sx and ys.min() >= y - sy and ys.max() <= y + h + sy
    # The decoy label (everything but the box) peaks outside it.
    decoy = maps.heatmaps[LABELS.index(_decoy(label))].render()
    dy, dx = np.unravel_index(np.argmax(decoy), decoy.shape)
    assert not (x <= dx + 0.5 <= x + w and y <= dy + 0.5 <= y + h)


@pytest.mark.parametrize(("kind", "crop"), GEOMETRIES)
def test_peak_and_pointing_hit_in_every_real_box(real_data, real_boxes, box_predictor, kind, crop):
    index = ImageIndex.build(real_data / "images")
    for row in real_boxes.itertuples():
        box = (row.x, row.y, row.w, row.h)
        img = Image.open(index.path(row.image))
        predictor = box_predictor(kind, crop, img.width, img.height, {row.label: box}, decoy=_decoy(row.label))
        explainer = Explainer(predictor)
        _check_peak(explainer, img.convert("L"), row.label, box, kind, crop)
        scored = score_boxes(explainer, real_boxes.iloc[[row.Index]], index, map_threshold=0.5).boxes
        explainer.close()
        assert len(scored) == 1 and scored["pointing_hit"].iloc[0] == 1, (kind, row.image)
        # The map is zero outside the box (up to a cell), so the predicted box lies mostly inside it.
        assert scored["iobb"].iloc[0] > 0.6 and scored["iou"].iloc[0] > 0.2, scored.iloc[0].to_dict()


@pytest.mark.parametrize(("kind", "crop"), GEOMETRIES)
def test_non_square_original(real_data, real_boxes, box_predictor, kind, crop):
    """A 1024×640 cut of a real radiograph: the resize squeezes rows and columns differently."""
    row = real_boxes[real_boxes["image"] == "00026911_000.png"].iloc[0]
    with Image.open(real_data / "images" / row["image"]) as full:
        img = full.convert("L").crop((0, 100, 1024, 740))
    box = (row["x"], row["y"] - 100, row["w"], row["h"])
    assert box[1] >= 0 and box[1] + box[3] <= 640
    predictor = box_predictor(kind, crop, img.width, img.height, {row["label"]: box}, decoy=_decoy(row["label"]))
    explainer = Explainer(predictor)
    _check_peak(explainer, img, row["label"], box, kind, crop)
    explainer.close()


def test_explain_files_put_the_peak_in_the_box(real_data, real_boxes, box_predictor, tmp_path):
    """What `explain` writes: explain.csv's peak and the stored map's maximum, for the joint geometry."""
    import json

    from safetensors import safe_open

    from cxrtool.explain.explain import explain_images

    row = real_boxes[real_boxes["image"] == "00022178_000.png"].iloc[0]
    x, y, w, h = row["x"], row["y"], row["w"], row["h"]
    predictor = box_predictor("joint", 256, 1024, 1024, {row["label"]: (x, y, w, h)}, decoy=_decoy(row["label"]))
    path = real_data / "images" / row["image"]
    result = explain_images(predictor, [row["image"]], [path], tmp_path / "ex", labels=row["label"], map_size=128)
    peak = result.table.iloc[0]
    assert x <= peak["peak_x"] + 0.5 <= x + w and y <= peak["peak_y"] + 0.5 <= y + h
    with safe_open(str(tmp_path / "ex" / "heatmaps.safetensors"), framework="np") as f:
        stored = f.get_tensor(f"{row['image']}/{row['label']}")
        entry = json.loads(f.metadata()["cxrtool.heatmaps"])[0]
    assert stored.shape == (128, 128) and stored.dtype == np.float16 and entry["map_width"] == 128
    sy, sx = np.unravel_index(np.argmax(stored), stored.shape)  # a 128² map: 8 original pixels per stored pixel
    assert x - 8 <= (sx + 0.5) * 8 <= x + w + 8 and y - 8 <= (sy + 0.5) * 8 <= y + h + 8
    assert 0.8 < stored.max() <= 1.0 and (tmp_path / "ex" / peak["overlay"]).is_file()  # max taken at 1024²
