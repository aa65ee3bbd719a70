"""CUDA paths, run where a GPU is (`benchmarks/gpu_check.sh`); skipped elsewhere, so CI never runs them.

A few steps of each stage with mixed precision (bf16 where native, and fp16 with a GradScaler forced by hiding
bf16), channels_last (always on CUDA), `--compile`; the fp32 head under CUDA autocast; CUDA predictions against the
CPU's; and, with two GPUs, the NCCL path under torchrun.
"""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from tests_support import autoencoder_options, classifier_options

from cxrtool.models.checkpoints import read_tensors

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run benchmarks/gpu_check.sh there)"),
]


def _options(kind, splits, images, **overrides):
    from tests.training.test_joint import joint_options

    build = {"classifier": classifier_options, "autoencoder": autoencoder_options, "joint": joint_options}[kind]
    return build(splits, images, device="cuda", epochs=2, max_steps=4, **overrides)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", ["classifier", "autoencoder", "joint"])
def test_each_stage_trains_with_mixed_precision(synth_small, synth_splits, tmp_path, monkeypatch, kind, precision):
    from tests_support import train

    from cxrtool.training import loop

    if precision == "fp16":
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    dtype, scaler = loop._amp(torch.device("cuda"), True)
    assert (dtype, scaler is not None) == ((torch.float16, True) if precision == "fp16" else (torch.bfloat16, False))
    history = train(kind, _options(kind, synth_splits, synth_small), tmp_path / "run")
    frame = pd.DataFrame(history)
    assert np.isfinite(frame["train_loss"]).all() and np.isfinite(frame["val_loss"]).all()
    tensors = read_tensors(tmp_path / "run" / "last.safetensors")
    assert all(t.dtype == torch.float32 and torch.isfinite(t.float()).all() for t in tensors.values())


def test_compile_trains(synth_small, synth_splits, tmp_path):
    from tests_support import train

    history = train("classifier", _options("classifier", synth_splits, synth_small, compile=True), tmp_path / "run")
    assert np.isfinite(history[-1]["val_loss"])


@torch.no_grad()
def test_head_is_fp32_under_cuda_autocast_and_cuda_predictions_match_the_cpu():
    from cxrtool.models.classifier import Classifier

    torch.manual_seed(0)
    model = Classifier().eval()
    x = torch.rand(4, 1, 224, 224)
    cpu = torch.sigmoid(model(x)["logits"])
    gpu_model = model.cuda().to(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = gpu_model(x.cuda().contiguous(memory_format=torch.channels_last))["logits"]
    assert logits.dtype == torch.float32
    assert (torch.sigmoid(logits).cpu() - cpu).abs().max() < 2e-2  # bf16 convolutions, fp32 head


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_under_torchrun(synth_small, synth_splits, tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cxrtool",
        "train-classifier", "--splits", str(synth_splits), "--images", str(synth_small), "--out", str(tmp_path / "r"),
        "--no-pretrained", "--resize", "36", "--crop", "32", "--batch-size", "4", "--epochs", "1",
        "--limit-train", "16", "--limit-val", "13", "--device", "cuda", "--augment", "fmix",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    assert pd.read_csv(tmp_path / "r" / "history.csv")["val_auc_mean"].notna().all()
