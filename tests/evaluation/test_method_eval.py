"""Evaluation against SPEC §1 and §5, recomputed independently: ten-crop from torchvision's TenCrop, the files'
metrics from scikit-learn on the files themselves, the bootstrap's Mean interval from explicit resamples."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torchvision import transforms as T

from cxrtool.config.evaluation import EvaluationConfig
from cxrtool.data.labels import LABELS
from cxrtool.evaluation.compare import compare_evaluations
from cxrtool.evaluation.eval_dir import read_evaluation, write_evaluation
from cxrtool.evaluation.evaluate import evaluate_images, metrics_table
from cxrtool.evaluation.inference import load_predictor, predict_paths, tencrop_transform
from cxrtool.models.checkpoints import save_model
from cxrtool.models.classifier import Classifier
from cxrtool.stats.metrics import bootstrap_auc


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "c.safetensors"
    spec = {"resize": 41, "crop": 32, "channels": 3, "encoder_first": False}
    save_model(path, Classifier().eval(), kind="classifier", labels=LABELS, input_spec=spec, config={})
    return path


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


@pytest.mark.parametrize(("base", "crop"), [(41, 32), (36, 32)])  # an odd margin too: the centre rounds as torchvision
def test_tencrop_views_are_torchvisions(base, crop):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (base, base), dtype=np.uint8))
    ours = tencrop_transform(base=base, crop=crop)(img, torch.Generator())
    theirs = torch.stack([_tensor(v) for v in T.TenCrop(crop)(img)])
    assert ours.shape == theirs.shape == (10, 1, crop, crop)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)  # view for view, in torchvision's order


def test_tencrop_prediction_is_the_mean_probability_of_the_ten_views(classifier_file, tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (80, 80), dtype=np.uint8)).save(path)
    predictor = load_predictor(classifier_file, torch.device("cpu"))
    got = predict_paths(predictor, [path], tta="tencrop", average="probs")[0]
    resized = Image.open(path).resize((41, 41), Image.BILINEAR)
    views = torch.stack([_tensor(v) for v in T.TenCrop(32)(resized)])
    model = Classifier().eval()
    model.densenet.load_state_dict(predictor.model.densenet.state_dict())
    with torch.no_grad():
        expected = torch.sigmoid(model(views)["logits"]).mean(0).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    single = predict_paths(predictor, [path], tta="none")[0]
    assert np.abs(single - expected).max() > 1e-4  # ten views are not one


def test_metrics_csv_is_reproduced_from_the_written_predictions_by_sklearn(classifier_file, synth_small, tmp_path):
    from tests_support import splits_for

    out = tmp_path / "eval"
    evaluate_images(
        classifier_file, splits_for(synth_small, tmp_path), synth_small, out,
        evaluation=EvaluationConfig(bootstrap=20, limit=40),
    )  # fmt: skip
    preds = pd.read_csv(out / "predictions.csv")
    truth = pd.read_csv(out / "targets.csv")
    metrics = pd.read_csv(out / "metrics.csv").set_index("label")
    assert list(preds["image"]) == list(truth["image"])
    aucs = []
    for label in LABELS:
        y, p = truth[label].to_numpy(), preds[label].to_numpy()
        if 0 < y.sum() < len(y):
            auc = roc_auc_score(y, p)
            aucs.append(auc)
            assert metrics.loc[label, "auc"] == pytest.approx(auc, abs=1e-9)
            assert metrics.loc[label, "ap"] == pytest.approx(average_precision_score(y, p), abs=1e-9)
            fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
            best = int(np.argmax(tpr - fpr))
            if tpr[best] - fpr[best] > 0:
                assert metrics.loc[label, "youden_threshold"] == thresholds[best]  # the very same number
                assert metrics.loc[label, "sensitivity"] == pytest.approx(tpr[best], abs=1e-9)
    assert len(aucs) >= 5
    assert metrics.loc["Mean", "auc"] == pytest.approx(np.mean(aucs), abs=1e-9)
    assert metrics.loc["Mean", "n_labels"] == len(aucs)


def test_the_means_interval_uses_complete_resamples_only():
    """A 2-positive label lacks positives in many resamples; the Mean's interval skips those resamples whole
    instead of averaging 13 labels in some and 14 in others."""
    rng = np.random.default_rng(3)
    n = 200
    y = np.zeros((n, 3), dtype=int)
    y[:2, 0] = 1  # rare
    y[:, 1] = rng.random(n) < 0.4
    y[:, 2] = rng.random(n) < 0.3
    scores = y * 0.6 + rng.random((n, 3))
    result = bootstrap_auc(y, scores, n_boot=300, seed=5)
    draws = np.random.default_rng(5)
    means, skipped = [], 0
    for _ in range(300):
        idx = draws.integers(0, n, size=n)
        ys, ss = y[idx], scores[idx]
        if any(ys[:, j].min() == ys[:, j].max() for j in range(3)):
            skipped += 1
            continue
        means.append(np.mean([roc_auc_score(ys[:, j], ss[:, j]) for j in range(3)]))
    assert skipped > 20 and result["mean_skipped"] == skipped
    low, high = np.quantile(means, [0.025, 0.975])
    assert result["mean_ci_low"] == pytest.approx(low, abs=1e-12)
    assert result["mean_ci_high"] == pytest.approx(high, abs=1e-12)
    table = metrics_table(("a", "b", "c"), y, scores, n_boot=300, seed=5)
    assert table.attrs["bootstrap_mean_skipped"] == skipped


def _write_eval(path, y, probs, labels):
    images = np.array([f"{i:05d}.png" for i in range(len(y))])
    metrics = metrics_table(labels, y, probs, n_boot=20, seed=0)
    write_evaluation(path, images=images, labels=labels, probs=probs, targets=y, metrics=metrics, config={})
    return read_evaluation(path)


def test_compare_says_why_a_p_value_is_blank_and_counts_holm_from_the_tests_made(tmp_path):
    rng = np.random.default_rng(0)
    labels = ("A", "B", "C")
    n = 60
    y = np.zeros((n, 3), dtype=int)
    y[:, 0] = rng.random(n) < 0.5
    y[:, 1] = rng.random(n) < 0.5
    y[0, 2] = 1  # one positive: ranked first by one model, last by the other
    base = rng.random((n, 3))
    other = rng.random((n, 3))
    base[:, 2], other[:, 2] = 0.5, 0.5
    base[0, 2], other[0, 2] = 0.9, 0.1
    a, b = _write_eval(tmp_path / "a", y, base, labels), _write_eval(tmp_path / "b", y, other, labels)
    result = compare_evaluations([a, b], ["a", "b"])
    table = result.table.set_index("label")
    assert np.isnan(table.loc["C", "p_b_vs_a"]) and not np.isnan(table.loc["A", "p_b_vs_a"])
    assert any("C" in note and "variance is zero" in note for note in result.notes)
    assert "over the 2 label tests of each pair" in result.method
    # Holm over the two tests that exist: the smaller p doubled (capped), the larger as is or the running max
    p = table.loc[["A", "B"], "p_b_vs_a"].to_numpy()
    expected = np.minimum(1, np.maximum.accumulate(np.array([2, 1]) * np.sort(p)))
    np.testing.assert_allclose(np.sort(table.loc[["A", "B"], "p_holm_b_vs_a"].to_numpy()), expected)


def test_compare_warns_when_a_mean_covers_fewer_labels_than_the_published_one(tmp_path):
    rng = np.random.default_rng(1)
    y = (rng.random((80, 14)) < 0.3).astype(int)
    y[:, 7] = 0  # Hernia absent: 13 labels in the Mean
    probs = rng.random((80, 14))
    evaluation = _write_eval(tmp_path / "e", y, probs, LABELS)
    result = compare_evaluations([evaluation], ["e"], reference="paper")
    assert any("published Means average 14 labels, but e over 13" in note for note in result.notes)


def test_unreadable_files_are_skipped_in_place_and_listed(classifier_file, tmp_path):
    rng = np.random.default_rng(2)
    paths = []
    for name in ("a", "bad1", "bad2", "bad3", "b"):  # batches of 2: mixed, all unreadable, readable
        path = tmp_path / f"{name}.png"
        if name.startswith("bad"):
            path.write_bytes(b"not an image")
        else:
            Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(path)
        paths.append(path)
    predictor = load_predictor(classifier_file, torch.device("cpu"))
    errors: list[tuple[int, str]] = []
    counted: list[int] = []
    got = predict_paths(predictor, paths, batch_size=2, errors=errors, progress=counted.append)
    readable = predict_paths(predictor, [paths[0], paths[4]], batch_size=1)
    np.testing.assert_allclose(got[[0, 4]], readable, rtol=0, atol=1e-6)
    assert (got[1:4] == 0).all()
    assert [index for index, _ in errors] == [1, 2, 3]
    assert all(f"bad{i}.png" in message for i, (_, message) in enumerate(errors, start=1))
    assert sum(counted) == 5
    quiet: list[tuple[int, str]] = []  # no progress callback
    np.testing.assert_array_equal(predict_paths(predictor, paths, batch_size=2, errors=quiet), got)
    assert quiet == errors


@pytest.mark.parametrize("tta", ["none", "tencrop"])
def test_batches_of_several_images_give_each_image_its_own_row(classifier_file, tmp_path, tta):
    """Three images, two per forward (20 views with ten-crop), match one image per forward row for row."""
    rng = np.random.default_rng(7)
    paths = []
    for name in "abc":
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(paths[-1])
    predictor = load_predictor(classifier_file, torch.device("cpu"))
    got = predict_paths(predictor, paths, tta=tta, batch_size=2 if tta == "none" else 20)
    alone = np.concatenate([predict_paths(predictor, [path], tta=tta, batch_size=1) for path in paths])
    np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)
    assert np.abs(got[0] - got[1]).max() > 1e-6  # the rows are the images', not one image's repeated


@pytest.mark.parametrize("workers", [1, 2])
def test_prediction_workers_leave_signals_to_the_main_process(classifier_file, tmp_path, monkeypatch, workers):
    """Every loader worker ignores SIGINT and SIGTERM (the main process stops them in order on Ctrl-C), whatever
    their count: each records, from inside the worker, how its signals are handled."""
    import os
    import signal

    import cxrtool.evaluation.inference as inference
    from cxrtool.data.datasets import ImageDataset

    marks = tmp_path / "marks"
    marks.mkdir()

    class Recording(ImageDataset):
        def __getitem__(self, index):
            handled = [signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM)]
            (marks / f"{os.getpid()}-{index}").write_text(str(all(handled)))
            return super().__getitem__(index)

    monkeypatch.setattr(inference, "ImageDataset", Recording)
    paths = []
    for name in "abcd":
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(np.full((40, 40), 100, np.uint8)).save(paths[-1])
    predict_paths(load_predictor(classifier_file, torch.device("cpu")), paths, batch_size=1, workers=workers)
    written = {p.name.split("-")[0]: p.read_text() for p in marks.iterdir()}
    assert len(list(marks.iterdir())) == 4 and str(os.getpid()) not in written  # read in the workers only
    assert set(written.values()) == {"True"}


def test_tencrop_base_is_the_training_pre_crop_size():
    """A classifier's --resize; 8/7 of the crop for a joint model (1024 to 896), rounded to the nearest pixel."""
    from cxrtool.evaluation.inference import Predictor
    from cxrtool.models.checkpoint_info import CheckpointInfo

    def base(kind: str, spec: dict) -> int:
        info = CheckpointInfo(path=Path("m.safetensors"), kind=kind, labels=LABELS, input=spec, version="0")
        return Predictor(torch.nn.Identity(), info, torch.device("cpu")).tencrop_base()

    assert base("joint", {"crop": 896, "resize": 500}) == 1024
    assert base("joint", {"crop": 32}) == 37  # 36.57
    assert base("classifier", {"crop": 32, "resize": 41}) == 41
    assert base("classifier", {"crop": 32}) == 32


def test_tencrop_averages_probabilities_or_logits_as_asked(tmp_path):
    torch.manual_seed(3)
    model = Classifier().eval()
    with torch.no_grad():
        model.densenet.classifier.weight.mul_(300)  # logits that differ between the views
    spec = {"resize": 41, "crop": 32, "channels": 3, "encoder_first": False}
    save_model(tmp_path / "c.safetensors", model, kind="classifier", labels=LABELS, input_spec=spec, config={})
    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (80, 80), dtype=np.uint8)).save(path)
    views = torch.stack([_tensor(v) for v in T.TenCrop(32)(Image.open(path).resize((41, 41), Image.BILINEAR))])
    with torch.no_grad():
        logits = model(views)["logits"].double()
    by_logits, by_probs = torch.sigmoid(logits.mean(0)).numpy(), torch.sigmoid(logits).mean(0).numpy()
    assert np.abs(by_logits - by_probs).max() > 1e-3
    predictor = load_predictor(tmp_path / "c.safetensors", torch.device("cpu"))
    got = predict_paths(predictor, [path], tta="tencrop", average="logits")[0]
    np.testing.assert_allclose(got, by_logits, rtol=0, atol=1e-5)
    got = predict_paths(predictor, [path], tta="tencrop")[0]  # the default: the mean probability
    np.testing.assert_allclose(got, by_probs, rtol=0, atol=1e-5)


def test_a_joint_checkpoint_predicts_from_its_encoded_crop(tmp_path):
    from cxrtool.models.joint import JointModel

    torch.manual_seed(5)
    model = JointModel().eval()
    spec = {"resize": 128, "crop": 128, "channels": 3, "encoder_first": True, "latent": 32}
    save_model(tmp_path / "j.safetensors", model, kind="joint", labels=LABELS, input_spec=spec, config={})
    pixels = np.random.default_rng(6).integers(0, 256, (128, 128), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    predictor = load_predictor(tmp_path / "j.safetensors", torch.device("cpu"))
    got = predict_paths(predictor, [tmp_path / "x.png"])[0]  # the crop size already: no resize
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(pixels / 255.0).float()[None, None])["logits"][0]).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
