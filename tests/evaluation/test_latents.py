"""Classification in the compressed domain: `evaluate --latents` against evaluating from the images."""

import numpy as np
import pytest
import torch
from tests_support import splits_for

from cxrtool.compression.compress import CompressOptions, compress_folder
from cxrtool.config.evaluation import EvaluationConfig, InferenceConfig
from cxrtool.data.labels import LABELS
from cxrtool.errors import InputError
from cxrtool.evaluation.eval_dir import read_evaluation
from cxrtool.evaluation.evaluate import evaluate_images, evaluate_latents
from cxrtool.models.autoencoder import box_init_
from cxrtool.models.checkpoints import save_model
from cxrtool.models.joint import JointModel

SPEC = {"resize": 128, "crop": 128, "channels": 3, "encoder_first": True, "latent": 32}

TWELVE = EvaluationConfig(bootstrap=20, limit=12)
CPU = InferenceConfig(device="cpu", workers=0)


@pytest.fixture(scope="module")
def joint_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = JointModel().eval()
    box_init_(model.encoder, model.decoder)
    path = tmp_path_factory.mktemp("joint") / "joint.safetensors"
    save_model(path, model, kind="joint", labels=LABELS, input_spec=SPEC, config={})
    return path


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_latents_match_images_up_to_rounding(joint_ckpt, synth_small, tmp_path, dtype):
    splits = splits_for(synth_small, tmp_path)
    store = tmp_path / "store"
    summary = compress_folder(synth_small / "images", store, CompressOptions(joint_ckpt, size=128, dtype=dtype)).summary
    assert summary["dtype"] == {"uint8": "uint8+png", "float16": "float16"}[dtype]  # the defaults
    from_images = evaluate_images(joint_ckpt, splits, synth_small, tmp_path / "img", evaluation=TWELVE, run=CPU)
    from_latents = evaluate_latents(joint_ckpt, splits, store, tmp_path / "lat", evaluation=TWELVE, run=CPU)
    a, b = read_evaluation(tmp_path / "img"), read_evaluation(tmp_path / "lat")
    assert list(a.images) == list(b.images) and from_images.images == from_latents.images == 12
    gap = np.abs(a.probs - b.probs).max()
    assert gap < (0.02 if dtype == "uint8" else 1e-3), gap  # the latent's 8-bit (or 16-bit) rounding only
    if dtype == "uint8":  # the PNG-coded store against a raw one: the same latents, so the same probabilities
        raw = CompressOptions(joint_ckpt, size=128, entropy="none", workers=0)
        compress_folder(synth_small / "images", tmp_path / "raw", raw)
        evaluate_latents(joint_ckpt, splits, tmp_path / "raw", tmp_path / "e_raw", evaluation=TWELVE, run=CPU)
        assert np.array_equal(read_evaluation(tmp_path / "e_raw").probs, b.probs)  # bit for bit


def test_latents_refuse_another_size_encoder_or_kind(joint_ckpt, synth_small, tmp_path):
    splits = splits_for(synth_small, tmp_path)
    full = tmp_path / "full"
    compress_folder(synth_small / "images", full, CompressOptions(joint_ckpt))
    with pytest.raises(InputError, match="--size 128"):
        evaluate_latents(joint_ckpt, splits, full, tmp_path / "e1", run=CPU)
    other = JointModel()
    other_path = tmp_path / "other.safetensors"
    save_model(other_path, other, kind="joint", labels=LABELS, input_spec=SPEC, config={})
    sized = tmp_path / "sized"
    compress_folder(synth_small / "images", sized, CompressOptions(joint_ckpt, size=128))
    with pytest.raises(InputError, match=r"identity|encoder"):
        evaluate_latents(other_path, splits, sized, tmp_path / "e2", run=CPU)
