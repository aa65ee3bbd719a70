import math
import os
import signal

import pandas as pd
import pytest
import torch
from tests_support import autoencoder_options, classifier_options, merge_resume, train

from cxrtool.data.labels import LABELS
from cxrtool.errors import InputError, Interrupted, RunFailure
from cxrtool.models.checkpoints import read_info, read_tensors

HEAD = ["epoch", "lr", "seconds", "images_per_s", "train_loss", "val_loss"]


def _same_weights(a, b) -> bool:
    ta, tb = read_tensors(a), read_tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_classifier_run_directory_follows_the_contract(synth_small, synth_splits, tmp_path):
    run = tmp_path / "run"
    history = train("classifier", classifier_options(synth_splits, synth_small), run)
    assert len(history) == 2
    for name in (
        "model.safetensors",
        "last.safetensors",
        "resume.safetensors",
        "resume.json",
        "config.json",
        "history.csv",
    ):
        assert (run / name).is_file(), name
    frame = pd.read_csv(run / "history.csv")
    assert list(frame.columns) == HEAD + [f"val_auc_{label}" for label in LABELS] + ["val_auc_mean"]
    assert list(frame["epoch"]) == [1, 2]
    assert frame["val_loss"].notna().all() and frame["val_auc_mean"].between(0, 1).all()
    info = read_info(run / "last.safetensors")
    assert info.kind == "classifier" and info.labels == LABELS
    assert info.input["crop"] == 32 and info.input["encoder_first"] is False
    assert info.config["seed"] == 0 and info.version
    assert {k.split(".")[0] for k in read_tensors(run / "model.safetensors")} == {"densenet"}
    assert not any(p.name.endswith(".tmp") for p in run.iterdir())
    with pytest.raises(InputError, match="--overwrite"):
        train("classifier", classifier_options(synth_splits, synth_small), run)


def test_autoencoder_history_columns(synth_small, synth_splits, tmp_path):
    run = tmp_path / "ae"
    train("autoencoder", autoencoder_options(synth_splits, synth_small, epochs=1), run)
    frame = pd.read_csv(run / "history.csv")
    assert list(frame.columns) == [*HEAD, "train_mse", "val_mse", "val_psnr"]
    # PSNR on 8-bit-rounded values stays close to the float MSE's
    assert frame["val_psnr"].iloc[0] == pytest.approx(10 * math.log10(1 / frame["val_mse"].iloc[0]), abs=0.5)
    assert read_info(run).kind == "autoencoder"


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_an_epoch_gives_the_same_weights(synth_small, synth_splits, tmp_path, workers):
    options = classifier_options(synth_splits, synth_small, workers=workers, epochs=2)
    train("classifier", options, tmp_path / "one-go")
    train("classifier", {**options, "epochs": 1}, tmp_path / "split")
    resumed = merge_resume(tmp_path / "split", {"epochs": 2, "workers": workers})
    train("classifier", resumed, tmp_path / "split", resume=True)
    assert _same_weights(tmp_path / "one-go" / "last.safetensors", tmp_path / "split" / "last.safetensors")
    one, two = (pd.read_csv(tmp_path / d / "history.csv") for d in ("one-go", "split"))
    assert list(two["epoch"]) == [1, 2]
    pd.testing.assert_series_equal(one["val_loss"], two["val_loss"])


def test_sigint_mid_epoch_saves_state_and_resume_matches(synth_small, synth_splits, tmp_path):
    """A real SIGINT at a step boundary (step 3 of 4) -> Interrupted (exit 130), then an exact resume."""
    options = classifier_options(synth_splits, synth_small, limit_train=32, epochs=2, augment="fmix")
    train("classifier", options, tmp_path / "one-go")

    def interrupt(progress) -> None:
        if progress.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="--resume"):
        train("classifier", options, tmp_path / "cut", step_hook=interrupt)
    assert (tmp_path / "cut" / "resume.json").is_file()
    assert not (tmp_path / "cut" / "history.csv").exists()  # no epoch completed
    train("classifier", merge_resume(tmp_path / "cut", {}), tmp_path / "cut", resume=True)
    assert _same_weights(tmp_path / "one-go" / "last.safetensors", tmp_path / "cut" / "last.safetensors")


def test_non_finite_loss_stops_with_exit_1_and_keeps_files(synth_small, synth_splits, tmp_path, monkeypatch):
    from cxrtool.training import tasks

    run = tmp_path / "run"
    train("autoencoder", autoencoder_options(synth_splits, synth_small, epochs=1), run)
    before = read_tensors(run / "last.safetensors")
    original = tasks.AutoencoderTask.train_step

    def poisoned(self, model, batch, *, epoch, step):
        out = original(self, model, batch, epoch=epoch, step=step)
        return {**out, "loss": out["loss"] * math.nan} if epoch == 2 else out

    monkeypatch.setattr(tasks.AutoencoderTask, "train_step", poisoned)
    with pytest.raises(RunFailure, match="epoch 2, step 1"):
        train("autoencoder", merge_resume(run, {"epochs": 2}), run, resume=True)
    after = read_tensors(run / "last.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_max_steps_validates_the_partial_epoch(synth_small, synth_splits, tmp_path):
    run = tmp_path / "run"
    history = train("classifier", classifier_options(synth_splits, synth_small, max_steps=1, epochs=5), run)
    assert len(history) == 1 and history[0]["epoch"] == 1 and not math.isnan(history[0]["val_loss"])


def test_resume_refuses_changed_settings(synth_small, synth_splits, tmp_path):
    run = tmp_path / "run"
    train("autoencoder", autoencoder_options(synth_splits, synth_small, epochs=1, limit_train=4, limit_val=2), run)
    with pytest.raises(InputError, match="--lr"):
        merge_resume(run, {"lr": 0.5})
    with pytest.raises(InputError, match="only grow"):
        merge_resume(run, {"epochs": 0})
    assert merge_resume(run, {"workers": 3, "epochs": 4}).loop.workers == 3


def test_bad_inputs(synth_small, synth_splits, tmp_path):
    frame = pd.read_csv(synth_splits)
    no_val = tmp_path / "no_val.csv"
    frame[frame["split"] != "val"].to_csv(no_val, index=False)
    with pytest.raises(InputError, match="no val rows"):
        train("classifier", classifier_options(no_val, synth_small), tmp_path / "a")
    empty = tmp_path / "empty_images"
    empty.mkdir()
    with pytest.raises(InputError, match="not under"):
        train("classifier", classifier_options(synth_splits, empty), tmp_path / "b")
    with pytest.raises(InputError, match="at least 29"):
        train("classifier", classifier_options(synth_splits, synth_small, crop=16, resize=20), tmp_path / "c")
