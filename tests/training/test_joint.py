import math

import pandas as pd
import pytest
import torch
from tests_support import autoencoder_options, classifier_options, joint_start, train

from cxrtool.errors import InputError
from cxrtool.models.checkpoints import read_info, read_tensors
from cxrtool.training.tasks import JointTask


def joint_options(splits, images, **overrides) -> dict:
    base = classifier_options(splits, images)
    for key in ("augment", "resize", "fmix_alpha", "fmix_decay", "fmix_mask", "keep"):
        base.pop(key)
    # 64-px synthetic images: a 64-px crop would give a 16-px latent, below DenseNet's 29, so they are upscaled
    base.update({"crop": 128, "lam": 0.9, "schedule": "plateau", "classifier": None, "autoencoder": None})
    base.update(limit_train=8, limit_val=6, batch_size=4, epochs=1)
    base.update(overrides)
    return base


@pytest.fixture(scope="module")
def stage_runs(synth_small, synth_splits, tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    train("classifier", classifier_options(synth_splits, synth_small, epochs=1, limit_train=8, limit_val=4), root / "c")
    train(
        "autoencoder", autoencoder_options(synth_splits, synth_small, epochs=1, limit_train=4, limit_val=2), root / "a"
    )
    return root / "c", root / "a"


@pytest.mark.parametrize("as_file", [False, True])
def test_joint_starts_from_stage_1_and_2(stage_runs, synth_small, synth_splits, as_file):
    classifier, autoencoder = stage_runs
    if as_file:
        classifier, autoencoder = classifier / "model.safetensors", autoencoder / "model.safetensors"
    model = joint_start(
        joint_options(synth_splits, synth_small, classifier=str(classifier), autoencoder=str(autoencoder))
    )
    joint = model.state_dict()
    for source, prefix in ((classifier, "densenet."), (autoencoder, "encoder.")):
        tensors = read_tensors(source if as_file else source / "model.safetensors")
        key = next(k for k in tensors if k.startswith(prefix))
        assert torch.equal(joint[key], tensors[key])


def test_wrong_kind_is_a_clear_error(stage_runs, synth_small, synth_splits):
    classifier, autoencoder = stage_runs
    with pytest.raises(InputError, match=r"\(--classifier\) is an autoencoder checkpoint"):
        joint_start(joint_options(synth_splits, synth_small, classifier=str(autoencoder)))
    with pytest.raises(InputError, match=r"\(--autoencoder\) is a classifier checkpoint"):
        joint_start(joint_options(synth_splits, synth_small, autoencoder=str(classifier)))


def test_missing_parts_warn(synth_small, synth_splits, capsys):
    joint_start(joint_options(synth_splits, synth_small))
    err = capsys.readouterr().err
    assert "no --autoencoder" in err and "no --classifier" in err


def test_too_small_crop_is_refused(synth_small, synth_splits, tmp_path):
    with pytest.raises(InputError, match="at least 116"):
        train("joint", joint_options(synth_splits, synth_small, crop=112), tmp_path / "r")


def test_loss_weighting():
    task = JointTask(("A",), None, lam=0.9)
    bce, mse = torch.tensor(0.5), torch.tensor(0.1)
    assert float(task.combine(bce, mse)) == pytest.approx(0.9 * 0.5 + 0.1 * 0.1)


def test_joint_run_and_resume(stage_runs, synth_small, synth_splits, tmp_path):
    classifier, autoencoder = stage_runs
    options = joint_options(
        synth_splits, synth_small, classifier=str(classifier), autoencoder=str(autoencoder), epochs=2
    )
    train("joint", options, tmp_path / "one-go")
    frame = pd.read_csv(tmp_path / "one-go" / "history.csv")
    for column in ("train_bce", "train_mse", "val_bce", "val_mse", "val_auc_mean"):
        assert column in frame.columns
    row = frame.iloc[-1]
    assert row["val_loss"] == pytest.approx(0.9 * row["val_bce"] + 0.1 * row["val_mse"], rel=1e-4)
    assert not math.isnan(row["train_loss"])
    info = read_info(tmp_path / "one-go")
    assert info.kind == "joint" and info.input["latent"] == 32 and info.input["encoder_first"] is True
    train("joint", {**options, "epochs": 1}, tmp_path / "cut")
    from tests_support import merge_resume

    train("joint", merge_resume(tmp_path / "cut", {"epochs": 2}), tmp_path / "cut", resume=True)
    a, b = read_tensors(tmp_path / "one-go" / "last.safetensors"), read_tensors(tmp_path / "cut" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
