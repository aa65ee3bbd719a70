"""Box scoring against hand computations on constructed maps, the box list reader, and which boxes are scored."""

from __future__ import annotations

import gzip
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrtool.data.images import ImageIndex
from cxrtool.errors import InputError
from cxrtool.explain.boxes import best_match, contains, overlaps, predicted_boxes, read_bbox_list
from cxrtool.explain.geometry import Heatmap
from cxrtool.explain.localize import select_boxes
from cxrtool.explain.maps import ImageMaps
from cxrtool.explain.scoring import localization_table, score_boxes

LABELS = ("Mass", "Nodule")


def constructed_map() -> np.ndarray:
    """64×48: a blob (rows 10-19, cols 20-39) with its peak at (25, 12), a pixel touching its corner diagonally,
    a second blob (rows 30-33, cols 50-57), and values under half the peak elsewhere."""
    m = np.full((48, 64), 0.3, dtype=np.float32)
    m[10:20, 20:40] = 1.5
    m[12, 25] = 2.0
    m[20, 40] = 1.1  # 8-connected to (19, 39): joins the first blob
    m[30:34, 50:58] = 1.2
    m[40:44, 0:4] = 0.99  # just under 0.5 × 2.0
    return m


class StubExplainer:
    """Hands score_boxes fixed full-resolution maps: a grid spanning exactly its image renders as itself."""

    labels = LABELS

    def __init__(self, maps: dict[tuple[str, str], np.ndarray]) -> None:
        self.maps = maps

    def __call__(self, img: Image.Image, wanted: list[int]) -> ImageMaps:
        name = Path(img.filename).name
        heatmaps = {}
        for j in wanted:
            grid = self.maps[(name, LABELS[j])]
            heatmaps[j] = Heatmap(grid=grid, width=img.width, height=img.height, span_x=img.width, span_y=img.height)
        return ImageMaps(probs=np.array([0.7, 0.2]), heatmaps=heatmaps)


@pytest.fixture
def images(tmp_path) -> ImageIndex:
    for name in ("a.png", "b.png"):
        Image.new("L", (64, 48), 100).save(tmp_path / name)
    return ImageIndex.build(tmp_path)


def test_constructed_map_scores_match_a_hand_computation(images, monkeypatch):
    import cxrtool.data.datasets as datasets

    monkeypatch.setattr(datasets, "read_image", Image.open)  # keep the file name on the image for the stub
    boxes = pd.DataFrame(
        [("a.png", "Mass", 25, 12, 20, 10), ("a.png", "Mass", 50, 30, 16, 4), ("a.png", "Mass", 0, 40, 5, 5),
         ("b.png", "Nodule", 10, 10, 8, 8)],
        columns=["image", "label", "x", "y", "w", "h"],
    )  # fmt: skip
    stub = StubExplainer({("a.png", "Mass"): constructed_map(), ("b.png", "Nodule"): np.zeros((48, 64), np.float32)})
    scored = score_boxes(stub, boxes, images, map_threshold=0.5).boxes
    # Box 1 against the first blob, whose box is x 20-40, y 10-20 (21×11, with the diagonal pixel):
    inter = (45 - 25) - (45 - 41), (22 - 12) - (22 - 21)  # 16 × 9
    iou1 = Fraction(16 * 9, 20 * 10 + 21 * 11 - 16 * 9)
    iobb1 = Fraction(16 * 9, 21 * 11)
    assert inter == (16, 9)
    # Box 2 against the second blob (x 50-58, y 30-34): inside it, half of its area -> IoU exactly 0.5, IoBB 1.
    expected = pd.DataFrame({
        "pred_x": [20, 50, np.nan, np.nan], "pred_y": [10, 30, np.nan, np.nan], "pred_w": [21, 8, np.nan, np.nan],
        "pred_h": [11, 4, np.nan, np.nan], "iou": [float(iou1), 0.5, 0.0, 0.0], "iobb": [float(iobb1), 1.0, 0, 0],
        "pointing_hit": [1, 0, 0, 0], "probability": [0.7, 0.7, 0.7, 0.2],
    })  # fmt: skip
    pd.testing.assert_frame_equal(scored[expected.columns], expected, check_dtype=False, atol=1e-12)

    table = localization_table(scored, list(LABELS), n_boot=300, seed=0).set_index("label")
    third, two_thirds = 1 / 3, 2 / 3
    mass = {**{f"acc_iou_{t}": two_thirds for t in ("0.1", "0.2", "0.3", "0.4", "0.5")},  # 0.5 counts: score ≥ t
            "acc_iou_0.6": 0.0, "acc_iou_0.7": 0.0,
            **{f"acc_iobb_{t}": two_thirds for t in ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6")},  # IoBB1 = 0.623
            "acc_iobb_0.7": third, "pointing": third}  # fmt: skip
    for column, value in mass.items():
        assert table.loc["Mass", column] == pytest.approx(value), column
        assert table.loc["Nodule", column] == 0.0
        assert table.loc["Mean", column] == pytest.approx(value / 2), column  # over labels, not boxes (1/4)
    assert table.loc["Mass", "n_boxes"] == 3 and table.loc["Mean", "n_boxes"] == 4
    assert float(iobb1) == pytest.approx(0.6233766) and float(iou1) == pytest.approx(0.5017422)


def test_predicted_boxes_and_overlaps_by_hand():
    boxes = predicted_boxes(constructed_map(), 0.5)
    assert sorted(map(tuple, boxes.tolist())) == [(20, 10, 21, 11), (50, 30, 8, 4)]
    assert predicted_boxes(constructed_map(), 0.76).tolist() == [[25, 12, 1, 1]]  # ≥ 1.52: the peak pixel alone
    iou, iobb = overlaps(np.array([10, 10, 20, 20]), np.array([[20, 20, 20, 20], [10, 10, 20, 20], [40, 0, 5, 5]]))
    np.testing.assert_allclose(iou, [100 / 700, 1.0, 0.0])
    np.testing.assert_allclose(iobb, [100 / 400, 1.0, 0.0])
    # Best by IoU; a small box wholly inside has IoBB 1 but loses on IoU.
    index, best_iou, best_iobb = best_match(np.array([0, 0, 10, 10]), np.array([[2, 2, 2, 2], [0, 0, 10, 20]]))
    assert (index, best_iou, best_iobb) == (1, 0.5, 0.5)
    assert best_match(np.array([0, 0, 10, 10]), np.array([[20, 20, 5, 5]])) == (None, 0.0, 0.0)
    assert contains(np.array([10, 10, 5, 5]), (14, 10)) and not contains(np.array([10, 10, 5, 5]), (15, 10))
    assert not contains(np.array([10, 10, 5, 5]), None)


def test_bootstrap_interval_follows_the_documented_draws():
    scored = pd.DataFrame({"label": ["Mass"] * 5 + ["Nodule"] * 3, "pointing_hit": [1, 0, 1, 1, 0, 1, 1, 1],
                           "iou": 0.0, "iobb": 0.0})  # fmt: skip
    table = localization_table(scored, ["Mass", "Nodule"], n_boot=500, seed=7).set_index("label")
    rng = np.random.default_rng(7)
    mass = np.array([1, 0, 1, 1, 0.0])[rng.integers(0, 5, size=(500, 5))].mean(axis=1)
    nodule = np.ones((500, 3))[np.arange(500)[:, None], rng.integers(0, 3, size=(500, 3))].mean(axis=1)
    assert (table.loc["Mass", "pointing_ci_low"], table.loc["Mass", "pointing_ci_high"]) == pytest.approx(
        tuple(np.quantile(mass, (0.025, 0.975)))
    )
    assert table.loc["Nodule", "pointing_ci_low"] == table.loc["Nodule", "pointing_ci_high"] == 1.0
    assert table.loc["Mean", "pointing"] == pytest.approx((0.6 + 1.0) / 2)
    assert (table.loc["Mean", "pointing_ci_low"], table.loc["Mean", "pointing_ci_high"]) == pytest.approx(
        tuple(np.quantile((mass + nodule) / 2, (0.025, 0.975)))
    )


def test_read_bbox_list_real_file(real_data):
    boxes = read_bbox_list(real_data / "metadata" / "BBox_List_2017.csv.gz")
    raw = pd.read_csv(real_data / "metadata" / "BBox_List_2017.csv.gz")
    assert len(boxes) == len(raw) == 984
    assert list(boxes.columns) == ["image", "label", "x", "y", "w", "h"]
    assert "Infiltrate" not in set(boxes["label"]) and (boxes["label"] == "Infiltration").sum() == 123
    np.testing.assert_array_equal(boxes[["x", "y", "w", "h"]].to_numpy(), raw.iloc[:, 2:6].to_numpy(dtype=float))


def test_read_bbox_list_errors_name_the_file(tmp_path):
    bad = tmp_path / "boxes.csv"
    bad.write_text("image,label,x,y,w,h\na.png,Mass,1,2,3,4\n")
    with pytest.raises(InputError, match="BBox_List_2017"):
        read_bbox_list(bad)
    with gzip.open(tmp_path / "b.csv.gz", "wt") as f:
        f.write("Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Mass,1,2,3,4\nb.png,Mass,1,2,oops,4\n")
    with pytest.raises(InputError, match="line 3"):
        read_bbox_list(tmp_path / "b.csv.gz")
    with pytest.raises(InputError, match="does not exist"):
        read_bbox_list(tmp_path / "none.csv")


def test_select_boxes_counts_what_it_leaves_out(images, tmp_path):
    (tmp_path / "c.png").write_bytes(b"not a png")
    index = ImageIndex.build(tmp_path)
    boxes = pd.DataFrame(
        [("a.png", "Mass", 1, 1, 5, 5), ("a.png", "Hernia", 1, 1, 5, 5), ("gone.png", "Mass", 1, 1, 5, 5),
         ("b.png", "Nodule", 1, 1, 5, 5), ("c.png", "Mass", 1, 1, 5, 5)],
        columns=["image", "label", "x", "y", "w", "h"],
    )  # fmt: skip
    splits = pd.DataFrame({"image": ["a.png", "b.png", "c.png", "gone.png"], "split": ["test", "val", "test", "test"]})
    selected = select_boxes(boxes, LABELS, index, splits=splits, split="test")
    assert list(selected.boxes["image"]) == ["a.png"]
    assert selected.counts == {"listed": 5, "other_label": 1, "not_in_split": 1, "missing_image": 1,
                               "unreadable": 1, "scored": 1}  # fmt: skip
    assert selected.missing_images == ["gone.png"] and selected.unreadable[0][0] == "c.png"
    outside = pd.DataFrame([("a.png", "Mass", 60, 1, 10, 5)], columns=["image", "label", "x", "y", "w", "h"])
    with pytest.raises(InputError, match="outside the image"):
        select_boxes(outside, LABELS, index)
