"""`explain`, `localize` and `compare` over localizations, end to end through the CLI with tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from safetensors import safe_open
from tests_support import make_eval, make_localization
from typer.testing import CliRunner

from cxrtool.cli.app import app
from cxrtool.config.evaluation import InferenceConfig
from cxrtool.data.labels import LABELS
from cxrtool.data.splits import SPLIT_COLUMNS
from cxrtool.explain.loc_dir import BOX_COLUMNS, LOCALIZATION_COLUMNS

runner = CliRunner()
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, str]:
    """Random-weight models saved as training writes them: explanation mechanics do not need skill."""
    import torch

    from cxrtool.models.checkpoints import save_model
    from cxrtool.models.registry import create_model

    root = tmp_path_factory.mktemp("ckpts")
    specs = {
        "c": ("classifier", {"resize": 64, "crop": 64, "channels": 3, "encoder_first": False}),
        "c2": ("classifier", {"resize": 64, "crop": 64, "channels": 3, "encoder_first": False}),
        "j": ("joint", {"resize": 128, "crop": 128, "channels": 3, "encoder_first": True, "latent": 32}),
    }
    out = {}
    for seed, (name, (kind, spec)) in enumerate(specs.items()):
        torch.manual_seed(seed)
        save_model(root / f"{name}.safetensors", create_model(kind).eval(), kind=kind, labels=LABELS, input_spec=spec,
                   config={})  # fmt: skip
        out[name] = str(root / f"{name}.safetensors")
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 96), dtype=np.uint8)).save(root / "a.png")  # 96 wide, 64 high
    Image.fromarray(rng.integers(0, 256, (80, 80), dtype=np.uint8)).convert("RGB").save(root / "b.jpg")
    return root


def test_explain_writes_overlays_heatmaps_and_table(ckpts, images, tmp_path):
    out = tmp_path / "ex"
    args = ["explain", str(images / "a.png"), str(images / "b.jpg"), "--ckpt", ckpts["c"], "--out", str(out)]
    result = runner.invoke(app, [*args, "--labels", "Mass,Infiltrate", "--map-size", "32", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "explain.csv")
    assert list(table.columns) == ["image", "label", "probability", "peak_x", "peak_y", "overlay"]
    assert list(table["label"]) == ["Mass", "Infiltration"] * 2  # the box list's spelling accepted
    assert table["peak_x"].between(0, 95).all() and table["peak_y"].between(0, 79).all()
    for name in table["overlay"]:
        with Image.open(out / name) as img:
            assert img.height in (64, 80) and img.width > 80  # the original's size, plus the colour bar
    with safe_open(str(out / "heatmaps.safetensors"), framework="pt") as f:
        meta = f.metadata()
        entries = json.loads(meta["cxrtool.heatmaps"])
        assert sorted(f.keys()) == sorted(f"{image}/{label}" for image, label in zip(table["image"], table["label"]))
        first = f.get_tensor(f"{images / 'a.png'}/Mass")
    assert meta["cxrtool.method"] == "gradcam" and meta["cxrtool.target_layer"] == "densenet.features.norm5"
    assert str(first.dtype) == "torch.float16" and tuple(first.shape) == (21, 32)  # 96×64 with its long side 32
    assert float(first.max()) <= 1.0 and entries[0]["width"] == 96 and entries[0]["height"] == 64
    config = json.loads((out / "config.json").read_text())
    assert config["cxrtool_version"] and config["config"]["method"] == "gradcam"
    assert "| Mass" in result.stdout

    again = runner.invoke(app, [*args, "--device", "cpu"])
    assert again.exit_code == 2 and "--overwrite" in again.stderr and "Traceback" not in again.output


def test_explain_top_labels_and_probabilities_match_predict(ckpts, images, tmp_path):
    from cxrtool.evaluation.predict import predict_files

    out = tmp_path / "ex"
    result = runner.invoke(app, ["explain", str(images), "--ckpt", ckpts["j"], "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "explain.csv")
    run = InferenceConfig(batch_size=2, workers=0, device="cpu")
    predicted = predict_files([images], Path(ckpts["j"]), run=run).set_index("image")
    for image, rows in table.groupby("image", sort=False):
        top3 = predicted.loc[image, list(LABELS)].astype(float).sort_values(ascending=False, kind="stable")[:3]
        assert list(rows["label"]) == list(top3.index)
        np.testing.assert_allclose(rows["probability"], top3.to_numpy(), rtol=1e-5)
    assert sorted(table["overlay"].str.rsplit("_", n=1).str[0].unique()) == ["a", "b"]


def test_explain_bad_inputs(ckpts, images, tmp_path):
    out = tmp_path / "ex"
    result = runner.invoke(app, ["explain", str(images), "--ckpt", ckpts["c"], "--out", str(out), "--labels", "Flu"])
    assert result.exit_code == 2 and "Flu" in result.stderr and "Atelectasis" in result.stderr
    assert not out.exists()  # refused before anything was written
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes((images / "a.png").read_bytes())
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = runner.invoke(
        app, ["explain", str(tmp_path / "in"), "--ckpt", ckpts["c"], "--out", str(out), "--top", "1"]
    )
    assert result.exit_code == 3 and "broken.png" in result.stderr, result.output
    assert list(pd.read_csv(out / "errors.csv")["image"]) == ["broken.png"]
    assert list(pd.read_csv(out / "explain.csv")["image"]) == ["a.png"]


def _bbox(path: Path, rows: list[tuple]) -> Path:
    path.write_text(BBOX_HEADER + "".join(",".join(map(str, r)) + ",,,\n" for r in rows))
    return path


def _splits(path: Path, test: list[str], train: list[str]) -> Path:
    split = ["test"] * len(test) + ["train"] * len(train)
    frame = pd.DataFrame({"image": test + train, "patient_id": 1, "split": split, "view": "PA", "age": 50, "sex": "F"})
    for label in LABELS:
        frame[label] = 0
    frame[list(SPLIT_COLUMNS)].to_csv(path, index=False)
    return path


def test_localize_scores_found_boxes_and_reports_missing_ones(ckpts, images, tmp_path):
    bbox = _bbox(tmp_path / "BBox_List_2017.csv", [
        ("a.png", "Mass", 10.5, 8.25, 30, 20), ("a.png", "Infiltrate", 50, 30, 40, 30),
        ("gone.png", "Mass", 1, 1, 5, 5), ("b.jpg", "Nodule", 5, 5, 10, 10),
    ])  # fmt: skip
    splits = _splits(tmp_path / "splits.csv", test=["a.png", "gone.png"], train=["b.jpg"])
    out = tmp_path / "loc"
    args = ["localize", "--ckpt", ckpts["c"], "--bbox", str(bbox), "--images", str(images), "--out", str(out)]
    result = runner.invoke(app, [*args, "--splits", str(splits), "--bootstrap", "50", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    boxes = pd.read_csv(out / "boxes.csv")
    assert list(boxes.columns) == list(BOX_COLUMNS) and len(boxes) == 2
    assert list(boxes["label"]) == ["Mass", "Infiltration"] and boxes["x"].iloc[0] == 10.5
    assert set(boxes["pointing_hit"]) <= {0, 1} and boxes["iou"].between(0, 1).all()
    table = pd.read_csv(out / "localization.csv")
    assert list(table.columns) == list(LOCALIZATION_COLUMNS)
    assert list(table["label"]) == ["Infiltration", "Mass", "Nodule", "Mean"] and table["n_boxes"].tolist() == [
        1,
        1,
        0,
        2,
    ]
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["boxes"] == {"listed": 4, "other_label": 0, "not_in_split": 1, "missing_image": 1, "unreadable": 0,
                               "scored": 2}  # fmt: skip
    assert config["missing_images"] == ["gone.png"] and config["seed"] == 0 and config["split"] == "test"
    assert "gone.png" in result.stderr and "1 box(es)" in result.stderr
    assert "| Mean" in result.stdout and (out / "examples.png").stat().st_size > 1000


def test_localize_without_any_present_image_exits_2(ckpts, images, tmp_path):
    bbox = _bbox(tmp_path / "b.csv", [("gone.png", "Mass", 1, 1, 5, 5)])
    out = tmp_path / "loc"
    result = runner.invoke(app, ["localize", "--ckpt", ckpts["c"], "--bbox", str(bbox), "--images", str(images),
                                 "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 2 and "no box to score" in result.stderr and not out.exists()


def test_compare_routes_localizations_to_mcnemar(tmp_path):
    base = make_localization(tmp_path / "d121", {"Mass": [1, 0, 1, 0], "Nodule": [0, 0]})
    other = make_localization(tmp_path / "aecnn", {"Mass": [1, 1, 1, 1], "Nodule": [1, 0]})
    result = runner.invoke(app, ["compare", str(base), str(other), "--names", "d121,aecnn", "--out",
                                 str(tmp_path / "t.csv")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "McNemar" in result.stdout and "p_aecnn_vs_d121" in result.stdout and "DeLong" not in result.stdout
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table["label"]) == ["Mass", "Nodule", "Mean"]
    assert table["only_aecnn_vs_d121"].tolist() == [2, 1, 3] and table["p_aecnn_vs_d121"].iloc[2] == 0.25

    evaluation = make_eval(tmp_path / "eval", n=20)
    result = runner.invoke(app, ["compare", str(base), str(evaluation)])
    assert result.exit_code == 2 and "localization" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["compare", str(base), str(other), "--reference", "paper"])
    assert result.exit_code == 2 and "--reference" in result.stderr


def test_localize_unreadable_image_exits_3_after_writing(ckpts, images, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes((images / "a.png").read_bytes())
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    bbox = _bbox(tmp_path / "b.csv", [("a.png", "Mass", 10, 8, 30, 20), ("bad.png", "Mass", 1, 1, 5, 5)])
    out = tmp_path / "loc"
    result = runner.invoke(app, ["localize", "--ckpt", ckpts["c"], "--bbox", str(bbox), "--images", str(folder),
                                 "--out", str(out), "--bootstrap", "10", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 3 and "bad.png" in result.stderr, result.output
    assert list(pd.read_csv(out / "errors.csv")["image"]) == ["bad.png"]
    assert list(pd.read_csv(out / "boxes.csv")["image"]) == ["a.png"] and "| Mean" in result.stdout
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["boxes"]["unreadable"] == 1 and config["boxes"]["scored"] == 1
