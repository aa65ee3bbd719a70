import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from cxrtool.config.evaluation import EvaluationConfig, InferenceConfig, ViewsConfig
from cxrtool.data.labels import LABELS
from cxrtool.errors import InputError
from cxrtool.evaluation.eval_dir import METRIC_COLUMNS, read_evaluation
from cxrtool.evaluation.evaluate import evaluate_images, metrics_table
from cxrtool.evaluation.predict import predict_files
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import save_model
from cxrtool.models.classifier import Classifier
from cxrtool.models.joint import JointModel


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained but seeded models: evaluation mechanics do not need skill."""
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpts")
    spec = {"resize": 36, "crop": 32, "channels": 3, "encoder_first": False}
    save_model(
        root / "c.safetensors", Classifier().eval(), kind="classifier", labels=LABELS, input_spec=spec, config={}
    )
    joint_spec = {"resize": 128, "crop": 128, "channels": 3, "encoder_first": True, "latent": 32}
    save_model(root / "j.safetensors", JointModel(), kind="joint", labels=LABELS, input_spec=joint_spec, config={})
    save_model(root / "a.safetensors", AutoEncoder(), kind="autoencoder", labels=LABELS, input_spec={}, config={})
    return root


def test_metrics_table_matches_sklearn_and_has_the_mean_row():
    rng = np.random.default_rng(0)
    targets = (rng.random((300, 3)) < [0.2, 0.5, 0.0]).astype(np.int8)
    probs = np.round(rng.random((300, 3)) * 0.5 + targets * 0.3, 2)
    table = metrics_table(("A", "B", "C"), targets, probs, n_boot=200, seed=1)
    assert list(table.columns) == list(METRIC_COLUMNS) and list(table["label"]) == ["A", "B", "C", "Mean"]
    for j in range(2):
        assert table["auc"][j] == pytest.approx(roc_auc_score(targets[:, j], probs[:, j]), abs=1e-12)
        assert table["auc_ci_low"][j] < table["auc"][j] < table["auc_ci_high"][j]
    assert np.isnan(table["auc"][2])  # one class only: undefined, not 0.5
    assert table["auc"][3] == pytest.approx(table["auc"][:2].mean())
    assert table["n_labels"][3] == 2 and pd.isna(table["n_labels"][0])
    again = metrics_table(("A", "B", "C"), targets, probs, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(table, again)


@pytest.mark.parametrize(("kind", "tta"), [("c", "none"), ("c", "tencrop"), ("j", "none")])
def test_evaluate_each_kind(checkpoints, synth_small, tmp_path, kind, tta):
    from tests_support import splits_for

    splits = splits_for(synth_small, tmp_path)
    out = tmp_path / "eval"
    result = evaluate_images(
        checkpoints / f"{kind}.safetensors", splits, synth_small, out,
        evaluation=EvaluationConfig(split="test", bootstrap=50, limit=12), views=ViewsConfig(tta=tta),
    )  # fmt: skip
    assert result.images == 12
    for name in ("predictions.csv", "targets.csv", "metrics.csv", "roc.png", "config.json"):
        assert (out / name).is_file()
    evaluation = read_evaluation(out)
    assert evaluation.labels == LABELS and evaluation.probs.shape == (12, 14)
    assert ((evaluation.probs >= 0) & (evaluation.probs <= 1)).all()
    config = json.loads((out / "config.json").read_text())
    assert config["tta"] == tta and config["kind"] == {"c": "classifier", "j": "joint"}[kind]
    with Image.open(out / "roc.png") as img:
        assert img.width > 800
    with pytest.raises(InputError, match="--overwrite"):
        evaluate_images(
            checkpoints / f"{kind}.safetensors", splits, synth_small, out, evaluation=EvaluationConfig(limit=5)
        )


def test_evaluate_refuses_an_autoencoder(checkpoints, synth_small, tmp_path):
    from tests_support import splits_for

    with pytest.raises(InputError, match="autoencoder checkpoint"):
        evaluate_images(checkpoints / "a.safetensors", splits_for(synth_small, tmp_path), synth_small, tmp_path / "e")


def test_predict_a_folder_with_an_rgba_image_and_thresholds(checkpoints, synth_small, tmp_path):
    folder = tmp_path / "mine" / "nested"
    folder.mkdir(parents=True)
    source = sorted((synth_small / "images").iterdir())[:3]
    Image.open(source[0]).convert("RGBA").save(folder / "rgba.png")
    Image.open(source[1]).save(folder / "gray.png")
    Image.open(source[2]).convert("RGB").save(tmp_path / "mine" / "colour.jpg", quality=95)
    metrics = tmp_path / "metrics.csv"
    pd.DataFrame({"label": [*LABELS, "Mean"], "youden_threshold": [0.5] * 14 + [None]}).to_csv(metrics, index=False)
    frame = predict_files(
        [tmp_path / "mine"],
        checkpoints / "c.safetensors",
        thresholds=metrics,
        views=ViewsConfig(tta="none", tta_average="probs"),
        run=InferenceConfig(batch_size=2, workers=0, device="cpu"),
    )
    assert list(frame["image"]) == ["colour.jpg", "nested/gray.png", "nested/rgba.png"]
    assert list(frame.columns[1:15]) == list(LABELS)
    finding = frame[f"{LABELS[0]}_finding"].to_numpy()
    assert np.array_equal(finding, (frame[LABELS[0]].to_numpy() >= 0.5).astype(int))
    # the RGBA copy reads as the same gray image
    rgba = frame.loc[frame["image"] == "nested/rgba.png", list(LABELS)].to_numpy()
    single = predict_files(
        [source[0]],
        checkpoints / "c.safetensors",
        thresholds=None,
        views=ViewsConfig(tta="none", tta_average="probs"),
        run=InferenceConfig(batch_size=1, workers=0, device="cpu"),
    )
    assert np.allclose(rgba, single[list(LABELS)].to_numpy(), atol=1e-5)
