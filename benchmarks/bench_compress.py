"""`cxrtool compress` against merely decoding the same files on every core (the issue asks ≥ 0.6×).

Run by hand (never by CI):

    python benchmarks/bench_compress.py [--images ../shared/nih-cxr14/images] [--copies 9] [--ckpt RUN]
                                        [--repeats 3] [--workers 1,2] [--rss 9,34] [--per-image/--no-per-image]

The real PNGs are hard-linked `--copies` times into a temporary folder (copy{k}_{name}, ~1,000 files for the 120 of
the sample). Then, interleaved `--repeats` times on the same files:

* decode-only: a pool of as many processes as cores, each opening and decoding its share (`open_image`: read,
  decode, single channel), nothing else: the most any `compress` could do on this machine;
* `compress_folder` with its defaults (one worker per core, PNG-coded uint8 latents) on a fresh OUT_DIR, and with
  each `--workers` count, for how it scales.

Rates are files over wall time, process-pool or worker start-up included in both (imports excluded); the ratio is
compress over decode-only within each round, reported as the median and the range over rounds, beside the CPU time
per image of all the run's processes (and of the main process alone). `--ckpt` defaults to a stand-in autoencoder
whose 32 channels all compute the 4×4 box average (latents as smooth as a trained model's, every channel busy); pass
a trained run for the real thing. Also printed:

* `--per-image`: the cost of each step for one image on one core (decode, encode, each coding) and the bits per
  original pixel of each coding's payload, medians over the real images;
* `--rss`: peak memory of the whole `cxrtool compress` command (main process and workers: the largest process's
  RSS, and the peak of the tree's summed PSS, which counts shared pages once) for `--rss` copies of the images
  (9 and 34: ~1,000 and ~4,000 files), to show it stays flat with the folder's size.

The machine's load average is printed before and after, since the dev machine is shared.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from cxrtool.compression.codec import load_codec
from cxrtool.compression.compress import CompressOptions, compress_folder, load_item
from cxrtool.compression.latent_format import LatentFormat
from cxrtool.data.images import IMAGE_SUFFIXES, open_image
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import save_model
from cxrtool.runtime.workers import cpu_cores

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO / ".." / "shared" / "nih-cxr14" / "images"


def stand_in_checkpoint(path: Path) -> Path:
    """An autoencoder whose latent is the 4×4 box average (as the box init's, smooth like a trained model's) computed
    through all 32 channels (each the box average, weighted 1/32), so that no channel is idle: FastEncoder's cost
    does not depend on the weights, but a trained model's latents are smooth, which PNG coding depends on."""
    model = AutoEncoder(init="box")
    conv1, conv2 = model.encoder[0], model.encoder[2]
    with torch.no_grad():
        conv1.weight.zero_()
        conv1.weight[:, 0, 1:5, 1:5] = 1.0 / 16.0
        conv1.bias.zero_()
        conv2.weight.fill_(1.0 / conv1.out_channels)
        conv2.bias.zero_()
    save_model(path, model, kind="autoencoder", labels=(), input_spec={}, config={})
    return path


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def _decode(path: str) -> int:
    return open_image(Path(path)).width


class Run(NamedTuple):
    rate: float  # images/s over the wall time
    cpu_ms: float  # CPU ms per image, every process of the run (this one and its children)
    main_ms: float  # CPU ms per image in this process alone


def cpu_seconds() -> tuple[float, float]:
    """(this process, its reaped children): user + system CPU seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def timed(n: int, work: Callable[[], object]) -> Run:
    (own, children), start = cpu_seconds(), time.perf_counter()
    work()
    wall, (own_end, children_end) = time.perf_counter() - start, cpu_seconds()
    main = own_end - own
    return Run(n / wall, 1e3 * (main + children_end - children) / n, 1e3 * main / n)


def decode_only(paths: Sequence[Path], processes: int) -> Run:
    """Decoding every file in `processes` forked processes (pool start-up included)."""

    def work() -> None:
        with mp.get_context("fork").Pool(processes) as pool:
            for _ in pool.imap_unordered(_decode, [str(p) for p in paths], chunksize=8):
                pass
            pool.close()
            pool.join()  # so that the workers' CPU time is counted

    return timed(len(paths), work)


def compress_run(images: Path, out: Path, ckpt: Path, workers: int | None) -> Run:
    """`compress_folder` with its defaults (and `workers` if given) on a fresh OUT_DIR."""
    shutil.rmtree(out, ignore_errors=True)
    n = sum(1 for _ in images.iterdir())
    return timed(n, lambda: compress_folder(images, out, CompressOptions(ckpt=ckpt, workers=workers)))


def per_image(paths: Sequence[Path], ckpt: Path) -> None:
    """ms per image on one core for each step, and each coding's payload in bits per original pixel."""
    torch.set_num_threads(1)
    codec = load_codec(ckpt)
    raw = LatentFormat("uint8", "none")
    encode = codec.storer(raw)
    forms = [LatentFormat("uint8", e) for e in ("none", "png", "webp")]
    times: dict[str, list[float]] = {"decode (open_image)": [], "load_item (decode, header, pad)": [], "encode": []}
    times.update({f"code {f.name}": [] for f in forms})
    sizes = {f.name: 0 for f in forms}
    pixels = 0
    for path in paths:
        t = time.perf_counter()
        open_image(path)
        times["decode (open_image)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        item = load_item(path.parent, path.name, None)
        times["load_item (decode, header, pad)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        data, shape, _ = encode(item.x)
        times["encode"].append(time.perf_counter() - t)
        values = np.frombuffer(data, np.uint8).reshape(shape)
        pixels += item.width * item.height
        for form in forms:
            t = time.perf_counter()
            sizes[form.name] += len(form.pack(values))
            times[f"code {form.name}"].append(time.perf_counter() - t)
    print(f"\nper image on one core, {len(paths)} real images, medians (wall ms; load {load()}):")
    for name, values in times.items():
        print(f"  {name:34s} {1e3 * statistics.median(values):7.2f} ms")
    for name, size in sizes.items():
        print(f"  payload {name:26s} {8 * size / pixels:7.4f} bits per original pixel")


def _tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = dict(line.split()[:2] for line in f if line.split()[0] in ("Rss:", "Pss:"))
        return int(fields["Rss:"]), int(fields["Pss:"])
    except (OSError, KeyError, ValueError):
        return 0, 0


def cli_peak(images: Path, out: Path, ckpt: Path) -> tuple[float, float, float]:
    """(wall seconds, peak RSS of the largest process and peak summed PSS of the tree, both MiB) of `cxrtool
    compress` with its defaults, sampled every 20 ms."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "cxrtool", "compress", str(images), str(out), "--ckpt", str(ckpt)]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            memory = [_memory_kib(pid) for pid in _tree(proc.pid)]
            peaks[0] = max(peaks[0], max((rss for rss, _ in memory), default=0))
            peaks[1] = max(peaks[1], sum(pss for _, pss in memory))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    if proc.wait() != 0:
        raise SystemExit(f"cxrtool compress failed with exit code {proc.returncode}")
    wall = time.perf_counter() - start
    sampler.join()
    return wall, peaks[0] / 1024, peaks[1] / 1024


def link_copies(paths: Sequence[Path], copies: int, folder: Path) -> None:
    folder.mkdir()
    for k in range(copies):
        for p in paths:
            try:
                os.link(p, folder / f"copy{k}_{p.name}")
            except OSError:  # another file system
                shutil.copyfile(p, folder / f"copy{k}_{p.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--copies", type=int, default=9)
    parser.add_argument("--ckpt", type=Path, help="autoencoder or joint run [default: a box-initialised one]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1", help="comma-separated worker counts to run beside the default")
    parser.add_argument("--rss", default="9,34", help="comma-separated copy counts for the memory runs ('' skips)")
    parser.add_argument("--per-image", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    paths = sorted(p for p in args.images.resolve().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"no images in {args.images} (--images)")
    cores = cpu_cores()
    print(f"torch {torch.__version__}, {cores} cores, load {load()}")
    with tempfile.TemporaryDirectory(prefix="bench_compress_") as tmp:
        tmp_path = Path(tmp)
        ckpt = args.ckpt
        if ckpt is None:
            ckpt = stand_in_checkpoint(tmp_path / "ae.safetensors")
        if args.per_image:
            per_image(paths, ckpt)
        images = tmp_path / "in"
        link_copies(paths, args.copies, images)
        files = sorted(images.iterdir())
        counts = [int(w) for w in args.workers.split(",") if w.strip()]
        variants = ["decode-only", "compress", *[f"compress --workers {w}" for w in counts]]
        runs: dict[str, list[Run]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            runs["decode-only"].append(decode_only(files, cores))
            runs["compress"].append(compress_run(images, tmp_path / "out", ckpt, None))
            for w in counts:
                runs[f"compress --workers {w}"].append(compress_run(images, tmp_path / "out", ckpt, w))
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        print(f"\n{len(files)} files ({args.copies} × {len(paths)}), {args.repeats} interleaved rounds, load {load()}")
        print(f"  {'variant':24s} {'img/s':>6s}  ratio: median (range)  CPU ms/img (main)  img/s each round")
        for name, values in runs.items():
            ratios = [v.rate / d.rate for v, d in zip(values, runs["decode-only"])]
            spread = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            cpu_ms, main_ms = (statistics.median(getattr(v, k) for v in values) for k in ("cpu_ms", "main_ms"))
            cpu = f"{cpu_ms:5.1f} ({main_ms:.1f})"
            each = "/".join(f"{v.rate:.1f}" for v in values)
            print(f"  {name:24s} {statistics.median(v.rate for v in values):6.1f}  {spread:21s}  {cpu:17s}  {each}")
        decode_cpu = statistics.median(v.cpu_ms for v in runs["decode-only"])
        compress_cpu = statistics.median(v.cpu_ms for v in runs["compress"])
        print(f"  CPU time per image, decode-only over compress: {decode_cpu / compress_cpu:.2f} (the ratio an idle")
        print("  machine would give if every core were busy all along; less sensitive to other jobs than wall time)")
        print(f"  compress's store: {summary['bits_per_pixel']:.4f} bits per original pixel (bytes on disk)")
        copies = [int(c) for c in args.rss.split(",") if c.strip()]
        if copies:
            print("\n`cxrtool compress` with its defaults (the whole command: interpreter start and imports included):")
        for count in copies:
            folder = tmp_path / f"rss{count}"
            link_copies(paths, count, folder)
            wall, rss, pss = cli_peak(folder, tmp_path / "cli", ckpt)
            n = count * len(paths)
            print(
                f"  {n:5d} files: {wall:6.1f} s ({n / wall:.1f} img/s); peak RSS of one process {rss:.0f} MiB, "
                f"peak PSS of all {pss:.0f} MiB"
            )
            shutil.rmtree(folder)
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
