"""The training CLI in real processes: two-process torchrun validation, and Ctrl-C → exit 130."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest


def _common(splits, images, out) -> list[str]:
    return [
        "train-classifier",
        "--splits", str(splits),
        "--images", str(images),
        "--out", str(out),
        "--no-pretrained",
        "--resize", "36",
        "--crop", "32",
        "--batch-size", "4",
        "--workers", "0",
        "--device", "cpu",
        "--seed", "5",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_two_process_validation_equals_one_process(synth_small, synth_splits, tmp_path):
    """Same weights (no training step), val split over 2 ranks with padding (13 images) vs 1 process."""
    quick = ["--max-steps", "0", "--epochs", "1", "--limit-train", "8", "--limit-val", "13"]
    one = subprocess.run(
        [sys.executable, "-m", "cxrtool", *_common(synth_splits, synth_small, tmp_path / "one"), *quick],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cxrtool"]
    two = subprocess.run(
        [*torchrun, *_common(synth_splits, synth_small, tmp_path / "two"), *quick],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (pd.read_csv(tmp_path / d / "history.csv") for d in ("one", "two"))
    aucs = [c for c in a.columns if c.startswith("val_auc_")]
    assert len(aucs) == 15
    pd.testing.assert_frame_equal(a[aucs], b[aucs], atol=1e-9, rtol=0)
    assert abs(a["val_loss"].iloc[0] - b["val_loss"].iloc[0]) < 1e-6
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_saves_resumable_state_and_exits_130(synth_small, synth_splits, tmp_path):
    run = tmp_path / "run"
    args = [*_common(synth_splits, synth_small, run), "--epochs", "50", "--limit-train", "16", "--limit-val", "4"]
    proc = subprocess.Popen([sys.executable, "-m", "cxrtool", *args], env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (run / "history.csv").exists():  # let one epoch finish, then interrupt the next
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no epoch finished in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    state = json.loads((run / "resume.json").read_text())["progress"]
    assert state["epoch"] >= 2
