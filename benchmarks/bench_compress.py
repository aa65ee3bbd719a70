"""`cxrtool compress` against the same pipeline with the encoder replaced by a no-op (the issue asks ≥ 0.5×).

Run by hand (never by CI):

    python benchmarks/bench_compress.py [--images ../shared/nih-cxr14/images] [--copies 9] [--workers N]
                                        [--repeats 3] [--cli/--no-cli]

The real PNGs are copied `--copies` times into a temporary folder (copy{k}_{name}). Both variants run the whole
library function `compress_folder` — listing, the decoding DataLoader with `--workers` processes, shard writing,
manifest rewrites — on a fresh OUT_DIR; the no-op variant swaps `latent_fn` for one that returns a zero latent of
the right shape without touching the encoder. Images/s is encoded images over the function's wall time (startup
included), median over interleaved repeats. Also printed: max |FastEncoder − plain Conv2d| on real images (the
issue asks ≤ 1e-5), and the wall time of the whole `cxrtool compress` command (process start and imports
included). The machine's load average is printed before and after, since the dev machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cxrtool.compression import compress as compress_module
from cxrtool.compression.compress import CompressOptions, compress_folder
from cxrtool.compression.fast_encoder import FastEncoder
from cxrtool.data.images import IMAGE_SUFFIXES, load_gray
from cxrtool.models.autoencoder import AutoEncoder, pad_to_multiple
from cxrtool.models.checkpoints import save_model
from cxrtool.parallel import default_workers

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO / ".." / "shared" / "nih-cxr14" / "images"


def no_op_latent_fn(codec: object, dtype: str):
    def encode(x: torch.Tensor) -> tuple[np.ndarray, int]:
        h, w = x.shape[-2] // 4, x.shape[-1] // 4
        return np.zeros((h, w), np.uint8 if dtype == "uint8" else np.float16), 0

    return encode


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def fast_vs_plain(paths: Sequence[Path]) -> float:
    torch.manual_seed(0)
    plain = AutoEncoder(init="random").encoder.eval()
    fast = FastEncoder(plain)
    worst = 0.0
    with torch.inference_mode():
        for p in paths:
            x = pad_to_multiple(torch.from_numpy(load_gray(p))[None, None])
            worst = max(worst, (fast(x) - plain(x)).abs().max().item())
    return worst


def run_library(images: Path, out: Path, ckpt: Path, workers: int, no_op: bool) -> float:
    real = compress_module.latent_fn
    compress_module.latent_fn = no_op_latent_fn if no_op else real
    try:
        shutil.rmtree(out, ignore_errors=True)
        report = compress_folder(images, out, CompressOptions(ckpt=ckpt, workers=workers))
    finally:
        compress_module.latent_fn = real
    return report.summary["encoded"] / report.summary["seconds"]


def run_cli(images: Path, out: Path, ckpt: Path, workers: int) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB of the command's processes), measured from a fresh wrapper process so that
    only the command and its DataLoader workers count."""
    shutil.rmtree(out, ignore_errors=True)
    cli = Path(sys.executable).with_name("cxrtool")
    command = [str(cli), "compress", str(images), str(out), "--ckpt", str(ckpt), "--workers", str(workers)]
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    wall, peak = subprocess.run(
        [sys.executable, "-c", wrapper, *command], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(wall), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--copies", type=int, default=9)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cli", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    paths = sorted(p for p in args.images.resolve().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"no images in {args.images} (--images)")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, workers {args.workers}, load {load()}")
    print(f"max |FastEncoder - plain| on {min(4, len(paths))} real images: {fast_vs_plain(paths[:4]):.2e}")
    with tempfile.TemporaryDirectory(prefix="bench_compress_") as tmp:
        tmp_path = Path(tmp)
        images = tmp_path / "in"
        images.mkdir()
        for k in range(args.copies):
            for p in paths:
                shutil.copyfile(p, images / f"copy{k}_{p.name}")
        torch.manual_seed(0)
        ckpt = tmp_path / "ae.safetensors"
        save_model(ckpt, AutoEncoder(init="random"), kind="autoencoder", labels=(), input_spec={}, config={})
        n = len(paths) * args.copies
        rates: dict[str, list[float]] = {"no-op": [], "encoder": []}
        for _ in range(args.repeats):
            for name in rates:
                rates[name].append(run_library(images, tmp_path / "out", ckpt, args.workers, name == "no-op"))
        base = statistics.median(rates["no-op"])
        print(f"\n{n} images of {paths[0].name}'s size; compress_folder, median of {args.repeats} interleaved runs")
        for name, values in rates.items():
            rate, each = statistics.median(values), "/".join(f"{v:.1f}" for v in values)
            print(f"  {name:8s} {rate:7.1f} img/s  ratio {rate / base:.2f}  ({each})")
        if args.cli:
            print("\n`cxrtool compress` command (process start and imports included):")
            small = tmp_path / "small"
            small.mkdir()
            for p in sorted(images.iterdir())[: len(paths)]:
                os.link(p, small / p.name)
            for folder, count in ((small, len(paths)), (images, n)):
                wall, peak = run_cli(folder, tmp_path / "cli", ckpt, args.workers)
                print(f"  {count:5d} images: {wall:6.1f} s wall ({count / wall:.1f} img/s), peak RSS {peak:.0f} MiB")
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
