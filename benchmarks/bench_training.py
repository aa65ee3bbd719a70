"""Training throughput per stage at the paper's sizes: the model alone, and through the real input pipeline.

    stage 1  DenseNet121 on 224 crops of 256-resized images (BL5 augmentation)
    stage 2  the autoencoder on 16 random 128x128 full-resolution patches per image
    stage 3  the joint AECNN on 896 crops of the full 1024² image (DenseNet121 sees a 224 latent)

For each: (a) images/s of a training step on inputs already in memory (the model's own speed), in fp32 and, on
CUDA, mixed precision; (b) images/s of the loader alone with N workers, from the original PNGs and from a
`prepare` cache, and the cores the loader would need to keep up with (a). Peak GPU memory of stage 3 at batch 16
on CUDA. Run by hand:

    .venv/bin/python benchmarks/bench_training.py [--batch 16] [--steps 10] [--workers 1] [--device auto]
        [--images ../shared/nih-cxr14/images] [--copies 2]

On a CPU keep --batch and --steps small; every figure is printed with the device it was measured on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from cxrtool.data.datasets import EpochSampler, ImageDataset, PatchDataset
from cxrtool.data.images import ImageIndex
from cxrtool.data.labels import LABELS
from cxrtool.data.prepare import prepare_cache
from cxrtool.data.transforms import classifier_train, joint_train
from cxrtool.models.registry import create_model
from cxrtool.runtime.device import pick_device
from cxrtool.runtime.signals import ignore_in_worker
from cxrtool.training.tasks import AutoencoderTask, ClassifierTask, JointTask

STAGES = {
    # name: (model kind, input side, images per item, task)
    "stage1 (224 from 256)": ("classifier", 224, 1),
    "stage2 (128 patches)": ("autoencoder", 128, 16),
    "stage3 (896 crops)": ("joint", 896, 1),
}


def _task(kind: str):
    targets = np.zeros((1, len(LABELS)), np.float32)
    if kind == "classifier":
        return ClassifierTask(LABELS, targets, fmix=None, seed=0)
    if kind == "autoencoder":
        return AutoencoderTask()
    return JointTask(LABELS, targets, lam=0.9)


def model_speed(
    kind: str, side: int, per_item: int, batch: int, steps: int, device, amp: bool, fp16: bool = False
) -> float:
    """Training images/s on a fixed in-memory batch (patches count as images for stage 2); `fp16` forces fp16 with
    a GradScaler where the GPU has bf16."""
    model = create_model(kind).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    n = batch  # stage 2 counts patches: a batch of `batch` patches, one from each of `batch` images
    x = torch.rand(n, 1, side, side, device=device)
    batch_data = {"image": x, "target": torch.zeros(n, len(LABELS), device=device)}
    task = _task(kind)
    native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    dtype = torch.bfloat16 if native_bf16 and not fp16 else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp and dtype == torch.float16 else None

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = task.train_step(model, batch_data, epoch=1, step=0)["loss"]
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * steps / (time.perf_counter() - start)


def loader_speed(kind: str, paths: list[Path], workers: int, batches: int, batch: int) -> float:
    """Images/s the input pipeline delivers alone (decode + augmentation) with `workers` processes."""
    if kind == "classifier":
        data = ImageDataset(paths, None, classifier_train(resize_to=256, crop=224, augment="bl5"), seed=0, tag="b")
    elif kind == "autoencoder":  # a loader batch: `batch` images x 16 patches, i.e. 16 optimizer batches
        data = PatchDataset(paths, size=128, count=16, seed=0, flips=True, fixed=False)
    else:
        data = ImageDataset(paths, None, joint_train(crop=896), seed=0, tag="b")
    loader = DataLoader(
        data,
        batch_size=batch,
        sampler=EpochSampler(len(data), seed=0, shuffle=True),
        num_workers=workers,
        worker_init_fn=ignore_in_worker if workers else None,
        persistent_workers=False,
    )
    per_item = 16 if kind == "autoencoder" else 1  # stage 2 counts patches, as the model figures do
    it = iter(loader)
    next(it)  # workers started and warm
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        try:
            images += len(next(it)["index"]) * per_item
        except StopIteration:
            break
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--images", type=Path, default=here / ".." / "shared" / "nih-cxr14" / "images")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) - 1)))
    parser.add_argument("--batches", type=int, default=10, help="loader batches timed per measurement")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--stages", default="1,2,3")
    args = parser.parse_args()
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    index = ImageIndex.build(args.images)
    paths = [index.path(n) for n in sorted(index.relpaths)]
    tmp = Path(tempfile.mkdtemp(prefix="cxr-bench-"))
    try:
        prepare_cache(sorted(index.relpaths), args.images, tmp / "cache", size=256)
        cached = [tmp / "cache" / "images" / n for n in sorted(index.relpaths)]
        print(f"device: {name}; batch {args.batch}; {args.steps} timed steps; loader: {args.workers} worker(s)")
        header = (
            "stage                  model fp32  model amp  amp fp16  loader orig  loader cache  "
            "cores to keep up (orig/cache)"
        )
        print(header)
        wanted = {int(s) for s in args.stages.split(",")}
        for number, (stage, (kind, side, per_item)) in enumerate(STAGES.items(), start=1):
            if number not in wanted:
                continue
            fp32 = model_speed(kind, side, per_item, args.batch, args.steps, device, amp=False)
            cuda = device.type == "cuda"
            amp = model_speed(kind, side, per_item, args.batch, args.steps, device, amp=True) if cuda else None
            fp16 = (
                model_speed(kind, side, per_item, args.batch, args.steps, device, amp=True, fp16=True) if cuda else None
            )
            orig = loader_speed(kind, paths, args.workers, args.batches, args.batch)
            cache = loader_speed(kind, cached, args.workers, args.batches, args.batch) if kind == "classifier" else None
            fastest = max(fp32, amp or 0.0)
            need_orig = fastest / (orig / args.workers)
            need_cache = f"{fastest / (cache / args.workers):.1f}" if cache else "-"
            print(
                f"{stage:22s} {fp32:10.1f} {amp if amp else float('nan'):10.1f} {fp16 if fp16 else float('nan'):9.1f} "
                f"{orig:12.1f} "
                f"{cache if cache else float('nan'):13.1f}  {need_orig:.1f} / {need_cache}"
            )
            if kind == "joint" and device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                model_speed(kind, side, per_item, 16, 1, device, amp=True)
                peak = torch.cuda.max_memory_allocated(device) / 2**30
                print(f"  stage 3 peak GPU memory at batch 16 (amp): {peak:.1f} GiB")
        print("images/s; stage 2 counts 128² patches (16 per decoded image); amp only on CUDA; cores = model rate /")
        print(
            "(loader rate per worker). Stage 2 and 3 read the full-resolution originals, so they have no cache column."
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
