import json
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from cxrtool.data.labels import LABELS
from cxrtool.errors import InputError
from cxrtool.models.autoencoder import AutoEncoder, pad_to_multiple
from cxrtool.models.checkpoints import (
    KINDS,
    encoder_identity,
    load_model,
    read_info,
    save_model,
    state_tensors,
)
from cxrtool.models.classifier import TORCHVISION_FILE, Classifier, check_input_size, load_pretrained_
from cxrtool.models.joint import JointModel
from cxrtool.models.registry import create_model


def test_autoencoder_has_1025_parameters_and_the_papers_shapes():
    model = AutoEncoder(init="random")
    assert sum(p.numel() for p in model.parameters()) == 1025
    assert sum(p.numel() for p in model.encoder.parameters()) == 865
    for side, latent in ((1024, 256), (896, 224), (128, 32)):
        out = model(torch.rand(1, 1, side, side))
        assert out["latent"].shape[-2:] == (latent, latent)
        assert out["x_hat"].shape[-2:] == (side, side)


def test_side_not_multiple_of_four_round_trips_through_edge_padding():
    model = AutoEncoder(init="box")
    x = torch.rand(2, 1, 130, 131)
    out = model(x)
    assert out["latent"].shape[-2:] == (33, 33)
    assert out["x_hat"].shape == x.shape
    x_hat = out["x_hat"].detach()
    assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= 1.0


def test_an_unbatched_image_is_edge_padded_and_reconstructed_like_a_batch_of_one():
    """Only the last two axes are height and width: a (1, H, W) image, as torch's Conv2d accepts it."""
    x = torch.rand(1, 10, 13, generator=torch.Generator().manual_seed(0))
    expected = np.pad(x.numpy(), ((0, 0), (0, 2), (0, 3)), mode="edge")  # to 12 x 16, bottom and right
    np.testing.assert_array_equal(pad_to_multiple(x).numpy(), expected)
    torch.manual_seed(0)
    model = AutoEncoder(init="random")
    with torch.no_grad():
        single, batch = model(x)["x_hat"], model(x[None])["x_hat"][0]
    assert single.shape == x.shape
    torch.testing.assert_close(single, batch, rtol=0, atol=1e-6)


def test_box_init_reconstructs_smooth_images_well():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    x = (0.3 + 0.4 * torch.sin(3 * xx) * torch.cos(2 * yy))[None, None]
    mse = torch.mean((AutoEncoder(init="box")(x)["x_hat"] - x) ** 2)
    assert 10 * torch.log10(1 / mse) > 30


def test_joint_model_outputs_and_latent_clamp():
    model = JointModel().eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 128, 128))
    assert set(out) == {"latent", "x_hat", "logits"}
    assert out["latent"].shape == (2, 1, 32, 32) and out["logits"].shape == (2, 14)
    assert float(out["latent"].min()) >= 0 and float(out["latent"].max()) <= 1


def test_too_small_crop_is_refused_with_the_minimum():
    check_input_size(29, flag="--crop")
    with pytest.raises(InputError, match="at least 29"):
        check_input_size(28, flag="--crop")
    with pytest.raises(InputError, match="--crop 10 is too small: DenseNet121 needs a crop of at least 29 px"):
        check_input_size(10, flag="--crop")


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_with_metadata(tmp_path, kind):
    model = create_model(kind)
    path = tmp_path / "m.safetensors"
    save_model(path, model, kind=kind, labels=LABELS, input_spec={"crop": 32}, config={"seed": 3})
    info = read_info(path)
    assert info.kind == kind and info.labels == LABELS and info.input == {"crop": 32} and info.config == {"seed": 3}
    for key in ("cxrtool.kind", "cxrtool.labels", "cxrtool.input", "cxrtool.version", "cxrtool.config"):
        assert isinstance(info.raw[key], str)
    json.loads(info.raw["cxrtool.labels"])
    loaded, _ = load_model(path)
    a, b = state_tensors(model), state_tensors(loaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    prefixes = {k.split(".")[0] for k in a}
    assert (
        prefixes
        == {
            "classifier": {"densenet"},
            "autoencoder": {"encoder", "decoder"},
            "joint": {"encoder", "decoder", "densenet"},
        }[kind]
    )
    if kind != "classifier":
        assert info.raw["cxrtool.encoder_sha256"] == encoder_identity(a)


def test_wrong_kind_and_not_a_checkpoint(tmp_path):
    path = tmp_path / "ae.safetensors"
    save_model(path, AutoEncoder(), kind="autoencoder", labels=LABELS, input_spec={}, config={})
    with pytest.raises(InputError, match="is an autoencoder checkpoint; this needs classifier"):
        load_model(path, kinds=("classifier",))
    (tmp_path / "junk.safetensors").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a readable safetensors"):
        read_info(tmp_path / "junk.safetensors")
    with pytest.raises(InputError, match="does not exist"):
        read_info(tmp_path / "missing")
    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "model.safetensors", AutoEncoder(), kind="autoencoder", labels=LABELS, input_spec={}, config={})
    assert read_info(run).kind == "autoencoder"  # a run directory means its model.safetensors


def _legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's published file spells `norm1` as `norm.1` (and so on)."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue  # the 2017 file has no such counters
        for name in ("norm1", "relu1", "conv1", "norm2", "relu2", "conv2"):
            key = key.replace(f".{name}.", f".{name[:-1]}.{name[-1]}.")
        out[key] = value
    return out


def test_pretrained_loads_torchvisions_cached_file_with_legacy_keys(tmp_path, monkeypatch):
    from torchvision.models import densenet121

    reference = densenet121(weights=None)
    state = _legacy(reference.state_dict())
    assert any(".norm.1." in k for k in state)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, cache / TORCHVISION_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = Classifier()
    load_pretrained_(model, None)
    got = model.densenet.state_dict()
    ref = reference.state_dict()
    assert torch.equal(
        got["features.denseblock1.denselayer1.norm1.weight"], ref["features.denseblock1.denselayer1.norm1.weight"]
    )
    assert got["classifier.weight"].shape == (14, 1024)  # a new 14-label head
    # --weights FILE takes the same file
    model2 = Classifier()
    load_pretrained_(model2, cache / TORCHVISION_FILE)
    assert torch.equal(model2.densenet.features.conv0.weight, reference.features.conv0.weight)


def test_pretrained_offline_names_the_ways_out(tmp_path, monkeypatch):
    import torch.hub

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(InputError) as info:
        load_pretrained_(Classifier(), None)
    message = str(info.value)
    for way_out in (TORCHVISION_FILE, str(Path(tmp_path) / "hub" / "checkpoints"), "--weights", "--no-pretrained"):
        assert way_out in message


def test_weights_from_a_cxrtool_classifier(tmp_path):
    source = Classifier()
    path = tmp_path / "c.safetensors"
    save_model(path, source, kind="classifier", labels=LABELS, input_spec={}, config={})
    target = Classifier()
    load_pretrained_(target, path)
    assert torch.equal(target.densenet.classifier.weight, source.densenet.classifier.weight)


GOLDEN_AE = Path(__file__).parents[1] / "golden" / "store_v1" / "ae.safetensors"  # written by cxrtool 0.1.0


@pytest.mark.parametrize("kind", KINDS)
def test_files_in_the_layout_written_before_load(tmp_path, kind):
    """Model files keep their tensor names across renames of model attributes (the ImageNet input step holds no
    saved tensors): a file built as cxrtool 0.1.0 wrote it, from torchvision's DenseNet and the 0.1.0 autoencoder
    file, loads strictly and gives back every tensor."""
    from safetensors.torch import load_file, save_file
    from torchvision.models import densenet121

    old_ae = load_file(str(GOLDEN_AE))
    densenet = {f"densenet.{k}": v for k, v in densenet121(weights=None, num_classes=len(LABELS)).state_dict().items()}
    tensors = {"classifier": densenet, "autoencoder": old_ae, "joint": {**old_ae, **densenet}}[kind]
    path = tmp_path / "old.safetensors"
    meta = {
        "cxrtool.kind": kind,
        "cxrtool.labels": json.dumps(list(LABELS) if kind != "autoencoder" else []),
        "cxrtool.input": "{}",
        "cxrtool.version": "0.1.0",
        "cxrtool.config": "{}",
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    model, info = load_model(path)
    loaded = state_tensors(model)
    assert info.version == "0.1.0" and loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
