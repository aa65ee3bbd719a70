"""Stage 1's input pipeline: cxrtool's transforms against the plain torchvision pipeline, same images, same core.

    plain:    PIL open → RGB → Resize(256) → RandomCrop(224) → flip → RandomRotation(5) → ColorJitter(contrast=.25)
              → ToTensor → Normalize                                     (torchvision, three channels)
    cxrtool:  decode as one channel (torchvision's libpng for 8-bit gray) → 4×4 box reduce → the same draws →
              contrast → tensor
              (normalisation happens inside the model, on the device)

Run by hand:  .venv/bin/python benchmarks/bench_pipeline.py [--images ../shared/nih-cxr14/images] [--repeats 3]
Prints images/s of both, one core each (torch.set_num_threads(1)), and the ratio; also the decode alone.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms as T

from cxrtool.data.datasets import read_image
from cxrtool.data.images import ImageIndex, open_image
from cxrtool.data.transforms import classifier_train, sample_generator


def plain_pipeline() -> T.Compose:
    return T.Compose(
        [
            T.Resize(256),
            T.RandomCrop(224),
            T.RandomHorizontalFlip(),
            T.RandomRotation(5),
            T.ColorJitter(contrast=0.25),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )


def time_plain(paths: list[Path]) -> float:
    pipeline = plain_pipeline()
    start = time.perf_counter()
    for i, path in enumerate(paths):
        torch.manual_seed(i)
        with Image.open(path) as img:
            pipeline(img.convert("RGB"))
    return len(paths) / (time.perf_counter() - start)


def time_cxrtool(paths: list[Path]) -> float:
    transform = classifier_train(resize_to=256, crop=224, augment="bl5")
    start = time.perf_counter()
    for i, path in enumerate(paths):
        transform(read_image(path), sample_generator(0, 1, i))
    return len(paths) / (time.perf_counter() - start)


def time_decode(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        open_image(path)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--images", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "nih-cxr14" / "images"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    index = ImageIndex.build(args.images)
    paths = [index.path(n) for n in sorted(index.relpaths)]
    print(f"{len(paths)} images from {args.images}, one thread, median of {args.repeats} interleaved repeats")
    runs: dict[str, list[float]] = {"decode only": [], "plain torchvision": [], "cxrtool": []}
    for _ in range(args.repeats):  # interleaved, so a change of machine load hits both alike
        runs["decode only"].append(time_decode(paths))
        runs["plain torchvision"].append(time_plain(paths))
        runs["cxrtool"].append(time_cxrtool(paths))
    medians = {k: statistics.median(v) for k, v in runs.items()}
    for name, rate in medians.items():
        each = [round(r, 1) for r in runs[name]]
        print(f"  {name:18s} {rate:7.1f} images/s  ({1000 / rate:5.1f} ms/image)   runs: {each}")
    print(f"  ratio cxrtool / plain: {medians['cxrtool'] / medians['plain torchvision']:.2f}x")


if __name__ == "__main__":
    main()
