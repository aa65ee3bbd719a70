"""The models against SPEC §1, recomputed with plain torch/torchvision from the tensors a checkpoint file holds.

Each expected value is built here from `F.conv2d`, `F.elu`, `F.pixel_shuffle` and torchvision's own DenseNet121,
never through cxrtool's model code, so a wrong axis, a missing normalisation or a dead channel fails a test.
"""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torchvision.models import densenet121

from cxrtool.data.labels import LABELS
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import load_model, save_model
from cxrtool.models.classifier import Classifier
from cxrtool.models.joint import JointModel

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _saved(tmp_path, model, kind) -> dict[str, torch.Tensor]:
    """Randomise every parameter (so a zero-initialised bias cannot hide), save, and read the file back."""
    torch.manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / f"{kind}.safetensors"
    save_model(path, model, kind=kind, labels=LABELS, input_spec={}, config={})
    return load_file(str(path))


def _encode(t: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    x = F.pad(x, (0, (-w) % 4, 0, (-h) % 4), mode="replicate")
    hidden = F.elu(F.conv2d(x, t["encoder.0.weight"], t["encoder.0.bias"], stride=4, padding=2))
    return F.conv2d(hidden, t["encoder.2.weight"], t["encoder.2.bias"])


def _decode(t: dict[str, torch.Tensor], z: torch.Tensor, h: int, w: int) -> torch.Tensor:
    up = F.pixel_shuffle(F.conv2d(z, t["decoder.0.weight"], t["decoder.0.bias"], padding=1), 4)
    return up.clamp(0, 1)[..., :h, :w]


def _densenet(t: dict[str, torch.Tensor]) -> torch.nn.Module:
    net = densenet121(weights=None, num_classes=len(LABELS))
    net.load_state_dict({k.removeprefix("densenet."): v for k, v in t.items() if k.startswith("densenet.")})
    return net.eval()


def _imagenet(gray: torch.Tensor) -> torch.Tensor:
    return (gray.repeat(1, 3, 1, 1) - MEAN) / STD


@torch.no_grad()
def test_autoencoder_forward_is_the_papers(tmp_path):
    t = _saved(tmp_path, AutoEncoder(init="random"), "autoencoder")
    model, _ = load_model(tmp_path / "autoencoder.safetensors")
    x = torch.rand(2, 1, 130, 131)  # not multiples of 4: edge padding, then cropped back
    out = model.eval()(x)
    z = _encode(t, x)
    assert out["latent"].shape == (2, 1, 33, 33)
    torch.testing.assert_close(out["latent"], z, rtol=0, atol=1e-6)  # stage 2 does not clamp the latent
    torch.testing.assert_close(out["x_hat"], _decode(t, z, 130, 131), rtol=0, atol=1e-6)


@torch.no_grad()
def test_joint_forward_clamps_repeats_and_normalises(tmp_path):
    t = _saved(tmp_path, JointModel(), "joint")
    model, _ = load_model(tmp_path / "joint.safetensors")
    x = torch.rand(2, 1, 128, 124)
    out = model.eval()(x)
    z = _encode(t, x).clamp(0, 1)
    assert float((_encode(t, x) < 0).float().mean()) > 0  # the clamp is exercised
    torch.testing.assert_close(out["latent"], z, rtol=0, atol=1e-6)
    torch.testing.assert_close(out["x_hat"], _decode(t, z, 128, 124), rtol=0, atol=1e-6)
    torch.testing.assert_close(out["logits"], _densenet(t)(_imagenet(z)), rtol=0, atol=1e-4)
    assert out["logits"].shape == (2, 14)


@torch.no_grad()
def test_classifier_forward_is_torchvision_densenet_on_imagenet_input(tmp_path):
    t = _saved(tmp_path, Classifier(), "classifier")
    model, _ = load_model(tmp_path / "classifier.safetensors")
    x = torch.rand(3, 1, 40, 40)
    torch.testing.assert_close(model.eval()(x)["logits"], _densenet(t)(_imagenet(x)), rtol=0, atol=1e-4)


@torch.no_grad()
def test_head_stays_fp32_under_autocast():
    """bf16 logits would quantise the probabilities the AUC ranks; the head is computed in fp32."""
    torch.manual_seed(0)
    model = Classifier().eval()
    x = torch.rand(4, 1, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)["logits"]
        features = model.densenet.features(_imagenet(x))
        plain = model.densenet(_imagenet(x))
    assert features.dtype == torch.bfloat16 and plain.dtype == torch.bfloat16  # what autocast alone gives
    assert logits.dtype == torch.float32
    pooled = F.adaptive_avg_pool2d(F.relu(features.float()), 1).flatten(1)
    expected = pooled @ model.densenet.classifier.weight.T + model.densenet.classifier.bias
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)


@torch.no_grad()
def test_autoencoder_computes_in_fp32_under_autocast():
    torch.manual_seed(0)
    model = JointModel().eval()
    x = torch.rand(1, 1, 128, 128)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out["latent"].dtype == out["x_hat"].dtype == out["logits"].dtype == torch.float32
    reference = model(x)  # no autocast at all
    torch.testing.assert_close(out["x_hat"], reference["x_hat"], rtol=0, atol=1e-6)


@torch.no_grad()
def test_box_init_is_the_box_codec_at_step_zero():
    """Channel 0 averages the 4×4 window the stride-4 kernel sees (rows 4i-1..4i+2, zero padding above); the other
    31 channels add exactly nothing yet."""
    torch.manual_seed(1)
    model = AutoEncoder(init="box")
    x = torch.rand(2, 1, 64, 64)
    z = model(x)["latent"]
    window = F.avg_pool2d(F.pad(x, (1, 0, 1, 0))[..., :64, :64], 4)
    torch.testing.assert_close(z, window, rtol=0, atol=1e-6)
    w1, b1, w2 = model.encoder[0].weight, model.encoder[0].bias, model.encoder[2].weight
    assert (w2[0, 1:] == 0).all() and w2[0, 0].item() == 1.0
    assert (w1[1:].flatten(1).abs().sum(dim=1) > 0).all() and (b1[1:] != 0).all()  # channels 1-31 are random


def test_every_encoder_channel_trains_from_the_default_init():
    torch.manual_seed(2)
    model = AutoEncoder()  # the default: box
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)
    x = torch.rand(8, 1, 32, 32)
    for step in range(2):
        optimizer.zero_grad()
        F.mse_loss(model(x)["x_hat"], x).backward()
        if step == 0:  # every hidden channel's output weight gets a gradient at once
            assert (model.encoder[2].weight.grad[0, :, 0, 0] != 0).all()
        optimizer.step()
    # after one step the output weights are non-zero, so every first-layer channel has a gradient too
    assert (model.encoder[0].weight.grad.flatten(1).abs().sum(dim=1) > 0).all()
    assert (model.encoder[0].bias.grad != 0).all()


def test_a_checkpoint_with_dead_channels_warns_with_the_way_out(tmp_path, capsys):
    model = AutoEncoder()
    with torch.no_grad():  # what cxrtool 0.1's box init left behind
        model.encoder[0].weight[1:] = 0
        model.encoder[0].bias[1:] = 0
    save_model(tmp_path / "old.safetensors", model, kind="autoencoder", labels=LABELS, input_spec={}, config={})
    load_model(tmp_path / "old.safetensors")
    err = capsys.readouterr().err
    assert "31 of the encoder's 32 hidden channels are dead" in err and "train-ae" in err
    save_model(tmp_path / "new.safetensors", AutoEncoder(), kind="autoencoder", labels=LABELS, input_spec={}, config={})
    load_model(tmp_path / "new.safetensors")
    assert "dead" not in capsys.readouterr().err


@pytest.mark.parametrize("side", [128, 130])
def test_joint_latent_geometry(side):
    with torch.no_grad():
        out = JointModel().eval()(torch.rand(1, 1, side, side))
    assert out["latent"].shape[-1] == -(-side // 4) and out["x_hat"].shape[-1] == side


@torch.no_grad()
def test_autoencoder_clamps_its_latent_only_when_asked(tmp_path):
    """The compression report encodes a joint model's codec with `clamp_latent`: the latent the classifier saw."""
    torch.manual_seed(11)  # the random init, whatever ran before
    t = _saved(tmp_path, AutoEncoder(init="random"), "autoencoder")
    x = torch.rand(2, 1, 33, 36)  # only the height is padded (by 3 rows)
    lo, hi = _encode(t, x).aminmax()
    scale = 3 / (hi - lo)  # an output layer that stretches the latents over [-1, 2]: both sides of the clamp
    t = {
        **t,
        "encoder.2.weight": scale * t["encoder.2.weight"],
        "encoder.2.bias": scale * (t["encoder.2.bias"] - lo) - 1,
    }
    clamped = AutoEncoder(init="random", clamp_latent=True)
    clamped.load_state_dict(t)
    z = _encode(t, x)
    assert (z < 0).any() and (z > 1).any()
    out = clamped(x)
    torch.testing.assert_close(out["latent"], z.clamp(0, 1), rtol=0, atol=1e-6)
    torch.testing.assert_close(out["x_hat"], _decode(t, z.clamp(0, 1), 33, 36), rtol=0, atol=1e-6)
    joint = JointModel()  # the joint model always clamps, on both sides
    joint.encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in t.items() if k.startswith("encoder.")})
    torch.testing.assert_close(joint.encode(x), z.clamp(0, 1), rtol=0, atol=1e-6)


@torch.no_grad()
def test_box_init_decoder_adds_a_quarter_of_the_backward_differences():
    """x̂ = z + ¼(z − z↑) + ¼(z − z←) copied into each latent pixel's 4×4 block, z↑ = z← = 0 beyond the edge."""
    torch.manual_seed(3)
    z = torch.rand(2, 1, 9, 11)
    above = F.pad(z, (0, 0, 1, 0))[..., :-1, :]
    left = F.pad(z, (1, 0, 0, 0))[..., :-1]
    value = z + 0.25 * (z - above) + 0.25 * (z - left)
    assert (value < 0).any() and (value > 1).any()  # the clip is exercised
    expected = value.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1).clamp(0, 1)
    torch.testing.assert_close(AutoEncoder(init="box").decode(z), expected, rtol=0, atol=1e-6)


def test_dead_channels_are_those_with_nothing_at_all():
    """Dead: first-layer weights, bias and output weight all zero. A zero weight with a bias still outputs ELU(b), and
    a zero first layer with an output weight still gets a gradient: both can train."""
    from cxrtool.models.autoencoder import dead_channels

    torch.manual_seed(4)
    w1, b1, w2 = torch.randn(32, 1, 5, 5), torch.randn(32), torch.randn(1, 32, 1, 1)
    w1[[3, 5, 7]] = 0
    b1[[5, 7, 9]] = 0
    w2[0, [7, 9, 3]] = 0
    tensors = {"joint.0.weight": w1, "joint.0.bias": b1, "joint.2.weight": w2}
    assert dead_channels(tensors, prefix="joint.") == [7]
    assert dead_channels({f"encoder.{k[6:]}": v for k, v in tensors.items()}) == [7]  # the default prefix
    for missing in tensors:  # not an autoencoder's encoder: nothing to say
        assert dead_channels({k: v for k, v in tensors.items() if k != missing}, prefix="joint.") == []
