"""Heatmaps for three labels of one image against that image's `predict` forward pass, on the CPU, in one process.

Run by hand (never by CI):

    python benchmarks/bench_explain.py [--image ../shared/nih-cxr14/images/00026911_000.png] [--rounds 7]
                                       [--threads 2] [--kinds classifier,joint] [--library]

For each model kind at the paper's geometry (classifier: DenseNet121 on the image resized to 224; joint: resized to
896, encoded to a 224 latent, classified), with random weights (speed does not depend on them), one real 1024²
radiograph, batch 1:

  predict   `model(x)` under torch.no_grad, as `predict` runs it on the CPU
  heatmaps  what `explain` computes for 3 labels: the forward pass, each label's gradient back to norm5,
            pytorch-grad-cam's Grad-CAM weighting, the three maps rendered at 1024² and their peaks
  overlay   drawing one `<image>_<label>.png` (matplotlib), timed apart and reported per map
  library   (--library) pytorch-grad-cam's own GradCAM for the same 3 labels (a batch of 3 copies, one target each,
            as its API takes them), the route `explain` avoids

The steps are interleaved round by round and the medians reported; the issue asks heatmaps/predict ≤ 3. Wall and
process CPU time are both printed: on a shared machine the wall time also counts other processes' turns, and there
`--threads 1` is much steadier (two threads on a busy 2-core machine made one 224² forward pass ~10× slower).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cxrtool.data.datasets import read_image
from cxrtool.data.labels import LABELS
from cxrtool.data.transforms import classifier_eval
from cxrtool.evaluation.inference import Predictor
from cxrtool.explain.figures import draw_overlay
from cxrtool.explain.geometry import peak
from cxrtool.explain.maps import Explainer
from cxrtool.models.checkpoint_info import CheckpointInfo
from cxrtool.models.registry import create_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO / ".." / "shared" / "nih-cxr14" / "images" / "00026911_000.png"
CROPS = {"classifier": 224, "joint": 896}
LABELS_EXPLAINED = [LABELS.index(n) for n in ("Infiltration", "Effusion", "Atelectasis")]


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_kind(kind: str, img, rounds: int, library: bool, out: Path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    crop = CROPS[kind]
    model = create_model(kind).eval()
    info = CheckpointInfo(path=Path("random"), kind=kind, labels=LABELS, input={"crop": crop}, version="bench")
    x = classifier_eval(crop=crop)(img, torch.Generator())[None]

    def predict() -> None:
        with torch.no_grad():
            model(x)

    # A separate copy for the engine, which freezes the weights it owns.
    explain_model = create_model(kind).eval()
    explain_model.load_state_dict(model.state_dict())
    explainer = Explainer(Predictor(explain_model, info, torch.device("cpu")))
    results: dict[str, object] = {}

    def heatmaps() -> None:
        maps = explainer(img, LABELS_EXPLAINED)
        results["maps"] = {j: (h, peak(full := h.render()), full) for j, h in maps.heatmaps.items()}
        results["probs"] = maps.probs

    def overlay() -> None:
        j = LABELS_EXPLAINED[0]
        heatmap, where, _ = results["maps"][j]  # type: ignore[index]
        draw_overlay(out / f"{kind}.png", img, heatmap, label=LABELS[j], probability=0.5, peak=where, method=kind)

    steps: dict[str, Callable[[], None]] = {"predict": predict, "heatmaps": heatmaps, "overlay": overlay}
    if library:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from cxrtool.explain.cam import LogitsOnly, target_layer

        lib_model = create_model(kind).eval()
        lib_model.load_state_dict(model.state_dict())
        cam = GradCAM(model=LogitsOnly(lib_model), target_layers=[target_layer(lib_model)])
        targets = [ClassifierOutputTarget(j) for j in LABELS_EXPLAINED]
        steps["library"] = lambda: cam(input_tensor=x.repeat(3, 1, 1, 1), targets=targets)
    for step in steps.values():  # warm-up: allocator, lazy imports, first-call dispatch
        step()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(timed(step))
    explainer.close()

    wall = {name: statistics.median(t[0] for t in v) for name, v in times.items()}
    cpu = {name: statistics.median(t[1] for t in v) for name, v in times.items()}
    print(f"\n{kind} (crop {crop}, batch 1, {rounds} rounds, medians)")
    for name in steps:
        print(f"  {name:9s} {wall[name] * 1000:8.1f} ms wall  {cpu[name] * 1000:8.1f} ms CPU")
    print(f"  heatmaps for 3 labels / predict forward: {wall['heatmaps'] / wall['predict']:.2f}× wall, "
          f"{cpu['heatmaps'] / cpu['predict']:.2f}× CPU (issue: ≤ 3×)")  # fmt: skip
    print(f"  overlay drawing, per map (not in the ratio): {wall['overlay'] / wall['predict']:.2f}× predict")
    if library:
        print(
            f"  pytorch-grad-cam GradCAM for the same 3 labels / predict: {wall['library'] / wall['predict']:.2f}× wall"
        )
    probs = results["probs"]
    assert isinstance(probs, np.ndarray) and probs.shape == (len(LABELS),)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads [default: torch's]")
    parser.add_argument("--kinds", default="classifier,joint")
    parser.add_argument("--library", action="store_true", help="also time pytorch-grad-cam's own GradCAM call")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    img = read_image(args.image)
    print(f"{args.image.name} {img.size[0]}×{img.size[1]} {img.mode}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    decode = statistics.median(timed(lambda: read_image(args.image))[0] for _ in range(3))
    print(f"decoding the image (for scale, in neither figure): {decode * 1000:.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            bench_kind(kind, img, args.rounds, args.library, Path(tmp))


if __name__ == "__main__":
    main()
