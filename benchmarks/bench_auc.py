"""Bootstrap AUC intervals: cxrtool's count-weighted ranks against a loop of sklearn's roc_auc_score.

Run by hand (never by CI): `python benchmarks/bench_auc.py [--n-boot 2000] [--sklearn-resamples 100]`.
Synthetic data the size of ChestX-ray14's official test list (25,596 images x 14 labels) at roughly its label
prevalences, with float32 probabilities of a model whose AUC is about 0.8. sklearn scores the same resamples
(the first `--sklearn-resamples` of them), and its time is extrapolated to `--n-boot`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from cxrtool.data.labels import LABELS
from cxrtool.stats.metrics import bootstrap_auc

# Approximate positives per label on the official test list (25,596 images), in LABELS order.
TEST_POSITIVES = (3279, 1069, 1815, 925, 4658, 1093, 435, 86, 6112, 1748, 1623, 1143, 555, 2665)
N_IMAGES = 25_596


def synthetic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prevalence = np.array(TEST_POSITIVES) / N_IMAGES
    y = (rng.random((N_IMAGES, len(LABELS))) < prevalence).astype(np.int8)
    logits = 1.2 * y - 2.0 + rng.normal(size=y.shape)  # d' = 1.2: AUC about 0.80
    return y, (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--sklearn-resamples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    y, s = synthetic(args.seed)
    n = len(y)
    print(
        f"{n} images x {y.shape[1]} labels, {args.n_boot} resamples; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, numpy {np.__version__}"
    )

    # CPU time beside wall time: on a shared machine the wall time also counts other processes' turns.
    wall, cpu = time.perf_counter(), time.process_time()
    result = bootstrap_auc(y, s, n_boot=args.n_boot, seed=args.seed)
    ours = (time.perf_counter() - wall, time.process_time() - cpu)
    print(
        f"cxrtool bootstrap_auc: {ours[0]:.2f} s wall, {ours[1]:.2f} s CPU  (mean AUC {result['mean_auc']:.4f}, "
        f"95% CI {result['mean_ci_low']:.4f}-{result['mean_ci_high']:.4f})"
    )

    # The same resamples, drawn as bootstrap_auc documents: one rng.integers(0, n, n) per resample.
    k = min(args.sklearn_resamples, args.n_boot)
    rng = np.random.default_rng(args.seed)
    wall, cpu = time.perf_counter(), time.process_time()
    reference = []
    for _ in range(k):
        idx = rng.integers(0, n, size=n)
        reference.append(roc_auc_score(y[idx], s[idx], average=None))
    scale = args.n_boot / k
    theirs = ((time.perf_counter() - wall) * scale, (time.process_time() - cpu) * scale)
    gap = np.nanmax(np.abs(np.array(reference) - result["replicates"][:k]))
    print(
        f"sklearn roc_auc_score loop: {theirs[0]:.2f} s wall, {theirs[1]:.2f} s CPU  "
        f"(timed {k} resamples, extrapolated x{scale:g})"
    )
    print(f"speed-up: {theirs[0] / ours[0]:.1f}x wall, {theirs[1] / ours[1]:.1f}x CPU")
    print(f"largest |AUC difference| from sklearn over those {k} resamples: {gap:.1e}")


if __name__ == "__main__":
    main()
