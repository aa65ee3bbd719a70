"""The training method against SPEC §1, each expectation computed independently of cxrtool's own helpers: the loss
terms from the model's outputs by their formulas, stage 3's start from the files of stages 1 and 2, each stage's
augmentation from torchvision's transforms with the same seed, the learning rate of every epoch from the
paper's/authors' schedules by hand (across a resume), and what each rank of a multi-GPU run does."""

import math
import os
import signal
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from PIL import Image
from safetensors.torch import load_file
from tests_support import autoencoder_options, build_stage, classifier_options, joint_start, merge_resume, train
from torchvision import transforms as T

from cxrtool.data.labels import LABELS
from cxrtool.data.transforms import sample_seed
from cxrtool.errors import InputError, Interrupted
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import save_model
from cxrtool.models.classifier import Classifier
from cxrtool.models.joint import JointModel
from cxrtool.runtime.device import pick_device
from cxrtool.training import distributed, tasks
from cxrtool.training.tasks import AutoencoderTask, ClassifierTask, FMixSettings, JointTask


def _tiny_ae(splits, images, **overrides) -> dict:
    """One optimizer step per epoch: 2 train images, 1 val image, 16-px patches."""
    base = autoencoder_options(splits, images, patch_size=16, patches_per_image=1, batch_size=2)
    return {**base, "limit_train": 2, "limit_val": 1, **overrides}


def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = 1 / (1 + torch.exp(-logits.double()))
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


# ---- loss terms -------------------------------------------------------------------------------------------------


def test_joint_loss_is_lambda_bce_plus_one_minus_lambda_mse_against_the_input():
    torch.manual_seed(0)
    model = JointModel().eval()
    x = torch.rand(3, 1, 128, 128)
    y = (torch.rand(3, 14) < 0.4).float()
    task = JointTask(LABELS, None, lam=0.7)
    parts = task.train_step(model, {"image": x, "target": y}, epoch=1, step=0)
    with torch.no_grad():
        out = model(x)
    bce = _bce(out["logits"], y)
    mse = ((out["x_hat"].double() - x.double()) ** 2).mean()
    assert parts["bce"].item() == pytest.approx(float(bce), rel=1e-5)
    assert parts["mse"].item() == pytest.approx(float(mse), rel=1e-5)
    assert parts["loss"].item() == pytest.approx(0.7 * float(bce) + 0.3 * float(mse), rel=1e-5)
    with torch.no_grad():
        val = task.val_step(model, {"image": x, "target": y})
    per_image = [0.7 * float(_bce(out["logits"][i], y[i])) + 0.3 * float(((out["x_hat"][i] - x[i]) ** 2).mean())
                 for i in range(3)]  # fmt: skip
    np.testing.assert_allclose(val["loss"].numpy(), per_image, rtol=1e-5)
    np.testing.assert_allclose(val["probs"].numpy(), torch.sigmoid(out["logits"]).numpy(), rtol=1e-6)


def test_autoencoder_loss_is_the_mse_against_the_patch_and_psnr_on_8_bits():
    torch.manual_seed(1)
    model = AutoEncoder(init="random")
    x = torch.rand(2, 3, 1, 16, 16)  # 2 images x 3 patches
    task = AutoencoderTask()
    with torch.no_grad():
        x_hat = model(x.flatten(0, 1))["x_hat"].view_as(x)
    parts = task.train_step(model, {"image": x.flatten(0, 1)}, epoch=1, step=0)
    assert parts["loss"].item() == pytest.approx(float(((x_hat - x) ** 2).mean()), rel=1e-5)
    with torch.no_grad():
        val = task.val_step(model, {"image": x})
    metrics = task.metrics({k: v.numpy() for k, v in val.items()}, np.arange(2))
    se8 = ((torch.round(x_hat * 255) - torch.round(x * 255)) ** 2).mean()
    assert metrics["val_psnr"] == pytest.approx(10 * math.log10(255**2 / float(se8)), rel=1e-6)
    assert metrics["val_mse"] == pytest.approx(float(((x_hat - x) ** 2).mean()), rel=1e-5)


def test_classifier_loss_is_bce_on_logits():
    torch.manual_seed(2)
    model = Classifier().eval()
    x, y = torch.rand(2, 1, 32, 32), (torch.rand(2, 14) < 0.5).float()
    parts = ClassifierTask(LABELS, None, fmix=None, seed=0).train_step(
        model, {"image": x, "target": y}, epoch=1, step=0
    )
    with torch.no_grad():
        expected = _bce(model(x)["logits"], y)
    assert parts["loss"].item() == pytest.approx(float(expected), rel=1e-5)


class _Recorder(torch.nn.Module):
    """Returns zero logits and keeps the batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(x.clone())
        return {"logits": torch.zeros(x.shape[0], 14, requires_grad=True)}


def test_fmix_differs_across_ranks_and_repeats_within_one():
    x, y = torch.rand(6, 1, 32, 32), (torch.rand(6, 14) < 0.5).float()
    mixed = {}
    for rank in (0, 1, 0):
        model = _Recorder()
        task = ClassifierTask(LABELS, None, fmix=FMixSettings(), seed=3, rank=rank)
        task.train_step(model, {"image": x, "target": y}, epoch=2, step=5)
        assert not torch.equal(model.seen[0], x)  # mixed
        mixed.setdefault(rank, []).append(model.seen[0])
    assert torch.equal(mixed[0][0], mixed[0][1])
    assert not torch.equal(mixed[0][0], mixed[1][0])


# ---- distributed ------------------------------------------------------------------------------------------------


def test_a_cuda_rank_binds_its_gpu_before_joining_the_group(monkeypatch):
    calls: list[tuple[str, object]] = []
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", torch.device(d))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(("init", kw)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    device = pick_device("auto")
    assert device == torch.device("cuda", 1)
    world = distributed.init_world(device)
    assert calls[0] == ("set_device", torch.device("cuda", 1))
    assert calls[1][0] == "init" and calls[1][1]["backend"] == "nccl"
    assert calls[1][1]["device_id"] == torch.device("cuda", 1)
    assert (world.rank, world.size, world.local_rank) == (1, 2, 1)


def test_amp_uses_native_bf16_only(monkeypatch):
    from cxrtool.training import loop

    asked = {}

    def supported(including_emulation: bool = True) -> bool:
        asked["emulation"] = including_emulation
        return False  # a pre-Ampere GPU: bf16 only by emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    dtype, scaler = loop._amp(torch.device("cuda", 0), True)
    assert asked["emulation"] is False and dtype == torch.float16 and scaler is not None
    assert loop._amp(torch.device("cpu"), True) == (None, None)


# ---- stage 3 starts from stages 1 and 2 --------------------------------------------------------------------------


def test_stage_3_starts_from_every_tensor_of_stages_1_and_2(tmp_path, synth_small, synth_splits):
    torch.manual_seed(4)
    classifier, autoencoder = Classifier(), AutoEncoder(init="random")
    for model in (classifier, autoencoder):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
    classifier.densenet.features.norm5.running_mean.add_(3.0)  # buffers travel too
    save_model(tmp_path / "c.safetensors", classifier, kind="classifier", labels=LABELS, input_spec={}, config={})
    save_model(tmp_path / "a.safetensors", autoencoder, kind="autoencoder", labels=LABELS, input_spec={}, config={})
    sources = {**load_file(str(tmp_path / "c.safetensors")), **load_file(str(tmp_path / "a.safetensors"))}
    options = {"classifier": str(tmp_path / "c.safetensors"), "autoencoder": str(tmp_path / "a.safetensors")}
    joint = joint_start({**options, "pretrained": False, "weights": None}).state_dict()
    assert set(joint) == set(sources)
    for key, value in sources.items():
        assert torch.equal(joint[key], value), key


# ---- each stage's augmentation is torchvision's -----------------------------------------------------------------


@pytest.fixture(scope="module")
def synth_160(tmp_path_factory):
    from cxrtool.data.splits import SplitRequest, split_dataset
    from cxrtool.data.synth import SynthConfig, write_synthetic

    root = tmp_path_factory.mktemp("synth160")
    write_synthetic(root / "data", SynthConfig(n=40, size=160, seed=2))
    split_dataset(root / "data", SplitRequest(seed=0), images=root / "data").frame.to_csv(root / "s.csv", index=False)
    return root / "data", root / "s.csv"


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def _image_of(stage, index: int, split: str = "train") -> Image.Image:
    dataset = stage.train_set if split == "train" else stage.val_set
    return Image.open(dataset.paths[index]).convert("L")


def test_stage_3_training_crops_rotates_then_flips_and_validation_resizes(synth_160):
    from tests.training.test_joint import joint_options

    images, splits = synth_160
    options = joint_options(splits, images, crop=128)
    stage = build_stage("joint", options, resume=True)  # no parts to load
    for index in range(4):
        torch.manual_seed(sample_seed(0, 3, index, "train"))
        plain = T.Compose([T.RandomCrop(128), T.RandomRotation(5), T.RandomHorizontalFlip()])(_image_of(stage, index))
        torch.testing.assert_close(stage.train_set[(3, index)]["image"], _tensor(plain), rtol=0, atol=1e-6)
    val = stage.val_set[(1, 0)]["image"]
    torch.testing.assert_close(val, _tensor(T.Resize((128, 128))(_image_of(stage, 0, "val"))), rtol=0, atol=1e-6)


@pytest.mark.parametrize("augment", ["bl5", "fmix"])
def test_stage_1_training_draws_are_torchvisions(synth_small, synth_splits, augment):
    options = classifier_options(synth_splits, synth_small, resize=64, crop=56, augment=augment)
    stage = build_stage("classifier", options, resume=True)
    for index in range(4):
        torch.manual_seed(sample_seed(0, 2, index, "train"))
        if augment == "bl5":
            geometric = T.Compose([T.RandomCrop(56), T.RandomHorizontalFlip(), T.RandomRotation(5)])
            expected = T.ColorJitter(contrast=0.25)(_tensor(geometric(_image_of(stage, index))))
        else:  # FMix replaces flip, rotation and jitter; the crop stays
            expected = _tensor(T.RandomCrop(56)(_image_of(stage, index)))
        torch.testing.assert_close(stage.train_set[(2, index)]["image"], expected, rtol=0, atol=1e-6)


# ---- learning rate per epoch, across a resume --------------------------------------------------------------------


def _plateau_by_hand(losses: list[float], lr: float, patience: int, factor: float) -> list[float]:
    """ReduceLROnPlateau's rule (mode min, relative threshold 1e-4, no cooldown, changes under eps = 1e-8 ignored),
    written out: the rate each epoch trained with, given each epoch's validation loss."""
    rates, best, bad = [], math.inf, 0
    for loss in losses:
        rates.append(lr)
        if loss < best * (1 - 1e-4):
            best, bad = loss, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = (lr * factor if lr - lr * factor > 1e-8 else lr), 0
    return rates


def test_plateau_schedule_crosses_plateaus_and_survives_a_resume(synth_small, synth_splits, tmp_path):
    # a tiny rate keeps the validation loss flat, so the rate must drop every patience+1 epochs
    options = _tiny_ae(synth_splits, synth_small, lr=1e-6, patience=1, factor=0.5, epochs=8)
    history = train("autoencoder", options, tmp_path / "one-go")
    losses = [row["val_loss"] for row in history]
    expected = _plateau_by_hand(losses, 1e-6, patience=1, factor=0.5)
    assert [row["lr"] for row in history] == pytest.approx(expected, rel=1e-9)
    assert len(set(expected)) >= 3  # two plateaus crossed
    train("autoencoder", {**options, "epochs": 3}, tmp_path / "cut")
    resumed = train("autoencoder", merge_resume(tmp_path / "cut", {"epochs": 8}), tmp_path / "cut", resume=True)
    assert [row["lr"] for row in resumed] == pytest.approx(expected, rel=1e-9)
    frame = pd.read_csv(tmp_path / "cut" / "history.csv")
    assert list(frame["epoch"]) == list(range(1, 9))


def test_step_schedule_divides_at_the_start_of_epochs_5_10_15(synth_small, synth_splits, tmp_path):
    options = _tiny_ae(synth_splits, synth_small, lr=1e-3, schedule="step", epochs=16)
    train("autoencoder", {**options, "epochs": 7}, tmp_path / "run")
    history = train("autoencoder", merge_resume(tmp_path / "run", {"epochs": 16}), tmp_path / "run", resume=True)
    expected = [1e-3] * 4 + [1e-4] * 5 + [1e-5] * 5 + [1e-6] * 2
    assert [row["lr"] for row in history] == pytest.approx(expected, rel=1e-12)
    assert list(pd.read_csv(tmp_path / "run" / "history.csv")["lr"]) == pytest.approx(expected, rel=1e-5)


# ---- stage 2 batches ---------------------------------------------------------------------------------------------


def test_stage_2_batches_mix_images(synth_small, synth_splits, tmp_path, monkeypatch):
    seen: list[tuple[list[int], tuple[int, ...]]] = []
    original = tasks.AutoencoderTask.train_step

    def record(self, model, batch, *, epoch, step):
        seen.append((batch["index"].tolist(), tuple(batch["image"].shape)))
        return original(self, model, batch, epoch=epoch, step=step)

    monkeypatch.setattr(tasks.AutoencoderTask, "train_step", record)
    options = autoencoder_options(synth_splits, synth_small, patches_per_image=4, batch_size=4, limit_train=8)
    train("autoencoder", {**options, "epochs": 1, "patch_size": 16}, tmp_path / "run")
    assert len(seen) == 8  # 8 images x 4 patches / 4 per batch
    for indices, shape in seen:
        assert shape == (4, 1, 16, 16) and len(set(indices)) == 4  # four different images in every batch
    counts = pd.Series([i for indices, _ in seen for i in indices]).value_counts()
    assert len(counts) == 8 and (counts == 4).all()  # each image's 4 patches, each in its own batch


def test_stage_2_resume_in_the_middle_of_a_loaded_group(synth_small, synth_splits, tmp_path):
    options = autoencoder_options(
        synth_splits, synth_small, patches_per_image=4, batch_size=4, limit_train=8, patch_size=16, epochs=2
    )
    train("autoencoder", options, tmp_path / "one-go")

    def interrupt(progress) -> None:
        if progress.global_step == 3:  # 3 of the 4 steps cut from the first 4 images
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        train("autoencoder", options, tmp_path / "cut", step_hook=interrupt)
    train("autoencoder", merge_resume(tmp_path / "cut", {}), tmp_path / "cut", resume=True)
    a, b = (load_file(str(tmp_path / d / "last.safetensors")) for d in ("one-go", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- resume uses the run's own state, and only it ----------------------------------------------------------------


def test_resume_needs_neither_the_earlier_runs_nor_the_network(synth_small, synth_splits, tmp_path, monkeypatch):
    from tests.training.test_joint import joint_options

    save_model(tmp_path / "c.safetensors", Classifier(), kind="classifier", labels=LABELS, input_spec={}, config={})
    save_model(tmp_path / "a.safetensors", AutoEncoder(), kind="autoencoder", labels=LABELS, input_spec={}, config={})
    options = joint_options(
        synth_splits, synth_small, classifier=str(tmp_path / "c.safetensors"),
        autoencoder=str(tmp_path / "a.safetensors"), limit_train=4, limit_val=2, epochs=2,
    )  # fmt: skip
    train("joint", {**options, "epochs": 1}, tmp_path / "run")
    (tmp_path / "c.safetensors").unlink()
    (tmp_path / "a.safetensors").unlink()

    def offline(*args, **kwargs):
        raise AssertionError("a resume must not load ImageNet weights")

    monkeypatch.setattr("cxrtool.models.classifier.load_pretrained_", offline)
    history = train("joint", merge_resume(tmp_path / "run", {"epochs": 2}), tmp_path / "run", resume=True)
    assert [row["epoch"] for row in history] == [1, 2]


def test_a_resume_json_older_than_its_tensors_continues_from_the_tensors(synth_small, synth_splits, tmp_path, capsys):
    options = _tiny_ae(synth_splits, synth_small, epochs=3)
    train("autoencoder", options, tmp_path / "one-go")
    train("autoencoder", {**options, "epochs": 1}, tmp_path / "run")
    old_json = (tmp_path / "run" / "resume.json").read_bytes()
    train("autoencoder", merge_resume(tmp_path / "run", {"epochs": 2}), tmp_path / "run", resume=True)
    (tmp_path / "run" / "resume.json").write_bytes(old_json)  # as if killed between the two writes
    train("autoencoder", merge_resume(tmp_path / "run", {"epochs": 3}), tmp_path / "run", resume=True)
    assert "another save point" in capsys.readouterr().err
    a, b = (load_file(str(tmp_path / d / "last.safetensors")) for d in ("one-go", "run"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert list(pd.read_csv(tmp_path / "run" / "history.csv")["epoch"]) == [1, 2, 3]


@pytest.mark.parametrize(("keep", "kept"), [("auc", 1), ("loss", 2)])
def test_keep_chooses_the_stage_3_checkpoint_by_auc_or_loss(
    synth_small, synth_splits, tmp_path, monkeypatch, keep, kept
):
    """Scripted validation: epoch 1 has the better AUC, epoch 2 the lower loss."""
    from cxrtool.models.checkpoints import read_info
    from tests.training.test_joint import joint_options

    script = iter([(1.0, 0.9), (0.5, 0.6)])
    original = tasks.JointTask.metrics

    def scripted(self, outputs, index):
        loss, auc = next(script)
        return {**original(self, outputs, index), "val_loss": loss, "val_auc_mean": auc}

    monkeypatch.setattr(tasks.JointTask, "metrics", scripted)
    options = joint_options(synth_splits, synth_small, keep=keep, epochs=2, limit_train=4, limit_val=2)
    train("joint", options, tmp_path / "run")
    assert read_info(tmp_path / "run" / "model.safetensors").config["epoch"] == kept
    assert read_info(tmp_path / "run" / "last.safetensors").config["epoch"] == 2


def test_resume_of_another_kind_names_the_right_command(synth_small, synth_splits, tmp_path):
    train("autoencoder", _tiny_ae(synth_splits, synth_small, epochs=1), tmp_path / "ae")
    with pytest.raises(InputError, match="is an autoencoder run; continue it with `cxrtool train-ae --resume"):
        merge_resume(tmp_path / "ae", {}, "classifier")


# ---- stage 1 validation ------------------------------------------------------------------------------------------


class _Fixed(torch.nn.Module):
    """Returns the same given logits whatever the batch."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.logits}


def test_classifier_validation_is_per_image_bce_and_sklearns_auc_by_index():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    n = 40
    targets = (rng.random((n, 14)) < 0.3).astype(np.float32)
    targets[:, 5] = 0  # a label without positives: no AUC, and left out of the mean
    logits = torch.from_numpy(rng.normal(size=(n, 14)).astype(np.float32) + 1.5 * targets)
    task = ClassifierTask(LABELS, targets, fmix=None, seed=0)
    assert task.train_columns() == []
    assert task.val_columns() == [f"val_auc_{label}" for label in LABELS] + ["val_auc_mean"]
    out = task.val_step(_Fixed(logits), {"image": torch.zeros(n, 1, 4, 4), "target": torch.from_numpy(targets)})
    per_image = [float(_bce(logits[i], torch.from_numpy(targets[i]))) for i in range(n)]
    probs = 1 / (1 + np.exp(-logits.double().numpy()))
    np.testing.assert_allclose(out["loss"].numpy(), per_image, rtol=1e-5)
    np.testing.assert_allclose(out["probs"].numpy(), probs, rtol=1e-6)
    order = rng.permutation(n)  # gathered outputs arrive in any order, with each row's dataset index
    metrics = task.metrics({key: value.numpy()[order] for key, value in out.items()}, order)
    assert metrics["val_loss"] == pytest.approx(np.mean(per_image), rel=1e-5)
    aucs = []
    for j, label in enumerate(LABELS):
        if j == 5:
            assert math.isnan(metrics[f"val_auc_{label}"])
            continue
        aucs.append(roc_auc_score(targets[:, j], probs[:, j]))
        assert metrics[f"val_auc_{label}"] == pytest.approx(aucs[-1], abs=1e-6)
    assert metrics["val_auc_mean"] == pytest.approx(np.mean(aucs), abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no label with both classes: NaN, without a "mean of empty slice" warning
        none = tasks.auc_metrics(LABELS[:2], np.zeros((5, 2)), rng.random((5, 2)))
    assert list(none) == [f"val_auc_{LABELS[0]}", f"val_auc_{LABELS[1]}", "val_auc_mean"]
    assert all(math.isnan(v) for v in none.values())


class _FixedRecorder(_Fixed):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__(logits)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(x.clone())
        return super().forward(x)


def test_fmix_step_uses_the_tasks_settings_and_mixes_the_loss():
    from cxrtool.data.fmix import batch_rng, fmix_batch

    torch.manual_seed(5)
    x, y = torch.rand(6, 1, 32, 32), (torch.rand(6, 14) < 0.5).float()
    logits = torch.randn(6, 14)
    settings = FMixSettings(alpha=4.0, decay=5.0, mask="reference")  # none of them the defaults
    model = _FixedRecorder(logits)
    parts = ClassifierTask(LABELS, None, fmix=settings, seed=3).train_step(  # the default rank is 0
        model, {"image": x, "target": y}, epoch=2, step=5
    )
    mixed, own, partner, lam = fmix_batch(x, y, batch_rng(3, 2, 5, rank=0), alpha=4.0, decay=5.0, mode="reference")
    assert torch.equal(model.seen[0], mixed)
    for one_default in (
        {"decay": 5.0, "mode": "reference"},
        {"alpha": 4.0, "mode": "reference"},
        {"alpha": 4.0, "decay": 5.0},
    ):
        assert not torch.equal(mixed, fmix_batch(x, y, batch_rng(3, 2, 5, rank=0), **one_default).images)
    expected = lam * _bce(logits, own) + (1 - lam) * _bce(logits, partner)
    assert 0 < lam < 1 and parts["loss"].item() == pytest.approx(float(expected), rel=1e-5)


def test_autoencoder_validation_is_per_patch_set_and_its_columns():
    torch.manual_seed(6)
    model = AutoEncoder(init="random")
    x = torch.rand(2, 3, 1, 16, 16)  # 2 images x 3 patches
    task = AutoencoderTask()
    assert task.train_columns() == ["train_mse"] and task.val_columns() == ["val_mse", "val_psnr"]
    with torch.no_grad():
        x_hat = model(x.flatten(0, 1))["x_hat"].view_as(x)
        val = task.val_step(model, {"image": x})
    mse = ((x_hat - x) ** 2).flatten(1).mean(dim=1)  # one value per image, over its 3 patches
    se8 = ((torch.round(x_hat * 255) - torch.round(x * 255)) ** 2).flatten(1).mean(dim=1)
    assert val["mse"].shape == val["loss"].shape == val["se8"].shape == (2,)
    torch.testing.assert_close(val["mse"], mse, rtol=1e-5, atol=0)
    torch.testing.assert_close(val["loss"], mse, rtol=1e-5, atol=0)
    torch.testing.assert_close(val["se8"], se8, rtol=1e-5, atol=0)
    parts = task.train_step(model, {"image": x.flatten(0, 1)}, epoch=1, step=0)
    assert parts["mse"].item() == pytest.approx(float(mse.mean()), rel=1e-5)


def test_psnr_of_a_perfect_and_of_a_nearly_perfect_reconstruction():
    task = AutoencoderTask()
    perfect = task.metrics({"mse": np.zeros(2), "se8": np.zeros(2)}, np.arange(2))
    assert perfect["val_psnr"] == math.inf and perfect["val_mse"] == 0.0
    near = task.metrics({"mse": np.full(2, 1e-6), "se8": np.array([0.5, 1.0])}, np.arange(2))
    assert near["val_psnr"] == pytest.approx(10 * math.log10(255**2 / 0.75), rel=1e-12)


# ---- the loop's batching and what a resume carries ---------------------------------------------------------------


def test_steps_split_patch_batches_by_patch_and_skip_the_done_ones():
    from cxrtool.training.loop import _steps

    patches = [{"image": torch.arange(b * 10, b * 10 + 6.0).view(2, 3, 1, 1, 1), "index": torch.tensor([b, b])}
               for b in range(2)]  # fmt: skip
    got = list(_steps(patches, 3, 0))
    assert len(got) == 6
    for k, batch in enumerate(got):  # loader batch k // 3, every image's (k % 3)-th patch
        b, j = divmod(k, 3)
        assert torch.equal(batch["image"], patches[b]["image"][:, j]) and batch["image"].shape == (2, 1, 1, 1)
        assert torch.equal(batch["index"], patches[b]["index"])
    assert [float(s["image"][0]) for s in _steps(patches, 3, 4)] == [11.0, 12.0]  # the last 2 of 6
    plain = [{"image": torch.full((2, 1, 1, 1), float(b))} for b in range(4)]
    assert [float(s["image"][0]) for s in _steps(plain, 1, 0)] == [0.0, 1.0, 2.0, 3.0]
    assert [float(s["image"][0]) for s in _steps(plain, 1, 3)] == [3.0]


def test_resume_state_records_the_optimizer_schedule_and_data_order(synth_small, synth_splits, tmp_path):
    import json

    options = _tiny_ae(synth_splits, synth_small, lr=2e-4, weight_decay=3e-5, patience=2, factor=0.3, epochs=1)
    train("autoencoder", options, tmp_path / "run")
    state = json.loads((tmp_path / "run" / "resume.json").read_text())
    group = state["param_groups"][0]
    assert (group["lr"], group["weight_decay"]) == (2e-4, 3e-5)
    plateau = state["plateau"]
    assert (plateau["mode"], plateau["factor"], plateau["patience"]) == ("min", 0.3, 2)
    assert plateau["best"] == pytest.approx(state["progress"]["best_loss"])  # it stepped on the validation loss
    assert state["data_order"] == {"seed": 0, "epoch": 2, "batches_done": 0}
    assert state["progress"]["epoch"] == 2 and state["scaler"] is None
    step = _tiny_ae(synth_splits, synth_small, schedule="step", epochs=1)
    train("autoencoder", step, tmp_path / "step")
    assert json.loads((tmp_path / "step" / "resume.json").read_text())["plateau"] is None


def test_joint_validation_parts_columns_and_metrics_by_index():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    torch.manual_seed(7)
    n = 30
    x = torch.rand(n, 1, 8, 8)
    x_hat = torch.rand(n, 1, 8, 8)
    targets = (rng.random((n, 14)) < 0.4).astype(np.float32)
    logits = torch.from_numpy(rng.normal(size=(n, 14)).astype(np.float32) + targets)

    class Outputs(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": logits, "x_hat": x_hat}

    task = JointTask(LABELS, targets, lam=0.8)
    assert task.train_columns() == ["train_bce", "train_mse"]
    assert task.val_columns() == [f"val_auc_{label}" for label in LABELS] + ["val_auc_mean", "val_bce", "val_mse"]
    out = task.val_step(Outputs(), {"image": x, "target": torch.from_numpy(targets)})
    bce = np.array([float(_bce(logits[i], torch.from_numpy(targets[i]))) for i in range(n)])
    mse = ((x_hat - x) ** 2).flatten(1).mean(dim=1).numpy()
    np.testing.assert_allclose(out["bce"].numpy(), bce, rtol=1e-5)
    np.testing.assert_allclose(out["mse"].numpy(), mse, rtol=1e-5)
    np.testing.assert_allclose(out["loss"].numpy(), 0.8 * bce + 0.2 * mse, rtol=1e-5)
    order = rng.permutation(n)
    metrics = task.metrics({key: value.numpy()[order] for key, value in out.items()}, order)
    assert metrics["val_bce"] == pytest.approx(bce.mean(), rel=1e-5)
    assert metrics["val_mse"] == pytest.approx(mse.mean(), rel=1e-5)
    assert metrics["val_loss"] == pytest.approx(0.8 * bce.mean() + 0.2 * mse.mean(), rel=1e-5)
    probs = 1 / (1 + np.exp(-logits.double().numpy()))
    aucs = [roc_auc_score(targets[:, j], probs[:, j]) for j in range(14)]
    assert [metrics[f"val_auc_{label}"] for label in LABELS] == pytest.approx(aucs, abs=1e-6)
    assert metrics["val_auc_mean"] == pytest.approx(np.mean(aucs), abs=1e-6)


def test_training_order_is_shuffled_the_last_partial_batch_dropped_and_history_has_the_spec_columns(
    synth_small, synth_splits, tmp_path, monkeypatch
):
    trained: list[list[int]] = []
    validated: list[int] = []
    train_step, metrics = tasks.AutoencoderTask.train_step, tasks.AutoencoderTask.metrics

    parts: list[tuple[float, float, int]] = []

    def record_train(self, model, batch, *, epoch, step):
        trained.append(batch["index"].tolist())
        out = train_step(self, model, batch, epoch=epoch, step=step)
        parts.append((float(out["loss"].detach()), float(out["mse"].detach()), len(batch["index"])))
        return out

    def record_metrics(self, outputs, index):
        validated.append(len(index))
        return metrics(self, outputs, index)

    monkeypatch.setattr(tasks.AutoencoderTask, "train_step", record_train)
    monkeypatch.setattr(tasks.AutoencoderTask, "metrics", record_metrics)
    options = _tiny_ae(synth_splits, synth_small, limit_train=5, limit_val=3, epochs=1)  # batches of 2
    train("autoencoder", options, tmp_path / "run")
    assert len(trained) == 2 and all(len(b) == 2 for b in trained)  # 5 images: the fifth is dropped, not a batch
    order = [i for b in trained for i in b]
    assert len(set(order)) == 4 and order != sorted(order)  # shuffled
    assert validated == [3]  # validation keeps its last, partial batch
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    head = ["epoch", "lr", "seconds", "images_per_s", "train_loss", "val_loss"]  # SPEC §5, then the stage's
    assert list(history.columns) == [*head, "train_mse", "val_mse", "val_psnr"]
    n = sum(k for _, _, k in parts)  # the epoch's means over its training samples
    assert history["train_loss"][0] == pytest.approx(sum(loss * k for loss, _, k in parts) / n, rel=1e-5)
    assert history["train_mse"][0] == pytest.approx(sum(mse * k for _, mse, k in parts) / n, rel=1e-5)


def test_a_resume_in_the_middle_of_an_epoch_of_whole_images(synth_small, synth_splits, tmp_path):
    options = _tiny_ae(synth_splits, synth_small, limit_train=8, epochs=1)  # 4 steps of 2 single-patch items

    def interrupt(progress) -> None:
        if progress.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    train("autoencoder", options, tmp_path / "one-go")
    with pytest.raises(Interrupted):
        train("autoencoder", options, tmp_path / "cut", step_hook=interrupt)
    train("autoencoder", merge_resume(tmp_path / "cut", {}), tmp_path / "cut", resume=True)
    a, b = (load_file(str(tmp_path / d / "last.safetensors")) for d in ("one-go", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("kind", "keep", "script"),
    [
        ("autoencoder", "loss", [(1.0, math.nan), (1.0, math.nan)]),
        ("classifier", "auc", [(1.0, 0.7), (0.5, 0.7), (0.4, math.nan)]),
    ],
)
def test_keep_needs_a_strict_improvement(synth_small, synth_splits, tmp_path, monkeypatch, kind, keep, script):
    """A tie (or a NaN AUC) is not an improvement: the first epoch with the best value stays the kept model."""
    import json

    from cxrtool.models.checkpoints import read_info

    values = iter(script)
    task = tasks.AutoencoderTask if kind == "autoencoder" else tasks.ClassifierTask
    original = task.metrics

    def scripted(self, outputs, index):
        loss, auc = next(values)
        return {**original(self, outputs, index), "val_loss": loss, "val_auc_mean": auc}

    monkeypatch.setattr(task, "metrics", scripted)
    if kind == "autoencoder":
        options = _tiny_ae(synth_splits, synth_small, epochs=len(script))
    else:
        options = classifier_options(synth_splits, synth_small, batch_size=2, limit_train=2, limit_val=2)
    train(kind, {**options, "keep": keep, "epochs": len(script)}, tmp_path / "run")
    assert read_info(tmp_path / "run" / "model.safetensors").config["epoch"] == 1
    assert json.loads((tmp_path / "run" / "resume.json").read_text())["progress"]["best_epoch"] == 1


def test_history_means_over_one_training_sample_and_over_none(synth_small, synth_splits, tmp_path):
    """train_* columns are sums over the epoch's samples divided by their count: NaN when no step was made
    (--max-steps 0 validates the starting weights only)."""
    parts: list[float] = []
    original = tasks.AutoencoderTask.train_step

    def record(self, model, batch, *, epoch, step):
        out = original(self, model, batch, epoch=epoch, step=step)
        parts.append(float(out["mse"].detach()))
        return out

    one = _tiny_ae(synth_splits, synth_small, batch_size=1, limit_train=1, epochs=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks.AutoencoderTask, "train_step", record)
        train("autoencoder", one, tmp_path / "one")
    row = pd.read_csv(tmp_path / "one" / "history.csv").iloc[0]
    assert len(parts) == 1 and row["train_loss"] == pytest.approx(parts[0], rel=1e-5)
    assert row["train_mse"] == pytest.approx(parts[0], rel=1e-5)
    train("autoencoder", {**one, "max_steps": 0}, tmp_path / "none")
    row = pd.read_csv(tmp_path / "none" / "history.csv").iloc[0]
    assert math.isnan(row["train_loss"]) and math.isnan(row["train_mse"]) and math.isfinite(row["val_loss"])
